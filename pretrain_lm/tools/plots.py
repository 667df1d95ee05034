r"""Learning curves of a run as a PNG, from its ``{train,eval}/metrics.jsonl``.

    python -m pretrain_lm.tools.plots --model_dir=runs/demo_bert_tiny [--metrics=loss,mlm_accuracy]
    python -m pretrain_lm.tools.plots --run=GloVe=runs/a --run=UNK=runs/b \
      --metrics=entity_f1,loss --output=curves.png

Writes ``MODEL_DIR/learning_curves.png``: one panel per metric, training (every
``log_every`` steps) and held-out evaluation on the same axes. With ``--run=LABEL=DIR``
(repeated) several runs share each panel, one colour a run (evaluation points, training
as a thin line), to compare the variants of an ablation. TensorBoard shows the same
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


def _run_metrics(model_dir: str) -> dict[str, list[dict[str, float]]]:
    """A run's train and eval records; eval keeps its first split only (a relaunch may
    have evaluated another one, e.g. the test split at the last step)."""
    runs = {split: read_metrics(os.path.join(model_dir, split, "metrics.jsonl"))
            for split in ("train", "eval")}
    if runs["eval"]:
        first_split = runs["eval"][0].get("split")
        runs["eval"] = [r for r in runs["eval"] if r.get("split") == first_split]
    return runs


def _present(metrics: Sequence[str], runs: Sequence[dict[str, list[dict[str, float]]]],
             where: str) -> list[str]:
    present = [m for m in metrics
               if any(m in r for run in runs for rs in run.values() for r in rs)]
    if not present:
        raise ValueError(f"No metrics {list(metrics)} in {where}/{{train,eval}}/"
                         "metrics.jsonl; is this a model dir of a run that has logged?")
    return present


def plot_runs(model_dirs: dict[str, str], metrics: Sequence[str], output: str,
              title: str | None = None) -> str:
    """The runs on shared panels (one per metric), one colour a run: evaluation points
    joined, training a thin line (one run: labelled train / eval). Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {label: _run_metrics(d) for label, d in model_dirs.items()}
    present = _present(metrics, list(runs.values()), ", ".join(model_dirs.values()))
    fig, axes = plt.subplots(1, len(present), figsize=(4.4 * len(present), 3.5),
                             squeeze=False)
    for ax, metric in zip(axes[0], present, strict=True):
        for i, (label, run) in enumerate(runs.items()):
            for split, style, width in (("train", "-", 0.9), ("eval", "o-", 1.6)):
                points = [(r["step"], r[metric]) for r in run[split] if metric in r]
                if not points:
                    continue
                if len(runs) == 1:  # one run: a colour a split
                    name, colour, alpha = split, f"C{int(split == 'eval')}", 1.0
                else:
                    name = label if split == "eval" or not run["eval"] else None
                    colour, alpha = f"C{i % 10}", 0.55 if split == "train" else 1.0
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, style, color=colour, linewidth=width, markersize=3,
                        label=name, alpha=alpha)
        ax.set_title(metric)
        ax.set_xlabel("step")
        if metric.endswith(("perplexity", "nll")):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if len(runs) > 1 else None)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def plot_learning_curves(model_dir: str, metrics: Sequence[str] = DEFAULT_METRICS,
                         output: str | None = None) -> str:
    """Draws the curves of ``metrics`` present in the run; returns the PNG path."""
    name = os.path.basename(os.path.normpath(model_dir))
    return plot_runs({name: model_dir}, metrics,
                     output or os.path.join(model_dir, "learning_curves.png"), title=name)


def main(argv: Sequence[str]) -> None:
    values = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if bool(values.model_dir) == bool(values.run):
        raise app.UsageError("Give --model_dir=DIR (one run) or --run=LABEL=DIR ... "
                             "(several).")
    if values.run:
        if not values.output or any("=" not in r for r in values.run):
            raise app.UsageError("--run needs LABEL=MODEL_DIR values and --output=PNG.")
        runs = dict(r.split("=", 1) for r in values.run)
        print(f"wrote {plot_runs(runs, values.metrics, values.output)}")
        return
    print(f"wrote {plot_learning_curves(values.model_dir, values.metrics, values.output)}")


if __name__ == "__main__":
    # Flags are defined only when run as a program (the tests import this module beside
    # other tools that define --model_dir / --output).
    flags.DEFINE_string("model_dir", None, "Model dir of a run.")
    flags.DEFINE_multi_string("run", [], "LABEL=MODEL_DIR, repeated: runs compared on "
                              "shared panels (needs --output).")
    flags.DEFINE_list("metrics", list(DEFAULT_METRICS), "Metrics to plot.")
    flags.DEFINE_string("output", None, "PNG path (default MODEL_DIR/...).")
    app.run(main)
