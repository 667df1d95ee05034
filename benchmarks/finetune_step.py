r"""BERT fine-tuning on real sentences: real wordpieces per second, packed against padded.

    PRETRAIN_LM_DATA_DIR=../shared/data python -m benchmarks.finetune_step \
        [--task=bench_glue_sst2_bert_uncased --rows=16 --length=128 --steps=10 --peer=true]

MiniLM's architecture (all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, FFN 1536, BERT's
30,522 wordpieces; randomly initialised, as speed does not depend on the weights) with a
sequence-classification head on the pooler, trained with AdamW (lr 5e-5, clipping 1.0) on
the real training sentences of a fine-tuning task, shuffled (seed 0). In one run:

1. the matmul peak (a 2048^3 float32 matmul through JAX), the MFU denominator;
2. ours: the real ``pretrain_lm.trainer.Trainer`` step on ``BertFineTuningModel``, each
   batch ``rows`` x ``length`` packed with examples (``DataConfig.pack``:
   ``tasks.finetuning.pack_examples``; one compiled step for every batch);
3. the peer: HuggingFace ``BertForSequenceClassification`` (PyTorch CPU, SDPA attention)
   on the *same examples* at every step, one a row, each batch padded to its longest
   example (what ``DataCollatorWithPadding`` gives), with ``torch.optim.AdamW`` and the
   same clipping.

Both see the same real wordpieces at every step, so the ratio of real tokens per second is
the ratio of step times. They take turns step by step (``time_interleaved``), so a busy
machine slows both alike. Writes ``results/bench_finetune_step.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import app, flags

from benchmarks.timing import (
    matmul_peak,
    report_real_tokens,
    time_interleaved,
    trainer_steps,
    write_results,
)

_TASK = flags.DEFINE_string("task", "bench_glue_sst2_bert_uncased",
                            "A classification fine-tuning task with real training text.")
_ROWS = flags.DEFINE_integer("rows", 16, "Packed rows per batch (ours).")
_LENGTH = flags.DEFINE_integer("length", 128, "Row length (max_seq_length).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after 3 warm-up steps).")
_PEER = flags.DEFINE_bool("peer", True, "Also time HuggingFace transformers (PyTorch).")
_OUTPUT = flags.DEFINE_string("output", "results/bench_finetune_step.json", "JSON results.")

LAYERS, HIDDEN, HEADS, FFN, VOCAB = 6, 384, 12, 1536, 30522
WARMUP = 3


def packed_batches(task: str, count: int, rows: int, length: int
                   ) -> list[dict[str, np.ndarray]]:
    """The first ``count`` packed training batches of ``task`` (shuffled, seed 0)."""
    import tasks

    ds = tasks.get_dataset(task, split="train", batch_size=rows, seed=0, shuffle=True,
                           pack=True, max_seq_length=length)
    return list(ds.take(count).as_numpy_iterator())


def unpack(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The examples of a packed batch (ids, segment ids, label), in row and example order."""
    examples = []
    for r in range(batch["input_ids"].shape[0]):
        example_ids = batch["input_mask"][r]
        for k in range(1, int(example_ids.max()) + 1):
            at = example_ids == k
            first = np.flatnonzero(at)[0]
            examples.append({"input_ids": batch["input_ids"][r][at],
                             "segment_ids": batch["segment_ids"][r][at],
                             "label": int(batch["label"][r][first])})
    return examples


def padded_to_longest(examples: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """One example a row, padded to the longest of the batch."""
    longest = max(len(e["input_ids"]) for e in examples)
    out = {k: np.zeros((len(examples), longest), np.int64)
           for k in ("input_ids", "token_type_ids", "attention_mask")}
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        out["input_ids"][i, :n] = e["input_ids"]
        out["token_type_ids"][i, :n] = e["segment_ids"]
        out["attention_mask"][i, :n] = 1
    out["labels"] = np.array([e["label"] for e in examples], np.int64)
    return out


def model(length: int, num_labels: int) -> Any:
    from models import bert

    config = bert.BertConfig(vocab_size=VOCAB, num_layers=LAYERS, hidden_size=HIDDEN,
                             num_heads=HEADS, intermediate_size=FFN)
    return bert.BertFineTuningModel(config, head="classification", num_labels=num_labels,
                                    max_seq_length=length, pooling="pooler")


def ours_train(batches: list[dict[str, np.ndarray]], num_labels: int
               ) -> Callable[[], None]:
    """One blocking ``Trainer`` step per call, on each packed batch in turn."""
    from pretrain_lm import optimizers

    length = batches[0]["input_ids"].shape[1]
    opt = optimizers.adamw(5e-5, warmup_steps=10, total_steps=10_000)
    return trainer_steps(model(length, num_labels), opt.tx, batches)


def peer_train(batches: list[dict[str, np.ndarray]], num_labels: int) -> Callable[[], None]:
    """One ``BertForSequenceClassification`` step per call, on each padded batch in turn."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=FFN, hidden_act="gelu",
        num_labels=num_labels, attn_implementation="sdpa")
    net = transformers.BertForSequenceClassification(config).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=5e-5, eps=1e-6, weight_decay=0.01)
    prepared = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches]
    position = 0

    def step():
        nonlocal position
        inputs = prepared[position % len(prepared)]
        position += 1
        optimizer.zero_grad(set_to_none=True)
        loss = net(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()

    return step


def main(argv: list[str]) -> None:
    del argv
    import tasks
    from pretrain_lm import host

    host.keep_freed_memory()  # as pretrain_lm.train does, before JAX starts (both impls gain)
    rows, length, steps = _ROWS.value, _LENGTH.value, _STEPS.value
    num_labels = tasks.task_info(_TASK.value).num_labels
    packed = packed_batches(_TASK.value, steps + WARMUP, rows, length)
    padded = [padded_to_longest(unpack(b)) for b in packed]
    tokens = [int((b["input_mask"] > 0).sum()) for b in packed]
    assert tokens == [int(b["attention_mask"].sum()) for b in padded]
    examples = [len(b["labels"]) for b in padded]
    fill_ours = sum(tokens) / (len(packed) * rows * length)
    fill_peer = sum(tokens) / sum(b["input_ids"].size for b in padded)
    peak = matmul_peak()
    load_before = os.getloadavg()[0]
    flops = model(length, num_labels).flops_per_example() * rows
    print(f"devices: {jax.devices()}  cpus: {os.cpu_count()}  load average: "
          f"{load_before:.1f}  matmul peak (fp32, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"{_TASK.value}: {np.mean(examples):.0f} real examples, {np.mean(tokens):.0f} real "
          f"wordpieces a step; ours packs them into {rows} x {length} rows "
          f"({100 * fill_ours:.0f}% of positions real), the peer pads each batch to its "
          f"longest example ({100 * fill_peer:.0f}%)")
    runners = [ours_train(packed, num_labels)]
    if _PEER.value:
        runners.append(peer_train(padded, num_labels))
    times = time_interleaved(runners, steps, warmup=WARMUP)
    peak = max(peak, matmul_peak())
    load_after = os.getloadavg()[0]
    timed_tokens = sum(tokens[WARMUP:WARMUP + steps])
    names = ["pretrain_lm Trainer, packed (JAX)",
             "transformers BertForSequenceClassification, padded to longest (PyTorch)"]
    results: dict[str, Any] = {
        "task": _TASK.value, "config": dict(layers=LAYERS, hidden=HIDDEN, heads=HEADS,
                                            ffn=FFN, vocab=VOCAB, rows=rows, length=length),
        "examples_per_step": float(np.mean(examples)),
        "real_tokens_per_step": float(np.mean(tokens)),
        "fill": {"ours_packed": fill_ours, "peer_padded_to_longest": fill_peer},
        "matmul_peak_flops": peak, "load_average": [load_before, load_after]}
    print(f"\n{steps} steps after {WARMUP} warm-up steps; load average at the end "
          f"{load_after:.1f}")
    report_real_tokens(results, names, times, timed_tokens=timed_tokens, flops=flops,
                       peak=peak, counted="real tokens/s", goal=1.5)
    write_results(_OUTPUT.value, results)


if __name__ == "__main__":
    app.run(main)
