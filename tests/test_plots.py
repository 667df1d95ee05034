"""`pretrain_lm.tools.plots`: learning curves of one run, several runs on shared panels,
and a clear error when a run has none of the metrics asked for."""

from __future__ import annotations

import json
import os

import pytest

from pretrain_lm.tools import plots


def _run(path, f1s: list[float]) -> str:
    for split, records in (("train", [{"step": s, "loss": 1.0 / s} for s in (1, 2, 3)]),
                           ("eval", [{"step": s, "split": "validation", "entity_f1": f}
                                     for s, f in zip((1, 3), f1s, strict=True)]
                            + [{"step": 3, "split": "test", "entity_f1": 0.0}])):
        os.makedirs(path / split)
        with open(path / split / "metrics.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    return str(path)


def test_one_run_and_runs_side_by_side(tmp_path):
    a, b = _run(tmp_path / "a", [0.5, 0.8]), _run(tmp_path / "b", [0.4, 0.9])
    single = plots.plot_learning_curves(a, ["loss", "entity_f1"])
    assert single == os.path.join(a, "learning_curves.png") and os.path.getsize(single) > 0
    # the relaunch's test-split record is left out of the validation curve
    assert [r["split"] for r in plots._run_metrics(a)["eval"]] == ["validation"] * 2
    both = plots.plot_runs({"A": a, "B": b}, ["entity_f1", "nope"], str(tmp_path / "ab.png"))
    assert os.path.getsize(both) > 0
    with pytest.raises(ValueError, match="No metrics"):
        plots.plot_runs({"A": a}, ["bleu"], str(tmp_path / "x.png"))
