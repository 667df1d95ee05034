r"""Learning curves of a run as a PNG, from its ``{train,eval}/metrics.jsonl``.

    python -m pretrain_lm.tools.plots --model_dir=runs/demo_bert_tiny [--metrics=loss,mlm_accuracy]

Writes ``MODEL_DIR/learning_curves.png``: one panel per metric, training (every
``log_every`` steps) and held-out evaluation on the same axes. TensorBoard shows the same
scalars interactively; this is the picture for a paper draft or a report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from absl import app, flags

DEFAULT_METRICS = ("loss", "mlm_accuracy", "nsp_accuracy", "mlm_perplexity")


def read_metrics(path: str) -> list[dict[str, float]]:
    """Records of a metrics.jsonl file (empty when the file does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_learning_curves(model_dir: str, metrics: Sequence[str] = DEFAULT_METRICS,
                         output: str | None = None) -> str:
    """Draws the curves of ``metrics`` present in the run; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {split: read_metrics(os.path.join(model_dir, split, "metrics.jsonl"))
            for split in ("train", "eval")}
    if runs["eval"]:  # one split: a relaunch may have evaluated another one
        first_split = runs["eval"][0].get("split")
        runs["eval"] = [r for r in runs["eval"] if r.get("split") == first_split]
    present = [m for m in metrics if any(m in r for rs in runs.values() for r in rs)]
    if not present:
        raise ValueError(f"No metrics {list(metrics)} in {model_dir}/{{train,eval}}/"
                         "metrics.jsonl; is this a model dir of a run that has logged?")
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.4),
                             squeeze=False)
    for ax, metric in zip(axes[0], present, strict=True):
        for split, style in (("train", "-"), ("eval", "o-")):
            points = [(r["step"], r[metric]) for r in runs[split] if metric in r]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, style, label=split, markersize=4)
        ax.set_title(metric)
        ax.set_xlabel("step")
        if metric.endswith("perplexity"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(os.path.basename(os.path.normpath(model_dir)))
    fig.tight_layout()
    output = output or os.path.join(model_dir, "learning_curves.png")
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Model dir of a run.", required=True)
_METRICS = flags.DEFINE_list("metrics", list(DEFAULT_METRICS), "Metrics to plot.")
_OUTPUT = flags.DEFINE_string("output", None, "PNG path (default MODEL_DIR/...).")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print(f"wrote {plot_learning_curves(_MODEL_DIR.value, _METRICS.value, _OUTPUT.value)}")


if __name__ == "__main__":
    app.run(main)
