r"""Evaluate fine-tuned checkpoints from gin files (see ``pretrain_lm/evaluation.py``).

    python -m pretrain_lm.evaluate \
      --gin_file=models/bert/base.gin --gin_file=runs/finetune.gin \
      --gin_file=finetune/glue_mrpc.gin --gin.MODEL_DIR=runs/mrpc \
      [--checkpoint=latest|all|STEP] [--tasks=a,b] [--split=validation|test]

Uses the same gin files as the fine-tuning run; prints and writes the results table.
Params and model state are restored (``Model.predict_with_state``). ULMFiT classifiers,
backward runs and ensembles of runs: ``python -m pretrain_lm.tools.ensemble --model_dir=RUN ...``
(each run rebuilt from its own ``config.gin``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import gin
from absl import app, flags

from pretrain_lm import gin_utils

_GIN = gin_utils.define_gin_flags()
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "latest, all, or a step number.")
_TASKS = flags.DEFINE_list("tasks", None, "Tasks or mixtures (default: the run's task).")
_SPLIT = flags.DEFINE_string("split", None, "Split to evaluate (default: the run's).")


def main(argv: list[str]) -> None:
    gin_utils.start(argv, _GIN)
    overrides: dict[str, Any] = {}
    if _CHECKPOINT.value:
        overrides["checkpoint"] = _CHECKPOINT.value
    if _TASKS.value:
        overrides["tasks"] = _TASKS.value
    if _SPLIT.value:
        overrides["split"] = _SPLIT.value
    from pretrain_lm import evaluation

    run: Callable[..., list[evaluation.TaskResult]] = gin.get_configurable(
        evaluation.evaluate_checkpoints)
    from pretrain_lm.checkpoints import CheckpointDamagedError

    try:
        run(**overrides)
    except (FileNotFoundError, ValueError, CheckpointDamagedError) as e:
        sys.exit(f"error: {gin_utils.without_gin_context(e)}")


if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
