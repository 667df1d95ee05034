r"""Input pipeline: seqio BERT examples (pairs + NSP + masking) per second on ONE core.

    python -m benchmarks.input_pipeline [--task=bert_pretrain_austen_uncased --batches=200]

Pins the process to one CPU core (``sched_setaffinity``) and gives tf.data one thread,
then times ``--batches`` batches of the training split after a warm-up (the first
batches pay for reading and tokenising). Compares the rate with what the model
consumes, from ``results/bench_bert_step.json`` (written by ``benchmarks.bert_step``
with the same batch and sequence length): the pipeline must lead, or it is the
bottleneck. Writes ``results/bench_input_pipeline.json``.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

from benchmarks.timing import write_results

_TASK = flags.DEFINE_string("task", "bert_pretrain_austen_uncased", "seqio task.")
_BATCH = flags.DEFINE_integer("batch", 32, "Batch size.")
_SEQ = flags.DEFINE_integer("seq", 128, "Sequence length.")
_PREDICTIONS = flags.DEFINE_integer("predictions", 20, "Masked positions per sequence.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Timed batches.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed batches first.")
_STEP_RESULTS = flags.DEFINE_string(
    "step_results", "results/bench_bert_step.json", "The model step benchmark's JSON.")
_OUTPUT = flags.DEFINE_string("output", "results/bench_input_pipeline.json", "JSON results.")


def main(argv: list[str]) -> None:
    del argv
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    import tasks

    dataset = tasks.get_dataset(
        _TASK.value, split="train", max_seq_length=_SEQ.value,
        max_predictions_per_seq=_PREDICTIONS.value, batch_size=_BATCH.value, seed=0,
        shuffle=True)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    iterator = iter(dataset.with_options(options))
    for _ in range(_WARMUP.value):
        next(iterator)
    start = time.perf_counter()
    for _ in range(_BATCHES.value):
        next(iterator)
    seconds = time.perf_counter() - start
    examples_per_sec = _BATCHES.value * _BATCH.value / seconds
    print(f"input pipeline ({_TASK.value}, seq {_SEQ.value}, {_PREDICTIONS.value} "
          f"predictions) on 1 core: {examples_per_sec:.0f} examples/s "
          f"({1e3 * seconds / _BATCHES.value:.1f} ms per batch of {_BATCH.value})")
    results = {"task": _TASK.value, "batch": _BATCH.value, "seq": _SEQ.value,
               "examples_per_sec_one_core": examples_per_sec}
    if os.path.exists(_STEP_RESULTS.value):
        with open(_STEP_RESULTS.value) as f:
            step = json.load(f)
        ours = step["pretrain_lm (JAX)"]["seconds_per_step"]
        consumed = step["config"]["batch"] / ours
        results["model_examples_per_sec"] = consumed
        results["lead"] = examples_per_sec / consumed
        print(f"model step consumes {consumed:.1f} examples/s (all cores): the pipeline leads "
              f"by {examples_per_sec / consumed:.1f}x on one core")
    write_results(_OUTPUT.value, results)


if __name__ == "__main__":
    app.run(main)
