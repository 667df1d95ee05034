"""Optimizers and learning-rate schedules, all as optax transformations.

Bound in gin by the run files, e.g. ``trainer.train.optimizer = @optimizers.adamw()``.
BERT: AdamW (lr 1e-4, beta 0.9/0.999, eps 1e-6, weight decay 0.01 except on
LayerNorm and biases), global-norm clipping at 1.0, linear warm-up then linear decay.

Note: BERT's own ``AdamWeightDecayOptimizer`` skips Adam's bias correction; we use
standard (bias-corrected) AdamW, as HuggingFace and most re-implementations do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class Optimizer(NamedTuple):
    """An optax transformation and its learning-rate schedule (for logging)."""

    tx: optax.GradientTransformation
    learning_rate: optax.Schedule


def warmup_linear_decay(peak_value: float, warmup_steps: int, total_steps: int,
                        end_value: float = 0.0) -> optax.Schedule:
    """Linear warm-up from 0 to ``peak_value``, then linear decay to ``end_value``."""
    if warmup_steps >= total_steps:
        return optax.linear_schedule(0.0, peak_value, max(warmup_steps, 1))
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak_value, max(warmup_steps, 1)),
         optax.linear_schedule(peak_value, end_value, total_steps - warmup_steps)],
        boundaries=[warmup_steps])


def decay_mask(params: dict, exclude: Sequence[str]) -> dict:
    """True for parameters that get weight decay: none of ``exclude`` names any path part.

    ``exclude`` entries are regular expressions matched in full against each
    component of the parameter path (e.g. ``bias``, ``layer_norm``).
    """
    patterns = [re.compile(p) for p in exclude]

    def keep(path: tuple, _: jax.Array) -> bool:
        names = [getattr(k, "key", getattr(k, "name", str(k))) for k in path]
        return not any(p.fullmatch(str(n)) for p in patterns for n in names)

    return jax.tree_util.tree_map_with_path(keep, params)


def adamw(
    learning_rate: float | optax.Schedule = 1e-4,
    *,
    warmup_steps: int = 10_000,
    warmup_fraction: float | None = None,
    total_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.01,
    exclude_from_weight_decay: Sequence[str] = ("bias", "layer_norm", "LayerNorm",
                                                "output_bias"),
    clip_norm: float | None = 1.0,
) -> Optimizer:
    """AdamW with BERT's weight-decay mask, warm-up + linear decay and gradient clipping.

    ``learning_rate`` is the peak value when a float; ``total_steps`` (the decay
    horizon) defaults to the run's number of training steps (the trainer fills it).
    ``warmup_fraction`` (BERT fine-tuning: 0.1) replaces ``warmup_steps`` by that
    fraction of ``total_steps``.
    """
    if isinstance(learning_rate, (int, float)):
        if total_steps is None:
            raise ValueError("adamw needs total_steps for its decay schedule; bind "
                             "optimizers.adamw.total_steps or let the trainer fill it.")
        if warmup_fraction is not None:
            warmup_steps = round(warmup_fraction * total_steps)
        learning_rate = warmup_linear_decay(float(learning_rate), warmup_steps, total_steps)
    elif not callable(learning_rate):
        raise TypeError(f"learning_rate must be a float or an optax schedule, got "
                        f"{learning_rate!r}.")
    chain = []
    if clip_norm is not None:
        chain.append(optax.clip_by_global_norm(clip_norm))
    chain.append(optax.adamw(
        learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
        mask=lambda params: decay_mask(params, exclude_from_weight_decay)))
    return Optimizer(optax.chain(*chain), learning_rate)


def rsqrt_schedule(d_model: int, warmup_steps: int = 4000, scale: float = 1.0
                   ) -> optax.Schedule:
    """The Transformer's ``lr = scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)``
    (Vaswani et al. 2017, eq. 3), with ``step`` counted from 1."""

    def schedule(count: jax.Array) -> jax.Array:
        step = jnp.asarray(count, jnp.float32) + 1.0
        return scale * d_model ** -0.5 * jnp.minimum(step ** -0.5, step * warmup_steps ** -1.5)

    return schedule


def transformer_adam(
    *,
    d_model: int = 512,
    warmup_steps: int = 4000,
    scale: float = 1.0,
    total_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.98,
    eps: float = 1e-9,
    clip_norm: float | None = None,
) -> Optimizer:
    """Adam (beta 0.9/0.98, eps 1e-9) with the Transformer's warm-up / inverse-square-root
    schedule; no weight decay. ``total_steps`` is accepted (the trainer passes it) and
    unused: this schedule has no horizon."""
    del total_steps
    learning_rate = rsqrt_schedule(d_model, warmup_steps, scale)
    chain = [optax.clip_by_global_norm(clip_norm)] if clip_norm is not None else []
    chain.append(optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))
    return Optimizer(optax.chain(*chain), learning_rate)
