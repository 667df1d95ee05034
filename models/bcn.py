"""The biattentive classification network (BCN) that McCann et al. (2017) put CoVe into.

"Learned in Translation: Contextualized Word Vectors", Section 5: each word is
``w = [GloVe(w); CoVe(w)]`` (and optionally a character representation), then

* a feedforward layer with ReLU, ``f(w)`` (``feedforward_dim``);
* the encoder biLSTM: ``X = biLSTM(f(w^x))``; for one sentence the paper duplicates the
  input, so ``Y = X``;
* biattention: the affinities ``A = X Y^T``, normalised over the other sequence's words
  (padding masked), give each word a context summary ``C = softmax(A) Y``;
* the integrator biLSTM over ``[X; X - C; X * C]``;
* pooling over the valid words: max, mean, min and self-attentive
  (``beta = softmax(X|y v + d)``, ``x_self = sum_t beta_t x_t``), concatenated;
* a maxout network (``maxout_dims``, ``maxout_pool`` channels each) and a linear layer
  to the class logits.

Differences from the paper, for a 2-core CPU: hidden sizes 100 instead of 300; the maxout
layers are not batch-normalised; for one sentence the pooled vector is taken once (the
paper's ``[x_pool; y_pool]`` would hold it twice). The word vectors (``word_embed``) and
the MT-LSTM (``cove``, a ``cove.CoVeEncoder`` loaded with
``PretrainedParams(subtrees=("cove",), check_vocabulary=False)``) stay fixed, as in the
paper: neither gets gradients, and the optimizer freezes ``("word_embed", "cove")``.

``BCNClassifier`` is the trainer's objective on word-level classification batches
(``tasks.tagging.WordClassificationData``): cross-entropy, accuracy and the derived error
rate.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import cove, elmo, layers
from models.base import Batch, Metrics, Model, TaskInfo

Array = jax.Array

POOLS = ("max", "mean", "min", "self")


@dataclasses.dataclass(frozen=True)
class BCNConfig:
    """Sizes and options of a ``BCN`` (defaults: CPU-sized; McCann et al.: 300)."""

    vocab_size: int
    num_classes: int
    word_embed_dim: int = 50
    cove: cove.CoVeConfig | None = None   # None: GloVe alone
    char_encoder: str = "none"            # "cnn": Ma & Hovy's character CNN beside them
    char_embed_dim: int = 16
    char_filters: tuple[tuple[int, int], ...] = ((3, 30),)
    feedforward_dim: int = 100
    hidden: int = 100                     # per direction: the encoder and integrator
    pools: tuple[str, ...] = POOLS
    maxout_dims: tuple[int, ...] = (200, 100)
    maxout_pool: int = 4
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.char_encoder not in ("none", "cnn"):
            raise ValueError(f"char_encoder={self.char_encoder!r}; choose 'none' or 'cnn'.")
        if self.cove is not None and self.word_embed_dim != self.cove.vector_dim:
            raise ValueError(f"CoVe reads the word vectors: word_embed_dim="
                             f"{self.word_embed_dim} must equal cove.vector_dim="
                             f"{self.cove.vector_dim} (the vectors its MT-LSTM was trained on).")
        unknown = sorted(set(self.pools) - set(POOLS))
        if unknown or not self.pools:
            raise ValueError(f"pools={self.pools!r}: choose a non-empty subset of {POOLS}.")


def masked_pools(x: Array, mask: Array, pools: tuple[str, ...], self_scores: Array | None
                 ) -> Array:
    """``[b, t, d]`` -> ``[b, len(pools) * d]``: the named poolings over the valid steps
    (``self`` weighs the steps by ``softmax(self_scores [b, t])``)."""
    valid = mask[..., None]
    out = []
    for pool in pools:
        if pool == "max":
            out.append(jnp.max(jnp.where(valid, x, -jnp.inf), axis=1))
        elif pool == "min":
            out.append(jnp.min(jnp.where(valid, x, jnp.inf), axis=1))
        elif pool == "mean":
            count = jnp.maximum(jnp.sum(mask, axis=1, keepdims=True), 1)
            out.append(jnp.sum(jnp.where(valid, x, 0.0), axis=1) / count)
        else:
            weights = jax.nn.softmax(jnp.where(mask, self_scores, -1e9), axis=-1)
            out.append(jnp.einsum("bt,btd->bd", weights, x))
    pooled = jnp.concatenate(out, axis=-1)
    return jnp.where(mask.any(axis=1, keepdims=True), pooled, 0.0)  # an all-padding row


class Maxout(nn.Module):
    """A dense layer to ``features * pool`` units, then the max over each ``pool``."""

    features: int
    pool: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = nn.Dense(self.features * self.pool, name="dense")(x)
        return h.reshape(*h.shape[:-1], self.features, self.pool).max(axis=-1)


class BCN(nn.Module):
    """Token ids ``[b, t]`` and character ids ``[b, t, 50]`` -> class logits ``[b, k]``."""

    config: BCNConfig

    @nn.compact
    def __call__(self, token_ids: Array, char_ids: Array, *, deterministic: bool = True
                 ) -> Array:
        cfg = self.config
        mask = token_ids > 0
        dropout = layers.Dropout(cfg.dropout)
        words = jax.lax.stop_gradient(layers.Embed(
            cfg.vocab_size, cfg.word_embed_dim, init_stddev=1.0 / np.sqrt(cfg.word_embed_dim),
            name="word_embed")(token_ids))
        features = [words]
        if cfg.cove is not None:  # fixed: no gradient into CoVe
            features.append(jax.lax.stop_gradient(
                cove.CoVeEncoder(cfg.cove, name="cove")(words, mask)))
        if cfg.char_encoder == "cnn":
            features.append(elmo.CharCNN(
                elmo.plain_char_cnn_config(cfg.char_embed_dim, cfg.char_filters),
                name="chars")(char_ids))
        x = dropout(jnp.concatenate(features, axis=-1), deterministic=deterministic)
        x = nn.relu(nn.Dense(cfg.feedforward_dim, name="feedforward")(x))
        encoded = layers.BiLSTM(cfg.hidden, name="encoder")(x, mask)
        affinity = jnp.einsum("bid,bjd->bij", encoded, encoded)
        attention = jax.nn.softmax(jnp.where(mask[:, None, :], affinity, -1e9), axis=-1)
        context = jnp.einsum("bij,bjd->bid", attention, encoded)
        integrated = layers.BiLSTM(cfg.hidden, name="integrator")(
            dropout(jnp.concatenate([encoded, encoded - context, encoded * context], axis=-1),
                    deterministic=deterministic), mask)
        self_scores = (nn.Dense(1, name="self_attention")(integrated)[..., 0]
                       if "self" in cfg.pools else None)
        h = masked_pools(integrated, mask, cfg.pools, self_scores)
        for i, features_out in enumerate(cfg.maxout_dims):
            h = Maxout(features_out, cfg.maxout_pool, name=f"maxout_{i}")(
                dropout(h, deterministic=deterministic))
        return nn.Dense(cfg.num_classes, name="logits")(h)


@dataclasses.dataclass(frozen=True)
class BCNClassifier(Model):
    """The BCN's objective on word-level classification batches (``tasks/tagging.py``
    ``WordClassificationData``): ``token_ids`` / ``token_weights`` ``[b, t]``,
    ``char_ids`` ``[b, t, 50]``, ``label`` ``[b]``; a row whose weights are all 0 (the
    padding of a partial last batch) counts for nothing.

    Loss: mean cross-entropy per sentence. Metrics: ``loss``, ``accuracy`` and the derived
    ``error_rate``. ``word_embeddings`` (``[vocab_size, word_embed_dim]``, e.g.
    ``tasks.tagging.pretrained_embeddings(task)``) are the fixed word vectors."""

    input_format = "word_level"

    config: BCNConfig
    max_length: int = 64
    word_embeddings: Any = dataclasses.field(default=None, compare=False, hash=False,
                                             repr=False)

    @property
    def network(self) -> BCN:
        return BCN(self.config)

    @property
    def input_vocab_size(self) -> int:
        return self.config.vocab_size

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        shape = (batch_size, self.max_length)
        return {"token_ids": np.ones(shape, np.int32),
                "char_ids": np.ones((*shape, 50), np.int32),
                "label": np.zeros((batch_size,), np.int32),
                "token_weights": np.ones(shape, np.float32)}

    def tokens_per_example(self, batch: Any) -> int:
        return int(batch["token_ids"].shape[-1])

    def check_task(self, task: TaskInfo) -> None:
        if task.head != "classification" or "token_ids" not in task.vocab_sizes:
            raise ValueError(f"{task.name!r} is not a word-level classification task "
                             "(tasks.tagging.WordClassificationData, e.g. "
                             "bench_sst5_words_vectors); the BCN trains on one.")
        if task.num_labels != self.config.num_classes:
            raise ValueError(f"Task {task.name!r} has {task.num_labels} classes "
                             f"{list(task.label_names)}, the BCN {self.config.num_classes}: "
                             f"set --gin.NUM_CLASSES={task.num_labels}.")

    def init(self, rng: Array, batch: Batch) -> dict:
        params = self.network.init({"params": rng}, batch["token_ids"],
                                   batch["char_ids"])["params"]
        if self.word_embeddings is not None:
            params = layers.with_embedding_table(
                params, np.asarray(self.word_embeddings),
                "bind BCNConfig.vocab_size and word_embed_dim to the task's vocabulary size "
                "and the vectors' dimension.")
        return params

    def logits(self, params: dict, batch: Batch, *, rng: Array | None = None,
               train: bool = False) -> Array:
        if train and self.config.dropout > 0 and rng is None:
            raise ValueError("Training with dropout needs an rng.")
        return self.network.apply({"params": params}, batch["token_ids"], batch["char_ids"],
                                  deterministic=not train,
                                  rngs={"dropout": rng} if train and rng is not None else None)

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        logits = self.logits(params, batch, rng=rng, train=train).astype(jnp.float32)
        weights = (batch["token_weights"] > 0).any(axis=-1).astype(jnp.float32)
        labels = batch["label"]
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1)[:, 0]
        total = jnp.sum(weights)
        loss = jnp.sum(nll * weights) / jnp.maximum(total, 1.0)
        correct = jnp.sum((jnp.argmax(logits, -1) == labels) * weights)
        return loss, {"loss": (loss, jnp.ones(())), "accuracy": (correct, total)}

    def predict_batch(self, params: dict, batch: Batch, **unused: Any) -> dict[str, Array]:
        """``{"logits": [b, num_classes]}`` without dropout (``tools.ensemble`` averages
        their softmax over runs)."""
        return {"logits": self.logits(params, batch)}

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        return {"error_rate": 1.0 - averages["accuracy"]} if "accuracy" in averages else {}
