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

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import seqio
import tensorflow as tf

from tasks import corpus, formats, lookup
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
    counts = corpus.tsv_split_sizes(directory, SPLITS)

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


class _CountedSource(seqio.FunctionDataSource):
    """A ``FunctionDataSource`` whose split sizes are counted when first asked."""

    def __init__(self, dataset_fn, splits: Sequence[str], count) -> None:
        super().__init__(dataset_fn, splits=tuple(splits))
        self._count = count

    def num_input_examples(self, split: str) -> int:
        return self._count(split)


def register_pairs_translation_task(name: str, load_split, vocab: seqio.Vocabulary,
                                    splits: Sequence[str] = SPLITS) -> seqio.Task:
    """``load_split(split) -> (sources, targets)`` (e.g. a benchmark's original files,
    ``tasks/benchmark_tasks.py``), read when a dataset is built, not here."""

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        sources, targets = load_split(split)
        ds = tf.data.Dataset.from_tensor_slices({"inputs": list(sources),
                                                 "targets": list(targets)})
        if shuffle_files:
            ds = ds.shuffle(len(sources), seed=seed, reshuffle_each_iteration=True)
        return ds

    return _add(name, source=_CountedSource(dataset_fn, splits,
                                            lambda split: len(load_split(split)[0])),
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


# ---------------------------------------------------------------------------------------
# CoVe (McCann et al., 2017, "Learned in Translation: Contextualized Word Vectors"): the
# MT-LSTM reads fixed pretrained word vectors, so its source side is words, not pieces.

from tasks.word_vectors import load_vectors  # noqa: E402
from tasks.word_vocab import PAD, UNK, WordVocabulary  # noqa: E402


@functools.lru_cache(maxsize=4)
def _vector_words(vectors_path: str, limit: int | None) -> tuple[WordVocabulary, np.ndarray]:
    vectors = load_vectors(vectors_path, limit=limit)
    upper = [w for w in vectors.words if w != w.lower()]
    if upper:
        raise ValueError(
            f"{vectors_path}: {len(upper)} word(s) with upper-case letters (e.g. {upper[:3]}); "
            "the word-level source is lower-cased, so such vectors could never be looked up. "
            "Use lower-cased vectors (GloVe 6B style).")
    vocab = WordVocabulary([PAD, UNK, *vectors.words], lower=True)
    table = np.concatenate([np.zeros((2, vectors.dim), np.float32), vectors.vectors])
    return vocab, table


def vector_vocabulary(vectors_path: str, limit: int | None = None) -> WordVocabulary:
    """The lower-cased word vocabulary of a word-vector file (its first ``limit`` words,
    the most frequent in GloVe's order; None: all): 0 ``<PAD>``, 1 ``<UNK>``, then the
    file's words in file order, so id ``i >= 2`` is the file's vector row ``i - 2``."""
    return _vector_words(os.path.abspath(vectors_path), limit)[0]


def vector_table(vectors_path: str, limit: int | None = None) -> np.ndarray:
    """float32 ``[2 + words, dim]``: the vectors of ``vector_vocabulary(vectors_path,
    limit)``'s ids; ``<PAD>`` and ``<UNK>`` are zero rows (torchtext's GloVe gives unknown
    words zeros, as CoVe's released code does)."""
    return _vector_words(os.path.abspath(vectors_path), limit)[1]


def encode_words(sentence: str, vocab: WordVocabulary) -> list[int]:
    """Word ids of a sentence: ``tasks.bilm.tokenize``, lower-cased, unknown words ``<UNK>``."""
    from tasks.bilm import tokenize

    return vocab.encode([w.lower() for w in tokenize(sentence)])


class VectorWordVocabulary(seqio.PassThroughVocabulary):
    """The seqio face of ``vector_vocabulary(vectors_path)`` (read on first use, so that
    registering a task reads no file): ``vocab_size``, ``tokens``, ``pad_id``, ``word_vocab``;
    ids pass through unchanged (the task encodes the words itself)."""

    def __init__(self, vectors_path: str, limit: int | None = None):
        self.vectors_path = os.path.abspath(vectors_path)
        self.limit = limit
        super().__init__(size=-1)

    @property
    def word_vocab(self) -> WordVocabulary:
        return vector_vocabulary(self.vectors_path, self.limit)

    @property
    def _base_vocab_size(self) -> int:
        return len(self.word_vocab)

    @property
    def size(self) -> int:
        return self._base_vocab_size

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.word_vocab.tokens

    @property
    def pad_id(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VectorWordVocabulary)
                and (other.vectors_path, other.limit) == (self.vectors_path, self.limit))

    def __hash__(self) -> int:
        return hash((self.vectors_path, self.limit))

    def __str__(self) -> str:
        limit = "" if self.limit is None else f", first {self.limit} words"
        return f"VectorWordVocabulary({self.vectors_path}{limit})"


@dataclasses.dataclass(frozen=True)
class _WordSource:
    load_split: Callable[[str], tuple[Sequence[str], Sequence[str]]]
    vectors_path: str
    vector_limit: int | None


_WORD_SOURCE_TASKS: dict[str, _WordSource] = {}


@functools.lru_cache(maxsize=16)
def _encoded_word_source(task: str, split: str
                         ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict]:
    """(flat source word ids, row splits, target strings, source coverage) of a split."""
    from absl import logging

    from tasks.bilm import tokenize

    spec = _WORD_SOURCE_TASKS[task]
    sources, targets = spec.load_split(split)
    vocab = vector_vocabulary(spec.vectors_path, spec.vector_limit)
    words = [[w.lower() for w in tokenize(s)] for s in sources]
    ids = [i for sentence in words for i in vocab.encode(sentence)]
    splits = np.cumsum([0, *map(len, words)])
    coverage = vocab.coverage(words)
    logging.info("%s/%s: %d source tokens, %d (%.1f%%) outside the word vectors (-> <UNK>); "
                 "%d of %d word types", task, split, coverage["tokens"],
                 coverage["unknown_tokens"], 100 * coverage["unknown_rate"],
                 coverage["unknown_types"], coverage["types"])
    return np.asarray(ids, np.int32), splits.astype(np.int64), tuple(targets), coverage


def register_word_source_pairs_task(
        name: str, load_split: Callable[[str], tuple[Sequence[str], Sequence[str]]],
        vectors_path: str, vocab: seqio.Vocabulary, *, vector_limit: int | None = None,
        splits: Sequence[str] = SPLITS) -> seqio.Task:
    """Translation pairs ``load_split(split) -> (sources, targets)`` with a word-level source
    for CoVe's MT-LSTM: ``inputs`` = ``encode_words`` ids into
    ``vector_vocabulary(vectors_path, vector_limit)`` (no EOS), ``targets`` = ``vocab`` ids
    + EOS. The share of source tokens without a vector is logged when a split is first
    read and returned by ``source_coverage(name, split)``; cut sequences are counted as in
    the other translation tasks (``tasks.get_stats(name)``)."""
    _WORD_SOURCE_TASKS[name] = _WordSource(load_split, os.path.abspath(vectors_path),
                                           vector_limit)
    _encoded_word_source.cache_clear()

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        ids, row_splits, targets, _ = _encoded_word_source(name, split)
        ds = tf.data.Dataset.from_tensor_slices({
            "inputs": tf.RaggedTensor.from_row_splits(ids, row_splits),
            "targets": tf.constant(targets)})
        if shuffle_files:
            ds = ds.shuffle(len(targets), seed=seed, reshuffle_each_iteration=True)
        return ds

    features = {"inputs": seqio.Feature(VectorWordVocabulary(vectors_path, vector_limit),
                                        add_eos=False),
                "targets": seqio.Feature(vocab, add_eos=True)}
    return _add(name, source=_CountedSource(dataset_fn, splits,
                                            lambda split: len(load_split(split)[0])),
                preprocessors=_preprocessors(name), output_features=features,
                shuffle_buffer_size=20_000)


def register_word_source_translation_task(name: str, directory: str, vectors_path: str,
                                          vocab: seqio.Vocabulary, source: str, target: str
                                          ) -> seqio.Task:
    """``register_word_source_pairs_task`` over a TSV corpus as
    ``register_tsv_translation_task`` reads it (``directory/{split}.tsv``)."""
    return register_word_source_pairs_task(
        name, lambda split: read_parallel_tsv(os.path.join(directory, f"{split}.tsv"),
                                              source, target),
        vectors_path, vocab)


def _word_source(task: str) -> _WordSource:
    lookup.get_provider(task)  # registers the named tasks
    if task not in _WORD_SOURCE_TASKS:
        raise ValueError(f"{task!r} has no word-level source; word-source tasks: "
                         f"{sorted(_WORD_SOURCE_TASKS)}.")
    return _WORD_SOURCE_TASKS[task]


def source_coverage(task: str, split: str) -> dict:
    """How much of a word-source task's split the word vectors cover
    (``WordVocabulary.coverage``: tokens, unknown_tokens, unknown_rate, types,
    unknown_types), over the whole split, before any cut."""
    _word_source(task)
    return dict(_encoded_word_source(task, split)[3])


def source_word_vectors(task: str) -> np.ndarray:
    """The fixed word-vector table of a word-source task's ``inputs`` ids (``vector_table``),
    for ``models.cove.CoVeTranslationModel.word_vectors``."""
    spec = _word_source(task)
    return vector_table(spec.vectors_path, spec.vector_limit)


class Seq2SeqFormat(formats.InputFormat):
    """Translation pairs (``inputs``, ``targets``) -> seqio ``EncDecFeatureConverter``
    batches, one pair a row or packed (``pack``); a partial last batch gets rows of
    ``decoder_loss_weights`` 0."""

    name = "seq2seq"
    packs = True
    required_lengths = ("inputs_length", "targets_length")
    example_kind = "source/target pairs (inputs, targets)"

    def accepts(self, provider: seqio.DatasetProviderBase) -> bool:
        return set(provider.output_features) == {"inputs", "targets"}

    def dataset(self, request: formats.Request) -> tf.data.Dataset:
        from tasks import batching

        lengths = {"inputs": request.lengths["inputs_length"],
                   "targets": request.lengths["targets_length"]}
        ds = seqio.EncDecFeatureConverter(pack=request.pack)(request.read(lengths), lengths)
        return batching.batch_padding_last(ds, request.batch_size, request.task,
                                           request.split)
