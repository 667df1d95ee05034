r"""One table of every ratio ``make bench`` measured, against its goal.

    python -m benchmarks.summary [--results_dir=results] [--output=results/bench_summary.json] \
        [--history_dir=results/benchmark/speed] [--archive]

Reads the JSON each benchmark wrote (``results/bench_*.json``) and prints one row per
comparison: ours / the peer on the same work in the same run (> 1: ours is faster), the
goal it is held to, whether it is met, and the load average at the start and end of that
benchmark (above the number of cores the timings are noisy). Writes the table as JSON. A
benchmark that did not run (its file is missing, or older than ``--since`` seconds) is
listed as not run, never silently dropped.

Each folder of ``--history_dir`` holds the JSON files of one earlier run; every row also
shows the spread of its ratio over those runs and this one (min - max, and how many runs
measured it), so one lucky or loaded run does not stand alone. ``--archive`` (``make
bench``) copies this run's files into a new folder there, named by the date.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

from absl import app, flags

from benchmarks.timing import write_results

_RESULTS = flags.DEFINE_string("results_dir", "results", "Where the benchmarks wrote JSON.")
_OUTPUT = flags.DEFINE_string("output", "results/bench_summary.json", "The table as JSON.")
_SINCE = flags.DEFINE_integer("since", None, "Only files written in the last N seconds "
                              "(make bench: this run's); older ones count as not run.")
_HISTORY = flags.DEFINE_string("history_dir", "results/benchmark/speed", "Earlier runs, one "
                               "folder of bench_*.json each: the spread of every ratio.")
_ARCHIVE = flags.DEFINE_bool("archive", False, "Copy this run's files into a new folder of "
                             "--history_dir (named by the date).")

# (row, file, path of the ratio in it, goal, what the ratio counts)
ROWS: tuple[tuple[str, str, tuple[str, ...], float, str], ...] = (
    ("Multi30k Transformer training, packed vs padded to longest",
     "bench_transformer_mt.json", ("train_multi30k", "speedup_vs_peer"), 1.5,
     "real target tokens/s"),
    ("MiniLM fine-tuning on SST-2, packed vs padded to longest",
     "bench_finetune_step.json", ("speedup_vs_peer",), 1.5, "real wordpieces/s"),
    ("Beam search (beam 4), random weights", "bench_transformer_mt.json",
     ("decode", "speedup_vs_peer"), 1.2, "sentences/s"),
    ("Beam search (beam 4), trained weights, Multi30k test",
     "bench_transformer_mt.json", ("decode_trained", "speedup_vs_peer"), 1.2,
     "sentences/s"),
    ("Transformer training step, fixed shape", "bench_transformer_mt.json",
     ("train", "speedup_vs_peer"), 1.0, "target tokens/s"),
    ("AWD-LSTM training step, fixed shape", "bench_awd_lstm.json",
     ("train", "speedup_vs_peer"), 1.0, "tokens/s"),
    ("BERT pretraining step, fixed shape", "bench_bert_step.json", ("speedup_vs_peer",), 2.5,
     "tokens/s"),
    ("ELMo biLM training step, fixed shape", "bench_elmo.json",
     ("train", "speedup_vs_peer"), 1.0, "tokens/s"),
)


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _load(results_dir: str, file: str, since: int | None = None) -> Any:
    """The JSON of ``file`` in ``results_dir``; None if absent or older than ``since`` s."""
    full = os.path.join(results_dir, file)
    if not os.path.exists(full) or (since is not None
                                    and time.time() - os.path.getmtime(full) > since):
        return None
    with open(full) as f:
        return json.load(f)


def history_runs(history_dir: str | None) -> list[str]:
    """The folders of earlier runs under ``history_dir``, oldest name first."""
    if not history_dir or not os.path.isdir(history_dir):
        return []
    return sorted(os.path.join(history_dir, d) for d in os.listdir(history_dir)
                  if os.path.isdir(os.path.join(history_dir, d)))


def summarize(results_dir: str, since: int | None = None,
              history: list[str] = ()) -> list[dict[str, Any]]:
    """One dict per row of ``ROWS``: ratio (None if not run), goal, met, load averages,
    the ratios of the earlier runs in ``history`` that measured it (``earlier``) and the
    spread over them and this run (``spread``: [min, max], ``runs``: how many)."""
    rows = []
    for name, file, path, goal, unit in ROWS:
        data = _load(results_dir, file, since)
        ratio = _get(data, path) if data is not None else None
        # A folder holding this very run (archived before) is not counted twice.
        earlier = [r for r in (_get(e, path) for e in (_load(d, file) for d in history)
                               if e != data) if r is not None]
        measured = earlier + ([ratio] if ratio is not None else [])
        rows.append({"benchmark": name, "unit": unit, "ratio": ratio, "goal": goal,
                     "met": None if ratio is None else ratio >= goal,
                     "load_average": _get(data, ("load_average",)) if data else None,
                     "file": file, "earlier": earlier, "runs": len(measured),
                     "spread": [min(measured), max(measured)] if measured else None})
    return rows


def archive(results_dir: str, history_dir: str, rows: list[dict[str, Any]]) -> str:
    """Copies the files of this run's measured rows into ``history_dir/<date>``."""
    target = os.path.join(history_dir, time.strftime("%Y-%m-%d_%H%M"))
    os.makedirs(target, exist_ok=True)
    for file in sorted({r["file"] for r in rows if r["ratio"] is not None}):
        shutil.copy2(os.path.join(results_dir, file), target)
    return target


def main(argv: list[str]) -> None:
    del argv
    history = history_runs(_HISTORY.value)
    rows = summarize(_RESULTS.value, _SINCE.value, history)
    print(f"\nbench summary ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; "
          "ours / peer on the same work in the same run; spread over this run and "
          f"{len(history)} earlier ones in {_HISTORY.value}):")
    print(f"{'benchmark':60s} {'counted':>22s} {'ratio':>7s} {'goal':>6s} {'met':>4s} "
          f"{'load start/end':>15s} {'spread (runs)':>20s}")
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "not run"
        met = {None: "-", True: "yes", False: "no"}[r["met"]]
        load = ("{:.1f} / {:.1f}".format(*r["load_average"]) if r["load_average"]
                else "-")
        spread = ("{:.2f}-{:.2f}x".format(*r["spread"]) + f" ({r['runs']})"
                  if r["spread"] else "-")
        print(f"{r['benchmark']:60s} {r['unit']:>22s} {ratio:>7s} {r['goal']:5.1f}x "
              f"{met:>4s} {load:>15s} {spread:>20s}")
    if _ARCHIVE.value:
        print(f"this run's files copied to {archive(_RESULTS.value, _HISTORY.value, rows)}")
    write_results(_OUTPUT.value, {"date": time.strftime("%Y-%m-%d %H:%M"),
                                  "cores": os.cpu_count(), "rows": rows})


if __name__ == "__main__":
    app.run(main)
