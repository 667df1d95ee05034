"""The shared LSTM layer (models/layers.py) against ``torch.nn.LSTM`` on the same weights."""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from models import layers


def _torch_lstm(features: int, hidden: int, proj: int = 0, seed: int = 0) -> torch.nn.LSTM:
    torch.manual_seed(seed)
    return torch.nn.LSTM(features, hidden, proj_size=proj, batch_first=True).double()


def _params_from_torch(lstm: torch.nn.LSTM) -> dict:
    w = {k: v.detach().numpy().astype(np.float32) for k, v in lstm.state_dict().items()}
    params = {"input_kernel": w["weight_ih_l0"].T, "recurrent_kernel": w["weight_hh_l0"].T,
              "bias": w["bias_ih_l0"] + w["bias_hh_l0"]}
    if "weight_hr_l0" in w:
        params["projection"] = w["weight_hr_l0"].T
    return {"params": params}


def _run_torch(lstm, x, state=None):
    with torch.no_grad():
        if state is not None:
            state = tuple(torch.from_numpy(np.asarray(s, np.float64))[None] for s in state)
        out, (h, c) = lstm(torch.from_numpy(np.asarray(x, np.float64)), state)
    return out.numpy(), (h[0].numpy(), c[0].numpy())


@pytest.mark.parametrize("proj", [0, 5])
def test_lstm_equals_torch_with_the_state_carried_across_calls(proj):
    features, hidden, batch = 6, 8, 3
    torch_lstm = _torch_lstm(features, hidden, proj)
    module = layers.LSTM(hidden, projection_size=proj or None)
    variables = _params_from_torch(torch_lstm)
    x = np.random.default_rng(0).normal(size=(batch, 11, features)).astype(np.float32)
    want, (want_h, want_c) = _run_torch(torch_lstm, x)
    # Our two calls, 7 then 4 steps, the state carried from the first into the second.
    out1, state = module.apply(variables, jnp.asarray(x[:, :7]))
    out2, (h, c) = module.apply(variables, jnp.asarray(x[:, 7:]), initial_state=state)
    np.testing.assert_allclose(np.concatenate([out1, out2], axis=1), want, atol=1e-5)
    np.testing.assert_allclose(h, want_h, atol=1e-5)
    np.testing.assert_allclose(c, want_c, atol=1e-5)
    # And the same split on the torch side.
    t1, t_state = _run_torch(torch_lstm, x[:, :7])
    t2, _ = _run_torch(torch_lstm, x[:, 7:], t_state)
    np.testing.assert_allclose(np.concatenate([t1, t2], axis=1), want, atol=1e-12)


def test_padding_leaves_outputs_and_state_of_valid_steps_unchanged():
    features, hidden = 4, 5
    torch_lstm = _torch_lstm(features, hidden, seed=1)
    module = layers.LSTM(hidden)
    variables = _params_from_torch(torch_lstm)
    rng = np.random.default_rng(1)
    lengths = [9, 4, 1]
    x = rng.normal(size=(3, 9, features)).astype(np.float32)
    mask = np.arange(9)[None, :] < np.array(lengths)[:, None]
    x_noisy = np.where(mask[..., None], x, rng.normal(size=x.shape) * 100).astype(np.float32)
    out, (h, c) = module.apply(variables, jnp.asarray(x_noisy), jnp.asarray(mask))
    for row, n in enumerate(lengths):
        want, (want_h, want_c) = _run_torch(torch_lstm, x[row:row + 1, :n])
        np.testing.assert_allclose(out[row, :n], want[0], atol=1e-5)
        np.testing.assert_array_equal(np.asarray(out[row, n:]), 0.0)
        np.testing.assert_allclose(h[row], want_h[0], atol=1e-5)
        np.testing.assert_allclose(c[row], want_c[0], atol=1e-5)


def test_reverse_reads_each_row_right_to_left_within_its_length():
    features, hidden = 4, 5
    torch_lstm = _torch_lstm(features, hidden, seed=2)
    module = layers.LSTM(hidden, reverse=True)
    variables = _params_from_torch(torch_lstm)
    lengths = [6, 3]
    x = np.random.default_rng(2).normal(size=(2, 6, features)).astype(np.float32)
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    out, _ = module.apply(variables, jnp.asarray(x), jnp.asarray(mask))
    for row, n in enumerate(lengths):
        want, _ = _run_torch(torch_lstm, x[row:row + 1, :n][:, ::-1].copy())
        np.testing.assert_allclose(out[row, :n], want[0, ::-1], atol=1e-5)
        # Output t of the backward LSTM depends only on inputs t..n-1 (never the past).
        changed = x.copy()
        changed[row, 0] += 10.0
        out2, _ = module.apply(variables, jnp.asarray(changed), jnp.asarray(mask))
        np.testing.assert_array_equal(np.asarray(out2[row, 1:n]), np.asarray(out[row, 1:n]))


def test_clipping_bounds_cells_and_projections():
    module = layers.LSTM(8, projection_size=4, cell_clip=0.5, projection_clip=0.05)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 5, 3)) * 10, jnp.float32)
    variables = module.init(jax.random.key(0), x)
    out, (_, c) = module.apply(variables, x)
    assert float(jnp.max(jnp.abs(c))) <= 0.5 + 1e-6
    assert float(jnp.max(jnp.abs(out))) <= 0.05 + 1e-6 and float(jnp.max(jnp.abs(c))) > 0.4


def test_weight_drop_is_one_mask_for_every_step_and_none_at_eval():
    rate, hidden = 0.5, 6
    module = layers.LSTM(hidden, weight_drop=rate)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(3, 7, 4)), jnp.float32)
    variables = flax.core.meta.unbox(module.init(jax.random.key(0), x))
    kernel = np.asarray(variables["params"]["recurrent_kernel"])
    out, state = module.apply(variables, x, deterministic=False,
                              rngs={"dropout": jax.random.key(1)}, mutable=["intermediates"])
    out, _ = out
    dropped = np.asarray(state["intermediates"]["dropped_recurrent_kernel"][0])
    kept = dropped != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(dropped[kept], kernel[kept] / (1 - rate), rtol=1e-6)
    # The dropped run equals a deterministic run whose recurrent kernel is that one masked
    # matrix: the same mask at every time step and for every row.
    fixed = {"params": dict(variables["params"])}
    fixed["params"]["recurrent_kernel"] = jnp.asarray(dropped)
    want, _ = module.apply(fixed, x)
    np.testing.assert_allclose(out, want, atol=1e-6)
    # Another key, another mask; deterministic: the weights as they are.
    other, _ = module.apply(variables, x, deterministic=False,
                            rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(other, out)
    plain, _ = module.apply(variables, x)
    fixed["params"]["recurrent_kernel"] = jnp.asarray(kernel)
    np.testing.assert_array_equal(plain, module.apply(fixed, x)[0])
    assert not np.allclose(plain, out)


def _reference_lstm(params: dict, x, mask, state, *, reverse: bool, cell_clip, proj_clip,
                    kernel=None):
    """The layer written plainly (a ``lax.scan`` left to autodiff), for the gradients."""
    kernel = params["recurrent_kernel"] if kernel is None else kernel
    projection = params.get("projection")
    lengths = mask.sum(axis=1)
    x = layers.reverse_padded(x, lengths) if reverse else x
    projected = jnp.einsum("btf,fg->tbg", x, params["input_kernel"]) + params["bias"]

    def step(carry, xs):
        h, c = carry
        gates_x, ok = xs
        i, f, g, o = jnp.split(gates_x + h @ kernel, 4, axis=-1)
        new_c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        if cell_clip is not None:
            new_c = jnp.clip(new_c, -cell_clip, cell_clip)
        new_h = jax.nn.sigmoid(o) * jnp.tanh(new_c)
        if projection is not None:
            new_h = new_h @ projection
            if proj_clip is not None:
                new_h = jnp.clip(new_h, -proj_clip, proj_clip)
        ok = ok[:, None]
        return (jnp.where(ok, new_h, h), jnp.where(ok, new_c, c)), jnp.where(ok, new_h, 0.0)

    state, out = jax.lax.scan(step, state, (projected, mask.T))
    out = out.transpose(1, 0, 2)
    return (layers.reverse_padded(out, lengths) if reverse else out), state


@pytest.mark.parametrize("case", ["plain", "padded", "reverse", "weight_drop", "projection",
                                  "projection_clipped"])
def test_custom_vjp_gradients_equal_autodiff_of_the_plain_scan(case):
    """The custom VJP's gradients w.r.t. every parameter, the inputs and the initial state
    (with cotangents on the outputs and the final state) equal autodiff's of the plain
    scan; with weight drop, those w.r.t. the undropped kernel through the same mask."""
    features, hidden, batch, time = 3, 5, 3, 6
    proj = 4 if case.startswith("projection") else None
    clips = (0.4, 0.2) if case == "projection_clipped" else (None, None)
    rate = 0.5 if case == "weight_drop" else 0.0
    module = layers.LSTM(hidden, projection_size=proj, cell_clip=clips[0],
                         projection_clip=clips[1], weight_drop=rate,
                         reverse=case in ("reverse", "projection_clipped"))
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(batch, time, features)) * 2, jnp.float32)
    lengths = [6, 6, 6] if case in ("plain", "weight_drop") else [6, 4, 1]
    mask = jnp.asarray(np.arange(time)[None, :] < np.array(lengths)[:, None])
    out_size = proj or hidden
    state = (jnp.asarray(rng.normal(size=(batch, out_size)), jnp.float32),
             jnp.asarray(rng.normal(size=(batch, hidden)), jnp.float32))
    weights = [jnp.asarray(rng.normal(size=s), jnp.float32)
               for s in [(batch, time, out_size), (batch, out_size), (batch, hidden)]]
    params = flax.core.meta.unbox(module.init(jax.random.key(0), x))["params"]
    rngs = {"dropout": jax.random.key(1)}

    def score(out, h, c):  # cotangents on every output and on the final state
        return jnp.sum(out * weights[0]) + jnp.sum(h * weights[1]) + jnp.sum(c * weights[2])

    def ours(params, x, state):
        out, (h, c) = module.apply({"params": params}, x, mask, state,
                                   deterministic=not rate, rngs=rngs)
        return score(out, h, c)

    if rate:  # the same mask as the module's, applied to the undropped kernel
        _, sown = module.apply({"params": params}, x, mask, state, deterministic=False,
                               rngs=rngs, mutable=["intermediates"])
        keep = sown["intermediates"]["dropped_recurrent_kernel"][0] != 0
        assert 0.3 < float(keep.mean()) < 0.7

    def reference(params, x, state):
        k = (jnp.where(keep, params["recurrent_kernel"] / (1 - rate), 0.0) if rate
             else None)
        out, (h, c) = _reference_lstm(params, x, mask, state, reverse=module.reverse,
                                      cell_clip=clips[0], proj_clip=clips[1], kernel=k)
        return score(out, h, c)

    value, got = jax.jit(jax.value_and_grad(ours, argnums=(0, 1, 2)))(params, x, state)
    want_value, want = jax.jit(jax.value_and_grad(reference, argnums=(0, 1, 2)))(
        params, x, state)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want),
                            strict=True):
        w = np.asarray(w)
        assert np.abs(w).max() > 0, path
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * np.abs(w).max(),
                                   err_msg=jax.tree_util.keystr(path))
    if clips[0] is not None:  # both clips were active
        out, (_, c) = module.apply({"params": params}, x, mask, state)
        assert float(jnp.max(jnp.abs(c))) == pytest.approx(clips[0])
        assert float(jnp.max(jnp.abs(out))) == pytest.approx(clips[1])
