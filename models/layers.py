"""Shared Flax building blocks for every architecture in the codebase.

Each parameter and each large activation carries *logical* axis names
(``batch``, ``length``, ``embed``, ``mlp``, ``heads``, ``kv``, ``vocab``); the
mapping from logical names to mesh axes lives in gin (see
``pretrain_lm/partitioning.py``), so the same module runs on one CPU, a
simulated mesh or a pod slice.

Conventions (shared by BERT, the MT Transformer and the GPT decoder):

* attention projections are ``[embed, heads, kv]`` / ``[heads, kv, embed]``;
* feed-forward kernels are ``[embed, mlp]`` / ``[mlp, embed]``;
* token embeddings are ``[vocab, embed]`` and double as a tied output layer.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import lstm_scan

Array = jax.Array
Initializer = Callable[..., Array]

# Logical axis names used throughout; the rules in partitioning.py map them.
BATCH, LENGTH, EMBED, MLP, HEADS, KV, VOCAB = (
    "batch", "length", "embed", "mlp", "heads", "kv", "vocab")


def gelu(x: Array) -> Array:
    """Exact GELU, ``x * Phi(x)``, written as ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    The same formula as HuggingFace's (and PyTorch's) ``gelu``. ``jax.nn.gelu(x,
    approximate=False)`` computes it through ``erfc``, which on XLA:CPU costs an extra
    ``exp`` per element forward and backward; this form costs about half as much.
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * math.sqrt(0.5)))


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": gelu,  # HF BERT "gelu" (erf)
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),  # original BERT, GPT-2
    "relu": jax.nn.relu,
}


def activation(name: str) -> Callable[[Array], Array]:
    """Returns the activation function called ``name`` (see ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.") from None


def _rotate_left(x: Array, bits: int) -> Array:
    return (x << bits) | (x >> (32 - bits))


def _threefry2x32(key: tuple[Array, Array], x: tuple[Array, Array]) -> tuple[Array, Array]:
    """The Threefry-2x32 hash (20 rounds), as ``jax.random``'s threefry2x32, unrolled."""
    ks = (key[0], key[1], key[0] ^ key[1] ^ jnp.uint32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x0, x1 = x[0] + ks[0], x[1] + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x0, x1


def _random_bits(key: Array, shape: tuple[int, ...]) -> Array:
    """``jax.random.bits(key, shape, uint32)`` for a threefry2x32 key, bit for bit.

    JAX hashes each element's flat index (partitionable threefry) with the threefry
    primitive, which XLA:CPU lowers as a 5-iteration loop: every iteration is a separate
    pass reading and writing two uint32 arrays of ``shape``. The same hash written out in
    ``jnp`` fuses into one pass together with its consumer (the dropout mask).
    """
    k0, k1 = jax.random.key_data(key)
    zeros = jnp.zeros(shape, jnp.uint32)
    # The flat index from one iota per axis (not a reshaped 1-D iota), so that the SPMD
    # partitioner gives every shard its own part, as for jax.random's counters.
    index = sum((jax.lax.broadcasted_iota(jnp.uint32, shape, d)
                 * jnp.uint32(math.prod(shape[d + 1:])) for d in range(len(shape))), zeros)
    hi, lo = _threefry2x32((k0, k1), (zeros, index))  # the index's high word is 0
    return hi ^ lo


class Dropout(nn.Module):
    """``flax.linen.Dropout`` (same masks, bit for bit), with a cheaper mask on XLA:CPU.

    For JAX's default PRNG (partitionable threefry2x32) the keep-mask comes from
    ``_random_bits``: ``jax.random.bernoulli``'s exact bits, compared as integers with
    the threshold that ``uniform < keep_prob`` implies. A BERT L4/H256 step at batch
    32 x 128 draws 18M such words; this way they cost about half as much on CPU. Other
    key types (or 64-bit mode, the legacy non-partitionable threefry, 2**32+ elements)
    go through ``jax.random.bernoulli``.
    """

    rate: float
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, inputs: Array, *, deterministic: bool) -> Array:
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:  # no NaN gradients from 0 / 0
            return jnp.zeros_like(inputs)
        keep_prob = 1.0 - self.rate
        rng = self.make_rng(self.rng_collection)
        if (str(jax.random.key_impl(rng)) == "threefry2x32" and inputs.size < 2**32
                and jax.config.jax_threefry_partitionable and not jax.config.jax_enable_x64):
            # uniform = (bits >> 9) * 2**-23 exactly, so uniform < p <=> (bits >> 9) <
            # ceil(p * 2**23), with p rounded to float32 as jax.random.bernoulli does.
            threshold = math.ceil(float(np.float32(keep_prob)) * 2**23)
            keep = (_random_bits(rng, inputs.shape) >> 9) < jnp.uint32(threshold)
        else:
            keep = jax.random.bernoulli(rng, keep_prob, inputs.shape)
        return jax.lax.select(keep, inputs / keep_prob, jnp.zeros_like(inputs))


def truncated_normal(stddev: float) -> Initializer:
    """BERT's initializer: normal(0, stddev) truncated at two standard deviations."""
    return nn.initializers.truncated_normal(stddev=stddev)


def constrain(x: Array, *axes: str | None) -> Array:
    """Annotates an activation with logical axis names (a no-op without rules)."""
    return nn.with_logical_constraint(x, axes)


def layer_norm(epsilon: float = 1e-12, dtype: jnp.dtype = jnp.float32,
               name: str | None = None) -> nn.LayerNorm:
    """LayerNorm over the last (``embed``) axis with logically partitioned scale/bias."""
    return nn.LayerNorm(
        epsilon=epsilon,
        dtype=dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, (EMBED,)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (EMBED,)),
        name=name,
    )


class Embed(nn.Module):
    """A ``[vocab, embed]`` lookup table that can also act as a tied output layer."""

    num_embeddings: int
    features: int
    init_stddev: float = 0.02
    dtype: jnp.dtype = jnp.float32
    axes: tuple[str, str] = (VOCAB, EMBED)

    def setup(self) -> None:
        self.embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(truncated_normal(self.init_stddev), self.axes),
            (self.num_embeddings, self.features),
            jnp.float32,
        )

    def __call__(self, ids: Array) -> Array:
        table = jnp.asarray(self.embedding, self.dtype)
        return jnp.take(table, ids, axis=0)

    def attend(self, x: Array) -> Array:
        """Logits against every row of the table: ``x @ embedding.T``."""
        table = jnp.asarray(self.embedding, self.dtype)
        return jnp.einsum("...e,ve->...v", x, table)


class DenseGeneral(nn.Module):
    """A linear layer over one or more input axes whose kernel/bias carry logical names.

    Unlike ``nn.DenseGeneral`` the kernel is created at its true (multi-axis) shape,
    so its logical partitioning applies during sharded initialisation too.
    """

    features: int | tuple[int, ...]
    kernel_axes: tuple[str | None, ...]
    axis: int | tuple[int, ...] = -1
    use_bias: bool = True
    init_stddev: float = 0.02
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        features = self.features if isinstance(self.features, tuple) else (self.features,)
        axis = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        axis = tuple(a % x.ndim for a in axis)
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(truncated_normal(self.init_stddev), self.kernel_axes),
            tuple(x.shape[a] for a in axis) + features, jnp.float32)
        y = jax.lax.dot_general(
            x.astype(self.dtype), kernel.astype(self.dtype),
            ((axis, tuple(range(len(axis)))), ((), ())))
        if self.use_bias:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(nn.initializers.zeros,
                                             self.kernel_axes[-len(features):]),
                features, jnp.float32)
            y = y + bias.astype(self.dtype)
        return y


def attention_bias_from_mask(mask: Array, dtype: jnp.dtype = jnp.float32) -> Array:
    """Turns a boolean ``[..., q, k]`` keep-mask into an additive bias (0 or a large negative).

    The large negative is the dtype's most negative finite value, as HuggingFace does;
    BERT's ``-10000`` gives the same softmax for any realistic logits.
    """
    return jnp.where(mask, 0.0, jnp.finfo(dtype).min).astype(dtype)


def segment_mask(query_segments: Array, key_segments: Array) -> Array:
    """``[batch, 1, q, k]`` mask that is True where query and key belong to the same
    example: equal segment ids, neither 0 (padding).

    An unpacked row is one segment (``ids > 0``). A packed row (seqio ``pack=True``)
    numbers its examples 1, 2, ... (``*_segment_ids``), so no attention crosses from one
    example to another and each example reads as it would alone in its own row.
    """
    query = query_segments[:, None, :, None]
    key = key_segments[:, None, None, :]
    return (query == key) & (key > 0) & (query > 0)


PACKING_FEATURES = ("encoder_segment_ids", "encoder_positions", "decoder_segment_ids",
                    "decoder_positions")


def packing_features(batch: Mapping[str, Array]) -> dict[str, Array] | None:
    """The segment ids and positions of a packed batch (seqio's ``pack=True`` feature
    converters), or None for a batch of one example a row."""
    found = {k: batch[k] for k in PACKING_FEATURES if k in batch}
    return found or None


def refuse_packed(batch: Mapping[str, Array], what: str) -> None:
    """Raises a ValueError naming the fix when ``batch`` is packed (``what`` says why a
    packed batch does not fit)."""
    if packing_features(batch):
        raise ValueError(f"{what}, and this batch is packed (several examples a row): "
                         "read it with DataConfig.pack = False.")


def causal_mask(length: int) -> Array:
    """``[1, 1, length, length]`` lower-triangular mask for auto-regressive attention."""
    return jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """Sizes and regularisation of one multi-head attention layer."""

    num_heads: int
    head_dim: int
    dropout_rate: float = 0.1
    init_stddev: float = 0.02
    dtype: jnp.dtype = jnp.float32


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention (``softmax(QK^T / sqrt(d_k)) V``).

    Queries come from ``inputs_q``; keys and values from ``inputs_kv`` (the same
    array for self-attention, the encoder output for encoder-decoder attention).
    ``mask`` is boolean ``[batch|1, 1|heads, q, k]``, True where attention is allowed.
    With ``return_weights`` the attention probabilities are also returned (for plots).

    Auto-regressive decoding (``decode=True``, self-attention only) keeps a key/value
    cache in the ``cache`` collection, ``[batch, heads, max_length, kv]``: the first
    call (at init, with full-length inputs) creates it; later calls feed one position
    ``decode_position`` whose key/value are written into the cache, and the query
    attends to cached positions ``<= decode_position`` (``mask`` is then ignored).
    Encoder-decoder attention while decoding (``decode=True, static_kv=True``) projects
    the encoder output to keys and values once, on the first call, into the
    ``cross_cache`` collection, and reads them back at every later step (the step
    function passes that collection unchanged, and beam search never reorders it).
    Both caches are heads-major, the layout the two attention products read, so that a
    decoding step does not transpose every cached key and value (on CPU those copies
    took two thirds of a step).
    """

    config: AttentionConfig
    embed_dim: int

    @nn.compact
    def __call__(
        self,
        inputs_q: Array,
        inputs_kv: Array,
        mask: Array | None,
        *,
        deterministic: bool,
        return_weights: bool = False,
        decode: bool = False,
        decode_position: Array | None = None,
        static_kv: bool = False,
    ) -> Array | tuple[Array, Array]:
        cfg = self.config
        project = functools.partial(
            DenseGeneral, (cfg.num_heads, cfg.head_dim), (EMBED, HEADS, KV),
            init_stddev=cfg.init_stddev, dtype=cfg.dtype)
        query = constrain(project(name="query")(inputs_q), BATCH, LENGTH, HEADS, KV)
        heads_major = False  # key / value [b, h, k, d] (the caches) or [b, k, h, d]
        if decode and static_kv and self.has_variable("cross_cache", "key"):
            key = self.get_variable("cross_cache", "key")
            value = self.get_variable("cross_cache", "value")
            heads_major = True
        else:
            key = constrain(project(name="key")(inputs_kv), BATCH, LENGTH, HEADS, KV)
            value = constrain(project(name="value")(inputs_kv), BATCH, LENGTH, HEADS, KV)
            if decode and static_kv and self.is_mutable_collection("cross_cache"):
                self.put_variable("cross_cache", "key", key.transpose(0, 2, 1, 3))
                self.put_variable("cross_cache", "value", value.transpose(0, 2, 1, 3))
        if decode and not static_kv:
            initialized = self.has_variable("cache", "cached_key")
            b, k, h, d = key.shape
            cached_key = self.variable("cache", "cached_key", jnp.zeros, (b, h, k, d),
                                       key.dtype)
            cached_value = self.variable("cache", "cached_value", jnp.zeros, (b, h, k, d),
                                         value.dtype)
            if initialized:
                if decode_position is None:
                    raise ValueError("decode=True with a cache needs decode_position.")
                at = (0, 0, decode_position, 0)
                key = jax.lax.dynamic_update_slice(cached_key.value,
                                                   key.transpose(0, 2, 1, 3), at)
                value = jax.lax.dynamic_update_slice(cached_value.value,
                                                     value.transpose(0, 2, 1, 3), at)
                cached_key.value, cached_value.value = key, value
                heads_major = True
                mask = (jnp.arange(key.shape[2]) <= decode_position)[None, None, None, :]

        query = query / jnp.sqrt(cfg.head_dim).astype(cfg.dtype)
        logits = jnp.einsum("bqhd,bhkd->bhqk" if heads_major else "bqhd,bkhd->bhqk",
                            query, key)
        if mask is not None:
            logits = logits + attention_bias_from_mask(mask, logits.dtype)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(cfg.dtype)
        # Kept only when applied with mutable=["intermediates"] (attention plots).
        self.sow("intermediates", "attention_weights", weights)
        weights = Dropout(cfg.dropout_rate)(weights, deterministic=deterministic)
        context = jnp.einsum("bhqk,bhkd->bqhd" if heads_major else "bhqk,bkhd->bqhd",
                             weights, value)
        context = constrain(context, BATCH, LENGTH, HEADS, KV)

        output = DenseGeneral(self.embed_dim, (HEADS, KV, EMBED), axis=(-2, -1),
                       init_stddev=cfg.init_stddev, dtype=cfg.dtype, name="out")(context)
        output = constrain(output, BATCH, LENGTH, EMBED)
        return (output, weights) if return_weights else output


def grow_kv_cache(cache: Any, length: int) -> Any:
    """A ``MultiHeadAttention`` decoding cache (``cached_key`` / ``cached_value``
    ``[batch, heads, positions, kv]``) zero-padded to ``length`` positions, for a cache
    that starts short and grows (``models.decoding.cache_sizes``)."""
    def pad(x: Array) -> Array:
        if x.shape[2] > length:
            raise ValueError(f"A cache of {x.shape[2]} positions cannot grow to {length}.")
        return jnp.pad(x, [(0, 0), (0, 0), (0, length - x.shape[2]), (0, 0)])

    return jax.tree.map(pad, cache)


class FeedForward(nn.Module):
    """Position-wise feed-forward network ``W2 · act(W1 · x + b1) + b2``."""

    mlp_dim: int
    activation: str = "gelu"
    dropout_rate: float = 0.0  # dropout between the two layers (0 for BERT)
    init_stddev: float = 0.02
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, *, deterministic: bool) -> Array:
        embed_dim = x.shape[-1]
        hidden = DenseGeneral(self.mlp_dim, (EMBED, MLP), init_stddev=self.init_stddev,
                       dtype=self.dtype, name="intermediate")(x)
        hidden = activation(self.activation)(hidden)
        hidden = constrain(hidden, BATCH, LENGTH, MLP)
        hidden = Dropout(self.dropout_rate)(hidden, deterministic=deterministic)
        return DenseGeneral(embed_dim, (MLP, EMBED), init_stddev=self.init_stddev,
                     dtype=self.dtype, name="output")(hidden)


@dataclasses.dataclass(frozen=True)
class TransformerBlockConfig:
    """Everything one Transformer block needs; shared by BERT, MT and GPT models."""

    embed_dim: int
    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    activation: str = "gelu"
    layer_norm_epsilon: float = 1e-12
    pre_layer_norm: bool = False  # False: post-LN as BERT and the 2017 Transformer
    init_stddev: float = 0.02
    dtype: jnp.dtype = jnp.float32

    @property
    def attention(self) -> AttentionConfig:
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; "
                "pick sizes where embed_dim % num_heads == 0.")
        return AttentionConfig(
            num_heads=self.num_heads,
            head_dim=self.embed_dim // self.num_heads,
            dropout_rate=self.attention_dropout_rate,
            init_stddev=self.init_stddev,
            dtype=self.dtype,
        )


class ResidualSublayer(nn.Module):
    """Wraps a sublayer with dropout, a residual connection and LayerNorm.

    post-LN (BERT, Vaswani et al.): ``LayerNorm(x + Dropout(f(x)))``;
    pre-LN (GPT-2, T2T v2):          ``x + Dropout(f(LayerNorm(x)))``.
    """

    config: TransformerBlockConfig

    @nn.compact
    def __call__(self, x: Array, sublayer: Callable[[Array], Array], *,
                 deterministic: bool) -> Array:
        cfg = self.config
        norm = layer_norm(cfg.layer_norm_epsilon, cfg.dtype, name="layer_norm")
        dropout = Dropout(cfg.dropout_rate)
        if cfg.pre_layer_norm:
            return x + dropout(sublayer(norm(x)), deterministic=deterministic)
        return norm(x + dropout(sublayer(x), deterministic=deterministic))


class TransformerBlock(nn.Module):
    """Self-attention (+ optional encoder-decoder attention) + feed-forward block.

    ``self_mask`` selects bidirectional (padding) or causal attention; passing
    ``encoded`` adds the cross-attention sublayer of the Transformer decoder;
    ``decode``/``decode_position`` run one step of cached auto-regressive decoding.
    """

    config: TransformerBlockConfig

    @nn.compact
    def __call__(
        self,
        x: Array,
        self_mask: Array | None,
        *,
        deterministic: bool,
        encoded: Array | None = None,
        cross_mask: Array | None = None,
        decode: bool = False,
        decode_position: Array | None = None,
    ) -> Array:
        cfg = self.config
        self_attention = MultiHeadAttention(cfg.attention, cfg.embed_dim, name="attention")
        x = ResidualSublayer(cfg, name="attention_sublayer")(
            x, lambda h: self_attention(h, h, self_mask, deterministic=deterministic,
                                        decode=decode, decode_position=decode_position),
            deterministic=deterministic)
        if encoded is not None:
            cross_attention = MultiHeadAttention(
                cfg.attention, cfg.embed_dim, name="cross_attention")
            x = ResidualSublayer(cfg, name="cross_attention_sublayer")(
                x, lambda h: cross_attention(h, encoded, cross_mask,
                                             deterministic=deterministic, decode=decode,
                                             static_kv=True),
                deterministic=deterministic)
        ffn = FeedForward(cfg.mlp_dim, cfg.activation, init_stddev=cfg.init_stddev,
                          dtype=cfg.dtype, name="mlp")
        x = ResidualSublayer(cfg, name="mlp_sublayer")(
            x, lambda h: ffn(h, deterministic=deterministic), deterministic=deterministic)
        return constrain(x, BATCH, LENGTH, EMBED)


def gather_positions(sequence: Array, positions: Array) -> Array:
    """Picks ``sequence[b, positions[b, p]]`` -> ``[batch, num_positions, ...]``.

    Used by the masked-LM head so that the vocabulary projection runs only on the
    (few) masked positions, as BERT's own ``gather_indexes`` does.
    """
    index = positions.reshape(positions.shape + (1,) * (sequence.ndim - 2))
    return jnp.take_along_axis(sequence, index, axis=1)


def sinusoidal_positions(length: int, features: int, dtype: jnp.dtype = jnp.float32,
                         interleave: bool = False) -> Array:
    """The Transformer's fixed positional encoding ``[length, features]``.

    ``PE(pos, 2i) = sin(pos / 10000^(2i/d))``, ``PE(pos, 2i+1) = cos(...)``
    (``interleave=True``, Vaswani et al. 2017); with ``interleave=False`` the sines fill
    the first half and the cosines the second (tensor2tensor's and Marian's layout).
    """
    position = np.arange(length, dtype=np.float64)[:, None]
    rates = np.power(10000.0, -np.arange(0, features, 2, dtype=np.float64) / features)
    angles = position * rates[None, :]
    sines, cosines = np.sin(angles), np.cos(angles[:, : features // 2])
    if interleave:
        table = np.zeros((length, features))
        table[:, 0::2], table[:, 1::2] = sines, cosines
    else:
        table = np.concatenate([sines, cosines], axis=-1)
    return jnp.asarray(table, dtype)


def label_smoothed_cross_entropy(logits: Array, labels: Array, weights: Array,
                                 smoothing: float = 0.0
                                 ) -> tuple[Array, Array, Array, Array]:
    """Summed label-smoothed NLL, summed plain NLL, summed accuracy and the weight total.

    The smoothed target puts ``1 - smoothing`` on the label and spreads ``smoothing``
    uniformly over the vocabulary (Szegedy et al. 2016; the Transformer's eps_ls = 0.1).
    The plain NLL (for perplexity) is reported beside it.
    """
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    smoothed = (1.0 - smoothing) * nll - smoothing * jnp.mean(log_probs, axis=-1)
    # The label's log-prob is the row's largest (== argmax up to exact ties), without the
    # two-output argmax reduction that costs XLA:CPU ~50 ms over [2240, 8000] logits.
    label_log_prob = -nll
    correct = (label_log_prob >= jnp.max(log_probs, axis=-1)).astype(jnp.float32)
    return (jnp.sum(smoothed * weights), jnp.sum(nll * weights), jnp.sum(correct * weights),
            jnp.sum(weights))


def sequence_log_likelihood(logits: Array, labels: Array, weights: Array) -> Array:
    """``sum_t weights[b, t] * log p(labels[b, t])``: each row's log-likelihood ``[b]``."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    label_log_probs = jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    return jnp.sum(label_log_probs * weights.astype(jnp.float32), axis=-1)


def reverse_padded(x: Array, lengths: Array) -> Array:
    """Reverses each row's first ``lengths[b]`` steps along axis 1, leaving the padding
    after them in place (its own inverse). ``x`` is ``[batch, time, ...]``."""
    time = jnp.arange(x.shape[1])[None, :]
    index = jnp.where(time < lengths[:, None], lengths[:, None] - 1 - time, time)
    return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)


class LSTM(nn.Module):
    """One LSTM layer over ``[batch, time, features]``, a ``lax.scan`` over time.

    The gates are ``torch.nn.LSTM``'s (input, forget, cell, output, in that order along
    the ``4 * hidden_size`` axis), so weights convert one-to-one: ``input_kernel`` =
    ``weight_ih.T``, ``recurrent_kernel`` = ``weight_hh.T``, ``bias`` = ``bias_ih +
    bias_hh``, ``projection`` = ``weight_hr.T``. The input projection of every step is one
    matmul before the scan; only the recurrent matmul runs inside it. The recurrence has a
    custom VJP (``models.lstm_scan.lstm_recurrence``, for every option below): the forward
    scan saves the gate activations and the states, the backward scan does only the
    per-step work, and the recurrent kernel's (and the projection's) gradient is one matmul
    over all steps after it instead of one small update per step (-11% per AWD-LSTM
    400 / 3 x 1150 training step on CPU). Gradients reach the initial state, and the
    undropped weights through the weight-drop mask, as autodiff's would.

    Options: a projection of the ``hidden_size`` cells to ``projection_size`` outputs that
    also feed back (LSTMP, Sak et al. 2014; ELMo's 4096 cells -> 512) with ELMo's cell and
    projection clipping; DropConnect on the hidden-to-hidden weights (``weight_drop``,
    AWD-LSTM; one mask per call, the same at every time step and for every row, and none
    when ``deterministic``); ``reverse`` runs right to left over each row's valid steps
    (a backward LM). ``mask`` ``[batch, time]`` marks valid steps (padding only at the
    end): padded steps output zeros and leave the state unchanged, so the returned state
    is the one after each row's last valid step and can be carried into the next call.
    Returns ``(outputs [batch, time, projection_size or hidden_size], (h, c))``.
    """

    hidden_size: int
    projection_size: int | None = None
    cell_clip: float | None = None
    projection_clip: float | None = None
    weight_drop: float = 0.0
    reverse: bool = False
    dtype: jnp.dtype = jnp.float32

    @property
    def output_size(self) -> int:
        return self.projection_size or self.hidden_size

    def initial_state(self, batch_size: int) -> tuple[Array, Array]:
        """Zero ``(h [batch, output_size], c [batch, hidden_size])``."""
        return (jnp.zeros((batch_size, self.output_size), self.dtype),
                jnp.zeros((batch_size, self.hidden_size), self.dtype))

    @nn.compact
    def __call__(self, inputs: Array, mask: Array | None = None,
                 initial_state: tuple[Array, Array] | None = None, *,
                 deterministic: bool = True) -> tuple[Array, tuple[Array, Array]]:
        batch, time, features = inputs.shape
        hidden, out = self.hidden_size, self.output_size
        # torch.nn.LSTM's initialisation: uniform(-1/sqrt(hidden), 1/sqrt(hidden)).
        bound = 1.0 / math.sqrt(hidden)

        def uniform(key: Array, shape: tuple[int, ...], dtype: jnp.dtype) -> Array:
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        def param(name: str, shape: tuple[int, ...], axes: tuple[str | None, ...]) -> Array:
            return self.param(name, nn.with_logical_partitioning(uniform, axes), shape,
                              jnp.float32).astype(self.dtype)

        input_kernel = param("input_kernel", (features, 4 * hidden), (EMBED, MLP))
        recurrent_kernel = param("recurrent_kernel", (out, 4 * hidden), (None, MLP))
        bias = param("bias", (4 * hidden,), (MLP,))
        projection = (param("projection", (hidden, out), (MLP, None))
                      if self.projection_size else None)
        if self.weight_drop and not deterministic:
            recurrent_kernel = Dropout(self.weight_drop, name="weight_drop")(
                recurrent_kernel, deterministic=False)
            self.sow("intermediates", "dropped_recurrent_kernel", recurrent_kernel)

        valid = jnp.ones((batch, time), bool) if mask is None else mask.astype(bool)
        lengths = valid.sum(axis=1)
        x = reverse_padded(inputs, lengths) if self.reverse else inputs
        projected = jnp.einsum("btf,fg->tbg", x.astype(self.dtype), input_kernel) + bias
        state = initial_state if initial_state is not None else self.initial_state(batch)
        outputs, state = lstm_scan.lstm_recurrence(
            projected, valid.T, *state, recurrent_kernel, projection, self.cell_clip,
            self.projection_clip)
        outputs = outputs.transpose(1, 0, 2)
        if self.reverse:
            outputs = reverse_padded(outputs, lengths)
        return outputs, state


class BiLSTM(nn.Module):
    """A forward and a backward ``LSTM`` over the same input, outputs concatenated
    ``[batch, time, 2 * hidden]`` (zeros at padding)."""

    hidden: int

    @nn.compact
    def __call__(self, x: Array, mask: Array) -> Array:
        forward, _ = LSTM(self.hidden, name="forward")(x, mask)
        backward, _ = LSTM(self.hidden, reverse=True, name="backward")(x, mask)
        return jnp.concatenate([forward, backward], axis=-1)


def with_embedding_table(params: dict, table: np.ndarray, fix: str,
                         name: str = "word_embed") -> dict:
    """``params`` with ``params[name]["embedding"]`` replaced by ``table`` (pretrained word
    vectors, say); a table of another shape is an error ending with ``fix``."""
    from flax.core import meta

    boxed = params[name]["embedding"]
    current = meta.unbox(boxed)
    if table.shape != current.shape:
        raise ValueError(f"The word vectors {table.shape} do not fit the word embedding "
                         f"{current.shape}: {fix}")
    value = jnp.asarray(table, current.dtype)
    new = boxed.replace_boxed(value) if isinstance(boxed, meta.AxisMetadata) else value
    return {**params, name: {**params[name], "embedding": new}}
