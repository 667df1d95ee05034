"""AWD-LSTM (Merity et al., 2018), the language model under ULMFiT (Howard & Ruder, 2018).

A stack of ``layers.LSTM`` layers (3 x 1150 cells, the last one as wide as the 400-wide
embedding so that the softmax can be tied to it) with every regulariser the paper depends
on, each magnitude multiplied by one ``drop_mult``:

* embedding dropout: whole words dropped (rows of the embedding table, one mask per call);
* variational ("locked") dropout on the embedded inputs, between layers and on the output:
  one mask per sequence, the same at every time step;
* weight drop: DropConnect on each layer's hidden-to-hidden weights (one mask per call);
* activation regularisation (AR, ``alpha * mean(dropped output^2)``) and temporal AR
  (TAR, ``beta * mean((h_t - h_{t-1})^2)`` on the undropped output).

``AWDLSTMLanguageModel`` carries the hidden state of every layer from one batch to the next
(``Model.init_state``): row ``r`` of batch ``k + 1`` must continue row ``r`` of batch ``k``,
which the BPTT-stream LM tasks produce. Dropout defaults are fastai's for the ULMFiT LM.

ULMFiT's backward models are these same networks on documents read right to left: the
direction lives in the data (``DataConfig.reverse``: reversed BPTT streams for the LM, each
document's ids reversed with the padding at the end for the classifier), so the models
need no option, and the run records it (``vocabulary.json``) so that a backward classifier
cannot start from a forward LM. ``pretrain_lm.tools.ensemble`` averages the class probabilities
of the forward and backward classifiers (``predict_with_state``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import layers
from models.base import Batch, Metrics, Model, TaskInfo, decoder_lm_batch, perplexity

Array = jax.Array
State = list[tuple[Array, Array]]


@dataclasses.dataclass(frozen=True)
class AWDLSTMConfig:
    """Sizes and dropout magnitudes (each scaled by ``drop_mult``)."""

    vocab_size: int = 60000
    embed_dim: int = 400
    hidden_size: int = 1150
    num_layers: int = 3
    embed_dropout: float = 0.02   # whole words
    input_dropout: float = 0.25   # locked, on the embedded inputs
    hidden_dropout: float = 0.15  # locked, between LSTM layers
    weight_dropout: float = 0.2   # DropConnect on hidden-to-hidden weights
    output_dropout: float = 0.1   # locked, on the last layer's output
    drop_mult: float = 1.0
    init_range: float = 0.1       # embeddings ~ uniform(-0.1, 0.1), as fastai

    def layer_sizes(self) -> list[int]:
        """Cells per layer: ``hidden_size`` except the last, which matches the embedding."""
        return [self.hidden_size] * (self.num_layers - 1) + [self.embed_dim]

    def lstm_flops_per_token(self) -> int:
        """Forward matmul FLOPs of the stack per token: input and recurrent gates."""
        sizes = self.layer_sizes()
        inputs = [self.embed_dim, *sizes[:-1]]
        return sum(2 * 4 * h * (i + h) for h, i in zip(sizes, inputs, strict=True))

    def rate(self, name: str) -> float:
        return getattr(self, f"{name}_dropout") * self.drop_mult


class LockedDropout(nn.Module):
    """Variational dropout on ``[batch, time, features]``: one mask per sequence."""

    rate: float

    @nn.compact
    def __call__(self, x: Array, *, deterministic: bool) -> Array:
        if deterministic or self.rate == 0.0:
            return x
        mask = layers.Dropout(self.rate)(jnp.ones((x.shape[0], 1, x.shape[2]), x.dtype),
                                         deterministic=False)
        return x * mask


class AWDLSTM(nn.Module):
    """Token ids -> embedding (with word dropout) -> LSTM stack, and the tied softmax
    (its bias ``output_bias`` only with ``lm_head``)."""

    config: AWDLSTMConfig
    lm_head: bool = True

    def setup(self) -> None:
        cfg = self.config

        def uniform(key: Array, shape: tuple[int, ...], dtype: Any) -> Array:
            return jax.random.uniform(key, shape, dtype, -cfg.init_range, cfg.init_range)

        self.embedding = self.param(
            "embedding", nn.with_logical_partitioning(uniform, (layers.VOCAB, layers.EMBED)),
            (cfg.vocab_size, cfg.embed_dim), jnp.float32)
        if self.lm_head:
            self.output_bias = self.param(
                "output_bias", nn.with_logical_partitioning(nn.initializers.zeros,
                                                            (layers.VOCAB,)),
                (cfg.vocab_size,), jnp.float32)
        self.lstms = [layers.LSTM(size, weight_drop=cfg.rate("weight"), name=f"lstm_{i}")
                      for i, size in enumerate(cfg.layer_sizes())]
        self.word_dropout = layers.Dropout(cfg.rate("embed"))
        self.input_dropout = LockedDropout(cfg.rate("input"))
        self.hidden_dropouts = [LockedDropout(cfg.rate("hidden"))
                                for _ in range(cfg.num_layers - 1)]
        self.output_dropout = LockedDropout(cfg.rate("output"))

    def initial_state(self, batch_size: int) -> State:
        return [(jnp.zeros((batch_size, n)), jnp.zeros((batch_size, n)))
                for n in self.config.layer_sizes()]

    def __call__(self, ids: Array, mask: Array | None = None, state: State | None = None, *,
                 deterministic: bool = True) -> tuple[list[Array], list[Array], State]:
        """Returns ``(raw_outputs, dropped_outputs, state)``: each layer's output before and
        after its locked dropout (the last one's dropped output feeds the softmax)."""
        x = self.input_dropout(self.embed(ids, deterministic=deterministic),
                               deterministic=deterministic)
        state = state if state is not None else self.initial_state(ids.shape[0])
        raw, dropped, new_state = [], [], []
        for i, lstm in enumerate(self.lstms):
            out, layer_state = lstm(x, mask, state[i], deterministic=deterministic)
            new_state.append(layer_state)
            raw.append(out)
            last = i == len(self.lstms) - 1
            dropout = self.output_dropout if last else self.hidden_dropouts[i]
            x = dropout(out, deterministic=deterministic)
            dropped.append(x)
        return raw, dropped, new_state

    def embed(self, ids: Array, *, deterministic: bool = True) -> Array:
        """Embedding lookup with embedding dropout (whole words)."""
        x = jnp.take(self.embedding, ids, axis=0)
        if not deterministic and self.config.rate("embed") > 0:
            # Dropping row v of the table for this call = dropping word v everywhere.
            keep = self.word_dropout(jnp.ones((self.config.vocab_size, 1)),
                                     deterministic=False)
            x = x * jnp.take(keep, ids, axis=0)
        return x

    def logits(self, x: Array) -> Array:
        """The softmax tied to the embedding: ``x @ embedding.T + bias``."""
        return jnp.einsum("...e,ve->...v", x, self.embedding) + self.output_bias


@dataclasses.dataclass(frozen=True)
class AWDLSTMLanguageModel(Model):
    """Next-token prediction on ``decoder_input_tokens`` -> ``decoder_target_tokens``
    (weights ``decoder_loss_weights``), with AR/TAR, the hidden state carried from batch
    to batch when ``carry_state`` (reset for evaluation, which reads its own stream)."""

    input_format = "bptt_stream"

    config: AWDLSTMConfig = dataclasses.field(default_factory=AWDLSTMConfig)
    max_length: int = 70
    alpha: float = 2.0  # AR
    beta: float = 1.0   # TAR
    carry_state: bool = True

    @property
    def network(self) -> AWDLSTM:
        return AWDLSTM(self.config)

    @property
    def input_vocab_size(self) -> int:
        return self.config.vocab_size

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        return decoder_lm_batch(batch_size, self.max_length)

    def tokens_per_example(self, batch: Any) -> int:
        return int(batch["decoder_target_tokens"].shape[-1])

    def init(self, rng: Array, batch: Batch) -> dict:
        return self.network.init({"params": rng}, batch["decoder_input_tokens"])["params"]

    def init_state(self, batch_size: int) -> dict:
        if not self.carry_state:
            return {}
        return {"lstm": self.network.initial_state(batch_size)}

    def eval_state(self, state: dict, batch_size: int) -> dict:
        return self.init_state(batch_size)

    def loss_with_state(self, params: dict, state: dict, batch: Batch, *,
                        rng: Array | None, train: bool) -> tuple[Array, Metrics, dict]:
        network = self.network
        weights = batch["decoder_loss_weights"].astype(jnp.float32)
        valid = weights > 0
        raw, dropped, new_state = network.apply(
            {"params": params}, batch["decoder_input_tokens"], valid,
            state.get("lstm"), deterministic=not train,
            rngs={"dropout": rng} if train else None)
        logits = network.apply({"params": params}, dropped[-1], method=AWDLSTM.logits)
        _, nll, correct, count = layers.label_smoothed_cross_entropy(
            logits, batch["decoder_target_tokens"], weights, 0.0)
        denominator = jnp.maximum(count, 1.0)
        loss = nll / denominator
        metrics: Metrics = {"nll": (nll, count), "token_accuracy": (correct, count)}
        if train:
            ar = self.alpha * jnp.sum(jnp.mean(dropped[-1] ** 2, -1) * weights) / denominator
            steps = weights[:, 1:] * weights[:, :-1]
            tar = self.beta * jnp.sum(
                jnp.mean((raw[-1][:, 1:] - raw[-1][:, :-1]) ** 2, -1) * steps
            ) / jnp.maximum(jnp.sum(steps), 1.0)
            loss = loss + ar + tar
            metrics.update(ar=(ar, jnp.ones(())), tar=(tar, jnp.ones(())))
        metrics["loss"] = (loss, jnp.ones(()))
        new = {"lstm": jax.lax.stop_gradient(new_state)} if self.carry_state else {}
        return loss, metrics, new

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        batch_size = batch["decoder_input_tokens"].shape[0]
        loss, metrics, _ = self.loss_with_state(params, self.init_state(batch_size), batch,
                                                rng=rng, train=train)
        return loss, metrics

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        return {"perplexity": perplexity(averages["nll"])} if "nll" in averages else {}

    def flops_per_example(self) -> float:
        """3x forward matmul FLOPs: gates (input + recurrent) per layer, and the softmax."""
        cfg = self.config
        return 3.0 * self.max_length * (cfg.lstm_flops_per_token()
                                        + 2 * cfg.embed_dim * cfg.vocab_size)


class ConcatPoolingClassifier(AWDLSTM):
    """ULMFiT's classifier: the AWD-LSTM encoder (the LM's parameter names, so a
    fine-tuned LM's ``embedding`` / ``lstm_*`` load as they are) read with BPT3C, concat
    pooling ``[h_T, maxpool(H), meanpool(H)]`` over the last layer's outputs, and two blocks
    ``BatchNorm -> Dropout -> Dense`` (ReLU after the first).

    BPT3C: the document is read in chunks of ``bptt`` ids with the state carried from
    chunk to chunk; gradients flow through the last ``backprop_chunks`` chunks only (the
    earlier ones are constants, as fastai's ``max_len``), pooling covers the whole
    document. ``H`` is the dropped output; padded positions are excluded from pooling.
    """

    lm_head: bool = False
    num_classes: int = 2
    hidden_dim: int = 50
    pooled_dropout: float = 0.4  # scaled by drop_mult, as the encoder's
    hidden_dropout_rate: float = 0.1
    bptt: int = 70
    backprop_chunks: int = 20

    def setup(self) -> None:
        super().setup()
        self.norms = [nn.BatchNorm(momentum=0.9, epsilon=1e-5, name=f"classifier_norm_{i}")
                      for i in range(2)]
        self.denses = [nn.Dense(self.hidden_dim, name="classifier_hidden"),
                       nn.Dense(self.num_classes, name="classifier_output")]
        self.head_dropouts = [layers.Dropout(self.pooled_dropout * self.config.drop_mult),
                              layers.Dropout(self.hidden_dropout_rate)]

    def classify(self, ids: Array, mask: Array, *, deterministic: bool = True) -> Array:
        """Class logits ``[batch, num_classes]`` of the documents ``ids`` ``[batch, time]``."""
        time = ids.shape[1]
        starts = list(range(0, time, self.bptt))
        state, outputs = None, []
        for k, start in enumerate(starts):
            chunk = slice(start, start + self.bptt)
            _, dropped, state = self(ids[:, chunk], mask[:, chunk], state,
                                     deterministic=deterministic)
            out = dropped[-1]
            if k < len(starts) - self.backprop_chunks:
                out, state = jax.lax.stop_gradient((out, state))
            outputs.append(out)
        hidden = jnp.concatenate(outputs, axis=1)
        valid = mask.astype(bool)[..., None]
        lengths = jnp.maximum(valid.sum(axis=1), 1)
        last = jnp.take_along_axis(hidden, (lengths - 1)[:, None, :], axis=1)[:, 0]
        max_pool = jnp.max(jnp.where(valid, hidden, -jnp.inf), axis=1)
        max_pool = jnp.where(jnp.isfinite(max_pool), max_pool, 0.0)
        mean_pool = jnp.sum(jnp.where(valid, hidden, 0.0), axis=1) / lengths
        x = jnp.concatenate([last, max_pool, mean_pool], axis=-1)
        for i in range(2):
            x = self.norms[i](x, use_running_average=deterministic)
            x = self.head_dropouts[i](x, deterministic=deterministic)
            x = self.denses[i](x)
            if i == 0:
                x = jax.nn.relu(x)
        return x


@dataclasses.dataclass(frozen=True)
class AWDLSTMClassifier(Model):
    """Document classification on the fine-tuning features (``input_ids``,
    ``input_mask``, ``label``, ``example_weight``; ``tasks.finetuning``) with
    :class:`ConcatPoolingClassifier`; its batch-norm statistics are the model state the
    trainer carries and checkpoints. Reports accuracy and the error rate (ULMFiT's)."""

    input_format = "finetuning"

    config: AWDLSTMConfig = dataclasses.field(default_factory=AWDLSTMConfig)
    num_classes: int = 2
    max_seq_length: int = 512
    bptt: int = 70
    backprop_chunks: int = 20
    pooled_dropout: float = 0.4

    @property
    def network(self) -> ConcatPoolingClassifier:
        return ConcatPoolingClassifier(
            self.config, num_classes=self.num_classes, bptt=self.bptt,
            backprop_chunks=self.backprop_chunks, pooled_dropout=self.pooled_dropout)

    @property
    def input_vocab_size(self) -> int:
        return self.config.vocab_size

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        shape = (batch_size, self.max_seq_length)
        return {"input_ids": np.ones(shape, np.int32), "input_mask": np.ones(shape, np.int32),
                "segment_ids": np.zeros(shape, np.int32),
                "label": np.zeros((batch_size,), np.int32),
                "example_weight": np.ones((batch_size,), np.float32)}

    def _variables(self, rng: Array, batch: Batch) -> dict:
        return self.network.init({"params": rng}, batch["input_ids"], batch["input_mask"],
                                 method=ConcatPoolingClassifier.classify)

    def init(self, rng: Array, batch: Batch) -> dict:
        return self._variables(rng, batch)["params"]

    def init_state(self, batch_size: int) -> dict:
        batch = self.example_batch(batch_size)
        return {"batch_stats": self._variables(jax.random.key(0), batch)["batch_stats"]}

    def check_task(self, task: TaskInfo) -> None:
        if task.head != "classification" or task.num_labels != self.num_classes:
            raise ValueError(
                f"Task {task.name!r} needs head={task.head!r} with {task.num_labels} labels "
                f"{list(task.label_names)}, but the classifier has {self.num_classes} "
                f"classes: set --gin.NUM_CLASSES={task.num_labels}.")

    def logits(self, params: dict, state: dict, batch: Batch, *, rng: Array | None,
               train: bool) -> tuple[Array, dict]:
        """Class logits and the updated model state (batch statistics move in training)."""
        variables = {"params": params, "batch_stats": state["batch_stats"]}
        out = self.network.apply(
            variables, batch["input_ids"], batch["input_mask"], deterministic=not train,
            method=ConcatPoolingClassifier.classify, rngs={"dropout": rng} if train else None,
            mutable=["batch_stats"] if train else False)
        if train:
            logits, updates = out
            return logits, {"batch_stats": updates["batch_stats"]}
        return out, state

    def loss_with_state(self, params: dict, state: dict, batch: Batch, *,
                        rng: Array | None, train: bool) -> tuple[Array, Metrics, dict]:
        logits, state = self.logits(params, state, batch, rng=rng, train=train)
        weights = batch["example_weight"].astype(jnp.float32)
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
        nll = -jnp.take_along_axis(log_probs, batch["label"][:, None], axis=-1)[:, 0]
        total = jnp.maximum(jnp.sum(weights), 1e-9)
        loss = jnp.sum(nll * weights) / total
        correct = jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * weights)
        return loss, {"loss": (loss, jnp.ones(())), "accuracy": (correct, jnp.sum(weights))
                      }, state

    def predict_with_state(self, params: dict, state: dict, batch: Batch
                           ) -> dict[str, Array]:
        """``{"logits": [batch, num_classes]}`` in evaluation mode (the batch statistics of
        ``state``); ``pretrain_lm.tools.ensemble`` averages their softmax over runs."""
        return {"logits": self.logits(params, state, batch, rng=None, train=False)[0]}

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        raise NotImplementedError("AWDLSTMClassifier keeps batch statistics: use "
                                  "loss_with_state (the trainer does).")

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        return {"error_rate": 1.0 - averages["accuracy"]} if "accuracy" in averages else {}

    def flops_per_example(self) -> float:
        """3x the forward matmul FLOPs of the LSTM stack (the head is negligible)."""
        return 3.0 * self.max_seq_length * self.config.lstm_flops_per_token()
