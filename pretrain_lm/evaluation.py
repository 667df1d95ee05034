"""Evaluation of fine-tuned checkpoints on benchmark tasks: scores, tables, summaries.

Run by ``python -m pretrain_lm.evaluate`` (bound in gin by ``runs/finetune.gin``):

    python -m pretrain_lm.evaluate \
      --gin_file=models/bert/base.gin --gin_file=runs/finetune.gin \
      --gin_file=finetune/glue_mrpc.gin --gin.MODEL_DIR=runs/mrpc \
      [--checkpoint=latest|all|STEP] [--tasks=a,b] [--split=validation]

Reads the model from the same gin files as the fine-tuning run, restores the latest,
a given, or every checkpoint of ``MODEL_DIR``, runs it over every example of the
split (the last batch is padded with weight-0 rows: nothing is dropped) and scores
the predictions with the task's metric (``tasks.metrics``: Matthews correlation,
Pearson/Spearman, F1, SQuAD EM/F1, seqeval entity F1 ...). Writes
``MODEL_DIR/eval_<split>/results.json`` and ``results.md`` (one row per checkpoint and
task, the best checkpoint marked) and TensorBoard scalars under
``MODEL_DIR/eval_<split>/<task>``. On GLUE ``test`` splits, whose labels are hidden,
it writes the submission files (``CoLA.tsv`` ...) instead of scores.

The params and the model state (``Model.init_state``: the AWD-LSTM classifier's batch-norm
statistics) are restored and predictions come from ``Model.predict_with_state``, so a
stateful classifier scores as trained. The examples are read forward: a backward run
(``DataConfig.reverse``) is refused by its vocabulary record; score it, alone or with
others, with ``python -m pretrain_lm.tools.ensemble``, which reads each run's own data config.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from tqdm import tqdm

from models.base import Model
from models.bert import BertFineTuningModel
from pretrain_lm.partitioning import Partitioner


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
                  state: Any = None
                  ) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Every example of ``split`` (with metadata) and the model outputs, row-aligned
    (``state``: the restored model state, for models that keep one)."""
    import tasks
    from tasks import finetuning as ft

    vocab = tasks.get_vocabulary(task)
    examples = list(ft.eval_examples(task, split, max_seq_length))
    if not examples:
        raise ValueError(f"Split {split!r} of task {task!r} holds no examples.")
    if batch_size % predictor.partitioner.data_size:
        batch_size += predictor.partitioner.data_size - batch_size % predictor.partitioner.data_size
    outputs: dict[str, list[np.ndarray]] = {}
    bar = tqdm(range(0, len(examples), batch_size), desc=f"eval {task}/{split}", unit="batch",
               disable=not (progress and jax.process_index() == 0), dynamic_ncols=True)
    for start in bar:
        rows = [ft.pad_example(ex, max_seq_length, vocab.pad_id)
                for ex in examples[start:start + batch_size]]
        rows += [jax.tree.map(np.zeros_like, rows[0])] * (batch_size - len(rows))
        batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        for k, v in predictor(params, batch, state).items():
            outputs.setdefault(k, []).append(v)
    merged = {k: np.concatenate(v)[:len(examples)] for k, v in outputs.items()}
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


@dataclasses.dataclass
class TaskResult:
    task: str
    step: int
    metrics: dict[str, float]
    main_metric: str
    num_examples: int


def evaluate_checkpoints(
    *,
    model: BertFineTuningModel,
    model_dir: str,
    tasks: Sequence[str],
    split: str = "validation",
    checkpoint: str = "latest",
    batch_size: int = 32,
    partitioner: Partitioner | None = None,
    progress: bool = True,
) -> list[TaskResult]:
    """Scores the ``checkpoint`` (``latest``, ``all`` or a step) of ``model_dir`` on
    every task (names of tasks or mixtures) and writes the results (module docstring)."""
    import seqio

    import tasks as tasks_lib
    from pretrain_lm import checkpoints
    from pretrain_lm.checkpoints import Checkpointer, check_vocabulary
    from tasks import finetuning as ft
    from tasks import metrics

    partitioner = partitioner or Partitioner()
    names: list[str] = []
    for name in tasks:
        provider = tasks_lib.get_provider(name)
        names += ([t.name for t in provider.tasks] if isinstance(provider, seqio.Mixture)
                  else [name])
    for name in names:
        model.check_task(tasks_lib.task_info(name))
        check_vocabulary(model_dir, tasks_lib.vocabulary_record(name))
    source = Checkpointer(model_dir, read_only=True, async_save=False)
    available = sorted(source.manager.all_steps())
    if not available:
        raise FileNotFoundError(f"No checkpoints in {source.directory}; train first "
                                "(python -m pretrain_lm.train with the same gin files).")
    if checkpoint == "latest":
        steps = [available[-1]]
    elif checkpoint == "all":
        steps = available
    elif str(checkpoint).isdigit() and int(checkpoint) in available:
        steps = [int(checkpoint)]
    else:
        raise ValueError(f"--checkpoint={checkpoint!r}: use latest, all or one of {available}.")

    predictor = Predictor(model, partitioner)
    out_dir = os.path.join(model_dir, f"eval_{split}")
    is_chief = jax.process_index() == 0
    results: list[TaskResult] = []
    for step in steps:
        restored = source.try_restore_params_and_state(step, predictor.abstract_params,
                                                       predictor.abstract_state)
        if restored is None:  # damaged: warned, skipped
            continue
        params, state = restored
        for name in names:
            spec = ft.get_spec(name)
            examples, outputs = predict_split(
                predictor, params, name, split, batch_size=batch_size,
                max_seq_length=model.max_seq_length, progress=progress, state=state)
            scores, predictions = score(name, examples, outputs)
            truncated = sum(int(ex.get(ft.TRUNCATED, 0) > 0) for ex in examples)
            scores = {**scores, "examples_truncated": float(truncated)}
            if split == "test" and spec.glue_name and is_chief:
                path = metrics.write_glue_submission(
                    os.path.join(out_dir, f"step_{step}"), spec.glue_name,
                    [int(ex["idx"]) for ex in examples], predictions,
                    label_names=spec.label_names or None)
                logging.info("GLUE submission file: %s", path)
            results.append(TaskResult(name, step, scores, spec.main_metric, len(examples)))
            logging.info("%s/%s @ step %d: %s", name, split, step, scores)
            if is_chief:
                from clu import metric_writers

                writer = metric_writers.create_default_writer(os.path.join(out_dir, name))
                writer.write_scalars(step, scores)
                writer.flush()
    source.close()
    if not results:
        raise checkpoints.CheckpointDamagedError(
            f"No checkpoint of {steps} in {source.directory} could be read (see the warnings "
            "above); nothing was evaluated.")
    if is_chief:
        write_results(out_dir, results)
    return results


def write_results(out_dir: str, results: Sequence[TaskResult]) -> None:
    """``results.json`` and ``results.md`` (best checkpoint per task marked with *)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump([dataclasses.asdict(r) for r in results], f, indent=1)
    best: dict[str, TaskResult] = {}
    for r in results:
        value = r.metrics.get(r.main_metric)
        if value is not None and (r.task not in best
                                  or value > best[r.task].metrics[r.main_metric]):
            best[r.task] = r
    lines = ["| task | step | examples | main metric | scores |", "|---|---|---|---|---|"]
    for r in results:
        main = r.metrics.get(r.main_metric)
        mark = " *" if best.get(r.task) is r and len(results) > 1 else ""
        shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r.metrics.items()))
        main_text = f"{r.main_metric} {main:.2f}{mark}" if main is not None else "-"
        lines.append(f"| {r.task} | {r.step} | {r.num_examples} | {main_text} | {shown} |")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
