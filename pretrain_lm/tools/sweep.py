r"""Grid sweep over gin macros: train and evaluate every cell, pick the best on dev.

    python -m pretrain_lm.tools.sweep --gin_file=models/bert/base.gin \
      --gin_file=runs/finetune.gin --gin_file=finetune/glue_mrpc.gin \
      --gin.PRETRAINED=DIR --gin.MODEL_DIR=runs/mrpc_sweep \
      [--sweep=LEARNING_RATE=5e-5,3e-5,2e-5 --sweep=EPOCHS=2,3,4]

The default grid is the BERT paper's fine-tuning grid (learning rate 5e-5 / 3e-5 / 2e-5,
2 / 3 / 4 epochs; batch 32 stays as the task file sets it). Each cell is one
``pretrain_lm.train`` run in ``MODEL_DIR/<cell>`` followed by ``pretrain_lm.evaluate``
of its last checkpoint; a cell that already has results is not run again (rerun the
same command to resume a sweep). The table of every cell (main metric of the task's
``TaskSpec``) goes to ``MODEL_DIR/sweep.md`` and ``sweep.json``, the best cell marked.

Models that ``pretrain_lm.evaluate`` does not score (the taggers, language models) are
compared on a metric of the training run's own final evaluation instead: ``--metric``
(e.g. ``eval/entity_f1``) reads it from each cell's ``results.json``. ``--average_over``
names a macro (e.g. ``SEED``) whose cells are repeats: the table then also gives the
mean and standard deviation over them (the TagLM ablation of
``gin_configs/elmo/demo_taglm_austen_ner.gin``)::

    python -m pretrain_lm.tools.sweep --gin_file=elmo/demo_taglm_austen_ner.gin \
      --gin.MODEL_DIR=runs/taglm_ablation --metric=eval/entity_f1 \
      --sweep=LM=none,taglm_forward,taglm --sweep=SEED=0,1,2 --average_over=SEED
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
    """``["A=1,2", "B=x"]`` -> ``[{"A": "1", "B": "x"}, {"A": "2", "B": "x"}]``.

    A joint axis ``"A+B=1+x,2+y"`` varies several macros together (cells ``A=1 B=x`` and
    ``A=2 B=y``), e.g. a task with the model option that goes with it."""
    axes = []
    for spec in specs:
        name, sep, values = spec.partition("=")
        names = [n.strip() for n in name.split("+")]
        if not sep or not all(names) or not values.strip():
            raise ValueError(f"--sweep={spec!r}: expected MACRO=v1,v2,... or "
                             "MACRO1+MACRO2=a1+b1,a2+b2,...")
        axis = []
        for value in (v.strip() for v in values.split(",") if v.strip()):
            parts = [p.strip() for p in value.split("+")] if len(names) > 1 else [value]
            if len(parts) != len(names):
                raise ValueError(f"--sweep={spec!r}: {value!r} gives {len(parts)} values "
                                 f"for the {len(names)} macros {names}.")
            axis.append(list(zip(names, parts, strict=True)))
        axes.append(axis)
    return [dict(kv for group in cell for kv in group) for cell in itertools.product(*axes)]


def cell_name(cell: dict[str, str]) -> str:
    return "-".join(f"{k.lower()}_{v.strip(chr(39) + chr(34))}" for k, v in cell.items())


def run_sweep(gin_files: Sequence[str], bindings: Sequence[str], grid: Sequence[dict[str, str]],
              model_dir: str, split: str = "validation", metric: str | None = None,
              average_over: str | None = None) -> list[dict]:
    """Trains and evaluates every cell (skipping finished ones); returns the table rows.
    With ``metric`` the value is the training run's final ``metric`` (its own evaluation
    on the eval split of its gin files) instead of ``pretrain_lm.evaluate``'s."""
    flags_ = [f"--gin_file={f}" for f in gin_files]
    flags_ += [f"--gin_bindings={b}" for b in bindings if not b.startswith("MODEL_DIR")]
    rows = []
    for cell in grid:
        cell_dir = os.path.join(model_dir, cell_name(cell))
        cell_flags = flags_ + [f"--gin_bindings=MODEL_DIR = {cell_dir!r}"] + [
            f"--gin_bindings={k} = {gin_utils._as_gin_value(v)}" for k, v in cell.items()]
        if metric is not None:
            rows.append(_train_cell(cell, cell_dir, cell_flags, metric))
            continue
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
    write_table(model_dir, rows, average_over)
    return rows


def _train_cell(cell: dict[str, str], cell_dir: str, cell_flags: list[str], metric: str
                ) -> dict:
    """Trains one cell (unless its ``results.json`` exists) and reads ``metric``."""
    results_path = os.path.join(cell_dir, "results.json")
    if not os.path.exists(results_path):
        print(f"[sweep] {cell_name(cell)}: pretrain_lm.train", flush=True)
        subprocess.run([sys.executable, "-m", "pretrain_lm.train", *cell_flags,
                        f"--results_json={results_path}"], check=True)
    with open(results_path) as f:
        results = json.load(f)
    if metric not in results:
        raise ValueError(f"{results_path} has no {metric!r}; it has {sorted(results)}.")
    return {"cell": cell_name(cell), **cell, "task": metric.split("/")[-1], "step": "last",
            "main_metric": metric, "value": float(results[metric])}


def summarize(rows: Sequence[dict], average_over: str) -> list[dict]:
    """Mean, sample standard deviation and count of ``value`` over the cells that differ
    only in the ``average_over`` macro."""
    import statistics

    groups: dict[tuple, list[float]] = {}
    for r in rows:
        key = tuple((k, v) for k, v in r.items() if k.isupper() and k != average_over)
        groups.setdefault(key, []).append(r["value"])
    return [{**dict(key), "mean": statistics.fmean(values),
             "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}
            for key, values in groups.items()]


def write_table(model_dir: str, rows: Sequence[dict], average_over: str | None = None
                ) -> None:
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
    if average_over:
        summary = summarize(rows, average_over)
        with open(os.path.join(model_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        axes = [k for k in summary[0] if k not in ("mean", "std", "n")] if summary else []
        lines += ["", f"Mean ± standard deviation over {average_over}:", "",
                  "| " + " | ".join(axes) + " | mean | std | n |",
                  "|" + "---|" * (len(axes) + 3)]
        lines += ["| " + " | ".join(str(g[a]) for a in axes) +
                  f" | {g['mean']:.4f} | {g['std']:.4f} | {g['n']} |" for g in summary]
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
    if _AVERAGE_OVER.value and not any(_AVERAGE_OVER.value in cell for cell in grid):
        sys.exit(f"error: --average_over={_AVERAGE_OVER.value} is not a --sweep macro.")
    run_sweep(_GIN_FILE.value, _GIN_BINDINGS.value, grid, model_dir, _SPLIT.value,
              _METRIC.value, _AVERAGE_OVER.value)


if __name__ == "__main__":
    # Flags are defined only when run as a program, so that importing the library
    # functions above never clashes with another entry point's --gin_file.
    _GIN_FILE = flags.DEFINE_multi_string("gin_file", [], "gin config files (in order).")
    _GIN_BINDINGS = flags.DEFINE_multi_string(
        "gin_bindings", [], "Extra gin bindings; --gin.KEY=VALUE is rewritten to these.")
    _SWEEP = flags.DEFINE_multi_string(
        "sweep", list(BERT_GRID), "MACRO=v1,v2,... (repeat for a grid over several macros).")
    _SPLIT = flags.DEFINE_string("split", "validation", "Split the cells are compared on.")
    _METRIC = flags.DEFINE_string(
        "metric", None, "Compare the cells on this metric of the training run's final "
        "evaluation (e.g. eval/entity_f1) instead of running pretrain_lm.evaluate.")
    _AVERAGE_OVER = flags.DEFINE_string(
        "average_over", None, "A --sweep macro whose cells are repeats (e.g. SEED): the "
        "table adds mean and standard deviation over them.")
    app.run(main, argv=gin_utils.main_argv())
