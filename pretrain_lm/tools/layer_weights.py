r"""ELMo's learned layer weights per downstream run, as a PNG (and JSON).

    python -m pretrain_lm.tools.layer_weights --run=NER=runs/demo_elmo_tagger \
      [--run=LABEL=MODEL_DIR ...] --output=results/elmo_layer_weights.png

For each run of an ELMo tagger (``models/taglm.py`` with ``LM = 'elmo'``) the latest
checkpoint's scalar mixes (``input_mix``, and ``output_mix`` if the run has one) are read
and drawn as grouped bars: the softmax-normalised weight ``s_j`` of each biLM layer
(0 = the character-CNN token layer, 1 .. L the LSTM layers) and, in the legend, the
scale ``gamma``. This is the picture behind the lecture's remark that tasks weight the
layers differently (lower layers more syntactic, higher ones more semantic). The numbers
go to the ``.json`` beside the PNG.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence

from absl import app, flags


def read_layer_weights(model_dir: str) -> dict[str, dict[str, object]]:
    """``{mix name: {"weights": [...], "gamma": g}}`` of a run's latest checkpoint."""
    from models import taglm
    from pretrain_lm import checkpoints

    params = checkpoints.read_params(model_dir)
    mixes = taglm.mix_weights(params)
    if not mixes:
        raise ValueError(f"{model_dir} has no scalar mix (input_mix / output_mix): is it an "
                         "ELMo tagger run (LM = 'elmo')?")
    return {name: {"weights": [float(w) for w in weights], "gamma": gamma}
            for name, (weights, gamma) in mixes.items()}


def plot_layer_weights(runs: Mapping[str, str], output: str) -> str:
    """Draws every run's mixes as grouped bars; writes ``output`` and ``.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = {label: read_layer_weights(path) for label, path in runs.items()}
    bars = [(label, mix, values) for label, mixes in table.items()
            for mix, values in mixes.items()]
    num_layers = max(len(v["weights"]) for _, _, v in bars)
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * num_layers, 3.4))
    for i, (label, mix, values) in enumerate(bars):
        x = np.arange(len(values["weights"])) + (i - (len(bars) - 1) / 2) * width
        name = label if len(table[label]) == 1 else f"{label} ({mix.replace('_mix', '')})"
        ax.bar(x, values["weights"], width, label=f"{name}, gamma={values['gamma']:.2f}")
    ax.axhline(1.0 / num_layers, color="gray", lw=0.8, ls="--", label="uniform")
    ax.set_xticks(range(num_layers))
    ax.set_xticklabels(["token (char CNN)"] + [f"LSTM {j}" for j in range(1, num_layers)])
    ax.set_ylabel("softmax(s_j)")
    ax.set_title("ELMo layer weights learned by each task")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    with open(os.path.splitext(output)[0] + ".json", "w") as f:
        json.dump({label: {"model_dir": runs[label], **mixes} for label, mixes in table.items()},
                  f, indent=1)
    return output


def parse_runs(specs: Sequence[str]) -> dict[str, str]:
    """``["NER=runs/a", ...]`` -> ``{"NER": "runs/a", ...}``."""
    runs = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise ValueError(f"--run={spec!r}: expected LABEL=MODEL_DIR.")
        runs[label] = path
    return runs


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        runs = parse_runs(_RUNS.value)
        print(f"wrote {plot_layer_weights(runs, _OUTPUT.value)}")
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    _RUNS = flags.DEFINE_multi_string("run", None, "LABEL=MODEL_DIR of an ELMo tagger run.",
                                      required=True)
    _OUTPUT = flags.DEFINE_string("output", "elmo_layer_weights.png", "PNG path.")
    app.run(main)
