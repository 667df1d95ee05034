"""BERT (Devlin et al., 2018): encoder, pre-training heads and the pre-training objective.

The network follows ``google-research/bert`` ``modeling.py`` (and HuggingFace's
``BertForPreTraining``, whose weights convert one-to-one, see
``pretrain_lm/checkpoints.py``): token + segment + position embeddings, LayerNorm
and dropout; post-LN Transformer blocks; a tanh pooler on ``[CLS]``; a masked-LM
head (dense + GELU + LayerNorm, output tied to the token embedding plus a bias)
evaluated ONLY at the masked positions; a two-way next-sentence head.

Sizes live in ``gin_configs/models/bert/`` (tiny ... large).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from models import layers
from models.base import Batch, Metrics, Model, TaskInfo, packing_efficiency, perplexity

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """BERT hyper-parameters (defaults: BERT-Base, uncased WordPiece vocabulary)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_epsilon: float = 1e-12
    dtype: str = "float32"  # activation dtype ("bfloat16" on TPU); params stay float32

    @property
    def block(self) -> layers.TransformerBlockConfig:
        return layers.TransformerBlockConfig(
            embed_dim=self.hidden_size,
            num_heads=self.num_heads,
            mlp_dim=self.intermediate_size,
            dropout_rate=self.hidden_dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
            activation=self.hidden_act,
            layer_norm_epsilon=self.layer_norm_epsilon,
            pre_layer_norm=False,
            init_stddev=self.initializer_range,
            dtype=jnp.dtype(self.dtype),
        )


class BertEmbeddings(nn.Module):
    """Token + segment + learned position embeddings, then LayerNorm and dropout."""

    config: BertConfig

    def setup(self) -> None:
        cfg = self.config
        self.word_embeddings = layers.Embed(
            cfg.vocab_size, cfg.hidden_size, init_stddev=cfg.initializer_range,
            dtype=jnp.dtype(cfg.dtype), name="word_embeddings")
        self.position_embeddings = layers.Embed(
            cfg.max_position_embeddings, cfg.hidden_size, init_stddev=cfg.initializer_range,
            dtype=jnp.dtype(cfg.dtype), axes=(None, layers.EMBED), name="position_embeddings")
        self.token_type_embeddings = layers.Embed(
            cfg.type_vocab_size, cfg.hidden_size, init_stddev=cfg.initializer_range,
            dtype=jnp.dtype(cfg.dtype), axes=(None, layers.EMBED), name="token_type_embeddings")
        self.layer_norm = layers.layer_norm(cfg.layer_norm_epsilon, jnp.dtype(cfg.dtype))
        self.dropout = layers.Dropout(cfg.hidden_dropout_rate)

    def __call__(self, input_ids: Array, segment_ids: Array, *, deterministic: bool,
                 positions: Array | None = None) -> Array:
        """``positions``: each row's position ids ``[b, l]`` (packed rows restart at 0 for
        every example); default ``0 .. l-1``."""
        length = input_ids.shape[-1]
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence length {length} exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}; shorten the data's max_seq_length "
                "or use a model config with more positions.")
        x = (self.word_embeddings(input_ids)
             + self.position_embeddings(jnp.arange(length)[None] if positions is None
                                        else positions)
             + self.token_type_embeddings(segment_ids))
        x = self.dropout(self.layer_norm(x), deterministic=deterministic)
        return layers.constrain(x, layers.BATCH, layers.LENGTH, layers.EMBED)

    def attend(self, x: Array) -> Array:
        """Logits over the vocabulary with the (tied) token embedding."""
        return self.word_embeddings.attend(x)


class BertEncoder(nn.Module):
    """Embeddings + a stack of post-LN Transformer blocks + the ``[CLS]`` pooler.

    Returns ``(sequence_output [b, l, h], pooled_output [b, h])``; with
    ``return_all_layers`` the first element is the list of every layer's output
    (embeddings first), which feature-based uses (ELMo-style scalar mixes) need.

    ``input_mask`` is 1 on a row's real tokens and 0 on padding; a packed row numbers its
    examples 1, 2, ... instead (with ``positions`` restarting for each), and attention
    stays inside each example (``layers.segment_mask``).
    """

    config: BertConfig

    def setup(self) -> None:
        cfg = self.config
        self.embeddings = BertEmbeddings(cfg)
        self.blocks = [layers.TransformerBlock(cfg.block, name=f"layer_{i}")
                       for i in range(cfg.num_layers)]
        self.pooler = layers.DenseGeneral(cfg.hidden_size, (layers.EMBED, layers.MLP),
                                   init_stddev=cfg.initializer_range,
                                   dtype=jnp.dtype(cfg.dtype))

    def __call__(self, input_ids: Array, segment_ids: Array, input_mask: Array, *,
                 deterministic: bool, return_all_layers: bool = False,
                 positions: Array | None = None) -> tuple[Array | list[Array], Array]:
        x = self.embeddings(input_ids, segment_ids, deterministic=deterministic,
                            positions=positions)
        mask = layers.segment_mask(input_mask, input_mask)
        hidden_states = [x]
        for block in self.blocks:
            x = block(x, mask, deterministic=deterministic)
            hidden_states.append(x)
        pooled = self.pool(x[:, 0])
        return (hidden_states if return_all_layers else x), pooled

    def pool(self, x: Array) -> Array:
        """BERT's tanh pooler on ``x`` (``[CLS]``'s hidden state, or any position's)."""
        return jnp.tanh(self.pooler(x))

    def attend(self, x: Array) -> Array:
        return self.embeddings.attend(x)


def encoder_layers(config: BertConfig, params: dict, batch: Batch) -> dict[str, Array]:
    """``{"embeddings", "layer_1", ..., "layer_N"}``: the encoder's output after the
    embeddings and after each block ``[b, l, hidden]`` for ``input_ids`` / ``segment_ids`` /
    ``input_mask`` (``params``: a pretraining or fine-tuning model's, whose ``bert``
    subtree is the encoder), in evaluation mode."""
    hidden, _ = BertEncoder(config).apply(
        {"params": params["bert"]}, batch["input_ids"], batch["segment_ids"],
        batch["input_mask"], deterministic=True, return_all_layers=True)
    return {"embeddings": hidden[0], **{f"layer_{i}": h for i, h in enumerate(hidden[1:], 1)}}


class MaskedLMHead(nn.Module):
    """dense + activation + LayerNorm, then the tied embedding plus an output bias."""

    config: BertConfig

    @nn.compact
    def __call__(self, x: Array, embeddings: BertEmbeddings) -> Array:
        cfg = self.config
        x = layers.DenseGeneral(cfg.hidden_size, (layers.EMBED, layers.MLP),
                         init_stddev=cfg.initializer_range, dtype=jnp.dtype(cfg.dtype),
                         name="transform")(x)
        x = layers.activation(cfg.hidden_act)(x)
        x = layers.layer_norm(cfg.layer_norm_epsilon, jnp.dtype(cfg.dtype), name="layer_norm")(x)
        logits = embeddings.attend(x)
        bias = self.param("output_bias",
                          nn.with_logical_partitioning(nn.initializers.zeros, (layers.VOCAB,)),
                          (cfg.vocab_size,), jnp.float32)
        return logits.astype(jnp.float32) + bias


class BertForPreTraining(nn.Module):
    """BERT with the masked-LM and next-sentence heads.

    ``masked_lm_positions`` ([batch, max_predictions]) selects where the MLM head
    runs; the vocabulary projection is never computed for unmasked positions.
    """

    config: BertConfig

    def setup(self) -> None:
        self.bert = BertEncoder(self.config)
        self.mlm_head = MaskedLMHead(self.config)
        self.nsp_head = layers.DenseGeneral(2, (layers.EMBED, None),
                                     init_stddev=self.config.initializer_range)

    def __call__(self, input_ids: Array, segment_ids: Array, input_mask: Array,
                 masked_lm_positions: Array, *, deterministic: bool) -> tuple[Array, Array]:
        sequence, pooled = self.bert(input_ids, segment_ids, input_mask,
                                     deterministic=deterministic)
        masked = layers.gather_positions(sequence, masked_lm_positions)
        mlm_logits = self.mlm_head(masked, self.bert.embeddings)
        nsp_logits = self.nsp_head(pooled).astype(jnp.float32)
        return mlm_logits, nsp_logits


def weighted_cross_entropy(logits: Array, labels: Array, weights: Array
                           ) -> tuple[Array, Array, Array]:
    """Returns summed weighted NLL, summed weighted accuracy and the weight total."""
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return jnp.sum(nll * weights), jnp.sum(correct * weights), jnp.sum(weights)


@dataclasses.dataclass(frozen=True)
class BertPretrainingModel(Model):
    """Masked LM + next-sentence prediction, as in BERT's ``run_pretraining.py``.

    loss = mean MLM NLL over the real masked positions + mean NSP NLL.
    """

    input_format = "bert_pretraining"

    config: BertConfig = BertConfig()
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    use_next_sentence_prediction: bool = True

    @property
    def network(self) -> BertForPreTraining:
        return BertForPreTraining(self.config)

    @property
    def input_vocab_size(self) -> int:
        return self.config.vocab_size

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        seq = (batch_size, self.max_seq_length)
        pred = (batch_size, self.max_predictions_per_seq)
        return {
            "input_ids": np.zeros(seq, np.int32),
            "input_mask": np.ones(seq, np.int32),
            "segment_ids": np.zeros(seq, np.int32),
            "masked_lm_positions": np.zeros(pred, np.int32),
            "masked_lm_ids": np.zeros(pred, np.int32),
            "masked_lm_weights": np.zeros(pred, np.float32),
            "next_sentence_labels": np.zeros((batch_size,), np.int32),
        }

    def init(self, rng: Array, batch: Batch) -> dict:
        params_rng, dropout_rng = jax.random.split(rng)
        return self.network.init(
            {"params": params_rng, "dropout": dropout_rng}, batch["input_ids"],
            batch["segment_ids"], batch["input_mask"], batch["masked_lm_positions"],
            deterministic=True)["params"]

    def apply(self, params: dict, batch: Batch, *, rng: Array | None = None,
              train: bool = False) -> tuple[Array, Array]:
        """MLM logits ``[b, max_predictions, vocab]`` and NSP logits ``[b, 2]``."""
        return self.network.apply(
            {"params": params}, batch["input_ids"], batch["segment_ids"],
            batch["input_mask"], batch["masked_lm_positions"], deterministic=not train,
            rngs={"dropout": rng} if train else None)

    def contextual_vectors(self, params: dict, batch: Batch) -> dict[str, Array]:
        """Every encoder layer per wordpiece (``encoder_layers``)."""
        return encoder_layers(self.config, params, batch)

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        mlm_logits, nsp_logits = self.apply(params, batch, rng=rng, train=train)
        mlm_nll, mlm_correct, mlm_count = weighted_cross_entropy(
            mlm_logits, batch["masked_lm_ids"], batch["masked_lm_weights"])
        mlm_loss = mlm_nll / (mlm_count + 1e-5)
        ones = jnp.ones(nsp_logits.shape[:1], jnp.float32)
        nsp_nll, nsp_correct, nsp_count = weighted_cross_entropy(
            nsp_logits, batch["next_sentence_labels"], ones)
        nsp_loss = nsp_nll / nsp_count
        loss = mlm_loss + nsp_loss if self.use_next_sentence_prediction else mlm_loss
        metrics: Metrics = {
            "loss": (loss, jnp.ones(())),
            "mlm_loss": (mlm_nll, mlm_count),
            "mlm_accuracy": (mlm_correct, mlm_count),
        }
        if self.use_next_sentence_prediction:
            metrics["nsp_loss"] = (nsp_nll, nsp_count)
            metrics["nsp_accuracy"] = (nsp_correct, nsp_count)
        return loss, metrics

    def tokens_per_example(self, batch: Mapping[str, np.ndarray]) -> int:
        return int(batch["input_ids"].shape[-1])

    def flops_per_example(self) -> float:
        """3x the forward matmul FLOPs: encoder (projections, QK^T, AV, FFN), the MLM
        head at the masked positions only (transform + tied decoder), pooler + NSP."""
        cfg, seq, preds = self.config, self.max_seq_length, self.max_predictions_per_seq
        h, i = cfg.hidden_size, cfg.intermediate_size
        per_token_layer = 2 * 4 * h * h + 2 * 2 * h * i + 2 * 2 * seq * h
        encoder = seq * cfg.num_layers * per_token_layer
        mlm_head = preds * (2 * h * h + 2 * h * cfg.vocab_size)
        pooler_nsp = 2 * h * h + 2 * h * 2
        return 3.0 * (encoder + mlm_head + pooler_nsp)

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        if "mlm_loss" in averages:
            return {"mlm_perplexity": perplexity(averages["mlm_loss"])}
        return {}


# ---------------------------------------------------------------------------------------
# Fine-tuning: one pretrained encoder, a small head per task.

HEADS = ("classification", "regression", "span", "token")
# What a sentence-level head (classification, regression) reads: BERT's pretrained tanh
# pooler on [CLS]; the same pooler freshly initialised (for checkpoints whose pooler was
# never trained, e.g. sentence-embedding models such as all-MiniLM-L6-v2); the [CLS]
# hidden state itself; or the mean of the hidden states over the non-padding positions
# (what sentence-transformers models are trained with).
POOLINGS = ("pooler", "pooler_reinit", "cls", "mean")


class BertForFineTuning(nn.Module):
    """The encoder (under ``bert``, as in pre-training) plus one task head.

    * ``classification``: dropout + dense on the pooled ``[CLS]`` -> ``[b, num_labels]``
      (``run_classifier.py``); ``regression``: the same with one output -> ``[b]``;
    * ``span``: dense on every position -> start and end logits ``[b, l]`` each, padding
      masked (``run_squad.py``; no dropout on this head, as there);
    * ``token``: dropout + dense on every position -> ``[b, l, num_labels]`` (NER).

    ``pooling`` (``POOLINGS``) is what the sentence-level heads read; ``pooler_reinit``
    adds a fresh tanh pooler ``head_pooler`` beside the encoder's (which a pretrained
    checkpoint still fills, unused).
    """

    config: BertConfig
    head: str = "classification"
    num_labels: int = 2
    pooling: str = "pooler"

    def setup(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"Unknown head {self.head!r}; expected one of {HEADS}.")
        if self.pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {self.pooling!r}; expected one of {POOLINGS} "
                             "(--gin.POOLING=...).")
        cfg = self.config
        if self.pooling == "pooler_reinit":
            self.head_pooler = layers.DenseGeneral(cfg.hidden_size, (layers.EMBED, layers.MLP),
                                                   init_stddev=cfg.initializer_range)
        outputs = {"regression": 1, "span": 2}.get(self.head, self.num_labels)
        self.bert = BertEncoder(cfg)
        self.dropout = layers.Dropout(cfg.hidden_dropout_rate)
        self.classifier = layers.DenseGeneral(outputs, (layers.EMBED, None),
                                              init_stddev=cfg.initializer_range)

    def __call__(self, input_ids: Array, segment_ids: Array, input_mask: Array, *,
                 deterministic: bool, positions: Array | None = None
                 ) -> Array | tuple[Array, Array]:
        """The head's outputs. Packed rows (``positions`` given, ``input_mask`` numbering
        the examples): the sentence-level heads give ``[b, l, ...]``, each example's output
        at its first position (its ``[CLS]``), where its label sits."""
        sequence, pooled = self.bert(input_ids, segment_ids, input_mask,
                                     deterministic=deterministic, positions=positions)
        if positions is not None and self.head in ("classification", "regression"):
            features = self.packed_sentence_features(sequence, input_mask)
            logits = self.classifier(self.dropout(features, deterministic=deterministic))
            logits = logits.astype(jnp.float32)
            return logits[..., 0] if self.head == "regression" else logits
        if positions is not None and self.head == "span":
            raise ValueError("The span head reads one window a row; set DataConfig.pack = "
                             "False for SQuAD.")
        if self.head == "span":
            logits = self.classifier(sequence).astype(jnp.float32)
            masked = jnp.where(input_mask[..., None] > 0, logits, -1e9)
            return masked[..., 0], masked[..., 1]
        features = (self.sentence_features(sequence, pooled, input_mask)
                    if self.head in ("classification", "regression") else sequence)
        logits = self.classifier(self.dropout(features, deterministic=deterministic))
        logits = logits.astype(jnp.float32)
        return logits[..., 0] if self.head == "regression" else logits

    def sentence_features(self, sequence: Array, pooled: Array, input_mask: Array) -> Array:
        """``[b, h]``: what a sentence-level head reads, by ``pooling``."""
        if self.pooling == "pooler":
            return pooled
        if self.pooling == "pooler_reinit":
            return jnp.tanh(self.head_pooler(sequence[:, 0]))
        if self.pooling == "cls":
            return sequence[:, 0]
        mask = input_mask[..., None].astype(sequence.dtype)
        return jnp.sum(sequence * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)

    def packed_sentence_features(self, sequence: Array, example_ids: Array) -> Array:
        """``[b, l, h]``: at each position, what a sentence-level head reads of that
        position's example if the position is the example's first (``[CLS]``): the pooler
        of it, the hidden state, or the mean over the example's tokens."""
        if self.pooling == "pooler":
            return self.bert.pool(sequence)
        if self.pooling == "pooler_reinit":
            return jnp.tanh(self.head_pooler(sequence))
        if self.pooling == "cls":
            return sequence
        same = layers.segment_mask(example_ids, example_ids)[:, 0].astype(sequence.dtype)
        return (same @ sequence) / jnp.maximum(jnp.sum(same, axis=-1, keepdims=True), 1.0)


@dataclasses.dataclass(frozen=True)
class BertFineTuningModel(Model):
    """Fine-tuning objective of one head (see ``BertForFineTuning``).

    Every batch carries ``example_weight`` [b] (0 for the rows that pad the last batch
    of an evaluation split, so no example is dropped or counted twice). Labels:
    ``label`` [b] (int32; float32 for regression), ``start_position``/``end_position``
    [b] (span), ``label_ids``/``label_weights`` [b, l] (token: the first wordpiece of
    each word carries the word's tag). Losses are means over the weighted examples
    (tokens for ``token``); span loss = (start CE + end CE) / 2 as in ``run_squad.py``.

    Packed batches (``DataConfig.pack``: several examples a row, ``tasks.finetuning.
    pack_examples``) add ``positions`` [b, l]; ``input_mask`` numbers the examples of a
    row, and ``label`` / ``example_weight`` are [b, l], set at each example's first
    position (``label_ids`` / ``label_weights`` stay per position).
    """

    input_format = "finetuning"
    supports_packing = True  # classification, regression and token heads

    config: BertConfig = BertConfig()
    head: str = "classification"
    num_labels: int = 2
    max_seq_length: int = 128
    pooling: str = "pooler"

    @property
    def network(self) -> BertForFineTuning:
        return BertForFineTuning(self.config, self.head, self.num_labels, self.pooling)

    @property
    def input_vocab_size(self) -> int:
        return self.config.vocab_size

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        seq = (batch_size, self.max_seq_length)
        batch = {
            "input_ids": np.zeros(seq, np.int32),
            "input_mask": np.ones(seq, np.int32),
            "segment_ids": np.zeros(seq, np.int32),
            "example_weight": np.ones((batch_size,), np.float32),
        }
        if self.head == "classification":
            batch["label"] = np.zeros((batch_size,), np.int32)
        elif self.head == "regression":
            batch["label"] = np.zeros((batch_size,), np.float32)
        elif self.head == "span":
            batch["start_position"] = np.zeros((batch_size,), np.int32)
            batch["end_position"] = np.zeros((batch_size,), np.int32)
        else:
            batch["label_ids"] = np.zeros(seq, np.int32)
            batch["label_weights"] = np.zeros(seq, np.float32)
        return batch

    def init(self, rng: Array, batch: Batch) -> dict:
        params_rng, dropout_rng = jax.random.split(rng)
        return self.network.init(
            {"params": params_rng, "dropout": dropout_rng}, batch["input_ids"],
            batch["segment_ids"], batch["input_mask"], deterministic=True)["params"]

    def apply(self, params: dict, batch: Batch, *, rng: Array | None = None,
              train: bool = False) -> Array | tuple[Array, Array]:
        """The head's logits (see ``BertForFineTuning``)."""
        return self.network.apply(
            {"params": params}, batch["input_ids"], batch["segment_ids"],
            batch["input_mask"], deterministic=not train, positions=batch.get("positions"),
            rngs={"dropout": rng} if train else None)

    def contextual_vectors(self, params: dict, batch: Batch) -> dict[str, Array]:
        """Every encoder layer per wordpiece (``encoder_layers``)."""
        return encoder_layers(self.config, params, batch)

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        outputs = self.apply(params, batch, rng=rng, train=train)
        weight = batch["example_weight"].astype(jnp.float32)
        metrics: Metrics = {}
        if self.head == "classification":
            nll, correct, count = weighted_cross_entropy(outputs, batch["label"], weight)
            metrics["accuracy"] = (correct, count)
        elif self.head == "regression":
            squared = jnp.square(outputs - batch["label"].astype(jnp.float32))
            nll, count = jnp.sum(squared * weight), jnp.sum(weight)
        elif self.head == "span":
            start_logits, end_logits = outputs
            s_nll, s_ok, count = weighted_cross_entropy(
                start_logits, batch["start_position"], weight)
            e_nll, e_ok, _ = weighted_cross_entropy(end_logits, batch["end_position"], weight)
            nll = (s_nll + e_nll) / 2
            metrics["start_accuracy"] = (s_ok, count)
            metrics["end_accuracy"] = (e_ok, count)
        else:
            token_weight = batch["label_weights"] * (weight if weight.ndim == 2
                                                     else weight[:, None])
            nll, correct, count = weighted_cross_entropy(
                outputs, batch["label_ids"], token_weight)
            metrics["token_accuracy"] = (correct, count)
        loss = nll / jnp.maximum(count, 1e-5)
        metrics["loss"] = (loss, jnp.ones(()))
        metrics["task_loss"] = (nll, count)
        metrics["packing_efficiency"] = packing_efficiency(batch["input_mask"])
        return loss, metrics

    def check_task(self, task: TaskInfo) -> None:
        """The task's head and number of labels must be this model's."""
        if task.head is None:
            raise ValueError(f"{task.name!r} is not a fine-tuning task; a fine-tuning model "
                             "trains on one (tasks/finetuning.py).")
        if (task.head, task.num_labels) != (self.head, self.num_labels if self.head in (
                "classification", "token") else 1):
            raise ValueError(
                f"Task {task.name!r} needs head={task.head!r} with {task.num_labels} labels "
                f"{list(task.label_names)}, but the model has head={self.head!r}, "
                f"num_labels={self.num_labels}: set --gin.HEAD={task.head!r} "
                f"--gin.NUM_LABELS={task.num_labels}.")

    def predict_batch(self, params: dict, batch: Batch, **unused: Any) -> dict[str, Array]:
        """Evaluation outputs per example: ``logits`` and ``class_ids`` (classification),
        ``prediction`` (regression), ``start_logits``/``end_logits`` (span; the answer
        span is chosen on the host, ``pretrain_lm.evaluation``), ``token_predictions``
        (token: argmax tag id per position)."""
        outputs = self.apply(params, batch, train=False)
        if self.head == "classification":
            return {"logits": outputs,
                    "class_ids": jnp.argmax(outputs, axis=-1).astype(jnp.int32)}
        if self.head == "regression":
            return {"prediction": outputs}
        if self.head == "span":
            return {"start_logits": outputs[0], "end_logits": outputs[1]}
        return {"token_predictions": jnp.argmax(outputs, axis=-1).astype(jnp.int32)}

    def flops_per_example(self) -> float:
        """3x the forward matmul FLOPs of the encoder, pooler and head."""
        cfg, seq = self.config, self.max_seq_length
        h, i = cfg.hidden_size, cfg.intermediate_size
        per_token_layer = 2 * 4 * h * h + 2 * 2 * h * i + 2 * 2 * seq * h
        outputs = {"regression": 1, "span": 2}.get(self.head, self.num_labels)
        head = 2 * h * outputs * (1 if self.head in ("classification", "regression") else seq)
        return 3.0 * (seq * cfg.num_layers * per_token_layer + 2 * h * h + head)
