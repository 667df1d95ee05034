r"""Run a trained model from its gin files: predictions or scores, on a split or a file.

    python -m pretrain_lm.infer --gin_file=RUN.gin ... --gin.MODEL_DIR=DIR \
      [--split=validation | --input_file=FILE | --prompt=TEXT] [--mode=predict|score] \
      [--method=greedy|sample|beam --beam_size=4 --alpha=0.6 --temperature=0.8 \
       --top_k=40 --top_p=0.95 --seed=0] [--checkpoint=latest|STEP] \
      [--batch_size=N] [--max_examples=N] [--output=FILE]

The same gin files as the training run; the latest (or a given) checkpoint is restored
and the model's own ``predict_batch`` / ``score_batch`` (``models/base.py``) run:

* **translation** (``models.transformer``): beam 4 (alpha 0.6, at most input length +
  ``--extra_length``) translations of every source of a split, scored with sacrebleu
  (``MODEL_DIR/decode_<split>/hypotheses.txt`` and ``bleu.json``, with the BLEU of copying
  the source beside it), or of every line of ``--input_file``;
* **language model** (``models.gpt``): ``--num_samples`` continuations (sampling by
  default) of ``--prompt``, or one of each line of ``--input_file``;
* **fine-tuned heads** (``models.bert``): every example of a split predicted and scored
  with the task's metric, written as ``pretrain_lm.evaluate`` writes it
  (``MODEL_DIR/eval_<split>/results.{json,md}``; GLUE submission files for ``test``);
  the per-example labels are not written to a file yet;
* **any other model** (the taggers ...): ``predict_batch`` of every example of a split
  (tag ids named by the model's tag set);
* ``--mode=score``: ``score_batch``, each example's log-likelihood of its targets (and the
  perplexity where the targets are tokens);
* ``--mode=vectors``: contextual word vectors of ``--input_file`` (one sentence per line,
  words separated by spaces), as BERT's ``extract_features.py``, AllenNLP's ``elmo``
  command and CoVe users make them: every layer of BERT (``embeddings``, ``layer_1`` ...;
  a word's vector from its first wordpiece or the mean of its pieces, ``--word_pooling``),
  of ELMo's biLM (``layer_0`` ... ``layer_L``) or CoVe's ``glove``, ``cove`` and
  ``glove_cove`` (``[GloVe; CoVe]``); ``--layers`` picks some. Written to
  ``MODEL_DIR/infer_file/vectors.npz`` (or ``--output``), key ``<layer>/<line index>``,
  float32 ``[words, dim]``, aligned to the words of each line.

Per-example outputs of the other models go to ``MODEL_DIR/infer_<split>/predict.jsonl`` or
``score.jsonl`` (prompts from a file: ``MODEL_DIR/infer_file/predictions.jsonl``; or
``--output``) with the summary in ``metrics.json`` beside them. The sampling flags'
defaults (temperature 0.8, top-k 40, top-p 0.95) apply to ``--method=sample`` for every
model. ``python -m pretrain_lm.decode`` and ``python -m pretrain_lm.generate`` are this
command under their old names.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import gin
from absl import app, flags
from tqdm import tqdm

from pretrain_lm import gin_utils
from pretrain_lm.inference import (
    contextual_vectors,
    eval_feature_lengths,
    generate,
    predict_split,
    restore_params,
    run_partitioner,
    score_split,
    write_vectors,
)

if TYPE_CHECKING:
    pass

_GIN = gin_utils.define_gin_flags()
_CHECKPOINT = flags.DEFINE_string("checkpoint", "latest", "latest or a step number.")
_MODE = flags.DEFINE_enum("mode", "predict", ["predict", "score", "vectors"],
                          "predict_batch outputs, score_batch log-likelihoods, or the "
                          "contextual vectors of each word of --input_file.")
_POOLING = flags.DEFINE_enum("word_pooling", "first", ["first", "mean"],
                             "--mode=vectors: a word's vector from its first piece or the "
                             "mean of its pieces.")
_LAYERS = flags.DEFINE_list("layers", None, "--mode=vectors: the layers to write "
                            "(default: all).")
_SPLIT = flags.DEFINE_string("split", "validation", "seqio split to run on.")
_INPUT_FILE = flags.DEFINE_string(
    "input_file", None, "One input per line instead of a split: sources to translate or "
    "prompts to continue.")
_PROMPT = flags.DEFINE_string("prompt", None, "A language model's prompt ('' = from the "
                              "start id).")
_OUTPUT = flags.DEFINE_string("output", None, "Output file (default under MODEL_DIR).")
_METHOD = flags.DEFINE_enum("method", None, ["greedy", "sample", "beam"],
                            "Decoder (default: beam to translate, sample to continue).")
_BEAM = flags.DEFINE_integer("beam_size", 4, "Beam size.")
_ALPHA = flags.DEFINE_float("alpha", 0.6, "GNMT length-penalty alpha.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature.")
_TOP_K = flags.DEFINE_integer("top_k", 40, "Sampling top-k (0: off).")
_TOP_P = flags.DEFINE_float("top_p", 0.95, "Sampling nucleus top-p (1: off).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 3, "Continuations of --prompt.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 60, "Most ids generated after a prompt.")
_EXTRA = flags.DEFINE_integer("extra_length", 50, "Translate at most input length + this.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Examples per batch.")
_LIMIT = flags.DEFINE_integer("max_examples", None, "Only the first N examples.")
_BUCKETS = flags.DEFINE_integer(
    "length_buckets", 4, "Translations and fine-tuned heads: batches of examples of similar "
    "length, each as wide as the narrowest of this many widths that holds it (one compiled "
    "program per width), a translation batch writing at most its width + --extra_length "
    "pieces. 1: every batch at the full length, in order.")


# ----------------------------------------------------------------------------- CLI


def _write(path: str, records: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), "metrics.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    print(f"predictions: {path}")


def _read_lines(path: str) -> list[str]:
    """The file's lines; a line that is not UTF-8 is an error naming the file and line."""
    with open(path, "rb") as f:
        raw = f.read().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    lines = []
    for number, line in enumerate(raw, 1):
        try:
            lines.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}, line {number}: not UTF-8 ({e.reason} at byte "
                             f"{e.start}); re-encode the file as UTF-8.") from None
    return lines


def _translate(model: Any, params: Any, task: str, step: int, model_dir: str) -> None:
    import tasks
    from pretrain_lm.mt import bleu, split_sources_and_references, translate_all

    vocab = tasks.get_vocabulary(task)
    if _INPUT_FILE.value:
        sources, references, name = _read_lines(_INPUT_FILE.value), None, "file"
    else:
        sources, references = split_sources_and_references(task, _SPLIT.value)
        name = _SPLIT.value
    if _LIMIT.value:
        sources = sources[:_LIMIT.value]
        references = references[:_LIMIT.value] if references else None
    method = _METHOD.value or "beam"
    inputs_length = model.max_source_length
    max_length = min(inputs_length + _EXTRA.value, model.config.max_length)
    start = time.perf_counter()
    hypotheses, counts = translate_all(
        model, params, vocab, sources, inputs_length=inputs_length,
        batch_size=_BATCH.value, method=method, beam_size=_BEAM.value, alpha=_ALPHA.value,
        max_length=max_length, eos_id=vocab.eos_id, temperature=_TEMPERATURE.value,
        top_k=_TOP_K.value, top_p=_TOP_P.value, length_buckets=_BUCKETS.value,
        extra_length=_EXTRA.value)
    seconds = time.perf_counter() - start
    out_dir = os.path.join(model_dir, f"decode_{name}")
    os.makedirs(out_dir, exist_ok=True)
    output = _OUTPUT.value or os.path.join(out_dir, "hypotheses.txt")
    with open(output, "w", encoding="utf-8") as f:
        f.write("\n".join(hypotheses) + "\n")
    result: dict[str, Any] = {"step": step, "method": method, "beam_size": _BEAM.value,
                              "alpha": _ALPHA.value, "seconds": seconds, **counts}
    if references is not None:
        result.update(bleu(hypotheses, references, sources))
        print(f"BLEU {result['bleu']:.2f} ({result['signature']}); copy-the-source BLEU "
              f"{result['copy_source_bleu']:.2f}; chrF {result['chrf']:.2f}; "
              f"{len(hypotheses)} sentences in {seconds:.0f} s")
        with open(os.path.join(out_dir, "bleu.json"), "w") as f:
            json.dump(result, f, indent=1)
    print(f"hypotheses: {output}")


def _continue(model: Any, params: Any, task: str, step: int) -> None:
    import tasks

    vocab = tasks.get_vocabulary(task)
    method = _METHOD.value or "sample"
    options = dict(method=method, max_new_tokens=_MAX_NEW.value, seed=_SEED.value,
                   temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value,
                   beam_size=_BEAM.value, alpha=_ALPHA.value)
    start = time.perf_counter()
    if _INPUT_FILE.value:
        prompts = _read_lines(_INPUT_FILE.value)[:_LIMIT.value]
        records = []
        for prompt in tqdm(prompts, desc="generate", unit="prompt"):
            _, texts = generate(model, params, vocab, prompt, num_samples=1, **options)
            records.append({"prompt": prompt, "continuation": texts[0]})
        output = _OUTPUT.value or os.path.join(gin_utils.macro("MODEL_DIR"), "infer_file",
                                                "predictions.jsonl")
        _write(output, records, {"step": step, "method": method, "prompts": len(records),
                                 "seconds": time.perf_counter() - start})
        return
    _, texts = generate(model, params, vocab, _PROMPT.value or "",
                        num_samples=_NUM_SAMPLES.value, **options)
    print(f"step {step}, {method}, {time.perf_counter() - start:.1f} s")
    for i, text in enumerate(texts):
        print(f"--- {i + 1}\n{text}")


def _vectors(model: Any, params: Any, task: str, step: int, model_dir: str) -> None:
    if not _INPUT_FILE.value:
        raise ValueError("--mode=vectors reads --input_file=TEXT: one sentence per line, "
                         "words separated by spaces.")
    sentences = [line.split() for line in _read_lines(_INPUT_FILE.value)][:_LIMIT.value]
    vectors, counts = contextual_vectors(model, params, task, sentences,
                                         pooling=_POOLING.value, layers=_LAYERS.value,
                                         batch_size=_BATCH.value)
    output = _OUTPUT.value or os.path.join(model_dir, "infer_file", "vectors.npz")
    write_vectors(output, vectors)
    summary = {"step": step, "task": task, "word_pooling": _POOLING.value,
               "layers": list(vectors[0]) if vectors else [], **counts}
    with open(os.path.join(os.path.dirname(os.path.abspath(output)), "vectors.json"),
              "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    print(f"vectors: {output} (key '<layer>/<line index>': float32 [words, dim])")


def main(argv: list[str]) -> None:
    gin_utils.start(argv, _GIN)
    from models.base import AutoregressiveDecoding
    from models.bert import BertFineTuningModel
    from pretrain_lm.checkpoints import CheckpointMismatchError

    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    task = gin_utils.macro("MIXTURE_OR_TASK_NAME")
    model_dir = gin_utils.macro("MODEL_DIR")
    generative = isinstance(model, AutoregressiveDecoding)
    try:
        if _MODE.value == "predict" and isinstance(model, BertFineTuningModel):
            from pretrain_lm import evaluation  # restores the model state, writes the table

            evaluation.evaluate_checkpoints(model=model, model_dir=model_dir, tasks=[task],
                                            split=_SPLIT.value, checkpoint=_CHECKPOINT.value,
                                            batch_size=_BATCH.value,
                                            length_buckets=_BUCKETS.value)
            return
        partitioner = run_partitioner()
        params, step = restore_params(model, model_dir, _CHECKPOINT.value, partitioner, task)
        if _MODE.value == "vectors":
            _vectors(model, params, task, step, model_dir)
            return
        if _MODE.value == "predict" and generative and model.input_format == "seq2seq":
            _translate(model, params, task, step, model_dir)
            return
        if _MODE.value == "predict" and generative and (
                _INPUT_FILE.value or _PROMPT.value is not None):
            _continue(model, params, task, step)
            return
        if _MODE.value == "predict" and generative:
            raise ValueError("A language model continues a prompt: give --prompt=TEXT or "
                             "--input_file=PROMPTS, or score a split with --mode=score.")
        if _INPUT_FILE.value or _PROMPT.value is not None:
            raise ValueError(f"--input_file / --prompt: {type(model).__name__} reads a "
                             f"split (--split=...) in --mode={_MODE.value}; files are for "
                             "translation, language models and --mode=vectors.")
        lengths = eval_feature_lengths()
        common = dict(batch_size=_BATCH.value, feature_lengths=lengths,
                      max_examples=_LIMIT.value)
        output = _OUTPUT.value or os.path.join(model_dir, f"infer_{_SPLIT.value}",
                                               f"{_MODE.value}.jsonl")
        if _MODE.value == "score":
            records, summary = score_split(model, params, task, _SPLIT.value, **common)
        else:  # generative models were handled above
            records = predict_split(model, params, task, _SPLIT.value, **common)
            summary = {"examples": len(records)}
    except (FileNotFoundError, ValueError, NotImplementedError,
            CheckpointMismatchError) as e:
        sys.exit(f"error: {gin_utils.without_gin_context(e)}")
    _write(output, records, {"step": step, "task": task, "split": _SPLIT.value, **summary})


if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
