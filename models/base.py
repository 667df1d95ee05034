"""The one small interface between a model and the trainer.

A model in this codebase is a pure Flax network plus a thin *objective* wrapper
that says how to initialise it from an example batch and how to turn a batch into
a scalar loss and metrics. The trainer (``pretrain_lm/trainer.py``) knows nothing
else about the model; the optimizer, sharding and data belong to the trainer config.

Metrics are returned as ``{name: (total, count)}`` pairs, summed over the batch,
so that averages over many steps (and over hosts) are exact:
``average = sum(total) / sum(count)``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import jax
import numpy as np

Array = jax.Array
Batch = Mapping[str, Array]
Metrics = dict[str, tuple[Array, Array]]
# ``step_fn(token_ids int32[n], state, position int32[]) -> (logits [n, vocab], state)``
StepFn = Callable[[Array, Any, Array], tuple[Array, Any]]


class TaskInfo(Protocol):
    """What ``Model.check_task`` may know of a task (``tasks.task_info(name)`` gives it;
    models do not import ``tasks/``)."""

    name: str
    vocab_sizes: Mapping[str, int]  # each output feature's vocabulary size
    head: str | None                # fine-tuning head, None for other tasks
    label_names: tuple[str, ...]    # fine-tuning labels
    tag_names: tuple[str, ...] | None  # a word-level tagging task's tags

    @property
    def num_labels(self) -> int: ...


class Model(abc.ABC):
    """Objective wrapper the trainer trains; subclasses wrap one Flax network.

    ``input_format`` names the batches the model reads (``tasks.formats``:
    ``bert_pretraining``, ``finetuning``, ``seq2seq``, ``decoder``, ``bptt_stream``,
    ``word_level``); the trainer asks ``tasks.get_dataset`` for that format, which
    refuses a task of another kind. None: the format is inferred from the task.
    """

    input_format: ClassVar[str | None] = None
    # Reads packed rows (``DataConfig.pack``): several examples a row, kept apart by the
    # ``*_segment_ids`` / ``*_positions`` features (``layers.segment_mask``).
    supports_packing: ClassVar[bool] = False

    @abc.abstractmethod
    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        """A zero batch with the shapes and dtypes the model consumes (for init/planning)."""

    @abc.abstractmethod
    def init(self, rng: Array, batch: Batch) -> dict:
        """Initial parameters (boxed with logical partitioning metadata)."""

    @abc.abstractmethod
    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        """Scalar training loss and summed metrics for one batch."""

    def init_state(self, batch_size: int) -> dict:
        """Non-trained state carried from each training step to the next and checkpointed
        with the parameters (a recurrent LM's hidden state across consecutive batches of
        its streams, batch-norm statistics); ``{}``, the default, for stateless models."""
        del batch_size
        return {}

    def eval_state(self, state: dict, batch_size: int) -> dict:
        """The state an evaluation pass starts from (default: the training state)."""
        del batch_size
        return state

    def loss_with_state(self, params: dict, state: dict, batch: Batch, *,
                        rng: Array | None, train: bool) -> tuple[Array, Metrics, dict]:
        """``loss`` that also returns the next state; stateful models override it."""
        loss, metrics = self.loss(params, batch, rng=rng, train=train)
        return loss, metrics, state

    def predict_batch(self, params: dict, batch: Batch, **decode_options: Any
                      ) -> dict[str, Array]:
        """Predictions per example, ``{name: [batch, ...]}``: class logits and ids, a
        regression value, span logits, tags, or generated token ids (translations,
        continuations; ``decode_options`` choose the decoder). Jit-compatible."""
        del params, batch, decode_options
        raise NotImplementedError(
            f"{type(self).__name__} gives no per-example predictions: implement "
            "predict_batch(params, batch) or predict_with_state(params, state, batch).")

    def score_batch(self, params: dict, batch: Batch) -> Array:
        """Log-likelihood ``[batch]`` of each example's targets under the model (natural
        log, summed over the example's weighted target positions). Jit-compatible."""
        del params, batch
        raise NotImplementedError(f"{type(self).__name__} does not score examples.")

    def contextual_vectors(self, params: dict, batch: Batch) -> dict[str, Array]:
        """Each layer's representation ``[batch, positions, dim]`` of every input position,
        lowest layer first, no dropout: what users of ELMo, CoVe and BERT extract for their
        own text (``python -m pretrain_lm.infer --mode=vectors``). Jit-compatible."""
        del params, batch
        raise NotImplementedError(f"{type(self).__name__} gives no contextual vectors; the "
                                  "BERT, ELMo and CoVe models do.")

    def predict_with_state(self, params: dict, state: dict, batch: Batch
                           ) -> dict[str, Array]:
        """``predict_batch`` from the params and the model state the run checkpointed
        (batch-norm statistics); the default ignores the state."""
        del state
        return self.predict_batch(params, batch)

    def tokens_per_example(self, batch: Mapping[str, np.ndarray]) -> int:
        """Sequence positions per example (for tokens/s): the width of ``input_ids``."""
        return int(batch["input_ids"].shape[-1])

    def flops_per_example(self) -> float | None:
        """Model FLOPs of one training example (forward + backward), counted from the
        config: matmuls only, backward = 2x forward. None if the model does not say."""
        return None

    @property
    def input_vocab_size(self) -> int | None:
        """Size of the token-id space the model embeds (checked against the task's)."""
        return None

    def check_task(self, task: TaskInfo) -> None:
        """Raises a clear error if the task's examples do not fit this model (default: ok)."""
        del task

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        """Extra metrics computed from averaged ones (e.g. perplexity from a loss)."""
        return {}


class AutoregressiveDecoding(Model):
    """The decoding-state protocol that the Transformer (MT) and GPT share, and the
    ``predict_batch`` it gives them: greedy, sampling or beam search (``models.decoding``).

    * ``decode_state(params, batch, max_length)``: the state before the first step, built
      from the batch's *inputs*: the source ids ``encoder_input_tokens`` of a translation
      model, the prompt ids ``prompt_tokens`` (right-padded with 0) of a language model.
      Leaves that all beams of one example share go under ``state["constants"]`` (beam
      search tiles them once and never reorders them).
    * ``step_fn(params)``: ``StepFn``; at step ``i`` it is fed the id at position ``i``
      (``decoder_start_id`` at step 0) and returns the logits of position ``i + 1``.
    * ``grows_cache``: True for a model whose state keeps a ``MultiHeadAttention``
      key/value cache under ``"cache"`` (``grow_decode_state`` pads it). It then decodes
      with a cache that starts at 32 positions and doubles while a sequence is
      unfinished (``decoding.cache_sizes``) instead of one of ``max_length``: the same
      results, with each step's attention and beam reordering over the positions in use.
    """

    decoder_start_id: int = 0
    eos_id: int = 1
    grows_cache: ClassVar[bool] = False

    def grow_decode_state(self, state: dict, length: int) -> dict:
        """``state`` with its key/value cache zero-padded to ``length`` positions."""
        from models import layers

        return {**state, "cache": layers.grow_kv_cache(state["cache"], length)}

    @abc.abstractmethod
    def decode_state(self, params: dict, batch: Batch, max_length: int) -> Any:
        """The initial decoding state for the batch's inputs and ``max_length`` steps."""

    @abc.abstractmethod
    def step_fn(self, params: dict) -> StepFn:
        """The one-position step of the decoder (a key/value cache in the state)."""

    @abc.abstractmethod
    def default_decode_length(self, batch: Batch) -> int:
        """Steps decoded when ``max_length`` is not given (static)."""

    def predict_batch(self, params: dict, batch: Batch, *, method: str = "greedy",
                      max_length: int | None = None, beam_size: int = 4, alpha: float = 0.6,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                      rng: Array | None = None, eos_id: int | None = None, **unused: Any
                      ) -> dict[str, Array]:
        """``{"tokens": int32[b, max_length]}``: each row's greedy, sampled or best-beam
        ids (without the start id, EOS included, 0 after it; ``eos_id`` defaults to the
        model's). Beam search adds ``beams``
        ``[b, beam_size, max_length]`` and their length-penalised ``beam_scores``."""
        from models import decoding

        if unused:
            raise TypeError(f"Unknown decoding options {sorted(unused)}.")
        max_length = max_length or self.default_decode_length(batch)
        rows = next(iter(batch.values())).shape[0]
        sizes = decoding.cache_sizes(max_length) if self.grows_cache else (max_length,)
        state = self.decode_state(params, batch, sizes[0])
        step = self.step_fn(params)
        common = dict(bos_id=self.decoder_start_id, eos_id=self.eos_id if eos_id is None
                      else eos_id, max_length=max_length, batch_size=rows,
                      cache_sizes=sizes, grow=self.grow_decode_state if self.grows_cache
                      else None)
        if method == "greedy":
            return {"tokens": decoding.greedy(step, state, **common)[0]}
        if method == "sample":
            if rng is None:
                raise ValueError("method='sample' needs an rng key.")
            return {"tokens": decoding.sample(step, state, rng, temperature=temperature,
                                              top_k=top_k, top_p=top_p, **common)[0]}
        if method == "beam":
            beams, scores = decoding.beam_search(step, state, beam_size=beam_size,
                                                 alpha=alpha, **common)
            return {"tokens": beams[:, 0], "beams": beams, "beam_scores": scores}
        raise ValueError(f"method must be 'greedy', 'sample' or 'beam', got {method!r}.")


class Seq2SeqObjective(Model):
    """The teacher-forced objective of the translation models (the Transformer, CoVe's
    MT-LSTM): label-smoothed cross-entropy of each next target piece, the unsmoothed
    negative log-likelihood and token accuracy as metrics, perplexity derived from the
    NLL. Subclasses give ``apply`` (logits ``[b, t, vocab]`` of seqio's
    ``EncDecFeatureConverter`` batches) and ``label_smoothing``, ``max_source_length``
    and ``max_target_length`` attributes."""

    input_format = "seq2seq"

    label_smoothing: float
    max_source_length: int
    max_target_length: int

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        source = (batch_size, self.max_source_length)
        target = (batch_size, self.max_target_length)
        return {"encoder_input_tokens": np.ones(source, np.int32),
                "decoder_target_tokens": np.ones(target, np.int32),
                "decoder_input_tokens": np.ones(target, np.int32),
                "decoder_loss_weights": np.ones(target, np.float32)}

    def tokens_per_example(self, batch: Mapping[str, np.ndarray]) -> int:
        return int(batch["decoder_target_tokens"].shape[-1])

    @abc.abstractmethod
    def apply(self, params: dict, batch: Batch, *, rng: Array | None = None,
              train: bool = False) -> Array:
        """Next-token logits ``[b, target_length, vocab]``."""

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        import jax.numpy as jnp

        from models import layers

        logits = self.apply(params, batch, rng=rng, train=train)
        weights = batch["decoder_loss_weights"].astype(jnp.float32)
        smoothed, nll, correct, count = layers.label_smoothed_cross_entropy(
            logits, batch["decoder_target_tokens"], weights, self.label_smoothing)
        loss = smoothed / jnp.maximum(count, 1.0)
        return loss, {"loss": (loss, jnp.ones(())), "nll": (nll, count),
                      "token_accuracy": (correct, count),
                      "packing_efficiency": packing_efficiency(weights)}

    def score_batch(self, params: dict, batch: Batch) -> Array:
        from models import layers

        layers.refuse_packed(batch, "score_batch gives one log-likelihood a row")
        return layers.sequence_log_likelihood(self.apply(params, batch),
                                              batch["decoder_target_tokens"],
                                              batch["decoder_loss_weights"])

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        return {"perplexity": perplexity(averages["nll"])} if "nll" in averages else {}


def packing_efficiency(weights: Array) -> tuple[Array, Array]:
    """``(real target tokens, target positions)`` of a batch: averaged, the share of the
    computed positions that carry a token (padding efficiency; near 1 when packed)."""
    import jax.numpy as jnp

    return jnp.sum(weights > 0).astype(jnp.float32), jnp.asarray(weights.size, jnp.float32)


def decoder_lm_batch(batch_size: int, length: int) -> dict[str, np.ndarray]:
    """An example batch of seqio's ``DecoderFeatureConverter`` features (language models)."""
    shape = (batch_size, length)
    return {"decoder_target_tokens": np.ones(shape, np.int32),
            "decoder_input_tokens": np.ones(shape, np.int32),
            "decoder_loss_weights": np.ones(shape, np.float32)}


def perplexity(mean_nll: float) -> float:
    """``exp(mean negative log-likelihood)``, saturating at ``exp(88)`` ~ 1.7e38 (within
    float32, which TensorBoard's scalar summaries hold) instead of overflowing."""
    return math.exp(min(mean_nll, 88.0))
