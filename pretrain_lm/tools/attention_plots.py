r"""Attention heatmaps of a trained translation model for one sentence (PNG).

    python -m pretrain_lm.tools.attention_plots --gin_file=transformer/demo_tiny_en_de.gin \
      --gin.MODEL_DIR=runs/demo_mt --sentence="Cannot open the file" [--output_dir=...]

Translates the sentence (greedy), runs the model over (source, translation) and writes,
like the lecture's layer-5 pictures, one PNG per layer with a panel per head:
``encoder_self_attention_layer_<i>.png`` (source x source) and
``encoder_decoder_attention_layer_<i>.png`` (target x source), under
``MODEL_DIR/attention/``. The weights come from the ``intermediates`` that
``layers.MultiHeadAttention`` sows.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from pretrain_lm import gin_utils

_GIN = gin_utils.define_gin_flags()
_SENTENCE = flags.DEFINE_string("sentence", None, "Source sentence to translate and plot.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Default: MODEL_DIR/attention.")


def attention_maps(model: Any, params: Any, source_ids: list[int], target_ids: list[int]
                   ) -> dict[str, list[np.ndarray]]:
    """``{"encoder": [layer: [heads, src, src]], "cross": [layer: [heads, tgt, src]]}``."""
    from models import transformer

    batch = transformer.seq2seq_batch(np.asarray([source_ids], np.int32),
                                      np.asarray([target_ids], np.int32))
    _, state = model.network.apply(
        {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
        deterministic=True, mutable=["intermediates"])
    found = state["intermediates"]

    def layers_of(stack: dict, attention: str) -> list[np.ndarray]:
        names = sorted((k for k in stack if k.startswith("layer_")), key=lambda k: int(k[6:]))
        return [np.asarray(stack[n][attention]["attention_weights"][0][0]) for n in names]

    return {"encoder": layers_of(found["encoder"], "attention"),
            "cross": layers_of(found["decoder"], "cross_attention")}


def plot_heads(weights: np.ndarray, rows: list[str], columns: list[str], title: str,
               path: str) -> str:
    """One panel per head of a ``[heads, rows, columns]`` attention map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = weights.shape[0]
    cols = min(heads, 4)
    grid = (heads + cols - 1) // cols
    size = 0.28 * max(len(rows), len(columns)) + 1.5
    fig, axes = plt.subplots(grid, cols, figsize=(cols * size, grid * size), squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> None:
    if not _SENTENCE.value or not _SENTENCE.value.strip():
        sys.exit("error: give a non-empty --sentence.")
    gin_utils.start(argv, _GIN)

    import tasks
    from pretrain_lm import mt
    from pretrain_lm.checkpoints import Checkpointer, CheckpointMismatchError, abstract_params
    from pretrain_lm.partitioning import Partitioner

    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    model_dir = gin_utils.macro("MODEL_DIR")
    task = gin_utils.macro("MIXTURE_OR_TASK_NAME")
    vocab = tasks.get_vocabulary(task)
    source = Checkpointer(model_dir, read_only=True, async_save=False)
    steps = sorted(source.manager.all_steps())
    if not steps:
        sys.exit(f"error: no checkpoints in {source.directory}; train first.")
    abstract = abstract_params(model, Partitioner())
    try:
        params = source.restore_params(steps[-1], abstract, tasks.vocabulary_record(task))
    except CheckpointMismatchError as e:
        sys.exit(f"error: {e}")
    source_ids = vocab.encode(_SENTENCE.value)[:model.max_source_length]
    translate = mt.make_translate_fn(model, method="greedy",
                                         max_length=model.max_target_length,
                                         eos_id=vocab.eos_id)
    padded = np.zeros((1, model.max_source_length), np.int32)
    padded[0, :len(source_ids)] = source_ids
    tokens = [int(t) for t in np.asarray(translate(params, jnp.asarray(padded),
                                                   jax.random.key(0)))[0]]
    target_ids = tokens[:tokens.index(vocab.eos_id) + 1] if vocab.eos_id in tokens else tokens
    maps = attention_maps(model, params, source_ids, target_ids)
    pieces = lambda ids: [vocab.tokenizer.id_to_piece(int(i)) for i in ids]  # noqa: E731
    src, tgt = pieces(source_ids), pieces(target_ids)
    out_dir = _OUTPUT_DIR.value or os.path.join(model_dir, "attention")
    os.makedirs(out_dir, exist_ok=True)
    print(f"{_SENTENCE.value!r} -> {vocab.decode(target_ids)!r} (step {steps[-1]})")
    for i, w in enumerate(maps["encoder"]):
        print(plot_heads(w, src, src, f"encoder self-attention, layer {i + 1}",
                         os.path.join(out_dir, f"encoder_self_attention_layer_{i + 1}.png")))
    for i, w in enumerate(maps["cross"]):
        print(plot_heads(w, tgt, src, f"encoder-decoder attention, layer {i + 1}",
                         os.path.join(out_dir, f"encoder_decoder_attention_layer_{i + 1}.png")))


if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
