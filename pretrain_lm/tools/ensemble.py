r"""Ensembles of classifier runs: their class probabilities averaged over a split.

ULMFiT (Howard & Ruder 2018) trains a forward and a backward classifier (each on its own
language model) and averages their predictions; this scores any N runs that way:

    python -m pretrain_lm.tools.ensemble --model_dir=runs/demo_ulmfit/3_classifier \
      --model_dir=runs/demo_ulmfit/3_classifier_bwd [--split=validation|test] \
      [--output_dir=runs/demo_ulmfit/ensemble] [--batch_size=N]

Each run is rebuilt from its own ``MODEL_DIR/config.gin`` (the model, the evaluation data
config and the batch size it was trained with: a backward run, ``DataConfig.reverse``, reads
the documents backward again), restored from its latest checkpoint with its params AND its
model state (the AWD-LSTM classifier's batch-norm statistics,
``Checkpointer.restore_params_and_state``), and run over every example of the split through
the trainer's own input pipeline (``DataIterator``, unshuffled, one epoch; the weight-0 rows
that fill the last batch are dropped). The runs must read the same examples in the same
order (same task split, same labels: checked). The ensemble's prediction is the argmax of
the mean of the runs' softmax probabilities.

Reported for every run and the ensemble: accuracy and error rate (ULMFiT's number), mean
negative log-likelihood; written to ``OUTPUT_DIR/ensemble_<split>.json`` and ``.md`` (and
the probabilities to ``ensemble_<split>.npz``), and printed.

With one ``--model_dir`` it scores that run alone: the way to evaluate an AWD-LSTM
classifier on any split, forward or backward (``python -m pretrain_lm.evaluate`` reads
the examples forward only). One process (host) only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.base import Model
from pretrain_lm.data import DataConfig
from pretrain_lm.partitioning import Partitioner

CONFIG_FILE = "config.gin"


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained run as its ``config.gin`` describes it."""

    model_dir: str
    model: Model
    eval_data: DataConfig
    batch_size: int  # the training batch: the shapes of the model state


@dataclasses.dataclass(frozen=True)
class Predictions:
    """One run's (or the ensemble's) class probabilities ``[examples, classes]``."""

    name: str
    task: str
    direction: str
    step: int | None
    probabilities: np.ndarray
    labels: np.ndarray

    def scores(self) -> dict[str, float]:
        """Accuracy, error rate and mean negative log-likelihood of the true class."""
        predicted = np.argmax(self.probabilities, axis=-1)
        accuracy = float(np.mean(predicted == self.labels))
        chosen = self.probabilities[np.arange(len(self.labels)), self.labels]
        return {"accuracy": accuracy, "error_rate": 1.0 - accuracy,
                "nll": float(-np.mean(np.log(np.maximum(chosen, 1e-12))))}


def load_run(model_dir: str) -> Run:
    """The model, evaluation data and batch size bound in ``model_dir/config.gin`` (as
    ``python -m pretrain_lm.train`` wrote it). Parses into, and then clears, the global gin
    config."""
    import gin

    from pretrain_lm import gin_utils, trainer

    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} does not exist: give the MODEL_DIR of a training run (python -m "
            "pretrain_lm.train writes its config.gin there).")
    gin.clear_config()
    try:
        gin_utils.parse([os.path.abspath(path)], [])
        bound = gin.get_bindings(gin.get_configurable(trainer.train))
    finally:
        gin.clear_config()
    missing = [k for k in ("model", "eval_data", "batch_size") if bound.get(k) is None]
    if missing:
        raise ValueError(f"{path} binds no trainer.train {missing}: the ensemble needs the "
                         "run's model, its evaluation DataConfig and its batch size.")
    return Run(model_dir, bound["model"], bound["eval_data"], int(bound["batch_size"]))


def predict_run(run: Run, split: str, *, partitioner: Partitioner | None = None,
                batch_size: int | None = None) -> Predictions:
    """Class probabilities of every example of ``split`` from the run's latest
    checkpoint (params and model state), read as the run's evaluation reads them."""
    import jax

    import tasks
    from pretrain_lm.checkpoints import Checkpointer
    from pretrain_lm.data import DataIterator
    from pretrain_lm.evaluators import Predictor

    if jax.process_count() > 1:
        raise ValueError("pretrain_lm.tools.ensemble runs in one process; launch it on one host.")
    partitioner = partitioner or Partitioner()
    data = dataclasses.replace(run.eval_data, split=split, shuffle=False, num_epochs=1)
    info = tasks.task_info(data.task)
    if info.head != "classification":
        raise ValueError(f"{run.model_dir} evaluates on {data.task!r}, which is no "
                         "classification task: the ensemble averages the class probabilities "
                         "of classifier runs (ULMFiT's stage 3), not language models.")
    run.model.check_task(info)
    source = Checkpointer(run.model_dir, read_only=True, async_save=False)
    try:
        step = source.latest_step()
        if step is None:
            raise FileNotFoundError(f"No checkpoints in {source.directory}; train the run "
                                    "first (python -m pretrain_lm.train).")
        predictor = Predictor(run.model, partitioner, state_batch_size=run.batch_size)
        params, state = source.restore_params_and_state(
            step, predictor.abstract_params, predictor.abstract_state,
            data.vocabulary_record())
    finally:
        source.close()
    size = batch_size or run.batch_size
    size += -size % partitioner.data_size
    probabilities, labels = [], []
    for batch in DataIterator(data, size, partitioner, run.model.input_format):
        logits = predictor(params, batch, state)["logits"]
        keep = np.asarray(batch["example_weight"]) > 0
        probabilities.append(softmax(logits)[keep])
        labels.append(np.asarray(batch["label"])[keep])
    if not labels:
        raise ValueError(f"Split {split!r} of task {data.task!r} holds no examples.")
    return Predictions(run.model_dir, data.task, data.direction, step,
                       np.concatenate(probabilities), np.concatenate(labels))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of ``[examples, classes]`` logits, in float64."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def average(predictions: Sequence[Predictions], name: str = "ensemble") -> Predictions:
    """The mean of the runs' probabilities; refuses runs that did not read the same
    examples (another count, other labels or another number of classes)."""
    if not predictions:
        raise ValueError("No runs to ensemble: give at least one --model_dir.")
    first = predictions[0]
    for p in predictions[1:]:
        if (p.probabilities.shape != first.probabilities.shape
                or not np.array_equal(p.labels, first.labels)):
            raise ValueError(
                f"{p.name} ({p.task}: {p.probabilities.shape[0]} examples, "
                f"{p.probabilities.shape[1]} classes) and {first.name} ({first.task}: "
                f"{first.probabilities.shape[0]} examples, {first.probabilities.shape[1]} "
                "classes) did not read the same examples with the same labels; ensemble "
                "runs of one task split.")
    mean = np.mean([p.probabilities for p in predictions], axis=0)
    directions = "+".join(sorted({p.direction for p in predictions}))
    return Predictions(name, first.task, directions, None, mean, first.labels)


@dataclasses.dataclass(frozen=True)
class EnsembleResult:
    """The scores of every run and of their ensemble on one split."""

    split: str
    runs: list[Predictions]
    ensemble: Predictions

    def rows(self) -> list[dict[str, Any]]:
        return [{"run": p.name, "task": p.task, "direction": p.direction, "step": p.step,
                 "examples": len(p.labels), **p.scores()}
                for p in [*self.runs, self.ensemble]]


def ensemble(model_dirs: Sequence[str], split: str = "validation", *,
             output_dir: str | None = None, partitioner: Partitioner | None = None,
             batch_size: int | None = None) -> EnsembleResult:
    """Scores each run of ``model_dirs`` and their probability average on ``split``;
    writes the tables to ``output_dir`` when given (module docstring)."""
    runs = [load_run(d) for d in model_dirs]  # every config parsed before any JAX work
    predictions = [predict_run(r, split, partitioner=partitioner, batch_size=batch_size)
                   for r in runs]
    result = EnsembleResult(split, predictions, average(predictions))
    if output_dir:
        write_results(output_dir, result)
    return result


def write_results(output_dir: str, result: EnsembleResult) -> str:
    """``ensemble_<split>.json``, ``.md`` and ``.npz`` (probabilities and labels) in
    ``output_dir``; returns the markdown table."""
    os.makedirs(output_dir, exist_ok=True)
    stem = os.path.join(output_dir, f"ensemble_{result.split}")
    rows = result.rows()
    with open(stem + ".json", "w") as f:
        json.dump({"split": result.split, "runs": rows}, f, indent=1)
    lines = [f"| run ({result.split}) | direction | step | examples | accuracy | error rate "
             "| nll |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['direction']} | {r['step'] or '-'} | "
                     f"{r['examples']} | {r['accuracy']:.4f} | {r['error_rate']:.4f} | "
                     f"{r['nll']:.4f} |")
    table = "\n".join(lines) + "\n"
    with open(stem + ".md", "w") as f:
        f.write(table)
    np.savez(stem + ".npz", labels=result.ensemble.labels,
             ensemble=result.ensemble.probabilities,
             **{f"run_{i}": p.probabilities for i, p in enumerate(result.runs)})
    return table


def main(argv: list[str]) -> None:
    """``--model_dir`` (repeated), ``--split``, ``--output_dir``, ``--batch_size``."""
    from absl import app, flags

    from pretrain_lm import gin_utils, host

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    host.keep_freed_memory()
    gin_utils.quiet_library_logs()
    values = flags.FLAGS
    if not values.model_dir:
        sys.exit("error: give --model_dir=RUN once per classifier run.")
    # Default: ensemble/ in the runs' common folder (in the run itself for one run).
    output_dir = values.output_dir or os.path.join(
        os.path.commonpath([os.path.abspath(d) for d in values.model_dir]), "ensemble")
    try:
        result = ensemble(values.model_dir, values.split, batch_size=values.batch_size)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(write_results(output_dir, result), end="")
    print(f"written to {output_dir}/ensemble_{result.split}.{{json,md,npz}}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_multi_string("model_dir", [], "A classifier run's MODEL_DIR (repeat).")
    flags.DEFINE_string("split", "validation", "Split to score (validation, test ...).")
    flags.DEFINE_string("output_dir", None,
                        "Where the tables go (default: ensemble/ beside the runs).")
    flags.DEFINE_integer("batch_size", None, "Evaluation batch (default: each run's).")
    app.run(main)
