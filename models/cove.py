"""CoVe: context vectors from the encoder of an attentional LSTM translation model.

McCann, Bradbury, Xiong & Socher (2017), "Learned in Translation: Contextualized Word
Vectors" (NeurIPS). A sequence-to-sequence model is trained on translation; its encoder,
the MT-LSTM, is then reused as a feature extractor: a downstream model reads
``[GloVe(w); CoVe(w)]`` with ``CoVe(w) = MT-LSTM(GloVe(w))``.

The network, with the paper's equations (Section 3):

* **Encoder** (``CoVeEncoder``, the MT-LSTM): fixed word vectors ``[b, t, d]`` -> a
  ``num_encoder_layers``-layer (2) bidirectional LSTM (``layers.LSTM`` forward and
  ``reverse``); the output is the top layer's ``[forward; backward]`` states
  ``[b, t, 2 * hidden]`` (McCann: 300 per direction; the CPU default here 128), zeros at
  padding. A row's outputs depend only on its valid words (``layers.LSTM`` masks).
* **Decoder** (``AttentionDecoder``): a ``num_decoder_layers``-layer (2) unidirectional
  LSTM over the embedded previous target words ``z_{t-1}``; with ``input_feeding`` (the
  paper's) its input is ``[z_{t-1}; h~_{t-1}]`` and it runs one step at a time
  (``nn.scan``), without it the LSTM runs over the whole target at once (faster on CPU).
  Attention over the encoder states ``H``: ``alpha_t = softmax(H (W1 h_t + b1))``,
  ``h~_t = tanh(W2 [H^T alpha_t; h_t] + b2)``; output ``softmax(W_out h~_t + b_out)``.

**The word-vector table is a constant, not a parameter** (CoVe's GloVe is fixed):
``CoVeTranslationModel`` looks the source ids up in ``word_vectors`` (``[vocab, d]``, the
task's table: ``tasks.translation.source_word_vectors(task)``, id ``i >= 2`` = vector row
``i - 2``, ``<PAD>``/``<UNK>`` zero rows) and
passes the vectors ``[b, t, d]`` to the network, so they never appear in the parameters
or the optimizer state. Downstream models give ``CoVeEncoder`` their own (frozen) word
vectors in the same way (``models/taglm.py``: ``TaggerConfig.cove``).

Parameters: ``cove`` (the encoder, a top-level subtree, so that
``pretrained.PretrainedParams(path=MT_RUN, subtrees=("cove",), check_vocabulary=False)``
loads it into another model that builds ``CoVeEncoder`` under the name ``cove``) and
``decoder``. Objective: teacher-forced (label-smoothed) cross-entropy over seqio
``EncDecFeatureConverter`` batches, metrics named as ``models/transformer.py``'s (``nll``,
``token_accuracy``, derived ``perplexity``). Task: ``translate_en_de_debian_l10n_cove``
(``tasks/translation.py``: English words -> German sentencepiece pieces). Sizes and runs:
``gin_configs/models/cove/``, ``runs/cove_mt.gin``, ``cove/demo_mt_en_de.gin``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import layers
from models.base import Batch, Seq2SeqObjective, TaskInfo

Array = jax.Array

@dataclasses.dataclass(frozen=True)
class CoVeConfig:
    """Sizes of the MT-LSTM and its attentional decoder (defaults: small, CPU-sized;
    McCann et al.: 300-d GloVe, 300 hidden units per direction)."""

    vector_dim: int = 50                # the fixed word vectors' dimension
    hidden: int = 128                   # per direction, each encoder biLSTM layer
    num_encoder_layers: int = 2
    target_vocab_size: int = 4000
    target_embed_dim: int = 128
    decoder_hidden: int | None = None   # None: 2 * hidden (the encoder states' width)
    num_decoder_layers: int = 2
    input_feeding: bool = True          # decoder input [z_{t-1}; h~_{t-1}] (the paper's)
    dropout: float = 0.2                # encoder input/between layers, decoder, h~

    def __post_init__(self) -> None:
        for name in ("vector_dim", "hidden", "num_encoder_layers", "target_vocab_size",
                     "target_embed_dim", "num_decoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"CoVeConfig.{name}={getattr(self, name)} must be >= 1.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"CoVeConfig.dropout={self.dropout} must be in [0, 1).")

    @property
    def output_dim(self) -> int:
        """The width of a CoVe vector: ``2 * hidden``."""
        return 2 * self.hidden

    @property
    def decoder_size(self) -> int:
        return self.decoder_hidden or self.output_dim


class CoVeEncoder(nn.Module):
    """The MT-LSTM: word vectors ``[b, t, vector_dim]`` and a ``[b, t]`` mask (padding
    last) -> the top biLSTM layer's ``[forward; backward]`` states ``[b, t, 2 * hidden]``
    (zeros at padding). Dropout (``config.dropout``) on the input and between layers
    when not ``deterministic``."""

    config: CoVeConfig

    @nn.compact
    def __call__(self, vectors: Array, mask: Array, *, deterministic: bool = True) -> Array:
        cfg = self.config
        if vectors.shape[-1] != cfg.vector_dim:
            raise ValueError(f"CoVeEncoder got {vectors.shape[-1]}-d word vectors, "
                             f"CoVeConfig.vector_dim is {cfg.vector_dim}: bind it to the "
                             "vectors' dimension.")
        x = vectors
        for i in range(cfg.num_encoder_layers):
            x = layers.Dropout(cfg.dropout)(x, deterministic=deterministic)
            forward, _ = layers.LSTM(cfg.hidden, name=f"layer_{i}_forward")(x, mask)
            backward, _ = layers.LSTM(cfg.hidden, reverse=True,
                                      name=f"layer_{i}_backward")(x, mask)
            x = jnp.concatenate([forward, backward], axis=-1)
        return x


class Attention(nn.Module):
    """McCann et al.'s attention: ``alpha_t = softmax(H (W1 h_t + b1))`` over the valid
    source positions, ``h~_t = tanh(W2 [H^T alpha_t; h_t] + b2)``. ``h`` ``[b, l, dh]``,
    ``encoded`` ``H`` ``[b, s, de]`` -> ``h~`` ``[b, l, dh]`` (and ``alpha`` ``[b, l, s]``,
    sown as ``intermediates/attention_weights``)."""

    features: int

    @nn.compact
    def __call__(self, h: Array, encoded: Array, source_mask: Array) -> Array:
        query = nn.Dense(encoded.shape[-1], name="query")(h)
        scores = jnp.einsum("bld,bsd->bls", query, encoded)
        scores = scores + layers.attention_bias_from_mask(source_mask[:, None, :],
                                                          scores.dtype)
        alpha = jax.nn.softmax(scores, axis=-1)
        self.sow("intermediates", "attention_weights", alpha)
        context = jnp.einsum("bls,bsd->bld", alpha, encoded)
        return jnp.tanh(nn.Dense(self.features, name="output")(
            jnp.concatenate([context, h], axis=-1)))


class _InputFeedingStep(nn.Module):
    """One decoder step with input feeding: ``[z_{t-1}; h~_{t-1}]`` through the LSTM
    layers (each ``layers.LSTM`` over a length-1 sequence, its state carried), then
    attention. Scanned over time by ``AttentionDecoder``."""

    config: CoVeConfig
    deterministic: bool

    @nn.compact
    def __call__(self, carry: tuple[Any, Array], z: Array, encoded: Array,
                 source_mask: Array) -> tuple[tuple[Any, Array], Array]:
        cfg = self.config
        states, feed = carry
        x = jnp.concatenate([z, feed], axis=-1)[:, None]
        new_states = []
        for i in range(cfg.num_decoder_layers):
            if i:
                x = layers.Dropout(cfg.dropout)(x, deterministic=self.deterministic)
            x, state = layers.LSTM(cfg.decoder_size, name=f"lstm_{i}")(
                x, initial_state=states[i])
            new_states.append(state)
        out = Attention(cfg.decoder_size, name="attention")(x, encoded, source_mask)[:, 0]
        return (tuple(new_states), out), out


class AttentionDecoder(nn.Module):
    """Target ids shifted right (``decoder_input_tokens``) ``[b, l]`` + the encoder states
    -> next-token logits ``[b, l, target_vocab_size]``. Causal: position ``t`` sees only
    the inputs at positions ``<= t`` (the targets before ``t``)."""

    config: CoVeConfig

    @nn.compact
    def __call__(self, decoder_inputs: Array, encoded: Array, source_mask: Array, *,
                 deterministic: bool = True) -> Array:
        cfg = self.config
        dropout = layers.Dropout(cfg.dropout)
        z = layers.Embed(cfg.target_vocab_size, cfg.target_embed_dim,
                         init_stddev=cfg.target_embed_dim ** -0.5, name="embed")(
            decoder_inputs)
        z = dropout(z, deterministic=deterministic)
        if cfg.input_feeding:
            batch = decoder_inputs.shape[0]
            zeros = jnp.zeros((batch, cfg.decoder_size), z.dtype)
            carry = (tuple((zeros, zeros) for _ in range(cfg.num_decoder_layers)), zeros)
            scan = nn.scan(_InputFeedingStep, variable_broadcast="params",
                           split_rngs={"params": False, "dropout": True},
                           in_axes=(1, nn.broadcast, nn.broadcast), out_axes=1)
            _, h = scan(cfg, deterministic, name="step")(carry, z, encoded, source_mask)
        else:
            h = z
            for i in range(cfg.num_decoder_layers):
                if i:
                    h = dropout(h, deterministic=deterministic)
                h, _ = layers.LSTM(cfg.decoder_size, name=f"lstm_{i}")(h)
            h = Attention(cfg.decoder_size, name="attention")(h, encoded, source_mask)
        h = dropout(h, deterministic=deterministic)
        return nn.Dense(cfg.target_vocab_size, name="logits")(h).astype(jnp.float32)


class CoVeSeq2Seq(nn.Module):
    """The MT model: source word vectors ``[b, s, d]`` + mask, decoder inputs ``[b, l]``
    -> logits. Its parameters: ``cove`` (the encoder) and ``decoder``."""

    config: CoVeConfig

    def setup(self) -> None:
        self.cove = CoVeEncoder(self.config)
        self.decoder = AttentionDecoder(self.config)

    def __call__(self, source_vectors: Array, source_mask: Array, decoder_inputs: Array, *,
                 deterministic: bool = True) -> Array:
        encoded = self.cove(source_vectors, source_mask, deterministic=deterministic)
        return self.decoder(decoder_inputs, encoded, source_mask,
                            deterministic=deterministic)


@dataclasses.dataclass(frozen=True)
class CoVeTranslationModel(Seq2SeqObjective):
    """The MT objective that trains CoVe: teacher-forced cross-entropy of the target pieces.

    Batches: seqio ``EncDecFeatureConverter`` features, as ``transformer.TranslationModel``'s
    (``encoder_input_tokens`` = source WORD ids of the task's vector vocabulary, 0 =
    padding; ``decoder_target_tokens``, ``decoder_input_tokens`` (targets shifted right
    after 0), ``decoder_loss_weights``). Loss: label-smoothed NLL per target token
    (``layers.label_smoothed_cross_entropy``; 0 = none, McCann et al.'s plain NLL);
    metrics ``nll``, ``token_accuracy`` and the derived ``perplexity``.

    ``word_vectors`` (``[source vocab, vector_dim]``, e.g.
    ``tasks.translation.source_word_vectors(task)``, bound so in ``runs/cove_mt.gin``) is
    the fixed source embedding: a constant of the computation, never a parameter.
    """

    config: CoVeConfig = CoVeConfig()
    max_source_length: int = 48
    max_target_length: int = 48
    label_smoothing: float = 0.0
    word_vectors: Any = dataclasses.field(default=None, compare=False, hash=False,
                                          repr=False)

    @property
    def network(self) -> CoVeSeq2Seq:
        return CoVeSeq2Seq(self.config)

    def vector_table(self) -> np.ndarray:
        """float32 ``[source vocab, vector_dim]``: the ``word_vectors``."""
        if self.word_vectors is None:
            raise ValueError("CoVeTranslationModel needs its task's source word vectors: "
                             "bind CoVeTranslationModel.word_vectors = "
                             "@translation.source_word_vectors() (runs/cove_mt.gin).")
        table = np.asarray(self.word_vectors, np.float32)
        if table.ndim != 2 or table.shape[1] != self.config.vector_dim:
            raise ValueError(f"The word vectors are {table.shape}, CoVeConfig.vector_dim is "
                             f"{self.config.vector_dim}: bind vector_dim to the vectors' "
                             "dimension.")
        return table

    @property
    def input_vocab_size(self) -> int:
        """The target vocabulary (what ``tasks.get_vocabulary`` gives for an MT task)."""
        return self.config.target_vocab_size

    def check_task(self, task: TaskInfo) -> None:
        if "inputs" not in task.vocab_sizes:
            raise ValueError(f"Task {task.name!r} is not a translation task; CoVe trains on one "
                             "with a word-level source, e.g. translate_en_de_debian_l10n_cove.")
        source_size = task.vocab_sizes["inputs"]
        rows = self.vector_table().shape[0]
        if source_size != rows:
            raise ValueError(
                f"Task {task.name!r} has {source_size} source ids but the word-vector table has "
                f"{rows} rows: CoVe needs a word-level source whose ids index the vectors "
                "(translate_en_de_debian_l10n_cove), and CoVeTranslationModel.word_vectors = "
                "@translation.source_word_vectors() for that task.")

    def source_vectors(self, source_ids: Array) -> Array:
        """The fixed word vectors ``[b, s, vector_dim]`` of source word ids."""
        return jnp.take(jnp.asarray(self.vector_table()), source_ids, axis=0)

    def _inputs(self, batch: Batch) -> tuple[Array, Array, Array]:
        source = batch["encoder_input_tokens"]
        return self.source_vectors(source), source > 0, batch["decoder_input_tokens"]

    def init(self, rng: Array, batch: Batch) -> dict:
        params_rng, dropout_rng = jax.random.split(rng)
        return self.network.init({"params": params_rng, "dropout": dropout_rng},
                                 *self._inputs(batch), deterministic=True)["params"]

    def apply(self, params: dict, batch: Batch, *, rng: Array | None = None,
              train: bool = False) -> Array:
        """Next-token logits ``[b, target_length, target_vocab_size]``."""
        if train and self.config.dropout > 0 and rng is None:
            raise ValueError("Training with dropout needs an rng.")
        return self.network.apply({"params": params}, *self._inputs(batch),
                                  deterministic=not train,
                                  rngs={"dropout": rng} if train and rng is not None else None)

    def contextual_vectors(self, params: dict, batch: Batch) -> dict[str, Array]:
        """``{"glove", "cove", "glove_cove"}`` per source word: the fixed word vectors, the
        MT-LSTM's states and their concatenation ``[GloVe; CoVe]``, what McCann et al.
        feed a downstream model."""
        ids = batch["encoder_input_tokens"]
        glove, cove = self.source_vectors(ids), self.encode(params, ids)
        return {"glove": glove, "cove": cove,
                "glove_cove": jnp.concatenate([glove, cove], axis=-1)}

    def encode(self, params: dict, source_ids: Array) -> Array:
        """CoVe vectors ``[b, s, 2 * hidden]`` of source word ids (no dropout)."""
        return CoVeEncoder(self.config).apply({"params": params["cove"]},
                                              self.source_vectors(source_ids),
                                              source_ids > 0)


