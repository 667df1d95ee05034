"""Timing helpers shared by the benchmarks: interleaved step timing and the matmul peak.

No command-line flags here, so every benchmark can import it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def time_interleaved(steps_fns: list[Callable[[], object]], steps: int, warmup: int = 3
                     ) -> list[list[float]]:
    """Seconds of each call of each function, calling them in turn (so that a shared,
    busy machine slows all of them alike); each must block until done."""
    for fn in steps_fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in steps_fns]
    for _ in range(steps):
        for fn, out in zip(steps_fns, times, strict=True):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return times


def time_steps(step: Callable[[], object], steps: int, warmup: int = 3) -> float:
    """Median seconds per call of ``step`` (which must block until done)."""
    return float(np.median(time_interleaved([step], steps, warmup)[0]))


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of an n x n float32 matmul through XLA on the default device."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    seconds = time_steps(lambda: matmul(a, b).block_until_ready(), repeats)
    return 2.0 * n**3 / seconds


def write_results(path: str, results: dict[str, Any]) -> None:
    """Writes a benchmark's results as JSON (creating the folder) and says where."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {path}")


def matmul_call(n: int = 2048) -> Callable[[], None]:
    """One blocking n x n float32 matmul through XLA per call, as ``matmul_peak`` times it
    (to be timed between the steps of ``time_interleaved``: the peak where they run)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    return lambda: matmul(a, b).block_until_ready()


def settle_peak(results: dict[str, Any], peak: float, load_before: float,
                matmul_times: list[float]) -> float:
    """After the timed steps: the matmul peak at the start, the best one timed between
    the steps and one at the end, and the load average; prints and records them and
    returns the largest peak (the MFU denominator)."""
    peak_between = 2.0 * 2048**3 / min(matmul_times)
    peak_after = matmul_peak()
    load_after = os.getloadavg()[0]
    print(f"matmul peak at the start {peak / 1e9:.1f}, best between the steps "
          f"{peak_between / 1e9:.1f}, at the end {peak_after / 1e9:.1f} GFLOP/s (MFU uses the "
          f"largest); load average at the end {load_after:.1f}"
          + ("  -- the machine is busy: timings are noisy" if max(load_before, load_after)
             > 1.5 * (os.cpu_count() or 1) else ""))
    results.update(matmul_peak_flops_measured=[peak, peak_between, peak_after],
                   load_average=[load_before, load_after])
    results["matmul_peak_flops"] = max(peak, peak_between, peak_after)
    return results["matmul_peak_flops"]


def report_steps(results: dict[str, Any], names: list[str], times: list[list[float]],
                 losses: list[dict[str, float]], *, tokens: int, flops: float, peak: float,
                 loss_header: str, loss_text: Callable[[dict[str, float]], str],
                 vocab: int) -> None:
    """One row per implementation (median and best step: ms, tokens/s, MFU; its first
    losses), recorded in ``results["train"]``; then how much faster ours (the first
    name) is than each peer, the first peer being the benchmark's target."""
    import math

    width = max(len(n) for n in names) + 2
    print(f"{'implementation':{width}s} {'ms/step':>16s} {'tokens/s':>16s} {'MFU':>15s} "
          f"{loss_header:>28s}")
    for name, step_times, first in zip(names, times, losses, strict=True):
        seconds, best = float(np.median(step_times)), min(step_times)
        mfu = flops / seconds / peak
        print(f"{name:{width}s} {1e3 * seconds:7.0f} ({1e3 * best:6.0f}) "
              f"{tokens / seconds:7.0f} ({tokens / best:6.0f}) "
              f"{100 * mfu:5.1f}% ({100 * flops / best / peak:5.1f}%) {loss_text(first)}")
        results["train"][name] = {"seconds_per_step": seconds, "best_seconds_per_step": best,
                                  "tokens_per_sec": tokens / seconds,
                                  "best_tokens_per_sec": tokens / best, "mfu": mfu,
                                  "best_mfu": flops / best / peak, "first_step_losses": first,
                                  "step_seconds": step_times}
    print(f"ln(vocab) = {math.log(vocab):.3f}: every first-step loss should be close to it "
          "(random weights, random tokens)")
    finite = all(math.isfinite(v) for first in losses for v in first.values())
    results["train"]["first_losses_finite"] = finite
    if not finite:
        print("WARNING: a non-finite first-step loss")
    for k, (name, peer_times) in enumerate(zip(names[1:], times[1:], strict=True)):
        ratio = float(np.median(peer_times) / np.median(times[0]))
        best_ratio = min(peer_times) / min(times[0])
        results["train"][name].update(speedup_of_ours=ratio, best_step_speedup_of_ours=best_ratio)
        if k == 0:
            results["train"].update(speedup_vs_peer=ratio,
                                    best_step_speedup_vs_peer=best_ratio)
        print(f"ours / {name} tokens/s: {ratio:.2f}x, best steps {best_ratio:.2f}x"
              + (" (target >= 1x)" if k == 0 else ""))


def report_real_tokens(record: dict[str, Any], names: list[str], times: list[list[float]],
                       *, timed_tokens: int, flops: float, peak: float, counted: str,
                       goal: float) -> None:
    """One row per implementation (median ms/step, real tokens per second over the timed
    steps, MFU of ours, the first name), recorded in ``record``; then ours / the peer, the
    ratio of total times, as both did the same real tokens at every step."""
    width = max(len(n) for n in names) + 2
    print(f"{'implementation':{width}s} {'ms/step':>8s} {'real tok/s':>11s} {'MFU':>6s}")
    for k, (name, seconds) in enumerate(zip(names, times, strict=False)):
        per_step = float(np.median(seconds))
        rate = timed_tokens / sum(seconds)
        mfu = flops / per_step / peak if k == 0 else None
        record[name] = {"seconds_per_step": per_step, "step_seconds": seconds,
                        "real_tokens_per_sec": rate, "mfu": mfu}
        print(f"{name:{width}s} {1e3 * per_step:8.0f} {rate:11.0f} "
              + (f"{100 * mfu:5.1f}%" if mfu is not None else "     -"))
    if len(times) == 2:
        ratio = sum(times[1]) / sum(times[0])
        record["speedup_vs_peer"] = ratio
        print(f"ours / peer {counted}: {ratio:.2f}x (goal >= {goal}x)")


def trainer_steps(model: Any, tx: Any, batches: list[dict[str, np.ndarray]]
                  ) -> Callable[[], None]:
    """One blocking step of the real ``pretrain_lm.trainer.Trainer`` per call (jitted,
    donated, sharded by ``Partitioner()``), on each batch in turn."""
    from pretrain_lm.data import to_global
    from pretrain_lm.partitioning import Partitioner
    from pretrain_lm.trainer import Trainer

    partitioner = Partitioner()
    trainer = Trainer(model, tx, partitioner)
    state = trainer.init_state()
    rows = len(next(iter(batches[0].values())))
    device_batches = [to_global(b, partitioner.batch_sharding(), rows) for b in batches]
    position = 0

    def step() -> None:
        nonlocal state, position
        state, metrics = trainer.train_step(state, device_batches[position % len(batches)])
        position += 1
        jax.block_until_ready(metrics)

    return step
