"""Optimizers and learning-rate schedules, all as optax transformations.

Bound in gin by the run files, e.g. ``trainer.train.optimizer = @optimizers.adamw()``.
BERT: AdamW (lr 1e-4, beta 0.9/0.999, eps 1e-6, weight decay 0.01 except on
LayerNorm and biases), global-norm clipping at 1.0, linear warm-up then linear decay.

Note: BERT's own ``AdamWeightDecayOptimizer`` skips Adam's bias correction; we use
standard (bias-corrected) AdamW, as HuggingFace and most re-implementations do.

Transformer: ``transformer_adam``, Adam (beta 0.9/0.98, eps 1e-9) with the warm-up /
inverse-square-root schedule.

ULMFiT (Howard & Ruder 2018): ``ulmfit_adam``, Adam (beta 0.7/0.99) with slanted
triangular learning rates (``slanted_triangular``), discriminative fine-tuning
(``discriminative_learning_rates``: each layer group's rate is the one above's / 2.6) and
gradual unfreezing (``gradual_unfreezing``); layer groups are regular expressions over
parameter paths (``layer_group_labels``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

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
    frozen: Sequence[str] = (),
) -> Optimizer:
    """AdamW with BERT's weight-decay mask, warm-up + linear decay and gradient clipping.

    ``learning_rate`` is the peak value when a float; ``total_steps`` (the decay
    horizon) defaults to the run's number of training steps (the trainer fills it).
    ``warmup_fraction`` (BERT fine-tuning: 0.1) replaces ``warmup_steps`` by that
    fraction of ``total_steps``. ``frozen``: top-level parameter subtrees that never
    change (e.g. a tagger's pretrained ``bilm``): their updates are zero, after weight
    decay, and their gradients are left out of the clipping norm.
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
    if frozen:
        chain.append(freeze(frozen))
    if clip_norm is not None:
        chain.append(optax.clip_by_global_norm(clip_norm))
    chain.append(optax.adamw(
        learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
        mask=lambda params: decay_mask(params, exclude_from_weight_decay)))
    if frozen:
        chain.append(freeze(frozen))
    return Optimizer(optax.chain(*chain), learning_rate)


def freeze(subtrees: Sequence[str]) -> optax.GradientTransformation:
    """Sets the updates of the named top-level parameter subtrees to zero (an unknown
    name is an error, so a typo cannot leave a "frozen" model training)."""

    def labels(params: Any) -> Any:
        missing = sorted(set(subtrees) - set(params))
        if missing:
            raise ValueError(f"frozen={list(subtrees)}: no top-level parameters named "
                             f"{missing}; the model has {sorted(params)}.")
        return {k: jax.tree.map(lambda _, k=k: k in subtrees, v) for k, v in params.items()}

    return optax.masked(optax.set_to_zero(), labels)


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


# -- ULMFiT (Howard & Ruder 2018) ----------------------------------------------------------

ULMFIT_LAYER_GROUPS = ("embed", "lstm_0", "lstm_1", "lstm_2", "classifier")


def slanted_triangular(max_learning_rate: float, total_steps: int, cut_frac: float = 0.1,
                       ratio: float = 32.0) -> optax.Schedule:
    """ULMFiT's slanted triangular learning rate (Howard & Ruder 2018, eq. 3).

    ``cut = floor(T * cut_frac)`` (at least 1); ``p = t / cut`` if ``t < cut`` else
    ``1 - (t - cut) / (cut * (1 / cut_frac - 1))``; ``lr = max_lr * (1 + p (ratio - 1)) / ratio``.
    ``t`` is optax's count, from 0: the first step gets ``max_lr / ratio``, step ``cut`` gets
    ``max_lr``. Where ``T * cut_frac`` is not an integer the paper's decay reaches ``p = 0``
    at ``t = cut / cut_frac < T`` and then falls below ``max_lr / ratio``, even below zero,
    before ``T``; ``p`` is therefore held at 0 from there on (also past ``T``), so the rate
    never falls below ``max_lr / ratio``. With ``T * cut_frac`` an integer ``p`` reaches 0
    only at ``t = T`` and the schedule is eq. 3 exactly.
    """
    if not 0.0 < cut_frac < 1.0:
        raise ValueError(f"cut_frac must be in (0, 1), got {cut_frac}.")
    if ratio < 1.0:
        raise ValueError(f"ratio must be >= 1, got {ratio}.")
    # The tiny tolerance keeps e.g. 100 * 0.29 = 28.999999999999996 at cut = 29.
    # At least one warm-up step, so that runs shorter than 1 / cut_frac steps work too.
    cut = max(1, math.floor(total_steps * cut_frac + 1e-9))
    decay_steps = cut * (1.0 / cut_frac - 1.0)

    def schedule(count: jax.Array) -> jax.Array:
        t = jnp.asarray(count, jnp.float32)
        p = jnp.where(t < cut, t / cut, 1.0 - (t - cut) / decay_steps)
        p = jnp.maximum(p, 0.0)
        return max_learning_rate * (1.0 + p * (ratio - 1.0)) / ratio

    return schedule


def _path_name(path: tuple) -> str:
    """``"/"``-joined names of a ``jax.tree_util`` key path, e.g. ``params/lstm_0/kernel``."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                    for k in path)


def layer_group_labels(params: Any, groups: Sequence[str]) -> Any:
    """The index of each parameter's layer group, a pytree like ``params``.

    ``groups`` are regular expressions, bottom group first (e.g. ``ULMFIT_LAYER_GROUPS``);
    a parameter belongs to the first one that ``re.search``es its ``"/"``-joined path.
    A parameter that matches none raises a ValueError naming it.
    """
    if not groups:
        raise ValueError("layer_groups is empty; give at least one pattern.")
    patterns = [re.compile(g) for g in groups]

    def label(path: tuple, _: Any) -> int:
        name = _path_name(path)
        for index, pattern in enumerate(patterns):
            if pattern.search(name):
                return index
        raise ValueError(f"Parameter {name!r} matches none of the layer groups "
                         f"{tuple(groups)}; add a pattern for it.")

    return jax.tree_util.tree_map_with_path(label, params)


def discriminative_factors(num_groups: int, decay: float = 2.6) -> list[float]:
    """Learning-rate factor of each group, bottom first: ``decay ** -(num_groups - 1 - g)``
    (the top group 1, the one below ``1 / decay``, ...)."""
    return [float(decay) ** -(num_groups - 1 - g) for g in range(num_groups)]


def discriminative_learning_rates(groups: Sequence[str], decay: float = 2.6
                                  ) -> optax.GradientTransformation:
    """ULMFiT's discriminative fine-tuning (sec. 3.2): scales the updates of layer group
    ``g`` (``groups`` bottom first) by ``decay ** -(num_groups - 1 - g)``, i.e.
    ``lr^{l-1} = lr^l / decay``. Stateless; put it before the learning-rate scaling."""
    factors = discriminative_factors(len(groups), decay)
    return optax.multi_transform(
        {g: optax.scale(f) for g, f in enumerate(factors)},
        lambda tree: layer_group_labels(tree, groups))


class GradualUnfreezingState(NamedTuple):
    """Number of updates seen so far."""

    count: jax.Array


def gradual_unfreezing(groups: Sequence[str], steps_per_stage: int | None
                       ) -> optax.GradientTransformation:
    """ULMFiT's gradual unfreezing (sec. 3.3): sets the updates of frozen groups to zero.

    At step ``s`` (from 0) the top ``1 + s // steps_per_stage`` groups (``groups`` bottom
    first) are trainable, the others frozen. Put it LAST in the chain, so that nothing
    after it (weight decay, ...) moves a frozen parameter: frozen updates are ``-0.0``,
    and ``x + -0.0`` is ``x`` bit for bit. Transformations before it still see the
    gradients of frozen groups (Adam's moments are warm when a group thaws; fastai gives
    frozen parameters no gradient instead). ``steps_per_stage`` None or 0: identity.
    """
    if not steps_per_stage:
        return optax.identity()
    if steps_per_stage < 0:
        raise ValueError(f"steps_per_stage must be positive, got {steps_per_stage}.")
    num_groups = len(groups)

    def init_fn(params: Any) -> GradualUnfreezingState:
        layer_group_labels(params, groups)  # a parameter outside every group fails early
        return GradualUnfreezingState(count=jnp.zeros((), jnp.int32))

    def update_fn(updates: Any, state: GradualUnfreezingState, params: Any = None
                  ) -> tuple[Any, GradualUnfreezingState]:
        del params
        lowest_trainable = num_groups - 1 - state.count // steps_per_stage
        labels = layer_group_labels(updates, groups)
        updates = jax.tree.map(
            lambda u, g: jnp.where(g >= lowest_trainable, u, jnp.full_like(u, -0.0)),
            updates, labels)
        return updates, GradualUnfreezingState(optax.safe_int32_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def ulmfit_adam(
    *,
    learning_rate: float = 0.01,
    total_steps: int | None = None,
    cut_frac: float = 0.1,
    ratio: float = 32.0,
    b1: float = 0.7,
    b2: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    exclude_from_weight_decay: Sequence[str] = (),
    clip_norm: float | None = None,
    layer_groups: Sequence[str] = ULMFIT_LAYER_GROUPS,
    discriminative_decay: float = 2.6,
    unfreeze_every_steps: int | None = None,
) -> Optimizer:
    """ULMFiT's fine-tuning optimizer (Howard & Ruder 2018): Adam with beta 0.7/0.99,
    slanted triangular learning rates, discriminative fine-tuning and gradual unfreezing.

    ``learning_rate`` is the top group's peak (the paper: 0.01 for the LM, 0.004 for the
    classifier). ``eps`` 1e-8 is PyTorch's Adam default, which the paper's fastai code used.
    ``weight_decay`` is decoupled (AdamW-style, scaled by each group's learning rate as in
    fastai); ``exclude_from_weight_decay`` as in ``adamw``. ``layer_groups`` are regular
    expressions over the ``"/"``-joined parameter path, bottom first; every parameter must
    match one. ``unfreeze_every_steps`` None: everything trains from the start. The
    returned ``learning_rate`` is the top group's schedule.
    """
    if total_steps is None:
        raise ValueError("ulmfit_adam needs total_steps for its slanted triangular schedule; "
                         "bind optimizers.ulmfit_adam.total_steps or let the trainer fill it.")
    schedule = slanted_triangular(float(learning_rate), total_steps, cut_frac, ratio)
    chain = [optax.clip_by_global_norm(clip_norm)] if clip_norm is not None else []
    chain.append(optax.scale_by_adam(b1=b1, b2=b2, eps=eps))
    if weight_decay:
        chain.append(optax.add_decayed_weights(
            weight_decay, mask=lambda params: decay_mask(params, exclude_from_weight_decay)))
    chain.append(discriminative_learning_rates(layer_groups, discriminative_decay))
    chain.append(optax.scale_by_learning_rate(schedule))
    chain.append(gradual_unfreezing(layer_groups, unfreeze_every_steps))
    return Optimizer(optax.chain(*chain), schedule)
