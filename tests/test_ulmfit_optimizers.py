"""ULMFiT's optimizer pieces (Howard & Ruder 2018) on toy parameter trees: slanted
triangular learning rates against eq. 3, discriminative learning rates (factor 2.6 per
layer group), gradual unfreezing (frozen groups bit-identical) and ``ulmfit_adam``."""

from __future__ import annotations

import itertools
import math

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pretrain_lm import optimizers

GROUPS = ("embed", "lstm_0", "lstm_1", "lstm_2", "classifier")


def toy_params() -> dict:
    """An AWD-LSTM-like tree; every group has the same leaves so updates compare 1:1."""
    rng = np.random.default_rng(0)
    return {name: {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                   "bias": jnp.asarray(rng.normal(size=(4,)), jnp.float32)}
            for name in GROUPS}


def same_grads(params: dict) -> dict:
    """The same gradient in every group (so Adam's normalised updates are identical)."""
    g = {"kernel": jnp.linspace(-1.0, 2.0, 12).reshape(3, 4), "bias": jnp.arange(1.0, 5.0)}
    return {name: g for name in params}


def stlr_formula(t: int, total: int, eta_max: float, cut_frac: float = 0.1,
                 ratio: float = 32.0, clamp: bool = True) -> float:
    """Eq. 3 of the paper (T = ``total``), with p held at 0 once the decay has reached it."""
    cut = math.floor(total * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return eta_max * (1 + (max(p, 0.0) if clamp else p) * (ratio - 1)) / ratio


@pytest.mark.parametrize("total_steps", [100, 37])
def test_slanted_triangular_is_eq3_at_every_step(total_steps):
    eta_max = 0.01
    schedule = optimizers.slanted_triangular(eta_max, total_steps)
    got = np.asarray([schedule(t) for t in range(total_steps + 1)])
    want = np.asarray([stlr_formula(t, total_steps, eta_max) for t in range(total_steps + 1)])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    cut = math.floor(total_steps * 0.1)
    assert got[0] == pytest.approx(eta_max / 32, rel=1e-6)
    assert int(np.argmax(got)) == cut
    assert got[cut] == pytest.approx(eta_max, rel=1e-6)
    assert np.all(np.diff(got[:cut + 1]) > 0) and np.all(np.diff(got[cut:]) <= 0)
    assert got.min() == pytest.approx(eta_max / 32, rel=1e-6)  # never below, never negative
    # jit-able, as optax calls it inside the train step.
    assert float(jax.jit(schedule)(jnp.int32(cut))) == pytest.approx(eta_max, rel=1e-6)


def test_slanted_triangular_clamps_only_where_eq3_would_go_below_its_minimum():
    """T = 100 (T * cut_frac an integer): unclamped eq. 3 at every step, down to
    max_lr / ratio at t = T. T = 37 (cut 3): eq. 3 reaches p = 0 at t = 30 and would be
    negative from t = 34; the schedule holds max_lr / ratio from t = 30 on."""
    schedule = optimizers.slanted_triangular(1.0, 100)
    got = [float(schedule(t)) for t in range(101)]
    np.testing.assert_allclose(got, [stlr_formula(t, 100, 1.0, clamp=False)
                                     for t in range(101)], rtol=1e-6)
    assert got[100] == pytest.approx(1 / 32, rel=1e-6)

    schedule = optimizers.slanted_triangular(1.0, 37)
    raw = np.asarray([stlr_formula(t, 37, 1.0, clamp=False) for t in range(37)])
    got = np.asarray([float(schedule(t)) for t in range(37)])
    np.testing.assert_allclose(got[:31], raw[:31], rtol=1e-6)
    assert raw[-1] < 0
    np.testing.assert_allclose(got[30:], 1 / 32, rtol=1e-6)


def test_slanted_triangular_short_runs_get_one_warm_up_step():
    schedule = optimizers.slanted_triangular(1.0, 5, cut_frac=0.1)  # T * cut_frac < 1
    got = [float(schedule(t)) for t in range(5)]
    assert got[0] == pytest.approx(1 / 32) and got[1] == pytest.approx(1.0)
    assert got[1] > got[2] > got[3] > got[4] >= 1 / 32


def test_layer_group_labels():
    labels = optimizers.layer_group_labels({"params": toy_params()}, GROUPS)
    assert labels["params"]["embed"]["kernel"] == 0
    assert labels["params"]["lstm_1"]["bias"] == 2
    assert labels["params"]["classifier"]["kernel"] == 4
    # The first pattern that matches wins.
    assert optimizers.layer_group_labels({"lstm_0_embed": 1.0}, GROUPS) == {"lstm_0_embed": 0}


def test_a_parameter_outside_every_group_is_named():
    params = {**toy_params(), "pooler": {"dense": {"kernel": jnp.ones(2)}}}
    with pytest.raises(ValueError, match="pooler/dense/kernel"):
        optimizers.layer_group_labels(params, GROUPS)
    with pytest.raises(ValueError, match="pooler/dense/kernel"):
        optimizers.gradual_unfreezing(GROUPS, 3).init(params)
    with pytest.raises(ValueError, match="pooler/dense/kernel"):
        optimizers.ulmfit_adam(total_steps=100, layer_groups=GROUPS).tx.init(params)


def test_discriminative_learning_rates_divide_by_2_6_per_group_with_sgd():
    params = toy_params()
    tx = optax.chain(optimizers.discriminative_learning_rates(GROUPS), optax.sgd(0.1))
    updates, _ = tx.update(same_grads(params), tx.init(params), params)
    for lower, upper in itertools.pairwise(GROUPS):
        for leaf in ("kernel", "bias"):
            np.testing.assert_allclose(updates[upper][leaf], 2.6 * updates[lower][leaf],
                                       rtol=1e-6)
    np.testing.assert_allclose(updates["classifier"]["kernel"],
                               -0.1 * same_grads(params)["classifier"]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(optimizers.discriminative_factors(5),
                               [2.6 ** -4, 2.6 ** -3, 2.6 ** -2, 2.6 ** -1, 1.0])


def test_discriminative_learning_rates_in_ulmfit_adam_first_step():
    """Adam's first update is (almost) sign-like and identical per group: ratios are 2.6."""
    params = toy_params()
    opt = optimizers.ulmfit_adam(learning_rate=0.01, total_steps=100, layer_groups=GROUPS)
    updates, _ = opt.tx.update(same_grads(params), opt.tx.init(params), params)
    for lower, upper in itertools.pairwise(GROUPS):
        for leaf in ("kernel", "bias"):
            np.testing.assert_allclose(np.abs(updates[upper][leaf]),
                                       2.6 * np.abs(updates[lower][leaf]), rtol=1e-6)
    # Top group: lr(0) = 0.01 / 32 times Adam's sign-like step.
    np.testing.assert_allclose(updates["classifier"]["bias"], -0.01 / 32 * np.ones(4),
                               rtol=1e-6)
    assert float(opt.learning_rate(10)) == pytest.approx(0.01, rel=1e-6)


def run_steps(tx: optax.GradientTransformation, params: dict, steps: int, state=None):
    """``steps`` jitted updates with a fixed nonzero gradient; returns params and state."""
    state = tx.init(params) if state is None else state
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5) + 0.1 * p, params)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def test_gradual_unfreezing_thaws_one_group_per_stage_and_frozen_params_stay_bit_identical():
    steps_per_stage = 3
    opt = optimizers.ulmfit_adam(learning_rate=0.01, total_steps=100, weight_decay=0.1,
                                 clip_norm=1.0, layer_groups=GROUPS,
                                 unfreeze_every_steps=steps_per_stage)
    start = toy_params()
    params, state = start, None
    for stage in range(len(GROUPS) + 1):
        before = params
        params, state = run_steps(opt.tx, params, steps_per_stage, state)
        trainable = GROUPS[len(GROUPS) - 1 - min(stage, len(GROUPS) - 1):]
        for name in GROUPS:
            for leaf in ("kernel", "bias"):
                if name in trainable:
                    assert np.all(np.asarray(params[name][leaf]) != before[name][leaf]), \
                        (stage, name)
                else:
                    np.testing.assert_array_equal(params[name][leaf], start[name][leaf])
                    assert (np.asarray(params[name][leaf]).tobytes()
                            == np.asarray(start[name][leaf]).tobytes())


def test_gradual_unfreezing_alone_zeroes_exactly_the_frozen_updates():
    params = toy_params()
    tx = optimizers.gradual_unfreezing(GROUPS, 2)
    state = tx.init(params)
    ones = jax.tree.map(jnp.ones_like, params)
    moving = []
    for _ in range(10):
        updates, state = tx.update(ones, state)
        moving.append([name for name in GROUPS if np.any(updates[name]["kernel"] != 0)])
    assert moving[0] == moving[1] == ["classifier"]
    assert moving[2] == moving[3] == ["lstm_2", "classifier"]
    assert moving[4] == ["lstm_1", "lstm_2", "classifier"]
    assert moving[8] == moving[9] == list(GROUPS)


@pytest.mark.parametrize("steps_per_stage", [None, 0])
def test_gradual_unfreezing_can_be_switched_off(steps_per_stage):
    params = toy_params()
    opt = optimizers.ulmfit_adam(total_steps=100, layer_groups=GROUPS,
                                 unfreeze_every_steps=steps_per_stage)
    moved, _ = run_steps(opt.tx, params, 1)
    for name in GROUPS:
        assert np.all(np.asarray(moved[name]["kernel"]) != params[name]["kernel"])


def test_ulmfit_adam_needs_total_steps():
    with pytest.raises(ValueError, match="total_steps"):
        optimizers.ulmfit_adam(layer_groups=GROUPS)


def test_ulmfit_adam_trains_under_jit_and_its_state_maps_to_shardings():
    """A few jitted steps on a toy regression lower the loss; the trainer's
    ``optax.tree_map_params`` (optimizer-state shardings) works on the state."""
    params = {"params": toy_params()}
    opt = optimizers.ulmfit_adam(learning_rate=0.05, total_steps=40, weight_decay=0.01,
                                 clip_norm=1.0, layer_groups=GROUPS, unfreeze_every_steps=2)
    x = jnp.linspace(-1.0, 1.0, 24).reshape(8, 3)

    def loss(p):
        h = x
        for name in GROUPS:
            h = jnp.tanh(h @ p["params"][name]["kernel"][:, :3] + p["params"][name]["bias"][:3])
        return jnp.mean((h - 0.5) ** 2)

    @jax.jit
    def step(p, s):
        value, grads = jax.value_and_grad(loss)(p)
        updates, s = opt.tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    state = opt.tx.init(params)
    losses = []
    for _ in range(30):
        params, state, value = step(params, state)
        losses.append(float(value))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]

    specs = jax.tree.map(lambda _: "param", params)
    mapped = optax.tree_map_params(opt.tx, lambda _, spec: spec, state, specs,
                                   transform_non_params=lambda _: "other")
    assert "param" in jax.tree.leaves(mapped) and "other" in jax.tree.leaves(mapped)
    assert jax.tree.structure(mapped) == jax.tree.structure(state)


def test_ulmfit_adam_is_configurable_in_gin():
    gin.clear_config()
    try:
        gin.parse_config(["from __gin__ import dynamic_registration",
                          "from pretrain_lm import optimizers",
                          "optimizers.ulmfit_adam.learning_rate = 0.004",
                          f"optimizers.ulmfit_adam.layer_groups = {GROUPS!r}",
                          "optimizers.ulmfit_adam.unfreeze_every_steps = 5"])
        opt = gin.get_configurable(optimizers.ulmfit_adam)(total_steps=50)
    finally:
        gin.clear_config()
    assert float(opt.learning_rate(5)) == pytest.approx(0.004, rel=1e-6)
    params = toy_params()
    moved, _ = run_steps(opt.tx, params, 1)
    np.testing.assert_array_equal(moved["lstm_2"]["kernel"], params["lstm_2"]["kernel"])
