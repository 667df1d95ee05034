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
