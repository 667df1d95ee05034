r"""Translate with a trained Transformer checkpoint and score it with sacrebleu.

    python -m pretrain_lm.decode --gin_file=demo/transformer_tiny_en_de.gin \
      --gin.MODEL_DIR=runs/demo_mt [--split=test | --input_file=src.txt] \
      [--method=beam|greedy|sample] [--beam_size=4 --alpha=0.6] [--checkpoint=STEP]

Reads the model from the run's gin files, restores the parameters of the latest (or a
given) checkpoint, decodes every source of a seqio split (or every line of a file) with
the compiled decoders of ``pretrain_lm.decoding`` (beam 4, GNMT length penalty
alpha 0.6 and at most ``input length + 50`` tokens by default, as the Transformer paper),
writes the detokenised hypotheses to ``MODEL_DIR/decode_<split>/hypotheses.txt`` and,
for a split, prints sacrebleu's corpus BLEU with its signature beside the BLEU of
copying the source, writing both to ``bleu.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import gin
from absl import app, flags

from pretrain_lm import gin_utils, host
from pretrain_lm.mt import bleu, split_sources_and_references, translate_all

_GIN_FILE = flags.DEFINE_multi_string("gin_file", [], "gin config files (in order).")
_GIN_BINDINGS = flags.DEFINE_multi_string(
    "gin_bindings", [], "Extra gin bindings; --gin.KEY=VALUE is rewritten to these.")
_SPLIT = flags.DEFINE_string("split", "test", "seqio split to translate and score.")
_INPUT_FILE = flags.DEFINE_string("input_file", None, "Translate this file's lines instead.")
_OUTPUT = flags.DEFINE_string("output", None, "Hypotheses file (default under MODEL_DIR).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "latest", "latest or a step number.")
_METHOD = flags.DEFINE_enum("method", "beam", ["beam", "greedy", "sample"], "Decoder.")
_BEAM = flags.DEFINE_integer("beam_size", 4, "Beam size.")
_ALPHA = flags.DEFINE_float("alpha", 0.6, "GNMT length-penalty alpha.")
_EXTRA = flags.DEFINE_integer("extra_length", 50, "Decode at most input length + this.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sentences per decoding batch.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sampling top-k (0: off).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Sampling nucleus top-p (1: off).")
_LIMIT = flags.DEFINE_integer("max_examples", None, "Translate only the first N.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    host.keep_freed_memory()
    gin_utils.quiet_library_logs()
    try:
        gin_utils.parse(_GIN_FILE.value, _GIN_BINDINGS.value)
    except gin_utils.GinConfigError as e:
        sys.exit(f"error: {e}")

    import tasks
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
    step = steps[-1] if _CHECKPOINT.value == "latest" else int(_CHECKPOINT.value)
    abstract = abstract_params(model, Partitioner())
    try:
        params = source.restore_params(step, abstract, tasks.vocabulary_record(task))
    except CheckpointMismatchError as e:
        sys.exit(f"error: {e}")
    if _INPUT_FILE.value:
        with open(_INPUT_FILE.value, encoding="utf-8") as f:
            sources, references = [line.rstrip("\n") for line in f], None
        name = "file"
    else:
        sources, references = split_sources_and_references(task, _SPLIT.value)
        name = _SPLIT.value
    if _LIMIT.value:
        sources = sources[:_LIMIT.value]
        references = references[:_LIMIT.value] if references else None
    inputs_length = model.max_source_length
    max_length = min(inputs_length + _EXTRA.value, model.config.max_length)
    start = time.perf_counter()
    try:
        hypotheses, counts = translate_all(
            model, params, vocab, sources, inputs_length=inputs_length,
            batch_size=_BATCH.value, method=_METHOD.value, beam_size=_BEAM.value,
            alpha=_ALPHA.value, max_length=max_length, eos_id=vocab.eos_id,
            temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value)
    except ValueError as e:
        sys.exit(f"error: {e}")
    seconds = time.perf_counter() - start
    out_dir = os.path.join(model_dir, f"decode_{name}")
    os.makedirs(out_dir, exist_ok=True)
    output = _OUTPUT.value or os.path.join(out_dir, "hypotheses.txt")
    with open(output, "w", encoding="utf-8") as f:
        f.write("\n".join(hypotheses) + "\n")
    result: dict[str, Any] = {"step": step, "method": _METHOD.value, "beam_size": _BEAM.value,
                              "alpha": _ALPHA.value, "seconds": seconds, **counts}
    if references is not None:
        result.update(bleu(hypotheses, references, sources))
        print(f"BLEU {result['bleu']:.2f} ({result['signature']}); copy-the-source BLEU "
              f"{result['copy_source_bleu']:.2f}; chrF {result['chrf']:.2f}; "
              f"{len(hypotheses)} sentences in {seconds:.0f} s")
        with open(os.path.join(out_dir, "bleu.json"), "w") as f:
            json.dump(result, f, indent=1)
    print(f"hypotheses: {output}")


if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
