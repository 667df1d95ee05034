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
