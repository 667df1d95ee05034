r"""Average the parameters of the last N checkpoints into a new checkpoint.

    python -m pretrain_lm.tools.average_checkpoints --model_dir=runs/t_base --last=5 \
      --output_dir=runs/t_base_avg5

The Transformer paper averages the last 5 (base, written every 10 minutes) or 20 (big)
checkpoints. The result is a checkpoint of this codebase at the newest averaged step
holding ``step`` and ``params`` (no optimizer state: it is for evaluation and decoding,
e.g. ``python -m pretrain_lm.infer ... --gin.MODEL_DIR=runs/t_base_avg5``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from absl import app, flags, logging

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Model dir whose checkpoints to average.")
_LAST = flags.DEFINE_integer("last", 5, "How many of the newest checkpoints to average.")
_OUTPUT = flags.DEFINE_string("output_dir", None, "Model dir to write the average to.")


def average_params(trees: Sequence[Any]) -> Any:
    """Element-wise mean of parameter trees of one structure (accumulated in float64)."""
    if not trees:
        raise ValueError("Nothing to average.")
    structure = jax.tree.structure(trees[0])
    for i, tree in enumerate(trees[1:], start=1):
        if jax.tree.structure(tree) != structure:
            raise ValueError(f"Checkpoint {i} has other parameters than checkpoint 0.")
    return jax.tree.map(
        lambda *xs: (np.sum([np.asarray(x, np.float64) for x in xs], axis=0) / len(xs)
                     ).astype(np.asarray(xs[0]).dtype), *trees)


def average_checkpoints(model_dir: str, last: int, output_dir: str) -> tuple[int, list[int]]:
    """Writes the average of the ``last`` newest checkpoints; returns (step, averaged)."""
    from pretrain_lm import checkpoints
    from pretrain_lm.checkpoints import Checkpointer

    source = Checkpointer(model_dir, read_only=True, async_save=False)
    steps = sorted(source.manager.all_steps())
    source.close()
    if len(steps) < last:
        raise ValueError(f"{model_dir} holds {len(steps)} checkpoint(s) {steps}; cannot "
                         f"average the last {last} (raise trainer.train.keep_checkpoints).")
    chosen = steps[-last:]
    trees = [checkpoints.read_params(
        os.path.join(os.path.abspath(model_dir), "checkpoints", str(s))) for s in chosen]
    averaged = average_params(trees)
    target = Checkpointer(output_dir, async_save=False)
    target.save(chosen[-1], {"step": np.int32(chosen[-1]), "params": averaged}, None,
                force=True)
    target.close()
    logging.info("Averaged steps %s of %s into %s", chosen, model_dir, output_dir)
    return chosen[-1], chosen


def main(argv: list[str]) -> None:
    del argv
    if not _MODEL_DIR.value or not _OUTPUT.value:
        sys.exit("error: give --model_dir and --output_dir.")
    try:
        step, chosen = average_checkpoints(_MODEL_DIR.value, _LAST.value, _OUTPUT.value)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(f"averaged steps {chosen} -> {_OUTPUT.value}/checkpoints/{step}")


if __name__ == "__main__":
    app.run(main)
