r"""One table of every ratio ``make bench`` measured, against its goal.

    python -m benchmarks.summary [--results_dir=results] [--output=results/bench_summary.json]

Reads the JSON each benchmark wrote (``results/bench_*.json``) and prints one row per
comparison: ours / the peer on the same work in the same run (> 1: ours is faster), the
goal it is held to, whether it is met, and the load average at the start and end of that
benchmark (above the number of cores the timings are noisy). Writes the table as JSON. A
benchmark that did not run (its file is missing, or older than ``--since`` seconds) is
listed as not run, never silently dropped.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from absl import app, flags

from benchmarks.timing import write_results

_RESULTS = flags.DEFINE_string("results_dir", "results", "Where the benchmarks wrote JSON.")
_OUTPUT = flags.DEFINE_string("output", "results/bench_summary.json", "The table as JSON.")
_SINCE = flags.DEFINE_integer("since", None, "Only files written in the last N seconds "
                              "(make bench: this run's); older ones count as not run.")

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


def summarize(results_dir: str, since: int | None = None) -> list[dict[str, Any]]:
    """One dict per row of ``ROWS``: ratio (None if not run), goal, met, load averages."""
    rows = []
    for name, file, path, goal, unit in ROWS:
        full = os.path.join(results_dir, file)
        data = None
        if os.path.exists(full) and (since is None
                                     or time.time() - os.path.getmtime(full) <= since):
            with open(full) as f:
                data = json.load(f)
        ratio = _get(data, path) if data is not None else None
        rows.append({"benchmark": name, "unit": unit, "ratio": ratio, "goal": goal,
                     "met": None if ratio is None else ratio >= goal,
                     "load_average": _get(data, ("load_average",)) if data else None,
                     "file": file})
    return rows


def main(argv: list[str]) -> None:
    del argv
    rows = summarize(_RESULTS.value, _SINCE.value)
    print(f"\nbench summary ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; "
          "ours / peer on the same work in the same run):")
    print(f"{'benchmark':60s} {'counted':>22s} {'ratio':>7s} {'goal':>6s} {'met':>4s} "
          f"{'load start/end':>15s}")
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "not run"
        met = {None: "-", True: "yes", False: "no"}[r["met"]]
        load = ("{:.1f} / {:.1f}".format(*r["load_average"]) if r["load_average"]
                else "-")
        print(f"{r['benchmark']:60s} {r['unit']:>22s} {ratio:>7s} {r['goal']:5.1f}x "
              f"{met:>4s} {load:>15s}")
    write_results(_OUTPUT.value, {"date": time.strftime("%Y-%m-%d %H:%M"),
                                  "cores": os.cpu_count(), "rows": rows})


if __name__ == "__main__":
    app.run(main)
