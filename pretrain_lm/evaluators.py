"""Evaluators: the benchmark metric of a split, scored from the current parameters.

The trainer's own evaluation reports the objective's loss and accuracy on
``eval_steps`` batches. An evaluator scores what a paper reports, on every example of a
split, every ``eval_every`` steps (and at step 0 and at the end):

    trainer.train.evaluators = [@evaluators.TaskMetrics()]
    evaluators.TaskMetrics.task = %MIXTURE_OR_TASK_NAME

* ``TaskMetrics``: a fine-tuning task's own metric (``TaskSpec.metric_fn``: accuracy,
  Matthews correlation, F1, Pearson/Spearman, SQuAD EM/F1, CoNLL entity F1), from
  ``predict_split`` + ``score``. ``python -m pretrain_lm.evaluate``
  (``evaluation.evaluate_checkpoints``) runs the same evaluator on saved checkpoints and
  keeps what it returns per task (``TaskMetrics.evaluate``: the examples and predictions
  too, for GLUE submission files and the truncation count).
* ``Bleu``: sacrebleu BLEU and chrF of greedy or beam translations of a translation
  split (``mt.translate_all`` + ``mt.bleu``), optionally of its first ``max_examples``.

Each returns ``{"<task>/<metric>": value}``; the trainer writes them with its own
evaluation to TensorBoard (``eval/``), ``eval/metrics.jsonl`` and the run's results. Plot
them beside the loss with ``python -m pretrain_lm.tools.plots --model_dir=RUN
--metrics=perplexity,translate_en_de_debian_l10n/bleu`` (the demo MT run's names).

``Bleu`` decodes in one process (as ``pretrain_lm.infer`` does); ``TaskMetrics`` runs on
any mesh and any number of processes. ``Predictor`` (the jitted, sharded
``Model.predict_with_state``) also serves ``pretrain_lm.tools.ensemble``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from models.base import Model
from pretrain_lm.partitioning import Partitioner


class Evaluator(abc.ABC):
    """Scores the current parameters on a benchmark split; ``{name: value}``."""

    @abc.abstractmethod
    def __call__(self, model: Model, params: Any, model_state: Any,
                 partitioner: Partitioner) -> dict[str, float]:
        ...


# ----------------------------------------------------------------------------- predicting


class Predictor:
    """Jitted, sharded ``model.predict_with_state`` over host batches that every process
    holds whole. ``abstract_params`` / ``abstract_state`` are the restore targets
    (``Checkpointer.restore_params_and_state``): the model state (batch-norm statistics of
    the AWD-LSTM classifier; ``{}`` for BERT) as ``model.init_state(state_batch_size)``
    shapes it, i.e. the training batch size where the state depends on it."""

    def __init__(self, model: Model, partitioner: Partitioner, *,
                 state_batch_size: int | None = None) -> None:
        self.model = model
        self.partitioner = partitioner
        from pretrain_lm.checkpoints import abstract_params

        self.abstract_params = abstract_params(model, partitioner)
        self.param_shardings = jax.tree.map(lambda a: a.sharding, self.abstract_params)
        replicated = partitioner.replicated()
        n = state_batch_size or partitioner.data_size
        self.abstract_state = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
            jax.eval_shape(lambda: model.init_state(n)))
        self._predict = jax.jit(
            model.predict_with_state,
            in_shardings=(self.param_shardings, replicated, partitioner.batch_sharding()),
            out_shardings=replicated)

    def __call__(self, params: Any, batch: Mapping[str, np.ndarray], state: Any = None
                 ) -> dict[str, np.ndarray]:
        sharding = self.partitioner.batch_sharding()
        device_batch = {
            k: jax.make_array_from_callback(v.shape, sharding, lambda i, v=v: v[i])
            for k, v in batch.items()}
        with self.partitioner.context():
            return jax.device_get(self._predict(params, {} if state is None else state,
                                                device_batch))


def predict_split(predictor: Predictor, params: Any, task: str, split: str, *,
                  batch_size: int, max_seq_length: int, progress: bool = True,
                  state: Any = None, length_buckets: int = 1
                  ) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Every example of ``split`` (with metadata) and the model outputs, row-aligned
    (``state``: the restored model state, for models that keep one). The last batch is
    padded with weight-0 rows: nothing is dropped.

    ``length_buckets`` > 1: batches of examples of similar length, each as wide as the
    narrowest of that many widths that holds it (``tasks.batching.length_bucketed_batches``;
    one compiled program per width); per-position outputs are padded back to
    ``max_seq_length`` (logits with -1e9, as the model masks padding), so the outputs and
    the metrics are those of full-width batches."""
    import tasks
    from tasks import batching
    from tasks import finetuning as ft

    vocab = tasks.get_vocabulary(task)
    examples = list(ft.eval_examples(task, split, max_seq_length))
    if not examples:
        raise ValueError(f"Split {split!r} of task {task!r} holds no examples.")
    if batch_size % predictor.partitioner.data_size:
        batch_size += predictor.partitioner.data_size - batch_size % predictor.partitioner.data_size
    per_position = ft.get_spec(task).head in ("span", "token")
    batches = batching.length_bucketed_batches(
        [len(ex[ft.INPUT_IDS]) for ex in examples], batch_size, max_seq_length,
        length_buckets)
    merged: dict[str, np.ndarray] = {}
    bar = tqdm(batches, desc=f"eval {task}/{split}", unit="batch",
               disable=not (progress and jax.process_index() == 0), dynamic_ncols=True)
    for indices, width in bar:
        rows = [ft.pad_example(examples[i], width, vocab.pad_id) for i in indices]
        rows += [jax.tree.map(np.zeros_like, rows[0])] * (batch_size - len(rows))
        batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        for k, v in predictor(params, batch, state).items():
            v = np.asarray(v)[:len(indices)]
            if per_position and width < max_seq_length:
                fill = -1e9 if "logits" in k else 0
                v = np.pad(v, [(0, 0), (0, max_seq_length - width)] + [(0, 0)] * (v.ndim - 2),
                           constant_values=fill)
            if k not in merged:
                merged[k] = np.zeros((len(examples), *v.shape[1:]), v.dtype)
            merged[k][indices] = v
    return examples, merged


def score(task: str, examples: Sequence[Mapping[str, Any]], outputs: Mapping[str, np.ndarray],
          *, has_labels: bool = True, **span_options: Any) -> tuple[dict[str, float], list]:
    """``(metrics, predictions)`` of one task: predictions are label names, values, tag
    sequences or answer texts; metrics are empty when the split has no labels."""
    from tasks import finetuning as ft

    spec = ft.get_spec(task)
    if spec.head == "classification":
        ids = np.argmax(outputs["logits"], axis=-1)
        predictions = [int(i) for i in ids]
        targets = [int(ex[ft.LABEL]) for ex in examples]
        has_labels = has_labels and min(targets) >= 0
    elif spec.head == "regression":
        predictions = [float(v) for v in outputs["prediction"]]
        targets = [float(ex[ft.LABEL]) for ex in examples]
        has_labels = has_labels and min(targets) >= 0
    elif spec.head == "token":
        targets, predictions = [], []
        for ex, tags in zip(examples, outputs["token_predictions"], strict=False):
            gold = [spec.label_names[t] for t in ex["word_tags"]]
            first = np.asarray(ex[ft.LABEL_WEIGHTS]) > 0
            predicted = [spec.label_names[t] for t in tags[:len(first)][first]]
            predicted += ["O"] * (len(gold) - len(predicted))  # words without a position
            targets.append(gold)
            predictions.append(predicted)
    else:
        from tasks import squad

        return squad.score_predictions(task, examples, outputs, **span_options)
    if not has_labels:
        return {}, predictions
    return spec.metric_fn(targets, predictions), predictions


# ----------------------------------------------------------------------------- evaluators


@dataclasses.dataclass
class TaskEvaluation:
    """One task's scores on a split, with the examples and predictions they came from
    (``num_truncated``: examples cut to ``max_seq_length``)."""

    task: str
    metrics: dict[str, float]
    examples: list[dict[str, np.ndarray]]
    predictions: list
    num_truncated: int


@dataclasses.dataclass
class TaskMetrics(Evaluator):
    """The fine-tuning task's metric over every example of ``split`` (of each task of a
    mixture)."""

    task: str
    split: str = "validation"
    batch_size: int = 32
    max_seq_length: int = 128
    progress: bool = False
    length_buckets: int = 1  # > 1: batches of similar length (``predict_split``)

    def __post_init__(self) -> None:
        self._predictor: Predictor | None = None

    def predictor(self, model: Model, partitioner: Partitioner) -> Predictor:
        """The compiled prediction of ``model`` (kept while the model is the same)."""
        if self._predictor is None or self._predictor.model is not model:
            self._predictor = Predictor(model, partitioner)
        return self._predictor

    def task_names(self) -> list[str]:
        """``task``, or the tasks of the mixture ``task`` names."""
        import seqio

        import tasks

        provider = tasks.get_provider(self.task)
        return ([t.name for t in provider.tasks] if isinstance(provider, seqio.Mixture)
                else [self.task])

    def evaluate(self, model: Model, params: Any, model_state: Any,
                 partitioner: Partitioner, *, predictor: Predictor | None = None
                 ) -> list[TaskEvaluation]:
        """Each task's scores, examples and predictions (``predictor``: one already
        compiled for ``model``, e.g. shared by several evaluators)."""
        from tasks import finetuning as ft

        predictor = predictor or self.predictor(model, partitioner)
        results = []
        for name in self.task_names():
            examples, outputs = predict_split(
                predictor, params, name, self.split, batch_size=self.batch_size,
                max_seq_length=self.max_seq_length, progress=self.progress,
                state=model_state, length_buckets=self.length_buckets)
            metrics, predictions = score(name, examples, outputs)
            truncated = sum(int(ex.get(ft.TRUNCATED, 0) > 0) for ex in examples)
            results.append(TaskEvaluation(name, metrics, examples, predictions, truncated))
        return results

    def __call__(self, model: Model, params: Any, model_state: Any,
                 partitioner: Partitioner) -> dict[str, float]:
        return {f"{r.task}/{k}": float(v)
                for r in self.evaluate(model, params, model_state, partitioner)
                for k, v in r.metrics.items()
                if isinstance(v, int | float | np.floating | np.integer)}


@dataclasses.dataclass
class Bleu(Evaluator):
    """sacrebleu BLEU / chrF of the model's translations of ``split`` (greedy by default:
    in the loop, the trend matters; ``pretrain_lm.infer`` gives the final beam figure)."""

    task: str
    split: str = "validation"
    method: str = "greedy"
    beam_size: int = 4
    alpha: float = 0.6
    inputs_length: int = 64
    max_length: int = 64
    batch_size: int = 64
    max_examples: int | None = None
    length_buckets: int = 1  # > 1: batches of similar length (``mt.translate_all``)

    def __post_init__(self) -> None:
        self._data: tuple[list[str], list[str]] | None = None
        self._translate: Any = None
        self._model: Any = None

    def __call__(self, model: Model, params: Any, model_state: Any,
                 partitioner: Partitioner) -> dict[str, float]:
        del model_state, partitioner  # translation models keep no state
        import jax

        import tasks
        from pretrain_lm import mt

        if jax.process_count() > 1:
            raise ValueError("evaluators.Bleu decodes in one process; for a multi-host run "
                             "bind trainer.train.evaluators = [] and score its checkpoints "
                             "with python -m pretrain_lm.infer.")
        if self._data is None:
            sources, references = mt.split_sources_and_references(self.task, self.split)
            n = self.max_examples or len(sources)
            self._data = sources[:n], references[:n]
        if self._translate is None or self._model is not model:
            self._translate = mt.make_translate_fn(
                model, method=self.method, beam_size=self.beam_size, alpha=self.alpha,
                max_length=self.max_length)
            self._model = model
        sources, references = self._data
        hypotheses, _ = mt.translate_all(
            model, params, tasks.get_vocabulary(self.task), sources,
            inputs_length=self.inputs_length, batch_size=self.batch_size, progress=False,
            translate_fn=self._translate, length_buckets=self.length_buckets)
        scores = mt.bleu(hypotheses, references, sources)
        return {f"{self.task}/bleu": float(scores["bleu"]),
                f"{self.task}/chrf": float(scores["chrf"])}
