"""Model-agnostic, compiled auto-regressive decoding: greedy, sampling and beam search.

In the style of the flax WMT example's ``decode.py``: every decoder runs as a single
``jax.lax.while_loop`` (jit-compatible, no per-step Python loop, no host synchronisation,
so it works with sharded inputs) and talks to the model only through a *step function*::

    step_fn(token_ids: int32[n], state: PyTree, step: int32[]) -> (logits: float[n, vocab], state)

``n`` is the batch size for :func:`greedy` / :func:`sample` and ``batch_size * beam_size`` for
:func:`beam_search` (rows are batch-major: row ``b * beam_size + k`` is beam ``k`` of batch
item ``b``).  Every array leaf of ``state`` has leading dimension ``n`` (e.g. encoder outputs,
an attention mask and a key/value cache); beam search reorders it by gathering along axis 0
(:func:`gather_beams`), except the optional ``state["constants"]`` entry of a dict state:
leaves that are the same for every beam of a batch item (encoder outputs, source ids) are
tiled once and never reordered, which saves most of the per-step copying in translation.
``step`` is the 0-based position of the token being fed: at step 0
the BOS token is fed, at step ``i`` the token generated at step ``i - 1``, and the logits
returned predict the token at position ``i + 1``, which is written to ``tokens[..., i]``.

A key/value cache sized for ``max_length`` makes every step attend over, and beam search
copy, all ``max_length`` slots, though most sequences end long before. So a model whose
cache can grow passes ``cache_sizes`` (ascending, the last ``max_length``;
:func:`cache_sizes` doubles from 32) and ``grow(state, size)``: the state starts with
the first size, and the loop runs one ``while_loop`` per size, growing the state (e.g.
zero-padding the cache, ``models.layers.grow_kv_cache``) only when a sequence is still
unfinished at its end. The results are those of a full-size cache: the extra slots are
masked out.

Output conventions (all decoders): ``tokens`` excludes BOS, includes EOS, and every position
after EOS holds :data:`PAD_ID` (0).  Sequences that reach ``max_length`` without EOS are
returned truncated.

Beam search keeps, as flax does, an "alive" set of ``beam_size`` unfinished hypotheses and a
separate top-``beam_size`` "finished" set; at each step the ``2 * beam_size`` best
continuations are computed, EOS-ending (and, at the last step, all ``max_length``-long)
continuations are scored with the length penalty and merged into the finished set, the
others refill the alive set.  Hypotheses truncated at ``max_length`` thus compete with the
EOS-terminated ones (as in HF; flax only falls back to alive beams when nothing finished).
Two conventions are provided (``length_penalty=``):

``"gnmt"`` (default)
    score = log p(y) / ((5 + |y|) / 6) ** alpha (Wu et al. 2016, used for the Transformer's
    beam decoding with alpha = 0.6), ``|y|`` = number of generated tokens including EOS and
    excluding BOS (flax's ``brevity_penalty(alpha, i + 1)``).  Every one of the
    ``2 * beam_size`` candidates ending in EOS may enter the finished set (flax).
    ``early_stopping=True`` stops a batch item once its finished set is full and no alive
    hypothesis can still beat the worst finished one, using an admissible bound (the best
    alive log-prob divided by the most favourable penalty over the lengths it could still
    reach; log-probs only decrease), so early stopping saves steps but never changes the
    result.  ``early_stopping=False`` (or ``"never"``) decodes until ``max_length`` or until no
    alive hypothesis is left.

``"hf"``
    Reproduces HuggingFace ``generate(num_beams=beam_size, length_penalty=alpha,
    early_stopping=...)`` (transformers 5.x, ``GenerationMixin._beam_search``):
    score = log p(y) / |y| ** alpha, with ``|y|`` = ``cur_len + 1 - decoder_prompt_len``, i.e.
    the number of *generated* tokens including EOS and excluding the prompt -- for
    encoder-decoder models excluding the decoder start token, for decoder-only models
    excluding the whole prompt (here: the single BOS token).  Only candidates among the
    ``beam_size`` best of the ``2 * beam_size`` may finish.  ``early_stopping=True``: a batch
    item stops accepting hypotheses as soon as it has ``beam_size`` finished ones, and the
    search stops when every item has (HF's heuristic; it can change the result).
    ``early_stopping=False``: HF's heuristic stop when the best alive log-prob divided by the
    *current* length's penalty cannot beat the worst finished score; ``"never"``: the same
    with the ``max_length`` penalty when ``alpha > 0`` (an exact bound, like ``"gnmt"``'s).
    Differences from HF only arise in degenerate cases: HF seeds the non-first beams with
    ``-1e9`` and can let those dummy beams finish when ``2 * beam_size > vocab``; here they are
    never valid.

Log-probs are clamped at ``NEG_INF`` (-1e9, finite) before accumulation and empty finished
slots carry a score of ``-inf`` that is only compared, never used in arithmetic, so ``-inf``
logits from the model cannot produce NaNs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import lax

PyTree = Any
StepFn = Callable[[jax.Array, PyTree, jax.Array], tuple[jax.Array, PyTree]]

PAD_ID = 0
# "Effective minus infinity" for alive beams: finite so that sums stay finite.
NEG_INF = -1.0e9
# Accumulated log-probs below this mark impossible / dummy hypotheses.
_INVALID_BELOW = 0.5 * NEG_INF

GrowFn = Callable[[PyTree, int], PyTree]

__all__ = [
    "NEG_INF",
    "PAD_ID",
    "beam_search",
    "cache_sizes",
    "filter_logits",
    "gather_beams",
    "greedy",
    "sample",
    "tile_beams",
]


# ----------------------------------------------------------------------------- helpers


def tile_beams(tree: PyTree, beam_size: int) -> PyTree:
    """Repeats every leaf ``[batch, ...]`` to ``[batch * beam_size, ...]`` (batch-major)."""
    return jax.tree.map(lambda x: jnp.repeat(x, beam_size, axis=0), tree)


def gather_beams(tree: PyTree, indices: jax.Array, batch_size: int, beam_size: int) -> PyTree:
    """Selects beams per batch item from a flattened beam pytree.

    Args:
      tree: pytree whose leaves have leading dimension ``batch_size * beam_size``
        (batch-major, as produced by :func:`tile_beams`).
      indices: int ``[batch_size, new_beam_size]``, beam index (``0 <= i < beam_size``)
        within each batch item.
      batch_size: number of batch items.
      beam_size: current number of beams per item.

    Returns:
      The pytree with leaves of leading dimension ``batch_size * new_beam_size``, row
      ``b * new_beam_size + j`` being old row ``b * beam_size + indices[b, j]``.
    """
    indices = jnp.asarray(indices, jnp.int32)
    offsets = jnp.arange(batch_size, dtype=jnp.int32)[:, None] * beam_size
    flat = (offsets + indices).reshape(-1)
    return jax.tree.map(lambda x: jnp.take(x, flat, axis=0, mode="clip"), tree)


def _gather(x: jax.Array, indices: jax.Array) -> jax.Array:
    """Gathers along axis 1 of ``x[batch, beam, ...]`` with ``indices[batch, new_beam]``."""
    b, k = x.shape[:2]
    out = gather_beams(x.reshape((b * k, *x.shape[2:])), indices, b, k)
    return out.reshape((b, indices.shape[1], *x.shape[2:]))


def cache_sizes(max_length: int, first: int = 32) -> tuple[int, ...]:
    """The sizes a growing decoding cache takes: ``first``, doubled until it reaches
    ``max_length`` (which is always the last)."""
    sizes = [min(first, max_length)]
    while sizes[-1] < max_length:
        sizes.append(min(2 * sizes[-1], max_length))
    return tuple(sizes)


def _check_sizes(sizes: tuple[int, ...] | None, grow: GrowFn | None, max_length: int
                 ) -> tuple[int, ...]:
    if sizes is None or len(sizes) <= 1:
        if sizes and sizes[0] != max_length:
            raise ValueError(f"cache_sizes={sizes} must end at max_length={max_length}.")
        return (max_length,)
    if grow is None:
        raise ValueError("cache_sizes with more than one size need grow(state, size).")
    if list(sizes) != sorted(set(sizes)) or sizes[-1] != max_length or sizes[0] < 1:
        raise ValueError(f"cache_sizes={sizes} must rise strictly to max_length={max_length}.")
    return tuple(sizes)


def _while_growing(cond: Callable[[dict], jax.Array], body: Callable[[dict], dict],
                   carry: dict, sizes: tuple[int, ...], grow: GrowFn | None, key: str
                   ) -> dict:
    """``lax.while_loop(cond, body, carry)``, one loop per cache size: the loop for
    ``size`` stops at step ``size``, and ``carry[key]`` grows to the next size before the
    next loop (which does not run if ``cond`` is already false)."""
    for k, size in enumerate(sizes):
        if k:
            carry = {**carry, key: grow(carry[key], size)}
        carry = lax.while_loop(lambda c, size=size: cond(c) & (c["step"] < size), body, carry)
    return carry


def _bos(bos_id: int | jax.Array, batch_size: int) -> jax.Array:
    return jnp.broadcast_to(jnp.asarray(bos_id, jnp.int32), (batch_size,))


def filter_logits(
    logits: jax.Array, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> jax.Array:
    """Temperature, top-k and nucleus (top-p) filtering, in HF's warper order.

    Filtered-out entries are set to ``-inf``.  ``top_k`` (0 = off) keeps every token whose
    logit is >= the k-th largest (ties kept, like HF's ``TopKLogitsWarper``); ``top_p``
    (1.0 = off) keeps the smallest set of most likely tokens whose cumulative probability is
    >= ``top_p``, always at least one token (HF's ``TopPLogitsWarper``; among tokens with
    equal logits the lower id counts as more likely, HF's order for ties is unspecified).
    ``top_k`` and ``top_p`` must be Python numbers (static).
    """
    logits = logits.astype(jnp.float32)
    if not (isinstance(temperature, int | float) and temperature == 1.0):
        logits = logits / temperature
    vocab = logits.shape[-1]
    if top_k and top_k < vocab:
        kth = lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        order = jnp.argsort(-logits, axis=-1, stable=True)  # descending, lower id first
        sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        keep_sorted = (mass_before < top_p).at[..., 0].set(True)
        keep = jnp.take_along_axis(keep_sorted, jnp.argsort(order, axis=-1), axis=-1)
        logits = jnp.where(keep, logits, -jnp.inf)
    return logits


# ----------------------------------------------------------------------------- greedy / sampling


def _decode_loop(
    step_fn: StepFn,
    state: PyTree,
    select: Callable[[jax.Array, jax.Array], jax.Array],
    *,
    bos_id: int | jax.Array,
    eos_id: int,
    max_length: int,
    batch_size: int,
    cache_sizes: tuple[int, ...] | None = None,
    grow: GrowFn | None = None,
) -> tuple[jax.Array, jax.Array]:
    sizes = _check_sizes(cache_sizes, grow, max_length)
    init = {
        "step": jnp.zeros((), jnp.int32),
        "token": _bos(bos_id, batch_size),
        "state": state,
        "tokens": jnp.full((batch_size, max_length), PAD_ID, jnp.int32),
        "done": jnp.zeros((batch_size,), bool),
        "lengths": jnp.zeros((batch_size,), jnp.int32),
    }

    def cond(c: dict) -> jax.Array:
        return (c["step"] < max_length) & ~jnp.all(c["done"])

    def body(c: dict) -> dict:
        i = c["step"]
        logits, new_state = step_fn(c["token"], c["state"], i)
        token = select(logits.astype(jnp.float32), i).astype(jnp.int32)
        token = jnp.where(c["done"], PAD_ID, token)
        return {
            "step": i + 1,
            "token": token,
            "state": new_state,
            "tokens": c["tokens"].at[:, i].set(token),
            "done": c["done"] | (token == eos_id),
            "lengths": c["lengths"] + (~c["done"]).astype(jnp.int32),
        }

    out = _while_growing(cond, body, init, sizes, grow, "state")
    return out["tokens"], out["lengths"]


def greedy(
    step_fn: StepFn,
    state: PyTree,
    *,
    bos_id: int | jax.Array,
    eos_id: int,
    max_length: int,
    batch_size: int,
    cache_sizes: tuple[int, ...] | None = None,
    grow: GrowFn | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Greedy (argmax) decoding.

    Args:
      step_fn: the model step function (see module docstring), called with ``n = batch_size``.
      state: initial step-function state, leaves with leading dimension ``batch_size``.
      bos_id: token fed at step 0 (int, or int ``[batch_size]`` for per-row start tokens).
      eos_id: end-of-sequence token; a row stops after producing it.
      max_length: maximum number of generated tokens (static).
      batch_size: number of rows (static).
      cache_sizes, grow: a growing cache (module docstring): ``state`` holds one of
        ``cache_sizes[0]`` positions, and ``grow(state, size)`` makes it ``size``.

    Returns:
      ``(tokens int32[batch_size, max_length], lengths int32[batch_size])``: generated tokens
      (without BOS, with EOS, :data:`PAD_ID` after EOS) and the number of generated tokens
      including EOS.  The loop exits as soon as every row has produced EOS.
    """
    return _decode_loop(
        step_fn,
        state,
        lambda logits, _: jnp.argmax(logits, axis=-1),
        bos_id=bos_id,
        eos_id=eos_id,
        max_length=max_length,
        batch_size=batch_size,
        cache_sizes=cache_sizes,
        grow=grow,
    )


def sample(
    step_fn: StepFn,
    state: PyTree,
    rng: jax.Array,
    *,
    bos_id: int | jax.Array,
    eos_id: int,
    max_length: int,
    batch_size: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    cache_sizes: tuple[int, ...] | None = None,
    grow: GrowFn | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Ancestral sampling with temperature, top-k and nucleus filtering.

    Same arguments and outputs as :func:`greedy`, plus ``rng`` (a PRNG key; step ``i`` uses
    ``fold_in(rng, i)``) and the filters of :func:`filter_logits` (``top_k=0`` and
    ``top_p=1.0`` switch them off; ``top_k=1`` is greedy decoding).
    """

    def select(logits: jax.Array, i: jax.Array) -> jax.Array:
        logits = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
        return jax.random.categorical(jax.random.fold_in(rng, i), logits, axis=-1)

    return _decode_loop(
        step_fn,
        state,
        select,
        bos_id=bos_id,
        eos_id=eos_id,
        max_length=max_length,
        batch_size=batch_size,
        cache_sizes=cache_sizes,
        grow=grow,
    )


# ----------------------------------------------------------------------------- beam search


def _penalty(length: jax.Array | int, alpha: float, kind: str) -> jax.Array:
    length = jnp.asarray(length, jnp.float32)
    if kind == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    return length**alpha


def beam_search(
    step_fn: StepFn,
    state: PyTree,
    *,
    bos_id: int | jax.Array,
    eos_id: int,
    max_length: int,
    batch_size: int,
    beam_size: int = 4,
    alpha: float = 0.6,
    length_penalty: Literal["gnmt", "hf"] = "gnmt",
    early_stopping: bool | Literal["never"] = True,
    cache_sizes: tuple[int, ...] | None = None,
    grow: GrowFn | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Beam search with a separate finished set and length-normalised scores.

    Args:
      step_fn: the model step function, called with ``n = batch_size * beam_size`` rows.
      state: initial state for ``batch_size`` rows; tiled to ``batch_size * beam_size`` rows
        with :func:`tile_beams` and reordered with :func:`gather_beams` each step, except a
        dict state's ``"constants"`` entry, which is tiled and passed on unchanged.
      bos_id: token fed at step 0 (int, or int ``[batch_size]``).
      eos_id: end-of-sequence token.
      max_length: maximum number of generated tokens (static).
      batch_size: number of batch items (static).
      beam_size: number of beams (static).
      alpha: length-penalty exponent (static Python float).
      length_penalty: ``"gnmt"`` or ``"hf"`` scoring / search conventions, see the module
        docstring.
      early_stopping: ``True``, ``False`` or ``"never"``, see the module docstring.
      cache_sizes, grow: a growing cache (module docstring); ``grow`` gets the state
        without its ``"constants"``.

    Returns:
      ``(tokens int32[batch_size, beam_size, max_length], scores float32[batch_size,
      beam_size])``, best first.  ``scores`` are the length-penalised log-probabilities;
      tokens exclude BOS, include EOS and are :data:`PAD_ID` after it.  Slots left empty
      (fewer than ``beam_size`` possible sequences) have score ``-inf`` and all-pad tokens.
    """
    if length_penalty not in ("gnmt", "hf"):
        raise ValueError(f"length_penalty must be 'gnmt' or 'hf', got {length_penalty!r}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never': {early_stopping!r}")
    hf = length_penalty == "hf"
    sizes = _check_sizes(cache_sizes, grow, max_length)
    b, nb, length = batch_size, beam_size, max_length
    n = b * nb

    state = dict(state) if isinstance(state, dict) else state
    constants = state.pop("constants", None) if isinstance(state, dict) else None
    constants = tile_beams(constants, nb)

    def call(tokens: jax.Array, alive: PyTree, i: jax.Array) -> tuple[jax.Array, PyTree]:
        if constants is None:
            return step_fn(tokens, alive, i)
        logits, new = step_fn(tokens, {**alive, "constants": constants}, i)
        return logits, {k: v for k, v in new.items() if k != "constants"}

    alive_state = tile_beams(state, nb)
    bos = jnp.repeat(_bos(bos_id, b), nb).reshape(b, nb)
    logits_shape = jax.eval_shape(
        call, jax.ShapeDtypeStruct((n,), jnp.int32), alive_state, jnp.zeros((), jnp.int32)
    )[0].shape
    vocab = logits_shape[-1]
    num_cand = min(2 * nb, nb * vocab)
    top_beam_mask = jnp.arange(num_cand) < nb  # HF: only the best beam_size may finish

    def penalty(ln: jax.Array | int) -> jax.Array:
        return _penalty(ln, alpha, length_penalty)

    init = {
        "step": jnp.zeros((), jnp.int32),
        "stop": jnp.zeros((), bool),
        "alive_tok": bos,
        "alive_seq": jnp.full((b, nb, length), PAD_ID, jnp.int32),
        # Only beam 0 is live at first so the identical beams are not expanded repeatedly.
        "alive_logp": jnp.tile(jnp.where(jnp.arange(nb) == 0, 0.0, NEG_INF), (b, 1)),
        "alive_state": alive_state,
        "fin_seq": jnp.full((b, nb, length), PAD_ID, jnp.int32),
        "fin_score": jnp.full((b, nb), -jnp.inf, jnp.float32),
        "fin_flag": jnp.zeros((b, nb), bool),
        # HF's `is_early_stop_heuristic_unsatisfied` (per batch item).
        "can_improve": jnp.ones((b,), bool),
    }

    def cond(c: dict) -> jax.Array:
        return (c["step"] < length) & ~c["stop"]

    def body(c: dict) -> dict:
        i = c["step"]
        logits, new_state = call(c["alive_tok"].reshape(n), c["alive_state"], i)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        logp = jnp.maximum(logp, NEG_INF).reshape(b, nb, vocab)
        cand = (c["alive_logp"][:, :, None] + logp).reshape(b, nb * vocab)

        # 1. The 2 * beam best continuations.
        top_logp, top_idx = lax.top_k(cand, num_cand)
        top_beam = top_idx // vocab
        top_tok = (top_idx % vocab).astype(jnp.int32)
        top_seq = _gather(c["alive_seq"], top_beam).at[:, :, i].set(top_tok)
        valid = top_logp > _INVALID_BELOW
        ends = (top_tok == eos_id) | (i == length - 1)

        # 2. Alive set: best beam_size continuations that did not end.
        alive_score = jnp.where(ends | ~valid, NEG_INF, top_logp)
        alive_logp, sel = lax.top_k(alive_score, nb)
        alive_seq = _gather(top_seq, sel)
        alive_tok = jnp.take_along_axis(top_tok, sel, axis=1)
        origin = jnp.take_along_axis(top_beam, sel, axis=1)
        alive_state = gather_beams(new_state, origin, b, nb)

        # 3. Finished set: merge the continuations that ended.
        eligible = ends & valid
        if hf:
            blocked = ~c["can_improve"]
            if early_stopping is True:
                blocked = blocked | jnp.all(c["fin_flag"], axis=1)
            eligible = eligible & top_beam_mask[None, :] & ~blocked[:, None]
        new_score = jnp.where(eligible, top_logp / penalty(i + 1), -jnp.inf)
        merged_score = jnp.concatenate([c["fin_score"], new_score], axis=1)
        merged_flag = jnp.concatenate([c["fin_flag"], eligible], axis=1)
        merged_seq = jnp.concatenate([c["fin_seq"], top_seq], axis=1)
        fin_score, fin_idx = lax.top_k(merged_score, nb)
        fin_flag = jnp.take_along_axis(merged_flag, fin_idx, axis=1)
        fin_seq = _gather(merged_seq, fin_idx)

        # 4. Stopping.
        best_alive = alive_logp[:, 0]
        has_alive = best_alive > _INVALID_BELOW
        full = jnp.all(fin_flag, axis=1)
        worst_fin = jnp.min(fin_score, axis=1)
        can_improve = c["can_improve"]
        if hf:
            if early_stopping == "never" and alpha > 0.0:
                best_possible = best_alive / penalty(length)
            else:
                best_possible = best_alive / penalty(i + 1)
            can_improve = can_improve & has_alive & (~full | (best_possible > worst_fin))
            stop = ~jnp.any(can_improve)
            if early_stopping is True:
                stop = stop | jnp.all(full)
        else:
            if early_stopping is True:
                # Admissible: future scores <= best_alive / max penalty over reachable lengths.
                max_pen = jnp.maximum(penalty(jnp.minimum(i + 2, length)), penalty(length))
                finished_for_good = full & (worst_fin > best_alive / max_pen)
                can_improve = has_alive & ~finished_for_good
            else:
                can_improve = has_alive
            stop = ~jnp.any(can_improve)

        return {
            "step": i + 1,
            "stop": stop,
            "alive_tok": alive_tok,
            "alive_seq": alive_seq,
            "alive_logp": alive_logp,
            "alive_state": alive_state,
            "fin_seq": fin_seq,
            "fin_score": fin_score,
            "fin_flag": fin_flag,
            "can_improve": can_improve,
        }

    out = _while_growing(cond, body, init, sizes, grow, "alive_state")
    flag = out["fin_flag"]
    tokens = jnp.where(flag[:, :, None], out["fin_seq"], PAD_ID)
    scores = jnp.where(flag, out["fin_score"], -jnp.inf)
    return tokens, scores
