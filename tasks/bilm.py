r"""Word-level bidirectional language-model (biLM) tasks for ELMo (``models/elmo.py``).

``register_corpus_bilm_task(name, corpus_path, vocab_path)``: a BERT-format corpus file
(one sentence per line, a blank line between documents) split into ``train`` /
``validation`` by document exactly as the other corpus tasks
(``tasks.pretraining.corpus_split_documents``). Every sentence is one example:

* tokenised by ``tokenize`` (a plain regex tokenizer: runs of letters/digits, with inner
  apostrophes kept, e.g. ``Woodhouse's``; every other non-space character, punctuation
  and hyphens included, a token of its own; case kept), then wrapped in ``<S>`` ... ``</S>``;
* ``token_ids`` ``[n]`` int32: word ids of ``tasks.word_vocab.WordVocabulary`` (0 =
  padding, 1 = ``<UNK>``), the biLM's softmax targets;
* ``char_ids`` ``[n, 50]`` int32: ELMo's character ids (``models.characters.CharVocabulary``;
  ``<S>`` / ``</S>`` get its ``bos_chars`` / ``eos_chars`` rows);
* ``token_weights`` ``[n]`` float32: 1 at every token.

The examples are cut to ``sequence_length["token_ids"]`` tokens (the tail, ``</S>``
included, goes); cut sentences and tokens are counted in ``tasks.preprocessors.STATS``
(``tasks.get_stats(name)``: ``sentences``, ``tokens``, ``truncated_sentences``,
``truncated_tokens``). ``tasks.get_dataset`` pads them to ``targets_length`` and batches
(``is_bilm_task``). The encoding is precomputed in numpy per split on first use (a word
type's character row and word id once, then gathered per sentence).

The word vocabulary: the train split's words (with ``<S>`` / ``</S>``) seen at least
``MIN_COUNT`` = 3 times (``build_vocabulary``); the shipped Austen one is
``data/vocab/austen_words/vocab.txt``, written by

    python -m tasks.bilm --corpus=data/corpus/austen.txt \
      --output=data/vocab/austen_words/vocab.txt
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence

import numpy as np
import seqio
import tensorflow as tf

from models.characters import MAX_WORD_LENGTH, CharVocabulary
from tasks import preprocessors as pp
from tasks.pretraining import corpus_split_documents
from tasks.word_vocab import WordVocabulary

BOS, EOS = "<S>", "</S>"
MIN_COUNT = 3
SPLITS = ("train", "validation")
DEFAULT_VALIDATION_FRACTION = 0.05
DEFAULT_SHUFFLE_BUFFER = 1_000  # on top of a full shuffle of the sentences per epoch
TOKEN_IDS, CHAR_IDS, TOKEN_WEIGHTS = "token_ids", "char_ids", "token_weights"
FEATURES = frozenset({TOKEN_IDS, CHAR_IDS, TOKEN_WEIGHTS})

_TOKEN_RE = re.compile("\\w+(?:['\u2019]\\w+)*|[^\\w\\s]")


def tokenize(sentence: str) -> list[str]:
    """Words and numbers (``\\w`` runs with inner apostrophes) and single punctuation
    marks as separate tokens, case kept: "Mr. Woodhouse's self-denying--" -> ["Mr", ".",
    "Woodhouse's", "self", "-", "denying", "-", "-"]."""
    return _TOKEN_RE.findall(sentence)


def split_sentences(corpus_path: str, split: str,
                    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
                    ) -> list[list[str]]:
    """The tokenised sentences (without ``<S>``/``</S>``) of ``split``, in corpus order;
    sentences with no token are left out."""
    docs = corpus_split_documents(os.path.abspath(corpus_path), split, validation_fraction)
    sentences = (tokenize(line) for doc in docs for line in doc.split("\n"))
    return [s for s in sentences if s]


def build_vocabulary(corpus_path: str, min_count: int = MIN_COUNT,
                     validation_fraction: float = DEFAULT_VALIDATION_FRACTION
                     ) -> WordVocabulary:
    """The word vocabulary of the train split (``<S>``/``</S>`` counted once a sentence)."""
    sentences = split_sentences(corpus_path, "train", validation_fraction)
    vocab = WordVocabulary.from_corpus(([BOS, *s, EOS] for s in sentences),
                                       min_count=min_count)
    _check_boundaries(vocab, corpus_path)
    return vocab


def _check_boundaries(vocab: WordVocabulary, where: str) -> None:
    missing = [t for t in (BOS, EOS) if t not in vocab]
    if missing:
        raise ValueError(f"The biLM word vocabulary ({where}) lacks {missing}; build it "
                         "with tasks.bilm.build_vocabulary.")


class WordIdVocabulary(seqio.PassThroughVocabulary):
    """The seqio face of a ``WordVocabulary``: ``vocab_size`` (= its size), ``tokens``
    (for ``tasks.vocabulary_record``), ``word_vocab``; ids pass through unchanged.

    ``word_vocab`` may be a function that builds it (from data read only when a dataset is
    made, e.g. the benchmark files); ``size`` then says its size up front, and the built
    vocabulary must have it."""

    def __init__(self, word_vocab: WordVocabulary | Callable[[], WordVocabulary],
                 size: int | None = None):
        if isinstance(word_vocab, WordVocabulary):
            _check_boundaries(word_vocab, repr(word_vocab))
            self._word_vocab, self._build = word_vocab, None
            size = len(word_vocab)
        elif size is None:
            raise ValueError("A biLM vocabulary built on first use needs its size.")
        else:
            self._word_vocab, self._build = None, word_vocab
        super().__init__(size)

    @property
    def word_vocab(self) -> WordVocabulary:
        if self._word_vocab is None:
            vocab = self._build()
            _check_boundaries(vocab, repr(vocab))
            if len(vocab) != self.vocab_size:
                raise ValueError(
                    f"The biLM vocabulary has {len(vocab)} tokens, not the {self.vocab_size} "
                    "its task declares (the corpus has fewer frequent words than that): "
                    "declare the size the built vocabulary has.")
            self._word_vocab = vocab
        return self._word_vocab

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.word_vocab.tokens

    @property
    def pad_id(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordIdVocabulary) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> object:
        return self._word_vocab if self._build is None else (self._build, self.vocab_size)


def output_features(vocab: seqio.Vocabulary) -> dict[str, seqio.Feature]:
    """``token_ids`` (word ids of ``vocab``), ``char_ids`` and ``token_weights``
    (``is_bilm_task`` tests these)."""
    chars = seqio.PassThroughVocabulary(int(CharVocabulary().bos_chars.max()) + 1)
    return {
        TOKEN_IDS: seqio.Feature(vocab, add_eos=False),
        CHAR_IDS: seqio.Feature(chars, add_eos=False, rank=2),
        TOKEN_WEIGHTS: seqio.Feature(seqio.PassThroughVocabulary(1), add_eos=False,
                                     dtype=tf.float32),
    }


def is_bilm_task(provider: seqio.DatasetProviderBase) -> bool:
    """Whether a task (or mixture) gives biLM examples (its features are ``FEATURES``)."""
    return set(provider.output_features) == FEATURES


def encode_sentences(sentences: Sequence[Sequence[str]], vocab: WordVocabulary
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(type ids of all tokens, sentence row splits, char rows [types, 50], word id of
    each type) of ``<S>`` + sentence + ``</S>``: every word type is encoded once."""
    types: dict[str, int] = {BOS: 0, EOS: 1}
    flat: list[int] = []
    splits = [0]
    for s in sentences:
        flat.append(0)
        flat.extend(types.setdefault(w, len(types)) for w in s)
        flat.append(1)
        splits.append(len(flat))
    words = list(types)
    chars = CharVocabulary()
    rows = np.stack([chars.bos_chars, chars.eos_chars, *(chars.encode_word(w)
                                                          for w in words[2:])])
    ids = np.asarray([vocab.token_to_id(w) for w in words], np.int32)
    return (np.asarray(flat, np.int64), np.asarray(splits, np.int64),
            rows.astype(np.int32), ids)


def cut_sentences(ds: tf.data.Dataset, sequence_length: dict[str, int] | None,
                  stats_name: str) -> tf.data.Dataset:
    """Cuts each example to ``sequence_length["token_ids"]`` tokens, counting what goes."""
    max_length = (sequence_length or {}).get(TOKEN_IDS)
    if not max_length:
        raise ValueError(f"biLM task {stats_name!r} needs sequence_length[{TOKEN_IDS!r}] "
                         "(tasks.get_dataset's targets_length).")

    def record(n: np.ndarray) -> np.int32:
        cut = max(int(n) - max_length, 0)
        pp.STATS.add(stats_name, {"sentences": 1, "tokens": int(n),
                                  "truncated_sentences": int(cut > 0),
                                  "truncated_tokens": cut})
        return np.int32(0)

    def cut(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        n = tf.shape(ex[TOKEN_IDS])[0]
        zero = tf.ensure_shape(tf.numpy_function(record, [n], tf.int32, stateful=False), [])
        end = tf.minimum(n, max_length) + zero
        return {k: v[:end] if v.shape.rank else v for k, v in ex.items()}  # labels stay

    return ds.map(cut, num_parallel_calls=tf.data.AUTOTUNE)


def register_corpus_bilm_task(name: str, corpus_path: str, vocab: WordVocabulary, *,
                              validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
                              shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER
                              ) -> seqio.Task:
    """A biLM task over a BERT-format corpus; the file is read when a dataset is built."""
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    corpus_path = os.path.abspath(corpus_path)
    return register_bilm_task(
        name, functools.partial(split_sentences, corpus_path,
                                validation_fraction=validation_fraction),
        vocab, shuffle_buffer_size=shuffle_buffer_size)


def register_bilm_task(name: str, sentences: Callable[[str], Sequence[Sequence[str]]],
                       vocab: WordVocabulary | WordIdVocabulary, *,
                       splits: Sequence[str] = SPLITS,
                       shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER) -> seqio.Task:
    """A biLM task over ``sentences(split)`` (tokenised, without ``<S>``/``</S>``), called
    once per split when its first dataset is built; ``vocab`` may be built on first use
    (``WordIdVocabulary``)."""
    seqio_vocab = vocab if isinstance(vocab, WordIdVocabulary) else WordIdVocabulary(vocab)

    @functools.lru_cache(maxsize=len(splits))
    def encoded(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return encode_sentences(sentences(split), seqio_vocab.word_vocab)

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        flat, row_splits, rows, ids = encoded(split)
        ds = tf.data.Dataset.from_tensor_slices(
            tf.RaggedTensor.from_row_splits(flat, row_splits))
        if shuffle_files:
            ds = ds.shuffle(len(row_splits) - 1, seed=seed, reshuffle_each_iteration=True)
        rows_t, ids_t = tf.constant(rows), tf.constant(ids)

        def encode(types: tf.Tensor) -> dict[str, tf.Tensor]:
            return {TOKEN_IDS: tf.gather(ids_t, types), CHAR_IDS: tf.gather(rows_t, types),
                    TOKEN_WEIGHTS: tf.ones(tf.shape(types), tf.float32)}

        return ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)

    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    return seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(dataset_fn, splits=tuple(splits)),
        preprocessors=[functools.partial(cut_sentences, stats_name=name)],
        output_features=output_features(seqio_vocab),
        shuffle_buffer_size=shuffle_buffer_size)


def pad_and_batch(ds: tf.data.Dataset, max_length: int, batch_size: int, name: str,
                  split: str) -> tf.data.Dataset:
    """Pads each example to ``max_length`` tokens (zeros: word id 0, all-0 char rows,
    weight 0; a scalar feature, a sentence's label, stays as it is) and batches; a
    partial last batch gets weight-0 rows (counted)."""
    from tasks.batching import batch_padding_last

    def pad(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = {}
        for k, v in ex.items():
            if not v.shape.rank:  # a sentence's label
                out[k] = v
                continue
            v = v[:max_length]
            padding = [[0, max_length - tf.shape(v)[0]]] + [[0, 0]] * (len(v.shape) - 1)
            shape = [max_length] + ([MAX_WORD_LENGTH] if k == CHAR_IDS else [])
            out[k] = tf.ensure_shape(tf.pad(v, padding), shape)
        return out

    return batch_padding_last(ds.map(pad, num_parallel_calls=tf.data.AUTOTUNE),
                               batch_size, name, split)


def main(argv: Sequence[str]) -> None:
    """``--corpus=PATH --output=PATH [--min_count=3]``: writes the word vocabulary."""
    args = dict(a.lstrip("-").split("=", 1) for a in argv[1:])
    vocab = build_vocabulary(args["corpus"], int(args.get("min_count", MIN_COUNT)))
    os.makedirs(os.path.dirname(os.path.abspath(args["output"])), exist_ok=True)
    vocab.save(args["output"])
    print(f"{len(vocab)} tokens -> {args['output']}; stats {vocab.stats}")


if __name__ == "__main__":
    main(sys.argv)
