"""A linear-chain conditional random field for sequence tagging (NER, chunking, POS).

The output layer of the TagLM / ELMo taggers (Peters et al., 2017, 2018) in the style
of Lample et al. (2016): a network produces per-token *emission* scores
``[batch, length, num_tags]``; the CRF adds learned tag-to-tag *transition* scores, so
that the score of a tag sequence ``y_1 .. y_n`` is::

    start[y_1] + sum_i emissions[i, y_i] + sum_{i>1} transitions[y_{i-1}, y_i] + end[y_n]

and ``log p(y | x) = score(y) - log Z`` with ``log Z`` the log-sum-exp over every tag
sequence (the forward algorithm). Decoding is Viterbi.

Conventions:

* ``transitions[i, j]`` scores moving *from* tag ``i`` *to* tag ``j``.
* ``mask`` is ``[batch, length]`` and True at real tokens. Every sequence must be
  left-aligned: its real tokens come first and its padding (mask False) last. Padded
  positions change nothing (their emissions and tags are never read, not even as NaN),
  and their Viterbi tags are 0. ``mask=None`` means every position is real.
* A zero-length sequence (mask all False) has score 0, log-partition 0 and hence
  log-likelihood 0 (probability 1 for the empty tagging); Viterbi gives all-0 tags and
  best score 0. ``CRF.nll`` averages over the non-empty sequences only.
* Hard constraints (for instance BIO / BIOES validity, see ``allowed_transitions``) are
  boolean ``allowed`` arrays; a disallowed transition, start or end tag scores
  ``DISALLOWED`` (a large but finite negative) in every computation, so its probability
  is ``exp(-1e4) = 0`` in float32 while every gradient stays finite. The parameters at
  disallowed entries get zero gradient.
* Scores are computed in float32 (or the emissions' dtype, if wider).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
BoolArray = np.ndarray | Sequence[bool] | Sequence[Sequence[bool]]

# The score of a disallowed transition / start / end tag: exp(DISALLOWED) underflows to
# 0 in float32, yet the value is finite, so no inf - inf and no NaN gradients.
DISALLOWED = -1e4

SCHEMES = ("BIO", "BIOES")


# ---------------------------------------------------------------------------------------
# Functional forms: emissions [b, t, k], mask [b, t], potentials already constrained.
# ---------------------------------------------------------------------------------------


def _prepare(emissions: Array, mask: Array | None) -> tuple[Array, Array]:
    """Float emissions with padded positions zeroed, and a boolean ``[b, t]`` mask."""
    emissions = jnp.asarray(emissions)
    if emissions.ndim != 3:
        raise ValueError(f"emissions must be [batch, length, num_tags], got {emissions.shape}")
    emissions = emissions.astype(jnp.promote_types(emissions.dtype, jnp.float32))
    if mask is None:
        mask = jnp.ones(emissions.shape[:2], bool)
    else:
        mask = jnp.asarray(mask).astype(bool)
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match emissions "
                             f"{emissions.shape[:2]}")
    # Zeroing (not just ignoring) padded emissions keeps inf / NaN there out of the
    # gradient too: a where() after a NaN-producing op still back-propagates 0 * NaN.
    emissions = jnp.where(mask[..., None], emissions, 0.0)
    return emissions, mask


def sequence_score(emissions: Array, tags: Array, mask: Array | None, transitions: Array,
                   start: Array, end: Array) -> Array:
    """``[b]`` unnormalised score of ``tags`` ``[b, t]`` (0 for zero-length sequences)."""
    emissions, mask = _prepare(emissions, mask)
    batch, length, _ = emissions.shape
    if length == 0:
        return jnp.zeros((batch,), emissions.dtype)
    tags = jnp.where(mask, jnp.asarray(tags).astype(jnp.int32), 0)  # padding may be -1
    emitted = jnp.take_along_axis(emissions, tags[..., None], axis=-1)[..., 0]
    score = jnp.sum(jnp.where(mask, emitted, 0.0), axis=1)
    moved = transitions[tags[:, :-1], tags[:, 1:]]  # [b, t - 1]
    score += jnp.sum(jnp.where(mask[:, 1:], moved, 0.0), axis=1)
    lengths = jnp.sum(mask, axis=1)
    last = jnp.take_along_axis(tags, jnp.maximum(lengths - 1, 0)[:, None], axis=1)[:, 0]
    nonempty = mask[:, 0]
    score += jnp.where(nonempty, start[tags[:, 0]] + end[last], 0.0)
    return score


def forward_log_partition(emissions: Array, mask: Array | None, transitions: Array,
                          start: Array, end: Array) -> Array:
    """``[b]`` log-sum-exp of the scores of all tag sequences (the forward algorithm)."""
    emissions, mask = _prepare(emissions, mask)
    batch, length, _ = emissions.shape
    if length == 0:
        return jnp.zeros((batch,), emissions.dtype)
    time_major = jnp.swapaxes(emissions, 0, 1)  # [t, b, k]

    def step(alpha: Array, inputs: tuple[Array, Array]) -> tuple[Array, None]:
        emitted, valid = inputs  # [b, k], [b]
        nxt = jax.nn.logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emitted
        return jnp.where(valid[:, None], nxt, alpha), None

    alpha = start[None] + time_major[0]
    alpha, _ = jax.lax.scan(step, alpha, (time_major[1:], mask.T[1:]))
    return jnp.where(mask[:, 0], jax.nn.logsumexp(alpha + end[None], axis=-1), 0.0)


def viterbi_decode(emissions: Array, mask: Array | None, transitions: Array, start: Array,
                   end: Array) -> tuple[Array, Array]:
    """The highest-scoring tags ``[b, t]`` (int32, 0 at padding) and their score ``[b]``.

    Ties go to the lowest tag index (``argmax``'s first maximum).
    """
    emissions, mask = _prepare(emissions, mask)
    batch, length, num_tags = emissions.shape
    if length == 0:
        return jnp.zeros((batch, 0), jnp.int32), jnp.zeros((batch,), emissions.dtype)
    time_major = jnp.swapaxes(emissions, 0, 1)
    identity = jnp.broadcast_to(jnp.arange(num_tags, dtype=jnp.int32), (batch, num_tags))

    def forward(delta: Array, inputs: tuple[Array, Array]) -> tuple[Array, Array]:
        emitted, valid = inputs
        scores = delta[:, :, None] + transitions[None]  # [b, from, to]
        backpointer = jnp.argmax(scores, axis=1).astype(jnp.int32)
        nxt = jnp.max(scores, axis=1) + emitted
        # At padding the best tag carries over unchanged: the identity back-pointer
        # walks the final tag back to the sequence's last real position.
        return (jnp.where(valid[:, None], nxt, delta),
                jnp.where(valid[:, None], backpointer, identity))

    delta = start[None] + time_major[0]
    delta, backpointers = jax.lax.scan(forward, delta, (time_major[1:], mask.T[1:]))
    final = delta + end[None]
    last = jnp.argmax(final, axis=-1).astype(jnp.int32)
    best = jnp.where(mask[:, 0], jnp.max(final, axis=-1), 0.0)

    def backward(tag: Array, backpointer: Array) -> tuple[Array, Array]:
        previous = jnp.take_along_axis(backpointer, tag[:, None], axis=1)[:, 0]
        return previous, previous

    # backpointers[i] (time i + 1) maps the tag at i + 1 to the best tag at i.
    _, earlier = jax.lax.scan(backward, last, backpointers, reverse=True)  # [t - 1, b]
    tags = jnp.concatenate([earlier, last[None]], axis=0).T
    return jnp.where(mask, tags, 0), best


def tag_marginals(emissions: Array, mask: Array | None, transitions: Array, start: Array,
                  end: Array) -> Array:
    """``[b, t, k]`` posterior ``p(y_i = k | x)`` (0 at padding): d log Z / d emissions."""

    def total(e: Array) -> Array:
        return jnp.sum(forward_log_partition(e, mask, transitions, start, end))

    emissions, _ = _prepare(emissions, mask)
    return jax.grad(total)(emissions)


# ---------------------------------------------------------------------------------------
# Tagging-scheme constraints.
# ---------------------------------------------------------------------------------------


def _parse_tag(tag: str, scheme: str) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", None)``."""
    if tag == "O":
        return "O", None
    prefix, sep, label = tag.partition("-")
    if not sep or not label or prefix not in tuple(scheme) or prefix == "O":
        raise ValueError(f"Tag {tag!r} is not 'O' or a {scheme} tag such as 'B-PER'.")
    return prefix, label


def allowed_transitions(tag_names: Sequence[str],
                        scheme: str = "BIO") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The valid transitions of a tagging scheme, for ``CRF(len(tags), *allowed)``.

    Args:
      tag_names: the tag of each index, ``"O"`` or ``PREFIX-LABEL`` (``"B-PER"``,
        ``"I-PER"``; labels may contain ``-``).
      scheme: ``"BIO"`` (IOB2: ``I-X`` only continues ``B-X`` / ``I-X``, never starts a
        sentence) or ``"BIOES"`` (``B-X`` and ``I-X`` must be followed by ``I-X`` or
        ``E-X``; ``I-X`` / ``E-X`` only follow ``B-X`` / ``I-X``; a sentence starts with
        ``O``, ``B-`` or ``S-`` and ends with ``O``, ``E-`` or ``S-``).

    Returns:
      Boolean ``(transitions [k, k] (from, to), start [k], end [k])`` that are True
      where allowed.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tagging scheme {scheme!r}; choose one of {SCHEMES}.")
    parsed = [_parse_tag(tag, scheme) for tag in tag_names]
    k = len(parsed)
    transitions = np.zeros((k, k), bool)
    start = np.zeros((k,), bool)
    end = np.zeros((k,), bool)
    for j, (to_prefix, to_label) in enumerate(parsed):
        continues = to_prefix in ("I", "E")  # needs an open entity of the same label
        start[j] = not continues
        end[j] = to_prefix in ("O", "B", "I") if scheme == "BIO" else to_prefix in "OES"
        for i, (from_prefix, from_label) in enumerate(parsed):
            if scheme == "BIO":
                ok = not continues or (from_prefix in "BI" and from_label == to_label)
            else:
                inside = from_prefix in "BI"  # an entity is open and must go on
                ok = (from_label == to_label) if inside and continues else (
                    not inside and not continues)
            transitions[i, j] = ok
    return transitions, start, end


def _chunk_boundaries(tags: Array, valid: Array, prefix: Array, label: Array
                      ) -> tuple[Array, Array]:
    """conlleval's chunk starts and ends ``[b, t]`` of BIO tag ids (``I-X`` after ``O``
    or another label starts a chunk; a chunk ends before ``O``, ``B-`` or a new label)."""
    pre, lab = prefix[tags], label[tags]
    inside = valid & (pre != 0)  # prefix 0 = O, 1 = B, 2 = I
    prev_inside = jnp.pad(inside, ((0, 0), (1, 0)))[:, :-1]
    prev_label = jnp.pad(lab, ((0, 0), (1, 0)), constant_values=-1)[:, :-1]
    start = inside & ((pre == 1) | ~prev_inside | (prev_label != lab))
    next_inside = jnp.pad(inside, ((0, 0), (0, 1)))[:, 1:]
    next_pre = jnp.pad(pre, ((0, 0), (0, 1)))[:, 1:]
    next_label = jnp.pad(lab, ((0, 0), (0, 1)), constant_values=-1)[:, 1:]
    end = inside & (~next_inside | (next_pre == 1) | (next_label != lab))
    return start, end


def entity_counts(predicted: Array, gold: Array, mask: Array | None,
                  tag_names: Sequence[str]) -> tuple[Array, Array, Array]:
    """Entity-level ``(correct, predicted, gold)`` chunk counts of BIO tag ids
    ``[batch, length]``, counted as conlleval (and seqeval's default mode) counts them:
    a predicted chunk is correct when a gold chunk has the same label, start and end.
    Summable over batches and hosts, so precision = correct / predicted, recall =
    correct / gold and F1 follow exactly. jit-able; ``tag_names`` is static."""
    parsed = [_parse_tag(tag, "BIO") for tag in tag_names]
    labels = sorted({lab for _, lab in parsed if lab is not None})
    prefix = jnp.asarray(["OBI".index(p) for p, _ in parsed], jnp.int32)
    label = jnp.asarray([labels.index(lab) if lab else -1 for _, lab in parsed], jnp.int32)
    valid = jnp.ones(gold.shape, bool) if mask is None else mask.astype(bool)
    p_start, p_end = _chunk_boundaries(predicted, valid, prefix, label)
    g_start, g_end = _chunk_boundaries(gold, valid, prefix, label)
    time = jnp.arange(gold.shape[1])[None, :]
    # For each gold chunk end e: its start s (the last gold start <= e).
    last_start = jax.lax.cummax(jnp.where(g_start, time, -1), axis=1)
    s = jnp.maximum(last_start, 0)
    at_s = functools.partial(jnp.take_along_axis, indices=s, axis=1)
    starts = jnp.cumsum(p_start, axis=1, dtype=jnp.int32)
    ends = jnp.cumsum(p_end, axis=1, dtype=jnp.int32)
    # One predicted chunk exactly on [s, e]: it starts at s and ends at e, no predicted
    # start in (s, e] and no end in [s, e), and it has the gold chunk's label.
    one_chunk = ((starts - at_s(starts)) == 0) & (
        (ends - p_end) - (at_s(ends) - at_s(p_end)) == 0)
    same_label = label[predicted] == label[gold]  # at e; constant inside a chunk
    correct = g_end & p_end & at_s(p_start) & one_chunk & same_label
    return (jnp.sum(correct, dtype=jnp.float32), jnp.sum(p_start, dtype=jnp.float32),
            jnp.sum(g_start, dtype=jnp.float32))


# ---------------------------------------------------------------------------------------
# The Flax module.
# ---------------------------------------------------------------------------------------


def _as_tuple(value: BoolArray | None) -> tuple | None:
    """Nested tuples of bools (hashable, so the module stays hashable and comparable)."""
    if value is None:
        return None
    array = np.asarray(value, bool)
    if array.ndim == 0:
        raise ValueError("allowed arrays must be [k, k] or [k], not a scalar")
    return tuple(_as_tuple(row) for row in array) if array.ndim > 1 else tuple(
        bool(x) for x in array)


def _uniform(scale: float) -> nn.initializers.Initializer:
    def init(key: Array, shape: Sequence[int], dtype: jnp.dtype = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class CRF(nn.Module):
    """A linear-chain CRF over ``num_tags`` tags, optionally with hard constraints.

    Parameters (float32, replicated): ``transitions [k, k]`` (from, to),
    ``start_transitions [k]``, ``end_transitions [k]``, initialised uniform in
    ``[-init_scale, init_scale]`` (as pytorch-crf).

    Attributes:
      num_tags: ``k``.
      transitions_allowed, start_allowed, end_allowed: optional boolean ``[k, k]``,
        ``[k]``, ``[k]`` (numpy arrays or nested sequences, stored as tuples); False
        entries score ``DISALLOWED``. ``CRF(len(tags), *allowed_transitions(tags))``.
      init_scale: half-width of the uniform initialiser.

    ``__call__`` is ``log_likelihood`` (so ``init`` takes ``emissions, tags, mask``).
    """

    num_tags: int
    transitions_allowed: BoolArray | None = None
    start_allowed: BoolArray | None = None
    end_allowed: BoolArray | None = None
    init_scale: float = 0.1

    def __post_init__(self) -> None:
        for name in ("transitions_allowed", "start_allowed", "end_allowed"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        super().__post_init__()

    def setup(self) -> None:
        k = self.num_tags
        for name, shape in (("transitions_allowed", (k, k)), ("start_allowed", (k,)),
                            ("end_allowed", (k,))):
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {np.shape(value)}")
        init = _uniform(self.init_scale)
        self.transitions = self.param(
            "transitions", nn.with_logical_partitioning(init, (None, None)), (k, k),
            jnp.float32)
        self.start_transitions = self.param(
            "start_transitions", nn.with_logical_partitioning(init, (None,)), (k,),
            jnp.float32)
        self.end_transitions = self.param(
            "end_transitions", nn.with_logical_partitioning(init, (None,)), (k,), jnp.float32)

    def potentials(self) -> tuple[Array, Array, Array]:
        """``(transitions, start, end)`` with disallowed entries set to ``DISALLOWED``."""

        def constrain(value: Array, allowed: tuple | None) -> Array:
            if allowed is None:
                return value
            return jnp.where(np.asarray(allowed, bool), value, DISALLOWED)

        return (constrain(self.transitions, self.transitions_allowed),
                constrain(self.start_transitions, self.start_allowed),
                constrain(self.end_transitions, self.end_allowed))

    def __call__(self, emissions: Array, tags: Array, mask: Array | None = None) -> Array:
        return self.log_likelihood(emissions, tags, mask)

    def score(self, emissions: Array, tags: Array, mask: Array | None = None) -> Array:
        """``[b]`` unnormalised score of ``tags`` ``[b, t]`` (padded tags are ignored)."""
        return sequence_score(emissions, tags, mask, *self.potentials())

    def log_partition(self, emissions: Array, mask: Array | None = None) -> Array:
        """``[b]`` ``log Z``: log-sum-exp of the scores of every tag sequence."""
        return forward_log_partition(emissions, mask, *self.potentials())

    def log_likelihood(self, emissions: Array, tags: Array,
                       mask: Array | None = None) -> Array:
        """``[b]`` ``log p(tags | emissions) = score(tags) - log Z``."""
        transitions, start, end = self.potentials()
        return (sequence_score(emissions, tags, mask, transitions, start, end)
                - forward_log_partition(emissions, mask, transitions, start, end))

    def nll(self, emissions: Array, tags: Array, mask: Array | None = None) -> Array:
        """Scalar mean negative log-likelihood over the non-empty sequences of the batch."""
        log_likelihood = self.log_likelihood(emissions, tags, mask)
        if mask is None:
            return -jnp.mean(log_likelihood)
        nonempty = jnp.any(jnp.asarray(mask).astype(bool), axis=1)
        return -jnp.sum(log_likelihood) / jnp.maximum(jnp.sum(nonempty), 1)

    def viterbi(self, emissions: Array, mask: Array | None = None) -> tuple[Array, Array]:
        """Best tags ``[b, t]`` (int32, 0 at padding) and their score ``[b]``."""
        return viterbi_decode(emissions, mask, *self.potentials())

    def marginals(self, emissions: Array, mask: Array | None = None) -> Array:
        """``[b, t, k]`` posterior tag marginals (0 at padding)."""
        return tag_marginals(emissions, mask, *self.potentials())
