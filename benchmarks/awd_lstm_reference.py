r"""The reference for the PTB perplexity table: the AWD-LSTM in PyTorch, trained on the very
batches our pipeline yields for ``ulmfit/benchmark_awd_lstm_ptb.gin``.

    python -m benchmarks.awd_lstm_reference --seeds=0,1 [--steps=2000]

What it shares with the gin file (``models/awd_lstm.py`` through ``pretrain_lm.train``):

* the data: ``tasks.get_dataset("bench_ptb_lm_words", bptt=70, targets_length=90)``, the
  same BPTT streams in the same order (``--data_seed``, the gin file's ``DATA_SEED``), each
  window of AWD-LSTM's variable length cut out of its padded row; evaluation reads the
  validation and test streams in exact windows of 70 with the hidden state carried through
  them, from zeros, as ours does;
* the network: ``benchmarks.awd_lstm_torch.peer_model`` (embedding 200 tied to the softmax, one
  ``nn.LSTM`` a layer of 650, 650 and 200 cells, DropConnect on ``weight_hh``, locked and
  embedding dropout at fastai's LM rates, AR 2 and TAR 1 on the last layer);
* the recipe: batches of 20 streams, 2,000 steps, gradients clipped at global norm 0.4,
  ``torch.optim.AdamW`` (betas 0.7 / 0.99, eps 1e-8, decoupled weight decay 0.01 scaled by
  the rate, as ``optimizers.ulmfit_adam`` does), the slanted triangular rate of
  ``optimizers.slanted_triangular`` peaking at 3e-3, the hidden state carried across
  batches and detached.

What differs, as each library does it: PyTorch's LSTM initialisation (uniform in
``±1/sqrt(cells)``; ours: Flax's), the random streams of the dropout masks, and the
padding (PyTorch runs each window at its own length; ours pads it to 90 and masks).

Each seed writes ``results/benchmark/awd_lstm_reference/<task>/seed_<s>.json`` (validation
perplexity every ``--eval_every`` steps, validation and test perplexity at the end,
minutes, the command), and its curves as a run's ``seed_<s>/{train,eval}/metrics.jsonl``,
so that ``python -m pretrain_lm.tools.plots --run=PyTorch=<that dir> --run=ours=<model
dir> --metrics=perplexity`` draws both; a seed whose file exists is not run again.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from absl import app, flags

# Before torch loads: libgomp's spinning threads crawl on a machine with other jobs
# running (benchmarks/elmo.py measured 12x); passive waiting costs nothing when idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_TASK = flags.DEFINE_string("task", "bench_ptb_lm_words", "A decoder-only LM task.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds (init and dropout), one run each.")
_DATA_SEED = flags.DEFINE_integer("data_seed", 0, "The pipeline's seed (DATA_SEED).")
_STEPS = flags.DEFINE_integer("steps", 2000, "Optimizer steps.")
_BATCH = flags.DEFINE_integer("batch", 20, "Streams a batch.")
_BPTT = flags.DEFINE_integer("bptt", 70, "Mean BPTT window (exact in evaluation).")
_MAX_LENGTH = flags.DEFINE_integer("targets_length", 90, "Longest training window.")
_VOCAB = flags.DEFINE_integer("vocab", 10001, "Vocabulary size (the task's).")
_EMBED = flags.DEFINE_integer("embed", 200, "Embedding size (= the last layer's cells).")
_HIDDEN = flags.DEFINE_integer("hidden", 650, "Cells of the other LSTM layers.")
_LAYERS = flags.DEFINE_integer("layers", 3, "LSTM layers.")
_LR = flags.DEFINE_float("learning_rate", 3e-3, "Peak of the slanted triangular rate.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 500, "Validation every this many steps.")
_OUTPUT = flags.DEFINE_string("output_dir", "results/benchmark/awd_lstm_reference",
                              "Where <task>/seed_<s>.json go.")

B1, B2, EPS, WEIGHT_DECAY, CLIP = 0.7, 0.99, 1e-8, 0.01, 0.4
CUT_FRAC, RATIO = 0.1, 32.0
AR_ALPHA, TAR_BETA = 2.0, 1.0


def stream_batches(split: str, *, train: bool) -> Iterator[dict[str, np.ndarray]]:
    """The task's BPTT-stream batches as ``pretrain_lm.train`` reads them: training ones
    forever (shuffled documents, variable windows), evaluation ones once (exact windows)."""
    import tasks

    ds = tasks.get_dataset(
        _TASK.value, split=split, batch_size=_BATCH.value, seed=_DATA_SEED.value,
        shuffle=train, num_epochs=None if train else 1, bptt=_BPTT.value,
        targets_length=_MAX_LENGTH.value)
    return ds.as_numpy_iterator()


def window(batch: dict[str, np.ndarray]) -> tuple[Any, Any, Any]:
    """``(ids, targets, weights)`` of one batch cut to its window (every row of a stream
    batch has the same window; rows past the end of a stream have weight 0)."""
    import torch

    n = int((batch["decoder_loss_weights"] > 0).sum(1).max())
    return tuple(torch.from_numpy(np.ascontiguousarray(batch[k][:, :n])).to(dtype)
                 for k, dtype in (("decoder_input_tokens", torch.int64),
                                  ("decoder_target_tokens", torch.int64),
                                  ("decoder_loss_weights", torch.float32)))


def perplexity(model: Any, split: str) -> float:
    """exp(mean NLL per word) over ``split``'s stream, the state carried from zeros."""
    import torch
    from torch.nn import functional as F

    model.eval()
    state = model.initial_state(_BATCH.value)
    total, count = 0.0, 0.0
    with torch.no_grad():
        for batch in stream_batches(split, train=False):
            ids, targets, weights = window(batch)
            logits, _, _, state = model(ids, state)
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                  reduction="none")
            total += float((nll * weights.reshape(-1)).sum())
            count += float(weights.sum())
    model.train()
    return math.exp(total / count)


def train_seed(seed: int) -> dict[str, Any]:
    import torch
    from torch.nn import functional as F

    from benchmarks.awd_lstm_torch import awd_config, peer_model
    from pretrain_lm import optimizers

    torch.manual_seed(seed)
    config = awd_config(_VOCAB.value, _EMBED.value, _HIDDEN.value, _LAYERS.value)
    model = peer_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=_LR.value, betas=(B1, B2), eps=EPS,
                                  weight_decay=WEIGHT_DECAY)
    schedule_fn = optimizers.slanted_triangular(1.0, _STEPS.value, CUT_FRAC, RATIO)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: float(schedule_fn(s)))
    state = model.initial_state(_BATCH.value)
    batches = stream_batches("train", train=True)
    curve, losses, start = [], [], time.time()
    for step in range(1, _STEPS.value + 1):
        ids, targets, _ = window(next(batches))
        optimizer.zero_grad(set_to_none=True)
        logits, raw, dropped, new_state = model(ids, state)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss = (nll + AR_ALPHA * dropped.pow(2).mean()
                + TAR_BETA * (raw[:, 1:] - raw[:, :-1]).pow(2).mean())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        schedule.step()
        state = [(h.detach(), c.detach()) for h, c in new_state]
        if step % 100 == 0:
            losses.append({"step": step, "nll": nll.item(), "loss": loss.item()})
            print(f"seed {seed} step {step}: loss {loss.item():.3f} nll {nll.item():.3f} "
                  f"({(time.time() - start) / step:.2f} s/step)", flush=True)
        if step % _EVAL_EVERY.value == 0 or step == _STEPS.value:
            curve.append({"step": step, "perplexity": perplexity(model, "validation")})
            print(f"seed {seed} step {step}: validation perplexity "
                  f"{curve[-1]['perplexity']:.2f}", flush=True)
    minutes = (time.time() - start) / 60
    return {"task": _TASK.value, "seed": seed, "steps": _STEPS.value,
            "validation_perplexity": curve[-1]["perplexity"],
            "test_perplexity": perplexity(model, "test"),
            "validation_curve": curve, "train_losses": losses,
            "minutes": round(minutes, 1), "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "command": " ".join(["python -m benchmarks.awd_lstm_reference",
                                 *map(shlex.quote, sys.argv[1:])])}


def write_curves(result: dict[str, Any], run_dir: str) -> None:
    """``run_dir/{train,eval}/metrics.jsonl`` of one seed's result, in the records
    ``pretrain_lm.train`` writes (step, nll, loss / perplexity), for ``tools.plots``."""
    records = {
        "train": [{"step": r["step"], "nll": r["nll"], "loss": r["loss"],
                   "perplexity": math.exp(r["nll"])} for r in result["train_losses"]],
        "eval": [{"step": r["step"], "split": "validation", "perplexity": r["perplexity"],
                  "nll": math.log(r["perplexity"])} for r in result["validation_curve"]]}
    for split, rows in records.items():
        os.makedirs(os.path.join(run_dir, split), exist_ok=True)
        with open(os.path.join(run_dir, split, "metrics.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


def main(argv: list[str]) -> None:
    del argv
    out_dir = os.path.join(_OUTPUT.value, _TASK.value)
    os.makedirs(out_dir, exist_ok=True)
    for seed in map(int, _SEEDS.value):
        path = os.path.join(out_dir, f"seed_{seed}.json")
        if os.path.exists(path):
            print(f"{path} exists; not run again")
            continue
        result = train_seed(seed)
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        write_curves(result, os.path.join(out_dir, f"seed_{seed}"))
        print(f"seed {seed}: validation {result['validation_perplexity']:.2f}, test "
              f"{result['test_perplexity']:.2f} ({result['minutes']} min) -> {path}")


if __name__ == "__main__":
    app.run(main)
