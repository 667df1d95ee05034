"""ELMo (Peters et al., 2018): a character-CNN bidirectional LSTM language model whose
layers, mixed by a learned scalar mix, are contextual word representations for taggers.

The architecture is bilm-tf's (``bilm/training.py``), the code behind the released
``elmo_2x4096_512_2048cnn_2xhighway`` weights:

* ``CharCNN``: each token's 50 character ids (``models.characters.CharVocabulary``, 0 =
  the character slots of a whole padding token) -> 16-d character embeddings -> one
  convolution per filter width (VALID over the 50 characters), max over positions, then
  the activation (``cnn_activation``; bilm-tf applies it after the max; the released
  models use ``relu``, bilm-tf also offers ``tanh``) -> concatenation (2048) -> highway
  layers -> a linear projection to ``projection_dim`` (512; left out, as bilm-tf, when
  the filters already give ``projection_dim``). A padding token gives the zero vector.
* ``BiLM``: the token vectors feed a forward LSTM stack and, with separate weights, a
  backward one (``layers.LSTM(reverse=True)``: right to left over each row's valid
  tokens); 2 layers of 4096 cells projected to 512 (LSTMP) with cell and projection
  values clipped to [-3, 3]; a residual connection around every layer but the first
  (bilm-tf's ``ResidualWrapper`` for layer index >= 1); dropout on each layer's input
  (the residual adds the dropped input, as bilm-tf's ``DropoutWrapper(ResidualWrapper)``)
  and on the top states before the softmax.
* ``ELMoLM`` / ``ELMoLanguageModel``: the forward LM predicts token ``t + 1`` from its
  state at ``t``, the backward LM token ``t - 1`` from its state at ``t``, through ONE
  softmax ``[vocab_size, projection_dim]`` + bias shared by both directions (bilm-tf);
  the loss is the mean of the two directions' mean NLL. Full softmax by default;
  ``num_samples > 0`` trains with a sampled softmax (log-uniform negatives shared by the
  batch, accidental hits removed, as ``tf.nn.sampled_softmax_loss``, but drawn with
  replacement); evaluation always uses the full softmax.
* ``ScalarMix``: ``gamma * sum_j softmax(s)_j * h_j`` over the ``num_layers + 1``
  activations (AllenNLP's, optionally layer-normalising each layer over its unmasked
  positions), and ``elmo_representations`` to read a frozen biLM for a downstream tagger.

Differences from bilm-tf worth knowing when converting its weights: TF's ``LSTMCell``
orders its gates (i, j, f, o) and adds ``forget_bias=1`` inside the cell, where
``layers.LSTM`` is torch's (i, f, g, o) with no extra bias; bilm-tf trains with 261
character embeddings and prepends a zero row for id 0 at inference (262 here); the CNN
kernels are ``[width, char_embed_dim, filters]`` (bilm-tf's ``[1, width, ...]``). The
LM here is stateless (every row a sentence or segment, its state starting from zero):
bilm-tf carries the state across batches of a stream, which needs the backward LM's
batches in reversed stream order, a data pipeline this codebase does not have.

Sizes (biLM without the softmax, counted by ``ELMoConfig.num_parameters``):
``elmo_original`` 93.6M, ``elmo_medium`` 28.0M, ``elmo_small`` 13.6M (AllenNLP's
table), ``elmo_tiny`` for CPU runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta

from models import characters, layers
from models.base import Batch, Metrics, Model, perplexity

Array = jax.Array

CNN_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"relu": jax.nn.relu,
                                                         "tanh": jnp.tanh}


@dataclasses.dataclass(frozen=True)
class ELMoConfig:
    """Sizes of the biLM (defaults: the original ELMo, 2x4096_512_2048cnn_2xhighway)."""

    char_vocab_size: int = 262         # characters.NUM_CHAR_IDS; id 0 = padding
    char_embed_dim: int = 16
    filters: tuple[tuple[int, int], ...] = (
        (1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024))  # (width, n)
    cnn_activation: str = "relu"       # after the max over positions; or "tanh"
    num_highway: int = 2
    highway_gate_bias: float = -2.0    # bilm-tf's b_carry: the gate starts mostly closed
    projection_dim: int = 512          # token vectors, LSTM outputs and the softmax input
    num_layers: int = 2
    cell_size: int = 4096
    cell_clip: float | None = 3.0
    proj_clip: float | None = 3.0
    residual: bool = True              # around LSTM layers with index >= 1
    dropout: float = 0.1
    vocab_size: int = 793471           # word softmax (bilm-tf's 1B Word Benchmark vocab)
    num_samples: int = 0               # sampled-softmax negatives in training; 0 = full
    max_characters_per_token: int = 50  # characters.MAX_WORD_LENGTH

    def __post_init__(self) -> None:
        widths = [w for w, _ in self.filters]
        if not self.filters or min(widths) < 1 or min(n for _, n in self.filters) < 1:
            raise ValueError(f"filters={self.filters} must be non-empty (width, count) "
                             "pairs of positive ints.")
        if max(widths) > self.max_characters_per_token:
            raise ValueError(f"A filter of width {max(widths)} does not fit in "
                             f"max_characters_per_token={self.max_characters_per_token}.")
        if self.cnn_activation not in CNN_ACTIVATIONS:
            raise ValueError(f"cnn_activation={self.cnn_activation!r}; choose one of "
                             f"{sorted(CNN_ACTIVATIONS)}.")
        if self.cell_size < self.projection_dim:
            raise ValueError(f"cell_size={self.cell_size} < projection_dim="
                             f"{self.projection_dim}: the LSTM projects down, never up.")
        if self.num_filters < self.projection_dim:
            raise ValueError(f"The filters give {self.num_filters} features, fewer than "
                             f"projection_dim={self.projection_dim} (bilm-tf projects down).")
        if self.num_layers < 1 or self.vocab_size < 2 or self.num_samples < 0:
            raise ValueError("num_layers >= 1, vocab_size >= 2 and num_samples >= 0 needed.")

    @property
    def num_filters(self) -> int:
        """Width of the concatenated CNN features (2048 for the original)."""
        return sum(n for _, n in self.filters)

    @property
    def use_projection(self) -> bool:
        """bilm-tf projects the CNN features only if they are wider than the LSTMs."""
        return self.num_filters != self.projection_dim

    @property
    def lstm_projection(self) -> int | None:
        """``projection_size`` of each LSTM (None: no LSTMP projection, cells = outputs)."""
        return self.projection_dim if self.projection_dim < self.cell_size else None

    def num_parameters(self, softmax: bool = False) -> int:
        """Parameters counted from the sizes (the biLM; ``softmax`` adds the word softmax)."""
        e, f, p, h = self.char_embed_dim, self.num_filters, self.projection_dim, self.cell_size
        chars = self.char_vocab_size * e
        cnn = sum(w * e * n + n for w, n in self.filters)
        highway = self.num_highway * 2 * (f * f + f)
        projection = f * p + p if self.use_projection else 0
        per_lstm = p * 4 * h + p * 4 * h + 4 * h + (h * p if self.lstm_projection else 0)
        total = chars + cnn + highway + projection + 2 * self.num_layers * per_lstm
        return total + (self.vocab_size * p + self.vocab_size if softmax else 0)

    def flops_per_token(self) -> int:
        """Forward matmul/conv FLOPs per token: CNN, highway, projection, both LSTM
        stacks and both directions' softmax (full, or the sampled one in training)."""
        e, f, p, h = self.char_embed_dim, self.num_filters, self.projection_dim, self.cell_size
        c = self.max_characters_per_token
        cnn = sum(2 * w * e * n * (c - w + 1) for w, n in self.filters)
        highway = self.num_highway * 2 * 2 * f * f
        projection = 2 * f * p if self.use_projection else 0
        lstm = 2 * (p * 4 * h + p * 4 * h + (h * p if self.lstm_projection else 0))
        classes = self.num_samples + 1 if self.num_samples else self.vocab_size
        return cnn + highway + projection + 2 * self.num_layers * lstm + 2 * 2 * p * classes


def elmo_original(**overrides: Any) -> ELMoConfig:
    """ELMo "Original" (2x4096_512_2048cnn_2xhighway, 93.6M), trained by bilm-tf with a
    sampled softmax of 8192 negatives over its 793471-word vocabulary."""
    return ELMoConfig(**{"num_samples": 8192, **overrides})


def elmo_medium(**overrides: Any) -> ELMoConfig:
    """AllenNLP's "Medium" ELMo (2x2048_256_2048cnn_1xhighway, 28.0M)."""
    return ELMoConfig(**{"num_highway": 1, "projection_dim": 256, "cell_size": 2048,
                         "num_samples": 8192, **overrides})


def elmo_small(**overrides: Any) -> ELMoConfig:
    """AllenNLP's "Small" ELMo (2x1024_128_2048cnn_1xhighway, 13.6M)."""
    return ELMoConfig(**{"num_highway": 1, "projection_dim": 128, "cell_size": 1024,
                         "num_samples": 8192, **overrides})


def elmo_tiny(**overrides: Any) -> ELMoConfig:
    """A CPU-sized biLM (0.76M parameters without the softmax) with a full softmax
    over a small word vocabulary, for the sample corpora and demos."""
    return ELMoConfig(**{
        "filters": ((1, 16), (2, 16), (3, 32), (4, 64), (5, 128)), "num_highway": 1,
        "projection_dim": 64, "cell_size": 256, "vocab_size": 8192, **overrides})


def plain_char_cnn_config(char_embed_dim: int, filters: tuple[tuple[int, int], ...]
                          ) -> ELMoConfig:
    """``CharCNN`` sizes for a character CNN alone (Ma & Hovy's, in the taggers and the
    BCN): tanh, max over positions, no highway, no projection (``filters``: (width,
    count) pairs; the output is their total count wide)."""
    width = sum(n for _, n in filters)
    return ELMoConfig(char_embed_dim=char_embed_dim, filters=filters, cnn_activation="tanh",
                      num_highway=0, projection_dim=width, cell_size=max(width, 1))


def token_mask(char_ids: Array) -> Array:
    """``[batch, time]`` True at real tokens: any character id > 0 (bilm-tf's mask)."""
    return jnp.any(char_ids > 0, axis=-1)


def _param(module: nn.Module, name: str, init: Callable[..., Array],
           shape: tuple[int, ...], axes: tuple[str | None, ...]) -> Array:
    return module.param(name, nn.with_logical_partitioning(init, axes), shape, jnp.float32)


def _normal(stddev: float) -> Callable[..., Array]:
    return nn.initializers.normal(stddev=stddev)


def _uniform(bound: float) -> Callable[..., Array]:
    def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


class Highway(nn.Module):
    """One highway layer (Srivastava et al., 2015) as bilm-tf writes it:
    ``y = g * relu(W_t x + b_t) + (1 - g) * x`` with ``g = sigmoid(W_g x + b_g)``.

    ``b_g`` starts at ``gate_bias`` (bilm-tf's -2.0, so ``g`` ~ 0.12: mostly carry ``x``;
    AllenNLP's Highway writes the complementary gate, with bias +1); ``b_t`` at 0; the
    kernels ~ normal(0, 1/sqrt(dim)). bilm-tf calls ``W_g`` "W_carry"."""

    gate_bias: float = -2.0

    @nn.compact
    def __call__(self, x: Array) -> Array:
        dim = x.shape[-1]
        axes = (None, layers.MLP)
        w_t = _param(self, "transform_kernel", _normal(1 / math.sqrt(dim)), (dim, dim), axes)
        b_t = _param(self, "transform_bias", nn.initializers.zeros, (dim,), (layers.MLP,))
        w_g = _param(self, "gate_kernel", _normal(1 / math.sqrt(dim)), (dim, dim), axes)
        b_g = _param(self, "gate_bias", nn.initializers.constant(self.gate_bias), (dim,),
                     (layers.MLP,))
        gate = jax.nn.sigmoid(x @ w_g + b_g)
        return gate * jax.nn.relu(x @ w_t + b_t) + (1.0 - gate) * x


class CharCNN(nn.Module):
    """Character ids ``[batch, time, max_characters_per_token]`` -> token vectors
    ``[batch, time, projection_dim]`` (zero at all-padding tokens)."""

    config: ELMoConfig

    @nn.compact
    def __call__(self, char_ids: Array) -> Array:
        cfg = self.config
        batch, time, chars = char_ids.shape
        if chars != cfg.max_characters_per_token:
            raise ValueError(f"char_ids have {chars} characters per token; the config "
                             f"says max_characters_per_token={cfg.max_characters_per_token}.")
        table = _param(self, "char_embed", _uniform(1.0),
                       (cfg.char_vocab_size, cfg.char_embed_dim), (None, None))
        x = jnp.take(table, char_ids.reshape(batch * time, chars), axis=0)
        act = CNN_ACTIVATIONS[cfg.cnn_activation]
        features = []
        for i, (width, num) in enumerate(cfg.filters):
            if cfg.cnn_activation == "relu":  # Kim et al. (2016), as bilm-tf
                init = _uniform(0.05)
            else:  # bilm-tf's "glorot" for tanh
                init = _normal(math.sqrt(1.0 / (width * cfg.char_embed_dim)))
            kernel = _param(self, f"cnn_{i}_kernel", init, (width, cfg.char_embed_dim, num),
                            (None, None, layers.MLP))
            bias = _param(self, f"cnn_{i}_bias", nn.initializers.zeros, (num,), (layers.MLP,))
            conv = jax.lax.conv_general_dilated(
                x, kernel, window_strides=(1,), padding="VALID",
                dimension_numbers=("NWC", "WIO", "NWC")) + bias
            features.append(act(jnp.max(conv, axis=1)))  # max over positions, then act
        h = jnp.concatenate(features, axis=-1)
        for i in range(cfg.num_highway):
            h = Highway(cfg.highway_gate_bias, name=f"highway_{i}")(h)
        if cfg.use_projection:
            f = cfg.num_filters
            w = _param(self, "projection_kernel", _normal(1 / math.sqrt(f)),
                       (f, cfg.projection_dim), (layers.MLP, layers.EMBED))
            b = _param(self, "projection_bias", nn.initializers.zeros, (cfg.projection_dim,),
                       (layers.EMBED,))
            h = h @ w + b
        h = h.reshape(batch, time, -1)
        return jnp.where(token_mask(char_ids)[..., None], h, 0.0)


class BiLMOutput(NamedTuple):
    """What the biLM computes for a batch of character ids.

    ``activations``: ``num_layers + 1`` arrays ``[batch, time, 2 * projection_dim]`` for
    the scalar mix: the token vector twice (layer 0), then ``concat(forward_j,
    backward_j)``; ``forward`` / ``backward``: the top layers ``[batch, time,
    projection_dim]`` (the LM's inputs to the softmax); ``mask``: ``[batch, time]`` bool.
    Every array is zero at padding positions."""

    activations: list[Array]
    forward: Array
    backward: Array
    mask: Array


class BiLM(nn.Module):
    """Shared ``CharCNN`` -> forward and backward LSTM stacks (separate weights).

    Padding tokens (all character ids 0) must come after each row's real tokens."""

    config: ELMoConfig

    @nn.compact
    def __call__(self, char_ids: Array, *, deterministic: bool = True) -> BiLMOutput:
        cfg = self.config
        mask = token_mask(char_ids)
        tokens = CharCNN(cfg, name="char_cnn")(char_ids)
        tokens = layers.constrain(tokens, layers.BATCH, layers.LENGTH, layers.EMBED)
        stacks: dict[str, list[Array]] = {}
        for direction in ("forward", "backward"):
            x, outputs = tokens, []
            for i in range(cfg.num_layers):
                inputs = layers.Dropout(cfg.dropout)(x, deterministic=deterministic)
                out, _ = layers.LSTM(
                    cfg.cell_size, projection_size=cfg.lstm_projection,
                    cell_clip=cfg.cell_clip, projection_clip=cfg.proj_clip,
                    reverse=direction == "backward", name=f"{direction}_lstm_{i}",
                )(inputs, mask, deterministic=deterministic)
                if cfg.residual and i >= 1:
                    out = out + inputs  # zero + zero at padding
                outputs.append(out)
                x = out
            stacks[direction] = outputs
        activations = [jnp.concatenate([tokens, tokens], axis=-1)] + [
            jnp.concatenate([f, b], axis=-1)
            for f, b in zip(stacks["forward"], stacks["backward"], strict=True)]
        return BiLMOutput(activations, stacks["forward"][-1], stacks["backward"][-1], mask)


def log_uniform_samples(rng: Array, num_samples: int, vocab_size: int) -> Array:
    """``num_samples`` word ids (with replacement) from the log-uniform (Zipfian)
    distribution ``P(k) = log((k + 2) / (k + 1)) / log(V + 1)`` of
    ``tf.random.log_uniform_candidate_sampler``; it suits ids sorted by descending
    frequency, as ``tasks.word_vocab.WordVocabulary`` assigns them."""
    u = jax.random.uniform(rng, (num_samples,))
    ids = jnp.floor(jnp.exp(u * math.log(vocab_size + 1.0))).astype(jnp.int32) - 1
    return jnp.clip(ids, 0, vocab_size - 1)


def log_uniform_log_prob(ids: Array, vocab_size: int) -> Array:
    """``log P(k)`` of ``log_uniform_samples``."""
    k = ids.astype(jnp.float32)
    return jnp.log(jnp.log1p(1.0 / (k + 1.0))) - math.log(math.log(vocab_size + 1.0))


def sampled_softmax_nll(x: Array, targets: Array, kernel: Array, bias: Array,
                        samples: Array) -> Array:
    """Per-position sampled-softmax NLL (Jean et al., 2015) ``[...]`` of ``targets`` from
    ``x`` ``[..., dim]``, softmax ``kernel`` ``[vocab, dim]`` and ``bias`` ``[vocab]``.

    The logits of the target and of the shared negatives ``samples`` ``[n]`` (from
    ``log_uniform_samples``) are corrected by ``-log(n * P(id))`` (their expected count);
    a negative equal to the position's target (an "accidental hit") is dropped."""
    vocab = kernel.shape[0]
    log_count = math.log(samples.shape[0])
    true_logit = (jnp.sum(x * jnp.take(kernel, targets, axis=0), axis=-1)
                  + jnp.take(bias, targets) - log_count
                  - log_uniform_log_prob(targets, vocab))
    sampled = (jnp.einsum("...d,nd->...n", x, jnp.take(kernel, samples, axis=0))
               + jnp.take(bias, samples) - log_count - log_uniform_log_prob(samples, vocab))
    sampled = jnp.where(samples == targets[..., None], jnp.finfo(sampled.dtype).min, sampled)
    logits = jnp.concatenate([true_logit[..., None], sampled], axis=-1)
    return jax.nn.logsumexp(logits, axis=-1) - true_logit


class ELMoLM(nn.Module):
    """The biLM (``bilm``) and the word softmax that both directions share
    (``softmax_kernel`` ``[vocab, projection_dim]`` ~ normal(0, 1/sqrt(dim)), bilm-tf's
    ``softmax/W``, and ``softmax_bias``)."""

    config: ELMoConfig

    def setup(self) -> None:
        cfg = self.config
        self.bilm = BiLM(cfg)
        self.softmax_kernel = _param(self, "softmax_kernel",
                                     _normal(1 / math.sqrt(cfg.projection_dim)),
                                     (cfg.vocab_size, cfg.projection_dim),
                                     (layers.VOCAB, layers.EMBED))
        self.softmax_bias = _param(self, "softmax_bias", nn.initializers.zeros,
                                   (cfg.vocab_size,), (layers.VOCAB,))
        self.output_dropout = layers.Dropout(cfg.dropout)

    def __call__(self, char_ids: Array, *, deterministic: bool = True
                 ) -> tuple[Array, Array, Array]:
        """The top forward and backward states after the output dropout, and the mask."""
        out = self.bilm(char_ids, deterministic=deterministic)
        forward = self.output_dropout(out.forward, deterministic=deterministic)
        backward = self.output_dropout(out.backward, deterministic=deterministic)
        return forward, backward, out.mask

    def logits(self, x: Array) -> Array:
        """Full-softmax logits ``[..., vocab]``."""
        return jnp.einsum("...d,vd->...v", x, self.softmax_kernel) + self.softmax_bias

    def sampled_nll(self, x: Array, targets: Array, samples: Array) -> Array:
        """``sampled_softmax_nll`` with this softmax."""
        return sampled_softmax_nll(x, targets, self.softmax_kernel, self.softmax_bias,
                                   samples)


@dataclasses.dataclass(frozen=True)
class ELMoLanguageModel(Model):
    """The biLM's training objective on sentence batches:

    * ``char_ids`` ``[batch, time, max_characters_per_token]`` int32
      (``CharVocabulary.encode_batch``, usually with the ``<S>``/``</S>`` rows; padding
      tokens all 0 and after the real ones);
    * ``token_ids`` ``[batch, time]`` int32: each position's word id in the softmax
      vocabulary (0 = padding), the targets;
    * ``token_weights`` ``[batch, time]``: 1 where a position's word counts as a target
      (0 at padding; e.g. 0 at ``<S>`` if it has no word id).

    The forward LM at ``t`` is scored on ``token_ids[t + 1]``, the backward LM at ``t`` on
    ``token_ids[t - 1]``; loss = (forward mean NLL + backward mean NLL) / 2. Metrics:
    ``nll`` (both directions' positions), ``forward_nll``, ``backward_nll``,
    ``token_accuracy`` (full softmax only) and ``loss``; the training NLL is the sampled
    softmax's when ``config.num_samples`` > 0 (evaluation is always the full softmax)."""

    input_format = "word_level"

    config: ELMoConfig = dataclasses.field(default_factory=elmo_original)
    max_length: int = 20  # bilm-tf's unroll_steps

    @property
    def network(self) -> ELMoLM:
        return ELMoLM(self.config)

    @property
    def input_vocab_size(self) -> int:
        """The word vocabulary of the targets (the character vocabulary is fixed)."""
        return self.config.vocab_size

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        shape = (batch_size, self.max_length)
        return {"char_ids": np.ones((*shape, self.config.max_characters_per_token), np.int32),
                "token_ids": np.ones(shape, np.int32),
                "token_weights": np.ones(shape, np.float32)}

    def tokens_per_example(self, batch: Any) -> int:
        return int(batch["token_ids"].shape[-1])

    def init(self, rng: Array, batch: Batch) -> dict:
        return self.network.init({"params": rng}, batch["char_ids"])["params"]

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        cfg, network = self.config, self.network
        variables = {"params": params}
        sampled = train and cfg.num_samples > 0
        if train and (cfg.dropout > 0 or sampled) and rng is None:
            raise ValueError("Training with dropout or a sampled softmax needs an rng.")
        dropout_rng, sample_rng = jax.random.split(rng) if train and rng is not None else (
            None, None)
        forward, backward, mask = network.apply(
            variables, batch["char_ids"], deterministic=not train,
            rngs={"dropout": dropout_rng} if train and rng is not None else None)
        ids = batch["token_ids"]
        weights = batch["token_weights"].astype(jnp.float32) * mask
        directions = {  # states, targets, target weights (padding is only at the end)
            "forward": (forward[:, :-1], ids[:, 1:], weights[:, 1:]),
            "backward": (backward[:, 1:], ids[:, :-1], weights[:, :-1] * mask[:, 1:]),
        }
        metrics: Metrics = {}
        loss, nll_sum, count_sum, correct_sum = 0.0, 0.0, 0.0, 0.0
        for k, (name, (states, targets, w)) in enumerate(directions.items()):
            if sampled:
                samples = log_uniform_samples(jax.random.fold_in(sample_rng, k),
                                              cfg.num_samples, cfg.vocab_size)
                nll = network.apply(variables, states, targets, samples,
                                    method=ELMoLM.sampled_nll)
                total, count = jnp.sum(nll * w), jnp.sum(w)
            else:
                logits = network.apply(variables, states, method=ELMoLM.logits)
                _, total, correct, count = layers.label_smoothed_cross_entropy(
                    logits, targets, w, 0.0)
                correct_sum = correct_sum + correct
            metrics[f"{name}_nll"] = (total, count)
            loss = loss + 0.5 * total / jnp.maximum(count, 1.0)
            nll_sum, count_sum = nll_sum + total, count_sum + count
        metrics["nll"] = (nll_sum, count_sum)
        if not sampled:
            metrics["token_accuracy"] = (correct_sum, count_sum)
        metrics["loss"] = (loss, jnp.ones(()))
        return loss, metrics

    def contextual_vectors(self, params: dict, batch: Batch) -> dict[str, Array]:
        """``{"layer_0", ..., "layer_L"}`` ``[b, words, 2 * projection_dim]``: the token
        vector (twice) and each biLSTM layer's ``[forward; backward]`` states, the layers
        a scalar mix combines, for ``char_ids`` of the words alone: ``<S>`` and ``</S>``
        are added around each sentence and their positions removed after, as AllenNLP's
        ``elmo`` command does."""
        char_ids = batch["char_ids"]
        wrapped = add_sentence_boundaries(char_ids, token_mask(char_ids))
        activations, mask = elmo_representations(params, wrapped, self.config)
        activations, _ = remove_sentence_boundaries(activations, mask)
        return {f"layer_{i}": a for i, a in enumerate(activations)}

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        """``perplexity`` (both directions), ``forward_perplexity``, ``backward_perplexity``."""
        out = {}
        for prefix in ("", "forward_", "backward_"):
            if f"{prefix}nll" in averages:
                out[f"{prefix}perplexity"] = perplexity(averages[f"{prefix}nll"])
        return out

    def flops_per_example(self) -> float:
        """3x the forward FLOPs (``ELMoConfig.flops_per_token``) of ``max_length`` tokens."""
        return 3.0 * self.max_length * self.config.flops_per_token()


class ScalarMix(nn.Module):
    """ELMo's task-specific combination ``gamma * sum_j softmax(s)_j * h_j`` of the biLM
    layers (AllenNLP's ``ScalarMix``): ``scalar_weights`` ``s`` ``[num_layers]`` start at 0
    (an average), ``gamma`` at 1.

    With ``do_layer_norm`` each layer is first normalised by one mean and variance over all
    its unmasked entries in the batch (AllenNLP's ``_do_layer_norm``). Where a ``mask`` is
    given, padded positions of the result are set to 0."""

    num_layers: int
    do_layer_norm: bool = False
    epsilon: float = 1e-12

    def setup(self) -> None:
        self.scalar_weights = self.param("scalar_weights", nn.initializers.zeros,
                                         (self.num_layers,), jnp.float32)
        self.gamma = self.param("gamma", nn.initializers.ones, (), jnp.float32)

    def __call__(self, tensors: Sequence[Array], mask: Array | None = None) -> Array:
        if len(tensors) != self.num_layers:
            raise ValueError(f"ScalarMix over {self.num_layers} layers got {len(tensors)}.")
        weights = self.normalized_weights()
        valid = None if mask is None else mask.astype(bool)[..., None]
        mixed = 0.0
        for j, h in enumerate(tensors):
            if self.do_layer_norm:
                h = _masked_layer_norm(h, valid, self.epsilon)
            mixed = mixed + weights[j] * h
        mixed = self.gamma * mixed
        return mixed if valid is None else jnp.where(valid, mixed, 0.0)

    def normalized_weights(self) -> Array:
        """``softmax(scalar_weights)``, the layer weights (for plots; they sum to 1)."""
        return jax.nn.softmax(self.scalar_weights)


def _masked_layer_norm(x: Array, valid: Array | None, epsilon: float) -> Array:
    keep = jnp.ones((*x.shape[:-1], 1), x.dtype) if valid is None else valid.astype(x.dtype)
    n = jnp.maximum(jnp.sum(keep) * x.shape[-1], 1.0)
    mean = jnp.sum(x * keep) / n
    variance = jnp.sum(((x - mean) * keep) ** 2) / n
    return (x - mean) / jnp.sqrt(variance + epsilon)


def scalar_mix_weights(params: dict) -> tuple[np.ndarray, float]:
    """``(softmax(scalar_weights), gamma)`` of a ``ScalarMix``'s params, for plots."""
    params = meta.unbox(params)
    return (np.asarray(jax.nn.softmax(jnp.asarray(params["scalar_weights"]))),
            float(np.asarray(params["gamma"]).reshape(())))  # restored as [1] or []


def elmo_representations(params: dict, char_ids: Array, config: ELMoConfig
                         ) -> tuple[list[Array], Array]:
    """The frozen biLM's layers for a downstream model: ``(activations, mask)``, the
    ``num_layers + 1`` arrays ``[batch, time, 2 * projection_dim]`` of ``BiLMOutput``
    (no dropout, ``stop_gradient`` on every one) and the ``[batch, time]`` token mask.

    ``params`` are an ``ELMoLanguageModel``'s (the ``bilm`` subtree is used) or a
    ``BiLM``'s. Feed them to a ``ScalarMix``; ``remove_sentence_boundaries`` drops the
    ``<S>``/``</S>`` positions if ``char_ids`` has them."""
    params = meta.unbox(params)
    bilm_params = params.get("bilm", params)
    out = BiLM(config).apply({"params": bilm_params}, char_ids, deterministic=True)
    return [jax.lax.stop_gradient(a) for a in out.activations], out.mask


def remove_sentence_boundaries(tensors: Sequence[Array], mask: Array
                               ) -> tuple[list[Array], Array]:
    """Drops each row's first and last real position (``<S>``, ``</S>``) from
    ``[batch, time, ...]`` arrays: ``[batch, time - 2, ...]`` arrays (zero at padding)
    and their mask, as AllenNLP's ``remove_sentence_boundaries``."""
    lengths = mask.astype(jnp.int32).sum(axis=1)
    new_mask = jnp.arange(mask.shape[1] - 2)[None, :] < (lengths - 2)[:, None]
    keep = new_mask.reshape(new_mask.shape + (1,) * (tensors[0].ndim - 2))
    return [jnp.where(keep, t[:, 1:-1], 0) for t in tensors], new_mask


def add_sentence_boundaries(char_ids: Array, mask: Array) -> Array:
    """Wraps each row's tokens in ``<S>`` ... ``</S>``: ``[batch, time, chars]`` character
    ids (real tokens first, padding rows all 0) -> ``[batch, time + 2, chars]`` with
    ``CharVocabulary``'s ``bos_chars`` row first and ``eos_chars`` after the last real
    token (AllenNLP's ``add_sentence_boundary_token_ids``); the inverse of
    ``remove_sentence_boundaries`` on the biLM's outputs."""
    vocab = characters.CharVocabulary(char_ids.shape[-1])
    time = mask.shape[1]
    lengths = mask.astype(jnp.int32).sum(axis=1)
    padded = jnp.pad(char_ids, ((0, 0), (1, 1), (0, 0)))
    position = jnp.arange(time + 2)[None, :, None]
    padded = jnp.where(position == 0, jnp.asarray(vocab.bos_chars), padded)
    return jnp.where(position == (lengths + 1)[:, None, None], jnp.asarray(vocab.eos_chars),
                     padded)
