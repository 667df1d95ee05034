r"""ELMo biLM training step: tokens/s and model-FLOPs utilisation, against a PyTorch peer
of the same size.

    python -m benchmarks.elmo [--size=cpu|tiny|small|medium|original --steps=10 \
        --batch=32 --length=20 --vocab=8192 --peer=true --peer_threads=cores,1 \
        --peer_omp_wait_policy=PASSIVE]

``models.elmo.ELMoLanguageModel`` (char CNN -> highway -> projection -> forward and
backward LSTMP stacks with the residual connection -> one word softmax shared by both
directions; the loss is the mean of the two directions' mean NLL) at one of these sizes
(``--size``; the preset's filters, highway layers, projection, cells and layers):

* ``cpu`` (the default): ``elmo_tiny``'s filters (256 features, 1 highway layer) with a
  128-d projection and 2 x 512 cells, a CPU-affordable cut of ``elmo_small``;
* ``tiny``: ``elmo_tiny`` (64-d projection, 2 x 256 cells);
* ``small`` / ``medium`` / ``original``: AllenNLP's presets (2048 CNN features; 2 x 1024
  / 2048 / 4096 cells) -- heavy on this CPU.

Every size here uses a full softmax over ``--vocab`` words (the presets' sampled softmax
over 793k words is switched off), dropout 0 and no cell / projection clipping (bilm-tf
clips to [-3, 3]; ``nn.LSTM`` cannot, so both sides leave it out for a like-for-like
step), on a batch of ``--batch`` sentences x ``--length`` tokens (bilm-tf's unroll_steps
is 20) of random character ids (every token real: no padding) and random word ids. In one
run on this machine:

1. the matmul peak: a 2048^3 float32 matmul through JAX (FLOP/s), the MFU denominator;
2. ours: the real ``pretrain_lm.trainer.Trainer`` step (jitted, donated, sharded by
   ``Partitioner()``: loss, gradients and an ``optax.adam(1e-3)`` update);
3. the peer: the same network in PyTorch (CPU): ``nn.Embedding`` of the characters, one
   ``nn.Conv1d`` per filter width, max over positions then the activation, highway
   layers (``nn.Linear`` transform and gate), the linear projection, per direction one
   ``nn.LSTM(proj_size=...)`` per layer (torch runs an LSTM with a projection through
   its per-step ATen implementation: oneDNN's fused LSTM has no projection, as torch
   warns, silenced here; the backward direction runs on the time-flipped inputs, flipped
   back) with the residual connection added between layers, one ``nn.Linear`` softmax
   shared by both directions, cross-entropy, and ``torch.optim.Adam(lr=1e-3)``;
   ``torch.set_num_threads`` = the machine's cores (JAX uses its default), and by default
   a second peer on 1 thread (``--peer_threads``). ``nn.LSTM`` has two biases where
   ``layers.LSTM`` has one (``bias = bias_ih + bias_hh``): the peer's ``bias_hh`` is
   frozen at zero, so both train the same function with the same parameters, whose
   counts are printed and asserted equal.

``OMP_WAIT_POLICY=PASSIVE`` is set before torch loads (``--peer_omp_wait_policy``; an
``OMP_WAIT_POLICY`` already in the environment wins): with libgomp's default, spinning
threads, the 2-thread peer took 12.3 s a step on this 2-core machine while other jobs
loaded it (0.96 s on 1 thread), which would make any ratio meaningless.

Both see the same batch at every step. Model FLOPs are counted from the config
(``ELMoLanguageModel.flops_per_example``: 3x the forward matmul/conv FLOPs of
``ELMoConfig.flops_per_token``), the same count for both; MFU = model FLOP/s / matmul
peak. The first step's losses of both are printed beside ln(vocab), as a check that the
two compute the same thing.

Ours and the peer take turns step by step, so that a busy shared machine slows both alike;
the matmul peak is measured before and after, and once in every turn (one matmul after
each pair of steps), and the largest is used. Beside the median step the best one is
reported (on a busy machine the better estimate of the uncontended speed). The process
keeps freed host memory mapped (``pretrain_lm.host``, as a training run does) for all
measurements. Writes `results/bench_elmo.json`.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import app, flags

from benchmarks.timing import (
    matmul_call,
    matmul_peak,
    report_steps,
    settle_peak,
    time_interleaved,
    write_results,
)

SIZES = ("cpu", "tiny", "small", "medium", "original")

_SIZE = flags.DEFINE_enum("size", "cpu", SIZES, "biLM size (see the module doc).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed training steps (after 3 warm-up steps).")
_BATCH = flags.DEFINE_integer("batch", 32, "Sentences per batch.")
_LENGTH = flags.DEFINE_integer("length", 20, "Tokens per sentence (bilm-tf's unroll_steps).")
_VOCAB = flags.DEFINE_integer("vocab", 8192, "Word vocabulary of the (full) softmax.")
_PEER = flags.DEFINE_bool("peer", True, "Also time the PyTorch biLM.")
_PEER_THREADS = flags.DEFINE_list(
    "peer_threads", ["cores", "1"],
    "torch.set_num_threads of each PyTorch peer (one peer per entry, all taking turns with "
    "ours); 'cores' = the machine's cores. The first one is the peer of the ratio.")
_OMP_WAIT = flags.DEFINE_string(
    "peer_omp_wait_policy", "PASSIVE",
    "OMP_WAIT_POLICY for torch's OpenMP threads, set before torch loads (unless already in "
    "the environment); '' = libgomp's default (spinning: pathological on a busy machine).")
_OUTPUT = flags.DEFINE_string("output", "results/bench_elmo.json", "JSON results.")

LEARNING_RATE = 1e-3


def elmo_config(size: str, vocab: int) -> Any:
    """The ``--size`` preset with a full softmax over ``vocab`` words, no dropout and no
    clipping (see the module doc)."""
    from models import elmo

    presets: dict[str, Callable[..., Any]] = {
        "cpu": lambda **kw: elmo.elmo_tiny(projection_dim=128, cell_size=512, **kw),
        "tiny": elmo.elmo_tiny, "small": elmo.elmo_small, "medium": elmo.elmo_medium,
        "original": elmo.elmo_original}
    return presets[size](vocab_size=vocab, num_samples=0, dropout=0.0, cell_clip=None,
                         proj_clip=None)


def elmo_batch(batch: int, length: int, vocab: int, chars: int, char_vocab: int,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Random sentences: character ids > 0 (every token real) and word ids."""
    rng = np.random.default_rng(seed)
    return {"char_ids": rng.integers(1, char_vocab, (batch, length, chars), dtype=np.int32),
            "token_ids": rng.integers(0, vocab, (batch, length), dtype=np.int32),
            "token_weights": np.ones((batch, length), np.float32)}


# ----------------------------------------------------------------------------- ours


def ours_train(batch_np: dict[str, np.ndarray], config: Any
               ) -> tuple[Callable[[], None], list[Any], int]:
    """One blocking train step of the real ``Trainer`` per call, the metrics of every call
    (appended, left on the device) and the number of parameters."""
    import optax

    from models.elmo import ELMoLanguageModel
    from pretrain_lm.data import to_global
    from pretrain_lm.partitioning import Partitioner
    from pretrain_lm.trainer import Trainer

    batch_size, length = batch_np["token_ids"].shape
    model = ELMoLanguageModel(config, max_length=length)
    partitioner = Partitioner()
    trainer = Trainer(model, optax.adam(LEARNING_RATE), partitioner, seed=0,
                      batch_size=batch_size)
    state = trainer.init_state()
    batch = to_global(batch_np, partitioner.batch_sharding(), batch_size)
    history: list[Any] = []

    def step() -> None:
        nonlocal state
        state, metrics = trainer.train_step(state, batch)
        jax.block_until_ready(metrics)
        history.append(metrics)

    return step, history, trainer.num_params()


def our_losses(metrics: Any) -> dict[str, float]:
    fetched = jax.device_get(metrics)
    return {k: float(fetched[k][0]) / max(float(fetched[k][1]), 1e-12)
            for k in ("loss", "forward_nll", "backward_nll")}


# ----------------------------------------------------------------------------- the peer


def peer_model(config: Any) -> Any:
    """The biLM and its shared softmax in PyTorch (see the module doc), initialised as
    ``models.elmo`` initialises its parameters."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    act = {"relu": F.relu, "tanh": torch.tanh}[config.cnn_activation]

    class Highway(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.transform, self.gate = nn.Linear(dim, dim), nn.Linear(dim, dim)
            for layer in (self.transform, self.gate):
                nn.init.normal_(layer.weight, std=1 / math.sqrt(dim))
            nn.init.zeros_(self.transform.bias)
            nn.init.constant_(self.gate.bias, config.highway_gate_bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            gate = torch.sigmoid(self.gate(x))
            return gate * F.relu(self.transform(x)) + (1.0 - gate) * x

    class BiLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            e, f, p = config.char_embed_dim, config.num_filters, config.projection_dim
            self.char_embed = nn.Embedding(config.char_vocab_size, e)
            nn.init.uniform_(self.char_embed.weight, -1.0, 1.0)
            self.convs = nn.ModuleList(nn.Conv1d(e, n, w) for w, n in config.filters)
            for conv, (w, _) in zip(self.convs, config.filters, strict=True):
                if config.cnn_activation == "relu":
                    nn.init.uniform_(conv.weight, -0.05, 0.05)
                else:
                    nn.init.normal_(conv.weight, std=math.sqrt(1.0 / (w * e)))
                nn.init.zeros_(conv.bias)
            self.highways = nn.ModuleList(Highway(f) for _ in range(config.num_highway))
            self.projection = nn.Linear(f, p) if config.use_projection else None
            if self.projection is not None:
                nn.init.normal_(self.projection.weight, std=1 / math.sqrt(f))
                nn.init.zeros_(self.projection.bias)
            proj = config.lstm_projection or 0
            # ModuleDict keys may not be "forward" (nn.Module.forward).
            self.lstms = nn.ModuleDict({
                direction: nn.ModuleList(
                    nn.LSTM(p, config.cell_size, batch_first=True, proj_size=proj)
                    for _ in range(config.num_layers))
                for direction in ("fwd", "bwd")})
            for stack in self.lstms.values():
                for lstm in stack:  # one bias, as layers.LSTM: bias_hh stays zero
                    nn.init.zeros_(lstm.bias_hh_l0)
                    lstm.bias_hh_l0.requires_grad_(False)
            self.softmax = nn.Linear(p, config.vocab_size)
            nn.init.normal_(self.softmax.weight, std=1 / math.sqrt(p))
            nn.init.zeros_(self.softmax.bias)

        def forward(self, char_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            batch, time, chars = char_ids.shape
            x = self.char_embed(char_ids.reshape(batch * time, chars)).transpose(1, 2)
            h = torch.cat([act(conv(x).amax(dim=2)) for conv in self.convs], dim=1)
            for highway in self.highways:
                h = highway(h)
            if self.projection is not None:
                h = self.projection(h)
            tokens = h.reshape(batch, time, -1)
            tops = []
            for direction, stack in self.lstms.items():
                x = tokens.flip(1) if direction == "bwd" else tokens
                for i, lstm in enumerate(stack):
                    out, _ = lstm(x)
                    x = out + x if config.residual and i >= 1 else out
                tops.append(x.flip(1) if direction == "bwd" else x)
            return tops[0], tops[1]

    return BiLM()


def peer_train(batch_np: dict[str, np.ndarray], config: Any, threads: int
               ) -> tuple[Callable[[], None], list[dict[str, float]], int]:
    """One train step of the PyTorch biLM on ``threads`` threads per call, the losses of
    every call and the number of trained parameters."""
    import torch
    from torch.nn import functional as F

    # "LSTM with projections is not supported with oneDNN. Using default implementation."
    warnings.filterwarnings("ignore", message="LSTM with projections is not supported")
    torch.manual_seed(0)
    model = peer_model(config).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-8)
    char_ids = torch.from_numpy(batch_np["char_ids"].astype(np.int64))
    ids = torch.from_numpy(batch_np["token_ids"].astype(np.int64))
    history: list[dict[str, float]] = []

    def step() -> None:
        torch.set_num_threads(threads)
        optimizer.zero_grad(set_to_none=True)
        forward, backward = model(char_ids)
        # Forward LM at t -> token t + 1; backward LM at t -> token t - 1; shared softmax.
        nll_f = F.cross_entropy(model.softmax(forward[:, :-1]).flatten(0, 1),
                                ids[:, 1:].flatten())
        nll_b = F.cross_entropy(model.softmax(backward[:, 1:]).flatten(0, 1),
                                ids[:, :-1].flatten())
        loss = 0.5 * (nll_f + nll_b)
        loss.backward()
        optimizer.step()
        history.append({"loss": loss.item(), "forward_nll": nll_f.item(),
                        "backward_nll": nll_b.item()})

    return step, history, sum(p.numel() for p in params)


# ----------------------------------------------------------------------------- main


def main(argv: list[str]) -> None:
    del argv
    if "torch" in sys.modules:
        print("WARNING: torch is loaded already: --peer_omp_wait_policy has no effect")
    if _OMP_WAIT.value:  # libgomp reads it once, when torch loads it
        os.environ.setdefault("OMP_WAIT_POLICY", _OMP_WAIT.value)
    import torch

    from models.elmo import ELMoLanguageModel
    from pretrain_lm import host

    host.keep_freed_memory()  # as pretrain_lm.train does, before JAX starts (both impls gain)
    torch.set_num_threads(os.cpu_count() or 1)

    batch, length, vocab = _BATCH.value, _LENGTH.value, _VOCAB.value
    config = elmo_config(_SIZE.value, vocab)
    tokens = batch * length
    flops = ELMoLanguageModel(config, max_length=length).flops_per_example() * batch
    peak = matmul_peak()
    load_before = os.getloadavg()[0]
    print(f"devices: {jax.devices()}  torch threads: {torch.get_num_threads()}  "
          f"OMP_WAIT_POLICY: {os.environ.get('OMP_WAIT_POLICY', '(default)')}  "
          f"cpus: {os.cpu_count()}  load average: {load_before:.1f}  "
          f"matmul peak (fp32, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"config: ELMo --size={_SIZE.value}: {config.num_filters} CNN features "
          f"{config.filters}, {config.num_highway} highway, projection "
          f"{config.projection_dim}, {config.num_layers} x {config.cell_size} cells per "
          f"direction, full softmax over {vocab} words, no dropout, no clipping; batch "
          f"{batch} x {length} tokens ({tokens} tokens), {flops / 1e9:.2f} GFLOP/step "
          f"({flops / tokens / 1e6:.2f} MFLOP/token)")
    results: dict[str, Any] = {
        "config": dict(size=_SIZE.value, batch=batch, length=length, vocab=vocab,
                       filters=config.filters, num_highway=config.num_highway,
                       projection_dim=config.projection_dim, cell_size=config.cell_size,
                       num_layers=config.num_layers, cell_clip=config.cell_clip,
                       proj_clip=config.proj_clip, dropout=config.dropout,
                       num_samples=config.num_samples),
        "matmul_peak_flops": peak, "model_flops_per_step": flops, "tokens_per_step": tokens,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "train": {}}

    batch_np = elmo_batch(batch, length, vocab, config.max_characters_per_token,
                          config.char_vocab_size)
    threads = [(os.cpu_count() or 1) if t == "cores" else int(t)
               for t in _PEER_THREADS.value] if _PEER.value else []
    names = ["pretrain_lm Trainer (JAX)"] + [
        f"char CNN + nn.LSTM (PyTorch, {t} thr)" for t in threads]
    runners = [ours_train(batch_np, config)] + [peer_train(batch_np, config, t)
                                                for t in threads]
    counts = [count for _, _, count in runners]
    expected = config.num_parameters(softmax=True)
    print("parameters: " + ", ".join(f"{n} {c:,}" for n, c in zip(names, counts, strict=True))
          + f" (ELMoConfig.num_parameters(softmax=True) {expected:,})")
    assert all(c == expected for c in counts), (counts, expected)
    results["parameters"] = dict(zip(names, counts, strict=True))
    *times, matmul_times = time_interleaved([step for step, _, _ in runners] + [matmul_call()],
                                            _STEPS.value)
    losses = [our_losses(runners[0][1][0])] + [history[0] for _, history, _ in runners[1:]]
    del runners
    peak = settle_peak(results, peak, load_before, matmul_times)

    print(f"\ntraining step (batch {batch} x {length} tokens, Adam); median of "
          f"{_STEPS.value} steps (best step in brackets):")
    report_steps(results, names[:len(times)], times, losses, tokens=tokens, flops=flops,
                 peak=peak, vocab=vocab, loss_header="first loss (fwd / bwd nll)",
                 loss_text=lambda first: f"{first['loss']:8.3f} ({first['forward_nll']:6.3f}"
                                         f" / {first['backward_nll']:6.3f})")
    write_results(_OUTPUT.value, results)


if __name__ == "__main__":
    app.run(main)
