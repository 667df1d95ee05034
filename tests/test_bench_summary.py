"""``benchmarks.summary``: one row per comparison, its goal, and the spread over runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(folder, file: str, data: dict) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, file), "w") as f:
        json.dump(data, f)


def _summary(tmp_path, *extra: str) -> dict:
    out = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.summary", f"--results_dir={tmp_path / 'now'}",
         f"--history_dir={tmp_path / 'history'}", f"--output={out}", *extra],
        capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out) as f:
        return {r["benchmark"]: r for r in json.load(f)["rows"]}


def test_rows_show_this_run_the_goal_and_the_spread_over_earlier_runs(tmp_path):
    _write(tmp_path / "now", "bench_awd_lstm.json",
           {"train": {"speedup_vs_peer": 0.84}, "load_average": [1.0, 2.0]})
    _write(tmp_path / "history" / "a", "bench_awd_lstm.json",
           {"train": {"speedup_vs_peer": 0.81}})
    _write(tmp_path / "history" / "b", "bench_awd_lstm.json",
           {"train": {"speedup_vs_peer": 0.88}})
    _write(tmp_path / "history" / "b", "bench_bert_step.json", {"speedup_vs_peer": 2.3})
    rows = _summary(tmp_path, "--archive")
    awd = rows["AWD-LSTM training step, fixed shape"]
    assert awd["ratio"] == 0.84 and awd["met"] is False and awd["goal"] == 1.0
    assert awd["earlier"] == [0.81, 0.88] and awd["spread"] == [0.81, 0.88]
    assert awd["runs"] == 3
    bert = rows["BERT pretraining step, fixed shape"]  # not run now: listed, not dropped
    assert bert["ratio"] is None and bert["met"] is None and bert["runs"] == 1
    archived = [d for d in os.listdir(tmp_path / "history") if d not in ("a", "b")]
    assert len(archived) == 1
    assert os.listdir(tmp_path / "history" / archived[0]) == ["bench_awd_lstm.json"]
    # Summarised again without --since, the archived copy of this run is not counted twice.
    assert _summary(tmp_path)["AWD-LSTM training step, fixed shape"]["runs"] == 3
