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
from collections.abc import Sequence

import jax
from absl import logging

from models.bert import BertFineTuningModel
from pretrain_lm.partitioning import Partitioner


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
    length_buckets: int = 1,
) -> list[TaskResult]:
    """Scores the ``checkpoint`` (``latest``, ``all`` or a step) of ``model_dir`` on
    every task (names of tasks or mixtures) and writes the results (module docstring).
    ``length_buckets`` > 1 batches examples of similar length (``evaluators.predict_split``:
    the same scores, fewer padded positions)."""
    import tasks as tasks_lib
    from pretrain_lm import checkpoints
    from pretrain_lm.checkpoints import Checkpointer, check_vocabulary
    from pretrain_lm.evaluators import TaskMetrics
    from tasks import finetuning as ft
    from tasks import metrics

    partitioner = partitioner or Partitioner()
    evaluators = [TaskMetrics(task=name, split=split, batch_size=batch_size,
                              max_seq_length=model.max_seq_length, progress=progress,
                              length_buckets=length_buckets)
                  for name in tasks]  # the evaluator of the training loop, on checkpoints
    for name in (n for evaluator in evaluators for n in evaluator.task_names()):
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

    predictor = evaluators[0].predictor(model, partitioner)  # shared by every task
    out_dir = os.path.join(model_dir, f"eval_{split}")
    is_chief = jax.process_index() == 0
    results: list[TaskResult] = []
    for step in steps:
        restored = source.try_restore_params_and_state(step, predictor.abstract_params,
                                                       predictor.abstract_state)
        if restored is None:  # damaged: warned, skipped
            continue
        params, state = restored
        for evaluation in (e for evaluator in evaluators for e in evaluator.evaluate(
                model, params, state, partitioner, predictor=predictor)):
            name = evaluation.task
            spec = ft.get_spec(name)
            scores = {**evaluation.metrics,
                      "examples_truncated": float(evaluation.num_truncated)}
            if split == "test" and spec.glue_name and is_chief:
                path = metrics.write_glue_submission(
                    os.path.join(out_dir, f"step_{step}"), spec.glue_name,
                    [int(ex["idx"]) for ex in evaluation.examples], evaluation.predictions,
                    label_names=spec.label_names or None)
                logging.info("GLUE submission file: %s", path)
            results.append(TaskResult(name, step, scores, spec.main_metric,
                                      len(evaluation.examples)))
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
