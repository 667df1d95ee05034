r"""Grid sweep over gin macros: train and evaluate every cell, pick the best on dev.

    python -m pretrain_lm.sweep --gin_file=models/bert/base.gin \
      --gin_file=runs/finetune.gin --gin_file=finetune/glue_mrpc.gin \
      --gin.PRETRAINED=DIR --gin.MODEL_DIR=runs/mrpc_sweep \
      [--sweep=LEARNING_RATE=5e-5,3e-5,2e-5 --sweep=EPOCHS=2,3,4]

The default grid is the BERT paper's fine-tuning grid (learning rate 5e-5 / 3e-5 / 2e-5,
2 / 3 / 4 epochs; batch 32 stays as the task file sets it). Each cell is one
``pretrain_lm.train`` run in ``MODEL_DIR/<cell>`` followed by ``pretrain_lm.evaluate``
of its last checkpoint; a cell that already has results is not run again (rerun the
same command to resume a sweep). The table of every cell (main metric of the task's
``TaskSpec``) goes to ``MODEL_DIR/sweep.md`` and ``sweep.json``, the best cell marked.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Sequence

from absl import app, flags

from pretrain_lm import gin_utils

BERT_GRID = ("LEARNING_RATE=5e-5,3e-5,2e-5", "EPOCHS=2,3,4")

def parse_grid(specs: Sequence[str]) -> list[dict[str, str]]:
    """``["A=1,2", "B=x"]`` -> ``[{"A": "1", "B": "x"}, {"A": "2", "B": "x"}]``."""
    axes = []
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ValueError(f"--sweep={spec!r}: expected MACRO=v1,v2,...")
        axes.append([(name.strip(), v.strip()) for v in values.split(",") if v.strip()])
    return [dict(cell) for cell in itertools.product(*axes)]


def cell_name(cell: dict[str, str]) -> str:
    return "-".join(f"{k.lower()}_{v}" for k, v in cell.items())


def run_sweep(gin_files: Sequence[str], bindings: Sequence[str], grid: Sequence[dict[str, str]],
              model_dir: str, split: str = "validation") -> list[dict]:
    """Trains and evaluates every cell (skipping finished ones); returns the table rows."""
    flags_ = [f"--gin_file={f}" for f in gin_files]
    flags_ += [f"--gin_bindings={b}" for b in bindings if not b.startswith("MODEL_DIR")]
    rows = []
    for cell in grid:
        cell_dir = os.path.join(model_dir, cell_name(cell))
        cell_flags = flags_ + [f"--gin_bindings=MODEL_DIR = {cell_dir!r}"] + [
            f"--gin_bindings={k} = {gin_utils._as_gin_value(v)}" for k, v in cell.items()]
        results_path = os.path.join(cell_dir, f"eval_{split}", "results.json")
        if not os.path.exists(results_path):
            for module, extra in (("pretrain_lm.train", []),
                                  ("pretrain_lm.evaluate", [f"--split={split}"])):
                print(f"[sweep] {cell_name(cell)}: {module}", flush=True)
                subprocess.run([sys.executable, "-m", module, *cell_flags, *extra], check=True)
        with open(results_path) as f:
            results = json.load(f)
        for result in results:
            rows.append({"cell": cell_name(cell), **cell, "task": result["task"],
                         "step": result["step"], "main_metric": result["main_metric"],
                         "value": result["metrics"].get(result["main_metric"])})
    write_table(model_dir, rows)
    return rows


def write_table(model_dir: str, rows: Sequence[dict]) -> None:
    """``sweep.json`` and ``sweep.md``; the best cell per task is marked with *."""
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "sweep.json"), "w") as f:
        json.dump(list(rows), f, indent=1)
    best = {}
    for r in rows:
        if r["value"] is not None and (r["task"] not in best
                                       or r["value"] > best[r["task"]]["value"]):
            best[r["task"]] = r
    lines = ["| cell | task | step | metric | value |", "|---|---|---|---|---|"]
    for r in rows:
        mark = " *" if best.get(r["task"]) is r else ""
        value = "-" if r["value"] is None else f"{r['value']:.2f}{mark}"
        lines.append(f"| {r['cell']} | {r['task']} | {r['step']} | {r['main_metric']} | "
                     f"{value} |")
    with open(os.path.join(model_dir, "sweep.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        gin_utils.parse(_GIN_FILE.value, _GIN_BINDINGS.value)
        grid = parse_grid(_SWEEP.value)
    except (gin_utils.GinConfigError, ValueError) as e:
        sys.exit(f"error: {e}")
    model_dir = gin_utils.macro("MODEL_DIR")
    if not isinstance(model_dir, str):
        sys.exit("error: bind the sweep's MODEL_DIR (--gin.MODEL_DIR=...); each cell runs in "
                 "a subdirectory of it.")
    for cell in grid:
        for name in cell:
            if gin_utils.macro(name) is None:
                sys.exit(f"error: --sweep names {name!r}, which no gin file defines as a "
                         "macro; sweep over macros such as LEARNING_RATE, EPOCHS, BATCH_SIZE.")
    run_sweep(_GIN_FILE.value, _GIN_BINDINGS.value, grid, model_dir, _SPLIT.value)


if __name__ == "__main__":
    # Flags are defined only when run as a program, so that importing the library
    # functions above never clashes with another entry point's --gin_file.
    _GIN_FILE = flags.DEFINE_multi_string("gin_file", [], "gin config files (in order).")
    _GIN_BINDINGS = flags.DEFINE_multi_string(
        "gin_bindings", [], "Extra gin bindings; --gin.KEY=VALUE is rewritten to these.")
    _SWEEP = flags.DEFINE_multi_string(
        "sweep", list(BERT_GRID), "MACRO=v1,v2,... (repeat for a grid over several macros).")
    _SPLIT = flags.DEFINE_string("split", "validation", "Split the cells are compared on.")
    app.run(main, argv=gin_utils.main_argv())
