r"""AWD-LSTM language-model training step: tokens/s and model-FLOPs utilisation, against a
PyTorch peer.

    python -m benchmarks.awd_lstm [--steps=10 --batch=32 --bptt=70 --vocab=8000 \
        --embed=400 --hidden=1150 --layers=3 --peer=true]

The AWD-LSTM of ULMFiT (3 LSTM layers, 1150 cells, the last one as wide as the 400-wide
embedding, the softmax tied to the embedding; here with an 8000-word vocabulary), BPTT 70,
batch 32, every regulariser of ``models.awd_lstm.AWDLSTMConfig`` at its default magnitude,
in one run on this machine:

1. the matmul peak: a 2048^3 float32 matmul through JAX (FLOP/s), the MFU denominator;
2. ours: the real ``pretrain_lm.trainer.Trainer`` step (jitted, donated, sharded by
   ``Partitioner()``) on ``AWDLSTMLanguageModel(..., carry_state=True)`` -- the hidden state
   of every layer carried from step to step -- with ``optimizers.ulmfit_adam`` (Adam 0.7 /
   0.99, slanted triangular rates, discriminative rates per layer group: the embedding and
   the softmax bias, then each LSTM layer);
3. the peer: the same network in PyTorch (CPU), written as the AWD-LSTM code does:
   ``nn.Embedding`` with embedding dropout (whole rows of the table, applied to the looked-up
   rows), locked dropout (one mask per sequence) on the embedded inputs, between the layers
   and on the output, one ``nn.LSTM`` per layer (batch_first; its fused oneDNN kernels on
   CPU) run through ``torch.func.functional_call`` with DropConnect on ``weight_hh_l0`` (a
   dropped copy of the raw weight, one mask per step), the decoder tied to the embedding
   plus a bias, cross-entropy over all positions plus AR / TAR, the hidden state carried
   across steps and detached, and ``torch.optim.Adam(betas=(0.7, 0.99))`` with the same
   per-group rates and schedule.

Both see the same random batch at every step. Model FLOPs are counted from the config
(``AWDLSTMLanguageModel.flops_per_example``: the gate matmuls and the softmax, backward =
2x forward), the same count for both; MFU = model FLOP/s / matmul peak. The first step's
losses of both are printed beside ln(vocab), as a check that the two compute the same thing.

Ours and the peer take turns step by step, so that a busy shared machine slows both alike;
the matmul peak is measured before and after, and once more in every turn (one matmul
after each pair of steps), and the largest of these is used. Beside the median
step the best one is reported (on a busy machine the better estimate of the uncontended
speed). The process keeps freed host memory mapped (``pretrain_lm.host``, as a training run
does) for all measurements. Writes `results/bench_awd_lstm.json`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import app, flags

from benchmarks.awd_lstm_torch import awd_config, peer_model
from benchmarks.timing import (
    matmul_call,
    matmul_peak,
    report_steps,
    settle_peak,
    time_interleaved,
    write_results,
)

_STEPS = flags.DEFINE_integer("steps", 10, "Timed training steps (after 3 warm-up steps).")
_BATCH = flags.DEFINE_integer("batch", 32, "Batch size (streams).")
_BPTT = flags.DEFINE_integer("bptt", 70, "Tokens per stream per step (BPTT length).")
_VOCAB = flags.DEFINE_integer("vocab", 8000, "Vocabulary size.")
_EMBED = flags.DEFINE_integer("embed", 400, "Embedding size (= the last layer's cells).")
_HIDDEN = flags.DEFINE_integer("hidden", 1150, "Cells of the other LSTM layers.")
_LAYERS = flags.DEFINE_integer("layers", 3, "LSTM layers.")
_PEER = flags.DEFINE_bool("peer", True, "Also time the PyTorch AWD-LSTM.")
_OUTPUT = flags.DEFINE_string("output", "results/bench_awd_lstm.json", "JSON results.")

LEARNING_RATE, SCHEDULE_STEPS, DISCRIMINATIVE_DECAY = 1e-3, 1000, 2.6
AR_ALPHA, TAR_BETA = 2.0, 1.0  # AWDLSTMLanguageModel's defaults


def layer_groups(layers: int) -> tuple[str, ...]:
    """ULMFiT's layer groups of this network, bottom first: the embedding with the (tied)
    softmax's bias, then each LSTM layer (``ULMFIT_LAYER_GROUPS`` names a classifier
    instead of the LM's ``output_bias``)."""
    return ("embedding|output_bias", *(f"lstm_{i}" for i in range(layers)))


def lm_batch(batch: int, bptt: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random streams: targets are the inputs shifted by one."""
    ids = np.random.default_rng(seed).integers(0, vocab, (batch, bptt + 1), dtype=np.int32)
    return {"decoder_input_tokens": ids[:, :-1], "decoder_target_tokens": ids[:, 1:].copy(),
            "decoder_loss_weights": np.ones((batch, bptt), np.float32)}


# ----------------------------------------------------------------------------- ours


def ours_train(batch_np: dict[str, np.ndarray], config: Any
               ) -> tuple[Callable[[], None], list[Any]]:
    """One blocking train step of the real ``Trainer`` per call, and the metrics of every
    call (appended, left on the device)."""
    from models.awd_lstm import AWDLSTMLanguageModel
    from pretrain_lm import optimizers
    from pretrain_lm.data import to_global
    from pretrain_lm.partitioning import Partitioner
    from pretrain_lm.trainer import Trainer

    batch_size, bptt = batch_np["decoder_input_tokens"].shape
    model = AWDLSTMLanguageModel(config, max_length=bptt, carry_state=True)
    opt = optimizers.ulmfit_adam(learning_rate=LEARNING_RATE, total_steps=SCHEDULE_STEPS,
                                 layer_groups=layer_groups(config.num_layers),
                                 discriminative_decay=DISCRIMINATIVE_DECAY)
    partitioner = Partitioner()
    trainer = Trainer(model, opt.tx, partitioner, seed=0, batch_size=batch_size)
    state = trainer.init_state()
    batch = to_global(batch_np, partitioner.batch_sharding(), batch_size)
    history: list[Any] = []

    def step():
        nonlocal state
        state, metrics = trainer.train_step(state, batch)
        jax.block_until_ready(metrics)
        history.append(metrics)

    return step, history


# ----------------------------------------------------------------------------- the peer


def peer_train(batch_np: dict[str, np.ndarray], config: Any
               ) -> tuple[Callable[[], None], list[dict[str, float]]]:
    """One train step of the PyTorch AWD-LSTM per call, and the losses of every call."""
    import torch
    from torch.nn import functional as F

    from pretrain_lm import optimizers

    torch.manual_seed(0)
    model = peer_model(config).train()
    factors = optimizers.discriminative_factors(config.num_layers + 1, DISCRIMINATIVE_DECAY)
    groups = [[model.embedding.weight, model.decoder_bias], *(
        list(rnn.parameters()) for rnn in model.rnns)]
    optimizer = torch.optim.Adam(
        [{"params": p, "lr": LEARNING_RATE * f} for p, f in zip(groups, factors, strict=True)],
        betas=(0.7, 0.99), eps=1e-8)
    schedule_fn = optimizers.slanted_triangular(1.0, SCHEDULE_STEPS)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: float(schedule_fn(s)))
    ids = torch.from_numpy(batch_np["decoder_input_tokens"].astype(np.int64))
    targets = torch.from_numpy(batch_np["decoder_target_tokens"].astype(np.int64))
    state = model.initial_state(ids.shape[0])
    history: list[dict[str, float]] = []

    def step():
        nonlocal state
        optimizer.zero_grad(set_to_none=True)
        logits, raw, dropped, new_state = model(ids, state)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        ar = AR_ALPHA * dropped.pow(2).mean()
        tar = TAR_BETA * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        loss = nll + ar + tar
        loss.backward()
        optimizer.step()
        schedule.step()
        state = [(h.detach(), c.detach()) for h, c in new_state]
        history.append({"loss": loss.item(), "nll": nll.item(), "ar": ar.item(),
                        "tar": tar.item()})

    return step, history


def our_losses(metrics: Any) -> dict[str, float]:
    fetched = jax.device_get(metrics)
    return {k: float(fetched[k][0]) / max(float(fetched[k][1]), 1e-12)
            for k in ("loss", "nll", "ar", "tar")}


# ----------------------------------------------------------------------------- main


def main(argv: list[str]) -> None:
    del argv
    import torch

    from models.awd_lstm import AWDLSTMLanguageModel
    from pretrain_lm import host

    host.keep_freed_memory()  # as pretrain_lm.train does, before JAX starts (both impls gain)

    batch, bptt, vocab = _BATCH.value, _BPTT.value, _VOCAB.value
    config = awd_config(vocab, _EMBED.value, _HIDDEN.value, _LAYERS.value)
    tokens = batch * bptt
    flops = AWDLSTMLanguageModel(config, max_length=bptt).flops_per_example() * batch
    peak = matmul_peak()
    load_before = os.getloadavg()[0]
    print(f"devices: {jax.devices()}  torch threads: {torch.get_num_threads()}  "
          f"cpus: {os.cpu_count()}  load average: {load_before:.1f}  "
          f"matmul peak (fp32, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"config: AWD-LSTM {config.num_layers} layers {config.layer_sizes()} cells, embed "
          f"{config.embed_dim}, vocab {vocab}, tied softmax; batch {batch} x bptt {bptt} "
          f"({tokens} tokens), {flops / 1e9:.1f} GFLOP/step "
          f"({flops / tokens / 1e6:.1f} MFLOP/token)")
    results: dict[str, Any] = {
        "config": dict(batch=batch, bptt=bptt, vocab=vocab, embed=config.embed_dim,
                       hidden=config.hidden_size, layers=config.num_layers,
                       dropouts={k: config.rate(k) for k in
                                 ("embed", "input", "hidden", "weight", "output")}),
        "matmul_peak_flops": peak, "model_flops_per_step": flops, "tokens_per_step": tokens,
        "train": {}}

    batch_np = lm_batch(batch, bptt, vocab)
    names = ["pretrain_lm Trainer (JAX)", "AWD-LSTM nn.LSTM (PyTorch)"]
    runners = [ours_train(batch_np, config)] + (
        [peer_train(batch_np, config)] if _PEER.value else [])
    *times, matmul_times = time_interleaved([step for step, _ in runners] + [matmul_call()],
                                            _STEPS.value)
    losses = [our_losses(runners[0][1][0])] + (
        [runners[1][1][0]] if len(runners) == 2 else [])
    del runners
    peak = settle_peak(results, peak, load_before, matmul_times)

    print(f"\ntraining step (batch {batch} x bptt {bptt}, AWD dropouts, AR/TAR, ULMFiT Adam, "
          f"state carried); median of {_STEPS.value} steps (best step in brackets):")
    report_steps(results, names[:len(times)], times, losses, tokens=tokens, flops=flops,
                 peak=peak, vocab=vocab, loss_header="first loss (nll)",
                 loss_text=lambda first: f"{first['loss']:8.3f} ({first['nll']:6.3f})")
    write_results(_OUTPUT.value, results)


if __name__ == "__main__":
    app.run(main)
