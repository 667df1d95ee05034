"""The recurrence of ``layers.LSTM`` as a ``jax.custom_vjp``: a forward scan that saves only
what the backward pass needs, a backward scan that does only the per-step work, and the
weight gradients as one large matmul each after the loop.

Autodiff of the plain ``lax.scan`` saves every step's residuals and accumulates the
recurrent kernel's gradient inside the backward loop: a rank-``batch`` update of the whole
``[out, 4 * hidden]`` matrix at every step, memory-bound on CPU. Here

* the forward scan saves the gate activations ``(i, f, g, o)`` (after their
  nonlinearities) and the carried states ``h_t``, ``c_t`` of every step;
* the backward scan carries ``(dh, dc)`` and emits the gate pre-activation gradients
  ``dz_t`` (and, with a projection, the projection's output gradients);
* ``d recurrent_kernel = h_prev[T*B, out]^T @ dz[T*B, 4H]`` (and ``d projection =
  m[T*B, H]^T @ dh[T*B, out]``, ``m = o * tanh(c)``) are single matmuls after the loop;
  ``dz`` is also the gradient of the per-step input projections, whose matmul (outside this
  function) autodiff turns into one matmul too.

Everything of ``layers.LSTM``'s recurrence is covered, so it needs no autodiff fallback:
the projection (LSTMP), cell and projection clipping (a clipped value has zero gradient,
as ``jnp.clip``'s), masked steps that keep the state and output zeros, gradients w.r.t.
the initial state and from the final state (ULMFiT's classifier backpropagates through
the state carried between BPTT chunks). Weight drop happens before: ``kernel`` is the
dropped matrix, and autodiff takes its gradient back through the mask. The clipping
masks are read off the saved (clipped) states: a value is clipped iff its magnitude
equals the bound (an unclipped value exactly at the bound, which autodiff of ``jnp.clip``
would give half a gradient, has probability zero).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Array = jax.Array
State = tuple[Array, Array]


def _cell(gates_x: Array, h: Array, c: Array, kernel: Array, projection: Array | None,
          cell_clip: float | None, projection_clip: float | None
          ) -> tuple[Array, Array, Array]:
    """One step's new ``(h, c)`` and its gate activations ``[batch, 4 * hidden]``."""
    z = gates_x + h @ kernel
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)
    new_c = f * c + i * g
    if cell_clip is not None:
        new_c = jnp.clip(new_c, -cell_clip, cell_clip)
    new_h = o * jnp.tanh(new_c)
    if projection is not None:
        new_h = new_h @ projection
        if projection_clip is not None:
            new_h = jnp.clip(new_h, -projection_clip, projection_clip)
    return new_h, new_c, jnp.concatenate([i, f, g, o], axis=-1)


def _forward(projected: Array, valid: Array, h0: Array, c0: Array, kernel: Array,
             projection: Array | None, cell_clip: float | None,
             projection_clip: float | None, save: bool
             ) -> tuple[tuple[Array, Array], Array | tuple[Array, Array, Array]]:
    """The scan; per step it yields the output, or with ``save`` the carried ``(h, c)``
    and the gate activations."""

    def step(carry: State, xs: tuple[Array, Array]) -> tuple[State, object]:
        h, c = carry
        gates_x, ok = xs
        new_h, new_c, gates = _cell(gates_x, h, c, kernel, projection, cell_clip,
                                    projection_clip)
        ok = ok[:, None]
        h, c = jnp.where(ok, new_h, h), jnp.where(ok, new_c, c)
        return (h, c), ((h, c, gates) if save else jnp.where(ok, new_h, 0.0))

    return jax.lax.scan(step, (h0, c0), (projected, valid))


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def lstm_recurrence(projected: Array, valid: Array, h0: Array, c0: Array, kernel: Array,
                    projection: Array | None, cell_clip: float | None = None,
                    projection_clip: float | None = None) -> tuple[Array, State]:
    """Runs the LSTM over time, returning ``(outputs [T, B, out], (h_T, c_T))``.

    ``projected`` ``[T, B, 4H]``: every step's input projection plus the bias (torch gate
    order i, f, g, o); ``valid`` ``[T, B]`` bool: padded steps leave the state unchanged
    and output zeros; ``h0`` ``[B, out]``, ``c0`` ``[B, H]``; ``kernel`` ``[out, 4H]``
    (the recurrent weights, already weight-dropped); ``projection`` ``[H, out]`` or None.
    """
    state, outputs = _forward(projected, valid, h0, c0, kernel, projection, cell_clip,
                              projection_clip, save=False)
    return outputs, state


def _fwd(projected: Array, valid: Array, h0: Array, c0: Array, kernel: Array,
         projection: Array | None, cell_clip: float | None, projection_clip: float | None
         ) -> tuple[tuple[Array, State], tuple]:
    state, (hs, cs, gates) = _forward(projected, valid, h0, c0, kernel, projection,
                                      cell_clip, projection_clip, save=True)
    outputs = jnp.where(valid[..., None], hs, 0.0)
    like = jnp.zeros((0,), projected.dtype)  # carries the dtype of projected's cotangent
    return (outputs, state), (like, valid, h0, c0, kernel, projection, hs, cs, gates)


def _bwd(cell_clip: float | None, projection_clip: float | None, residuals: tuple,
         cotangents: tuple[Array, State]) -> tuple:
    like, valid, h0, c0, kernel, projection, hs, cs, gates = residuals
    d_outputs, (dh_final, dc_final) = cotangents
    c_prev = jnp.concatenate([c0[None], cs], axis=0)[:-1]  # c_{t-1}
    kernel_t = kernel.T
    projection_t = projection.T if projection is not None else None

    def step(carry: State, xs: tuple[Array, ...]) -> tuple[State, tuple[Array, ...]]:
        dh, dc = carry
        gates_t, c_t, c_before, h_t, dy, ok = xs
        ok = ok[:, None]
        # h_t = where(ok, new_h, h_{t-1}), output_t = where(ok, new_h, 0).
        dh_new = jnp.where(ok, dh + dy, 0.0)
        dc_new = jnp.where(ok, dc, 0.0)
        if projection_clip is not None:  # h_t is the clipped new_h where ok
            dh_new = jnp.where(jnp.abs(h_t) < projection_clip, dh_new, 0.0)
        dm = dh_new @ projection_t if projection_t is not None else dh_new
        i, f, g, o = jnp.split(gates_t, 4, axis=-1)
        tanh_c = jnp.tanh(c_t)
        dc_new = dc_new + dm * o * (1.0 - tanh_c * tanh_c)
        if cell_clip is not None:  # c_t is the clipped new_c where ok
            dc_new = jnp.where(jnp.abs(c_t) < cell_clip, dc_new, 0.0)
        dz = jnp.concatenate([dc_new * g * i * (1.0 - i), dc_new * c_before * f * (1.0 - f),
                              dc_new * i * (1.0 - g * g), dm * tanh_c * o * (1.0 - o)],
                             axis=-1)
        dh_prev = dz @ kernel_t + jnp.where(ok, 0.0, dh)
        dc_prev = dc_new * f + jnp.where(ok, 0.0, dc)
        return (dh_prev, dc_prev), ((dz, dh_new) if projection is not None else (dz,))

    (dh0, dc0), per_step = jax.lax.scan(
        step, (dh_final, dc_final), (gates, cs, c_prev, hs, d_outputs, valid), reverse=True)
    dz = per_step[0]
    h_prev = jnp.concatenate([h0[None], hs], axis=0)[:-1]  # h_{t-1}
    d_kernel = jnp.einsum("tbo,tbg->og", h_prev, dz)
    d_projection = None
    if projection is not None:  # m_t = o_t * tanh(c_t), the cells before the projection
        o = gates[..., 3 * cs.shape[-1]:]
        d_projection = jnp.einsum("tbh,tbo->ho", o * jnp.tanh(cs), per_step[1]).astype(
            projection.dtype)
    # valid is boolean: no cotangent (None).
    return (dz.astype(like.dtype), None, dh0.astype(h0.dtype), dc0.astype(c0.dtype),
            d_kernel.astype(kernel.dtype), d_projection)


lstm_recurrence.defvjp(_fwd, _bwd)
