"""The Transformer (Vaswani et al., 2017) for machine translation, and its decoder stack.

Encoder and decoder are stacks of the shared ``layers.TransformerBlock`` (post-LN
``LayerNorm(x + Dropout(Sublayer(x)))`` as in the paper; pre-LN as an option, with a
final LayerNorm). Token embeddings are multiplied by ``sqrt(d_model)`` and summed with
sinusoidal (or learned) positions; one embedding table is shared by the source, the
target and the pre-softmax projection. The decoder's self-attention is causal and its
encoder-decoder attention takes queries from the decoder and keys/values from the
encoder output. ``Decoder`` alone (no encoder) is the GPT-style language model of
``models/gpt.py``.

Decoding (``models/decoding.py``) runs the decoder one position at a time with a
key/value cache (``decode=True``); ``TranslationModel.step_fn`` adapts it.

Weights convert one-to-one from HuggingFace ``MarianMTModel`` (``pretrain_lm/interop``
style, tested in ``tests/test_transformer.py``). Sizes: ``gin_configs/models/transformer/``.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import layers
from models.base import AutoregressiveDecoding, Batch, Seq2SeqObjective, StepFn

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Sizes and choices of an encoder-decoder (or decoder-only) Transformer.

    Defaults: Transformer-base (d_model 512, 6+6 layers, 8 heads, d_ff 2048, dropout 0.1).
    """

    vocab_size: int = 32000
    d_model: int = 512
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    num_heads: int = 8
    d_ff: int = 2048
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.0
    activation: str = "relu"
    pre_layer_norm: bool = False
    positions: str = "sinusoidal"  # or "learned"
    max_length: int = 512  # learned positions / longest sequence
    scale_embeddings: bool = True  # x sqrt(d_model), as the paper
    output_bias: bool = False  # a bias on the tied softmax (Marian's final_logits_bias)
    layer_norm_epsilon: float = 1e-6
    dtype: str = "float32"

    @property
    def block(self) -> layers.TransformerBlockConfig:
        return layers.TransformerBlockConfig(
            embed_dim=self.d_model, num_heads=self.num_heads, mlp_dim=self.d_ff,
            dropout_rate=self.dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
            activation=self.activation, layer_norm_epsilon=self.layer_norm_epsilon,
            pre_layer_norm=self.pre_layer_norm, init_stddev=0.02,
            dtype=jnp.dtype(self.dtype))


class TokenEmbedding(nn.Module):
    """Shared token table (scaled by sqrt(d_model)) + positions + dropout; tied softmax."""

    config: TransformerConfig

    def setup(self) -> None:
        cfg = self.config
        self.tokens = layers.Embed(cfg.vocab_size, cfg.d_model,
                                   init_stddev=cfg.d_model ** -0.5 if cfg.scale_embeddings
                                   else 0.02, dtype=jnp.dtype(cfg.dtype))
        if cfg.positions == "learned":
            self.positions = layers.Embed(
                cfg.max_length, cfg.d_model, init_stddev=0.01, dtype=jnp.dtype(cfg.dtype),
                axes=(None, layers.EMBED))
        elif cfg.positions != "sinusoidal":
            raise ValueError(f"positions={cfg.positions!r}: use 'sinusoidal' or 'learned'.")
        if cfg.output_bias:
            self.bias = self.param(
                "output_bias", nn.with_logical_partitioning(nn.initializers.zeros,
                                                            (layers.VOCAB,)),
                (cfg.vocab_size,), jnp.float32)
        self.dropout = layers.Dropout(cfg.dropout_rate)

    def __call__(self, ids: Array, *, deterministic: bool, offset: Array | int = 0,
                 positions: Array | None = None) -> Array:
        """Embedded ``ids`` ``[b, l]`` at positions ``offset + 0 .. l-1``, or at each row's
        own ``positions`` ``[b, l]`` (packed rows restart at 0 for every example)."""
        cfg = self.config
        length = ids.shape[-1]
        if length > cfg.max_length:
            raise ValueError(f"Sequence length {length} exceeds max_length={cfg.max_length}; "
                             "raise TransformerConfig.max_length or cut the data shorter.")
        x = self.tokens(ids)
        if cfg.scale_embeddings:
            x = x * jnp.asarray(math.sqrt(cfg.d_model), x.dtype)
        if positions is None:
            positions = (jnp.arange(length) + offset)[None]
        if cfg.positions == "learned":
            x = x + self.positions(positions)
        else:
            table = layers.sinusoidal_positions(cfg.max_length, cfg.d_model, x.dtype)
            x = x + jnp.take(table, positions, axis=0)
        x = self.dropout(x, deterministic=deterministic)
        return layers.constrain(x, layers.BATCH, layers.LENGTH, layers.EMBED)

    def logits(self, x: Array) -> Array:
        out = self.tokens.attend(x).astype(jnp.float32)
        return out + self.bias if self.config.output_bias else out


class Encoder(nn.Module):
    """Embedded source -> ``num_encoder_layers`` bidirectional blocks, each position
    attending within its segment (``layers.segment_mask``: the real tokens of its row,
    or of its example in a packed row)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x: Array, source_segments: Array, *, deterministic: bool) -> Array:
        cfg = self.config
        mask = layers.segment_mask(source_segments, source_segments)
        for i in range(cfg.num_encoder_layers):
            x = layers.TransformerBlock(cfg.block, name=f"layer_{i}")(
                x, mask, deterministic=deterministic)
        if cfg.pre_layer_norm:
            x = layers.layer_norm(cfg.layer_norm_epsilon, jnp.dtype(cfg.dtype),
                                  name="final_layer_norm")(x)
        return x


class Decoder(nn.Module):
    """Embedded target -> ``num_decoder_layers`` causal blocks (with encoder-decoder
    attention when ``encoded`` is given) -> final LayerNorm (pre-LN) -> hidden states.

    ``source_segments``: the source's segment ids (``ids > 0`` for unpacked rows).
    ``target_segments`` (packed rows): each target position attends causally within its
    own example, and to the source example of the same segment id. Without them, a row
    is one example: the causal mask over the target, the source's real tokens."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x: Array, *, deterministic: bool, encoded: Array | None = None,
                 source_segments: Array | None = None,
                 target_segments: Array | None = None,
                 decode: bool = False, decode_position: Array | None = None,
                 ) -> Array:
        cfg = self.config
        length = x.shape[1]
        self_mask = layers.causal_mask(length)
        if target_segments is not None:
            self_mask = self_mask & layers.segment_mask(target_segments, target_segments)
        cross_mask = None
        if encoded is not None and source_segments is not None:
            cross_mask = (source_segments[:, None, None, :] > 0 if target_segments is None
                          else layers.segment_mask(target_segments, source_segments))
        for i in range(cfg.num_decoder_layers):
            x = layers.TransformerBlock(cfg.block, name=f"layer_{i}")(
                x, self_mask, deterministic=deterministic, encoded=encoded,
                cross_mask=cross_mask, decode=decode, decode_position=decode_position)
        if cfg.pre_layer_norm:
            x = layers.layer_norm(cfg.layer_norm_epsilon, jnp.dtype(cfg.dtype),
                                  name="final_layer_norm")(x)
        return x


class EncoderDecoder(nn.Module):
    """The MT Transformer: ``encode`` the source, ``decode`` target logits."""

    config: TransformerConfig

    def setup(self) -> None:
        self.embed = TokenEmbedding(self.config)
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    def encode(self, inputs: Array, *, deterministic: bool = True,
               segments: Array | None = None, positions: Array | None = None) -> Array:
        """The encoded source ``[b, l, d_model]``; ``segments`` / ``positions``: a packed
        row's ``encoder_segment_ids`` / ``encoder_positions``."""
        segments = (inputs > 0).astype(jnp.int32) if segments is None else segments
        x = self.embed(inputs, deterministic=deterministic, positions=positions)
        return self.encoder(x, segments, deterministic=deterministic)

    def decode(self, encoded: Array, inputs: Array, decoder_inputs: Array, *,
               deterministic: bool = True, decode: bool = False,
               decode_position: Array | None = None,
               source_segments: Array | None = None, target_segments: Array | None = None,
               target_positions: Array | None = None) -> Array:
        """Logits ``[b, l, vocab]`` of the next target token at every decoder position
        (``source_segments`` / ``target_segments`` / ``target_positions``: packed rows)."""
        offset = 0 if decode_position is None or not decode else decode_position
        y = self.embed(decoder_inputs, deterministic=deterministic, offset=offset,
                       positions=target_positions)
        source_segments = ((inputs > 0).astype(jnp.int32) if source_segments is None
                           else source_segments)
        y = self.decoder(y, deterministic=deterministic, encoded=encoded,
                         source_segments=source_segments, target_segments=target_segments,
                         decode=decode, decode_position=decode_position)
        return self.embed.logits(y)

    def __call__(self, inputs: Array, decoder_inputs: Array, *, deterministic: bool,
                 packing: dict[str, Array] | None = None) -> Array:
        """Teacher-forced logits; ``packing``: seqio's ``encoder_segment_ids``,
        ``encoder_positions``, ``decoder_segment_ids``, ``decoder_positions`` of packed
        rows (None: one example a row)."""
        packing = packing or {}
        encoded = self.encode(inputs, deterministic=deterministic,
                              segments=packing.get("encoder_segment_ids"),
                              positions=packing.get("encoder_positions"))
        return self.decode(encoded, inputs, decoder_inputs, deterministic=deterministic,
                           source_segments=packing.get("encoder_segment_ids"),
                           target_segments=packing.get("decoder_segment_ids"),
                           target_positions=packing.get("decoder_positions"))


def shift_right(targets: Array, start_id: int = 0) -> Array:
    """Decoder inputs: the targets shifted one position right after ``start_id``."""
    start = jnp.full_like(targets[:, :1], start_id)
    return jnp.concatenate([start, targets[:, :-1]], axis=1)


def seq2seq_batch(inputs: np.ndarray, targets: np.ndarray, start_id: int = 0
                  ) -> dict[str, np.ndarray]:
    """Model features (seqio ``EncDecFeatureConverter`` names) from padded id arrays."""
    targets = np.asarray(targets)
    return {"encoder_input_tokens": np.asarray(inputs),
            "decoder_target_tokens": targets,
            "decoder_input_tokens": np.asarray(shift_right(jnp.asarray(targets), start_id)),
            "decoder_loss_weights": (targets > 0).astype(np.float32)}


@dataclasses.dataclass(frozen=True)
class TranslationModel(Seq2SeqObjective, AutoregressiveDecoding):
    """Sequence-to-sequence objective: label-smoothed cross-entropy over target tokens.

    Batches use seqio's ``EncDecFeatureConverter`` names: ``encoder_input_tokens``
    [b, source_length], ``decoder_target_tokens`` [b, target_length] (ids, 0 = padding,
    each target ending in EOS), ``decoder_input_tokens`` (the targets shifted right after
    0, as T5 and Marian) and ``decoder_loss_weights``.
    """

    supports_packing = True
    grows_cache = True

    config: TransformerConfig = TransformerConfig()
    max_source_length: int = 64
    max_target_length: int = 64
    label_smoothing: float = 0.1
    decoder_start_id: int = 0

    @property
    def network(self) -> EncoderDecoder:
        return EncoderDecoder(self.config)

    @property
    def input_vocab_size(self) -> int:
        return self.config.vocab_size

    def init(self, rng: Array, batch: Batch) -> dict:
        params_rng, dropout_rng = jax.random.split(rng)
        return self.network.init({"params": params_rng, "dropout": dropout_rng},
                                 batch["encoder_input_tokens"], batch["decoder_input_tokens"],
                                 deterministic=True)["params"]

    def apply(self, params: dict, batch: Batch, *, rng: Array | None = None,
              train: bool = False) -> Array:
        return self.network.apply({"params": params}, batch["encoder_input_tokens"],
                                  batch["decoder_input_tokens"], deterministic=not train,
                                  packing=layers.packing_features(batch),
                                  rngs={"dropout": rng} if train else None)


    def flops_per_example(self) -> float:
        """3x forward matmul FLOPs: encoder, decoder (self + cross attention), softmax."""
        cfg, ls, lt = self.config, self.max_source_length, self.max_target_length
        d, f = cfg.d_model, cfg.d_ff
        enc = ls * cfg.num_encoder_layers * (8 * d * d + 4 * d * f + 4 * ls * d)
        dec = lt * cfg.num_decoder_layers * (8 * d * d + 4 * d * f + 4 * lt * d
                                              + 4 * d * d + 4 * ls * d) + 4 * ls * d * d \
            * cfg.num_decoder_layers
        return 3.0 * (enc + dec + 2 * lt * d * cfg.vocab_size)

    # -- decoding ---------------------------------------------------------------------
    def init_cache(self, params: dict, encoded: Array, inputs: Array,
                   max_length: int) -> tuple[dict, dict]:
        """An empty self-attention key/value cache for ``max_length`` target positions,
        and every decoder layer's encoder-decoder keys and values (``cross_cache``),
        projected once from ``encoded``."""
        dummy = jnp.zeros((inputs.shape[0], max_length), jnp.int32)
        _, variables = self.network.apply(
            {"params": params}, encoded, inputs, dummy, decode=True,
            method=EncoderDecoder.decode, mutable=["cache", "cross_cache"])
        return jax.tree.map(jnp.zeros_like, variables["cache"]), variables["cross_cache"]

    def encode(self, params: dict, inputs: Array) -> Array:
        return self.network.apply({"params": params}, inputs, method=EncoderDecoder.encode)

    def default_decode_length(self, batch: Batch) -> int:
        return self.max_target_length

    def step_fn(self, params: dict) -> StepFn:
        """``step_fn(token_ids [n], state, step)`` for ``models.decoding``; ``state``
        holds the ``cache`` and, as ``constants`` that beam search never reorders, the
        ``encoded`` source, the source ``inputs`` and the encoder-decoder keys and values
        (``cross_cache``; every leaf ``[n, ...]``)."""

        def step(token_ids: Array, state: dict, position: Array) -> tuple[Array, dict]:
            source = state["constants"]
            logits, variables = self.network.apply(
                {"params": params, "cache": state["cache"],
                 "cross_cache": source["cross_cache"]}, source["encoded"],
                source["inputs"], token_ids[:, None], decode=True, decode_position=position,
                method=EncoderDecoder.decode, mutable=["cache"])
            return logits[:, 0], {**state, "cache": variables["cache"]}

        return step

    def decode_state(self, params: dict, batch: Batch, max_length: int) -> dict:
        """The initial decoding state for a batch of source ids ``encoder_input_tokens``."""
        inputs = jnp.asarray(batch["encoder_input_tokens"], jnp.int32)
        encoded = self.encode(params, inputs)
        cache, cross_cache = self.init_cache(params, encoded, inputs, max_length)
        return {"constants": {"encoded": encoded, "inputs": inputs, "cross_cache": cross_cache},
                "cache": cache}
