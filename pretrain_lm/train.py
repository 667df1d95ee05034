r"""Train any model of the codebase from gin files.

    python -m pretrain_lm.train \
      --gin_file=gin_configs/bert/demo_tiny_austen.gin \
      --gin.MODEL_DIR=/tmp/bert_tiny --gin.TRAIN_STEPS=2000

Multi-host (every host runs the same command): pass ``--coordinator_address``,
``--num_processes`` and ``--process_id`` (or set JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID; on a TPU pod slice JAX_DISTRIBUTED_AUTO=1).

The run's full gin config is written to ``MODEL_DIR/config.gin``; relaunching
with the same MODEL_DIR resumes from the latest checkpoint.
"""

from __future__ import annotations

import json
import sys

import gin
from absl import app, flags, logging

from pretrain_lm import gin_utils, partitioning

_GIN = gin_utils.define_gin_flags()
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 for multi-host runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_RESULTS_JSON = flags.DEFINE_string(
    "results_json", None, "Optional path to write the final metrics as JSON.")


def main(argv: list[str]) -> None:
    gin_utils.start(argv, _GIN, before_parse=lambda: partitioning.initialize_distributed(
        _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value))

    import jax

    from pretrain_lm import checkpoints, nonfinite, trainer

    model_dir = gin_utils.macro("MODEL_DIR")
    try:
        if model_dir:
            checkpoints.check_writable(model_dir)
        if model_dir and jax.process_index() == 0:
            gin_utils.write_config(model_dir)
        results = gin.get_configurable(trainer.train)()
    except (ValueError, TypeError) as e:
        if "REQUIRED" in str(e) or "missing" in str(e):
            sys.exit(f"error: {e}\nBind the missing value in a gin file or with --gin.X=...")
        raise
    except (FileNotFoundError, PermissionError,  # the message says what to make or fix
            nonfinite.NonFiniteError, checkpoints.CheckpointSaveError,
            checkpoints.CheckpointDamagedError) as e:
        sys.exit(f"error: {gin_utils.without_gin_context(e)}")
    if jax.process_index() == 0:
        logging.info("Final metrics: %s", results)
        print(json.dumps(results, indent=1, sort_keys=True))
        if _RESULTS_JSON.value:
            with open(_RESULTS_JSON.value, "w") as f:
                json.dump(results, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
