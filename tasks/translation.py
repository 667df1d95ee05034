"""Machine-translation tasks: shared sentencepiece BPE vocabulary, seqio tasks, counters.

* ``python -m tasks.translation learn_vocab``-style learning lives in ``learn_bpe``:
  a byte-pair-encoding sentencepiece model learned from both sides of the training
  text (one shared source/target vocabulary, ids pad=0, eos=1, unk=2 as seqio expects),
  used as a ``seqio.SentencePieceVocabulary``.
* ``register_tsv_translation_task``: a TSV corpus (``data/parallel/en-de`` ...: header
  ``en<TAB>de``, one pair per line; train / validation / test files).
* ``register_wmt_task``: TFDS ``wmt14_translate/de-en``, ``fr-en`` and
  ``wmt_t2t_translate/de-en`` (DatasetNotPreparedError with the ``tfds build``
  command when absent).

Examples are ``{"inputs": source ids, "targets": target ids + EOS}``; sequences longer
than the requested lengths are cut and counted (``tasks.get_stats(task)``:
``truncated_inputs`` / ``truncated_targets``), never silently. seqio's
``EncDecFeatureConverter`` turns them into the model's features.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence

import numpy as np
import seqio
import tensorflow as tf

from tasks import preprocessors as pp
from tasks.pretraining import PreparedTfdsDataSource

SPLITS = ("train", "validation", "test")


class MalformedCorpusError(ValueError):
    """A parallel corpus file does not have the expected format."""


def learn_bpe(texts: Sequence[str], model_prefix: str, vocab_size: int = 8000,
              character_coverage: float = 1.0) -> str:
    """Learns a shared BPE sentencepiece model from ``texts``; returns the model path."""
    import sentencepiece as spm

    os.makedirs(os.path.dirname(os.path.abspath(model_prefix)), exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=model_prefix, model_type="bpe",
        vocab_size=vocab_size, character_coverage=character_coverage, pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, input_sentence_size=0, shuffle_input_sentence=False,
        num_threads=2, minloglevel=2)
    return f"{model_prefix}.model"


def read_parallel_tsv(path: str, source: str, target: str) -> tuple[list[str], list[str]]:
    """``source<TAB>target`` pairs after a header naming both; every bad line is reported
    (wrong number of fields, empty side)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Parallel corpus file {path!r} does not exist.")
    sources, targets, problems = [], [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        if header != f"{source}\t{target}":
            raise MalformedCorpusError(
                f"{path}: the first line must be '{source}<TAB>{target}', got {header!r}.")
        for number, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2:
                problems.append(f"line {number}: expected 2 tab-separated fields, got "
                                f"{len(fields)}")
            elif not fields[0].strip() or not fields[1].strip():
                side = source if not fields[0].strip() else target
                problems.append(f"line {number}: empty {side} side")
            else:
                sources.append(fields[0])
                targets.append(fields[1])
    if problems:
        raise MalformedCorpusError(f"{path}: {len(problems)} malformed line(s):\n  "
                                   + "\n  ".join(problems[:10]))
    return sources, targets


def count_truncation(dataset: tf.data.Dataset, sequence_length: Mapping[str, int], *,
                     stats_name: str) -> tf.data.Dataset:
    """Counts examples whose inputs/targets (targets with their EOS) exceed the lengths."""

    def record(n_in: np.ndarray, n_tgt: np.ndarray) -> np.int32:
        pp.STATS.add(stats_name, {"examples": 1,
                                  "truncated_inputs": int(n_in > sequence_length["inputs"]),
                                  "truncated_targets": int(n_tgt + 1 > sequence_length["targets"])})
        return np.int32(0)

    def fn(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        zero = tf.ensure_shape(tf.numpy_function(
            record, [tf.size(ex["inputs"]), tf.size(ex["targets"])], tf.int32,
            stateful=False), [])
        return {**ex, "inputs": ex["inputs"] + tf.cast(zero, ex["inputs"].dtype)}

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def _preprocessors(name: str) -> list:
    return [
        seqio.preprocessors.tokenize,
        seqio.CacheDatasetPlaceholder(),
        functools.partial(count_truncation, stats_name=name),
        seqio.preprocessors.append_eos_after_trim,
    ]


def output_features(vocab: seqio.Vocabulary) -> dict[str, seqio.Feature]:
    return {"inputs": seqio.Feature(vocab, add_eos=False),
            "targets": seqio.Feature(vocab, add_eos=True)}


def _add(name: str, **kwargs: object) -> seqio.Task:
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    return seqio.TaskRegistry.add(name, **kwargs)


def register_tsv_translation_task(name: str, directory: str, vocab: seqio.Vocabulary,
                                  source: str, target: str) -> seqio.Task:
    """``directory/{train,validation,test}.tsv`` (header ``source<TAB>target``)."""
    counts = {}
    for split in SPLITS:
        path = os.path.join(directory, f"{split}.tsv")
        if os.path.exists(path):
            with open(path, "rb") as f:
                counts[split] = sum(1 for _ in f) - 1

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        sources, targets = read_parallel_tsv(os.path.join(directory, f"{split}.tsv"),
                                             source, target)
        ds = tf.data.Dataset.from_tensor_slices({"inputs": sources, "targets": targets})
        if shuffle_files:
            ds = ds.shuffle(len(sources), seed=seed, reshuffle_each_iteration=True)
        return ds

    return _add(name, source=seqio.FunctionDataSource(dataset_fn, splits=SPLITS,
                                                      num_input_examples=counts or None),
                preprocessors=_preprocessors(name), output_features=output_features(vocab),
                shuffle_buffer_size=20_000)


def register_wmt_task(name: str, tfds_name: str, vocab: seqio.Vocabulary, source: str,
                      target: str, tfds_data_dir: str | None = None) -> seqio.Task:
    """TFDS WMT (e.g. ``wmt14_translate/de-en:1.0.0``); validation = newstest2013,
    test = newstest2014 as TFDS splits them."""

    def select(ds: tf.data.Dataset) -> tf.data.Dataset:
        return ds.map(lambda ex: {"inputs": ex[source], "targets": ex[target]},
                      num_parallel_calls=tf.data.AUTOTUNE)

    return _add(name, source=PreparedTfdsDataSource(tfds_name, tfds_data_dir=tfds_data_dir),
                preprocessors=[select, *_preprocessors(name)],
                output_features=output_features(vocab))
