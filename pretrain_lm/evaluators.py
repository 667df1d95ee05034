"""Evaluators in the training loop: the benchmark metric, watched while a model trains.

The trainer's own evaluation reports the objective's loss and accuracy on
``eval_steps`` batches. An evaluator scores what a paper reports, on every example of a
split, every ``eval_every`` steps (and at step 0 and at the end), with the same code
``pretrain_lm.evaluate`` and ``pretrain_lm.infer`` use after training:

    trainer.train.evaluators = [@evaluators.TaskMetrics()]
    evaluators.TaskMetrics.task = %MIXTURE_OR_TASK_NAME

* ``TaskMetrics``: a fine-tuning task's own metric (``TaskSpec.metric_fn``: accuracy,
  Matthews correlation, F1, Pearson/Spearman, SQuAD EM/F1, CoNLL entity F1), from
  ``evaluation.predict_split`` + ``evaluation.score``.
* ``Bleu``: sacrebleu BLEU and chrF of greedy or beam translations of a translation
  split (``mt.translate_all`` + ``mt.bleu``), optionally of its first ``max_examples``.

Each returns ``{"<task>/<metric>": value}``; the trainer writes them with its own
evaluation to TensorBoard (``eval/``), ``eval/metrics.jsonl`` and the run's results. Plot
them beside the loss with ``python -m pretrain_lm.tools.plots --model_dir=RUN
--metrics=perplexity,translate_en_de_debian_l10n/bleu`` (the demo MT run's names).

``Bleu`` decodes in one process (as ``pretrain_lm.infer`` does); ``TaskMetrics`` runs on
any mesh and any number of processes.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import numpy as np

from models.base import Model
from pretrain_lm.partitioning import Partitioner


class Evaluator(abc.ABC):
    """Scores the current parameters on a benchmark split; ``{name: value}``."""

    @abc.abstractmethod
    def __call__(self, model: Model, params: Any, model_state: Any,
                 partitioner: Partitioner) -> dict[str, float]:
        ...


@dataclasses.dataclass
class TaskMetrics(Evaluator):
    """The fine-tuning task's metric over every example of ``split`` (of each task of a
    mixture)."""

    task: str
    split: str = "validation"
    batch_size: int = 32
    max_seq_length: int = 128

    def __post_init__(self) -> None:
        self._predictor: Any = None

    def __call__(self, model: Model, params: Any, model_state: Any,
                 partitioner: Partitioner) -> dict[str, float]:
        import seqio

        import tasks
        from pretrain_lm import evaluation

        if self._predictor is None or self._predictor.model is not model:
            self._predictor = evaluation.Predictor(model, partitioner)
        provider = tasks.get_provider(self.task)
        names = ([t.name for t in provider.tasks] if isinstance(provider, seqio.Mixture)
                 else [self.task])
        out = {}
        for name in names:  # a mixture: each of its tasks
            examples, outputs = evaluation.predict_split(
                self._predictor, params, name, self.split, batch_size=self.batch_size,
                max_seq_length=self.max_seq_length, progress=False, state=model_state)
            metrics, _ = evaluation.score(name, examples, outputs)
            out.update({f"{name}/{k}": float(v) for k, v in metrics.items()
                        if isinstance(v, int | float | np.floating | np.integer)})
        return out


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
            translate_fn=self._translate)
        scores = mt.bleu(hypotheses, references, sources)
        return {f"{self.task}/bleu": float(scores["bleu"]),
                f"{self.task}/chrf": float(scores["chrf"])}
