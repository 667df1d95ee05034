r"""Word-level sequence-tagging tasks (NER) for the TagLM / ELMo taggers (``models/taglm.py``).

Every sentence is one example with the word-level features of ``tasks/bilm.py`` plus tags:

* ``token_ids`` ``[n]`` int32: word ids of the task's ``tasks.word_vocab.WordVocabulary``
  (0 = padding, 1 = ``<UNK>``, then the ``<UNK>`` classes if any, then the words);
* ``char_ids`` ``[n, 50]`` int32: ELMo's character ids
  (``models.characters.CharVocabulary``; NO ``<S>`` / ``</S>`` rows: a tagger with a
  biLM adds them, ``models.elmo.add_sentence_boundaries``);
* ``tag_ids`` ``[n]`` int32: indices into the task's tag names (``tag_names(task)``);
* ``token_weights`` ``[n]`` float32: 1 at every token.

``tasks.get_dataset`` cuts examples to ``targets_length`` tokens (the cut is counted in
``tasks.get_stats(name)``: ``truncated_sentences`` / ``truncated_tokens``), pads them and
batches them as the biLM tasks (a partial last batch gets weight-0 rows).

The word vocabulary is the train split's words seen at least ``min_count`` times (5;
2 for the small shipped set); its
``<UNK>`` strategy is part of the task (``WordTaggingData``), so that an ablation is a
change of task name:

* ``unk``: plain ``<UNK>``;
* ``unk_classes``: ``<UNK-CAP>``, ``<UNK-NUM>``, suffix classes ... (``unk_signature``);
* ``vectors``: Dhingra et al. (2017): every train word with a pretrained vector is kept
  whatever its count, and a validation/test word outside the training vocabulary but
  inside the pretrained vectors is added with that vector (``extend_with_pretrained``);
  the embedding matrix to start from is ``pretrained_embeddings(task)``.

(The fourth strategy of the ablation, a character model, is the tagger's char CNN on
the plain ``<UNK>`` task.)

Tasks (registered by ``tasks/registry.py``):

* ``ner_austen[_unk_classes|_vectors]``: the shipped NER set ``data/ner/austen``
  (Jane Austen, public domain; PER / LOC / MISC labelled by a documented gazetteer
  procedure, see its README), CoNLL files ``token TAG``;
* ``conll2003_ner_words[_unk_classes]``: TFDS ``conll2003`` (clear "how to prepare"
  message when it is absent; the vocabulary is built from its train split on first use).

Malformed input raises a ``TaggingDataError`` naming file and line: a line without a tag,
a tag outside the task's tag set, a file without sentences.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf
from absl import logging

from models.characters import CharVocabulary
from tasks import bilm, formats, lookup
from tasks.word_vectors import embedding_matrix, extend_with_pretrained, load_vectors
from tasks.word_vocab import WordVocabulary

TOKEN_IDS, CHAR_IDS, TAG_IDS, TOKEN_WEIGHTS = "token_ids", "char_ids", "tag_ids", "token_weights"
LABEL = "label"
FEATURES = frozenset({TOKEN_IDS, CHAR_IDS, TAG_IDS, TOKEN_WEIGHTS})
CLASSIFICATION_FEATURES = frozenset({TOKEN_IDS, CHAR_IDS, LABEL, TOKEN_WEIGHTS})
SPLITS = ("train", "validation", "test")
STRATEGIES = ("unk", "unk_classes", "vectors")
MIN_COUNT = 5
# The shipped NER set is small (112k training tokens): words seen twice are kept, and the
# singletons (half the word types) train the <UNK> embeddings.
AUSTEN_MIN_COUNT = 2
AUSTEN_NER_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
CONLL_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
CONLL_TFDS = "conll2003:1.0.0"
DEFAULT_SHUFFLE_BUFFER = 1_000

Sentence = tuple[list[str], list[str]]  # (tokens, tags)


class TaggingDataError(ValueError):
    """A tagging file or dataset that cannot be read as tagged sentences."""


def read_conll(path: str, tag_names: Sequence[str] | None = None) -> list[Sentence]:
    """Sentences of a CoNLL-style file: one ``token ... TAG`` per line (whitespace-separated,
    the first field the token, the last the tag), a blank line after each sentence;
    ``-DOCSTART-`` lines are skipped. With ``tag_names`` an unknown tag is an error."""
    if not os.path.exists(path):
        raise TaggingDataError(f"Tagging file {path!r} does not exist.")
    known = set(tag_names) if tag_names is not None else None
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TaggingDataError(f"{path}:{lineno}: not UTF-8 ({e.reason} at byte "
                                       f"{e.start}); re-encode the file as UTF-8.") from None
            fields = line.split()
            if not fields:
                if tokens:
                    sentences.append((tokens, tags))
                    tokens, tags = [], []
                continue
            if fields[0] == "-DOCSTART-":
                continue
            if len(fields) < 2:
                raise TaggingDataError(f"{path}:{lineno}: expected 'token TAG', got "
                                       f"{line.rstrip()!r} (a token without a tag).")
            if known is not None and fields[-1] not in known:
                raise TaggingDataError(f"{path}:{lineno}: tag {fields[-1]!r} is not one of "
                                       f"the task's tags {sorted(known)}.")
            tokens.append(fields[0])
            tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise TaggingDataError(f"{path} holds no tagged sentence.")
    return sentences


def check_sentences(sentences: Sequence[tuple[Sequence[str], Sequence[str]]],
                    tag_names: Sequence[str], where: str) -> None:
    """Raises a ``TaggingDataError`` for an empty sentence, a token/tag length mismatch or
    an unknown tag (naming the sentence)."""
    known = set(tag_names)
    for i, (tokens, tags) in enumerate(sentences):
        if not tokens:
            raise TaggingDataError(f"{where}: sentence {i} is empty; leave empty sentences "
                                   "out of the data.")
        if len(tokens) != len(tags):
            raise TaggingDataError(f"{where}: sentence {i} has {len(tokens)} tokens but "
                                   f"{len(tags)} tags; every token needs exactly one tag.")
        unknown = sorted(set(tags) - known)
        if unknown:
            raise TaggingDataError(f"{where}: sentence {i} has tags {unknown} outside the "
                                   f"task's tags {list(tag_names)}.")


class _WordLevelData:
    """What a tagging set and a sentence-classification set share: examples ``(tokens, y)``
    read per split by ``load_split`` and checked by ``check``, the word vocabulary of
    ``strategy`` built from the train split, and each split's words encoded once per type.
    Subclasses are dataclasses with the fields ``name``, ``load_split``, ``strategy``,
    ``min_count``, ``vectors_path`` and ``seed``."""

    name: str
    load_split: Callable[[str], list[tuple[list[str], Any]]]
    strategy: str
    min_count: int
    vectors_path: str | None
    seed: int

    def _check_options(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r} must be one of {STRATEGIES}.")
        if (self.strategy == "vectors") != (self.vectors_path is not None):
            raise ValueError("The 'vectors' strategy, and only it, needs vectors_path.")

    def check(self, examples: Sequence[tuple[list[str], Any]], where: str) -> None:
        raise NotImplementedError

    @functools.cache  # noqa: B019 (one object per registered task)
    def sentences(self, split: str) -> list[tuple[list[str], Any]]:
        out = self.load_split(split)
        self.check(out, f"{self.name}/{split}")
        return out

    @functools.cached_property
    def _vocabulary_and_embeddings(self) -> tuple[WordVocabulary, np.ndarray | None]:
        train = [tokens for tokens, _ in self.sentences("train")]
        if self.strategy != "vectors":
            vocab = WordVocabulary.from_corpus(train, self.min_count,
                                               unk_classes=self.strategy == "unk_classes")
            logging.info("%s: %d words (%s)", self.name, len(vocab), vocab.stats)
            return vocab, None
        vectors = load_vectors(self.vectors_path)
        words = list(vectors.words)
        index = set(words)  # a train word with a vector (as written or lower-cased) stays
        keep = {w for s in train for w in s if w in index or w.lower() in index}
        vocab = WordVocabulary.from_corpus(train, self.min_count, keep=keep)
        rng = np.random.default_rng(self.seed)
        embeddings, fill = embedding_matrix(vocab, words, vectors.vectors, rng)
        held_out = [w for split in SPLITS[1:] for tokens, _ in self._maybe(split)
                    for w in tokens]
        vocab, embeddings, extension = extend_with_pretrained(
            vocab, embeddings, held_out, words, vectors.vectors)
        vocab.stats.update(fill={**fill}, test_time_extension=extension)
        logging.info("%s: %d words; train rows %s; held-out words %s", self.name, len(vocab),
                     fill, extension)
        return vocab, embeddings

    def _maybe(self, split: str) -> list[tuple[list[str], Any]]:
        try:
            return self.sentences(split)
        except (FileNotFoundError, TaggingDataError, ValueError):
            return []

    @property
    def vocabulary(self) -> WordVocabulary:
        return self._vocabulary_and_embeddings[0]

    @property
    def embeddings(self) -> np.ndarray | None:
        """float32 ``[len(vocabulary), dim]`` initial word embeddings (``vectors`` only)."""
        return self._vocabulary_and_embeddings[1]

    @functools.cache  # noqa: B019
    def encoded_words(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                 np.ndarray]:
        """(type index of every token, row splits, char rows [types, 50], word id of each
        type); each word type is encoded once."""
        types: dict[str, int] = {}
        flat: list[int] = []
        splits = [0]
        for tokens, _ in self.sentences(split):
            flat.extend(types.setdefault(w, len(types)) for w in tokens)
            splits.append(len(flat))
        chars = CharVocabulary()
        rows = chars.encode_words(list(types))
        if chars.num_truncated:
            logging.info("%s/%s: %d word types cut to %d characters", self.name, split,
                         chars.num_truncated, chars.max_word_length)
        ids = np.asarray([self.vocabulary.token_to_id(w) for w in types], np.int32)
        return np.asarray(flat, np.int64), np.asarray(splits, np.int64), rows, ids


@dataclasses.dataclass(eq=False)
class WordTaggingData(_WordLevelData):
    """A tagging set's splits, its word vocabulary (``strategy``) and the encoded examples.

    ``load_split(split)`` returns the split's ``(tokens, tags)`` sentences; everything is
    read on first use and cached. ``vectors_path`` (GloVe / word2vec text) is needed by the
    ``vectors`` strategy."""

    name: str
    load_split: Callable[[str], list[Sentence]]
    tag_names: tuple[str, ...]
    strategy: str = "unk"
    min_count: int = MIN_COUNT
    vectors_path: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_options()

    def check(self, examples: Sequence[Sentence], where: str) -> None:
        check_sentences(examples, self.tag_names, where)

    @functools.cache  # noqa: B019
    def encoded(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                           np.ndarray]:
        """``encoded_words(split)`` and the tag ids of every token."""
        tag_index = {t: i for i, t in enumerate(self.tag_names)}
        tags = [tag_index[t] for _, sentence_tags in self.sentences(split)
                for t in sentence_tags]
        return (*self.encoded_words(split), np.asarray(tags, np.int32))


@dataclasses.dataclass(eq=False)
class WordClassificationData(_WordLevelData):
    """A sentence-classification set read as words (for classifiers over word vectors, such
    as CoVe's BCN, ``models/bcn.py``): ``load_split(split)`` returns ``(tokens, label id)``
    pairs, the label an index into ``label_names``; the vocabulary and encoding are the
    tagging sets' (``strategy`` ``vectors``: Dhingra et al.'s pretrained-vector fill)."""

    name: str
    load_split: Callable[[str], list[tuple[list[str], int]]]
    label_names: tuple[str, ...]
    strategy: str = "vectors"
    min_count: int = MIN_COUNT
    vectors_path: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_options()

    def check(self, examples: Sequence[tuple[list[str], int]], where: str) -> None:
        for i, (tokens, label) in enumerate(examples):
            if not tokens:
                raise TaggingDataError(f"{where}: sentence {i} is empty; leave empty "
                                       "sentences out of the data.")
            if not 0 <= int(label) < len(self.label_names):
                raise TaggingDataError(f"{where}: sentence {i} has label {label}, outside "
                                       f"0..{len(self.label_names) - 1} "
                                       f"({list(self.label_names)}).")

    @functools.cache  # noqa: B019
    def encoded(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                           np.ndarray]:
        """``encoded_words(split)`` and the label id of every sentence."""
        labels = [int(label) for _, label in self.sentences(split)]
        return (*self.encoded_words(split), np.asarray(labels, np.int32))


class TaggingVocabulary(seqio.PassThroughVocabulary):
    """The seqio face of a ``WordTaggingData``'s word vocabulary, built on first use (so
    that registering a task reads no file): ``vocab_size``, ``tokens``, ``pad_id``."""

    def __init__(self, data: _WordLevelData):
        self.data = data
        super().__init__(size=-1)

    @property
    def _base_vocab_size(self) -> int:
        return len(self.data.vocabulary)

    @property
    def size(self) -> int:
        return self._base_vocab_size

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.data.vocabulary.tokens

    @property
    def pad_id(self) -> int:
        return self.data.vocabulary.pad_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaggingVocabulary) and other.data is self.data

    def __hash__(self) -> int:
        return id(self.data)

    def __str__(self) -> str:
        return f"TaggingVocabulary({self.data.name})"


def output_features(data: _WordLevelData) -> dict[str, seqio.Feature]:
    """``token_ids``, ``char_ids``, ``token_weights`` and, for a tagging set, ``tag_ids``
    (``is_tagging_task``), for a classification set the sentence's ``label``
    (``is_word_classification_task``)."""
    features = bilm.output_features(TaggingVocabulary(data))
    if isinstance(data, WordTaggingData):
        features[TAG_IDS] = seqio.Feature(seqio.PassThroughVocabulary(len(data.tag_names)),
                                          add_eos=False)
    else:
        features[LABEL] = seqio.Feature(seqio.PassThroughVocabulary(len(data.label_names)),
                                        add_eos=False, rank=0, dtype=tf.int32)
    return features


def is_tagging_task(provider: seqio.DatasetProviderBase) -> bool:
    """Whether a task (or mixture) gives word-level tagging examples."""
    return set(provider.output_features) == FEATURES


def is_word_classification_task(provider: seqio.DatasetProviderBase) -> bool:
    """Whether a task (or mixture) gives word-level sentences with a class ``label``."""
    return set(provider.output_features) == CLASSIFICATION_FEATURES


_DATA: dict[str, _WordLevelData] = {}


def word_level_data(task: str) -> _WordLevelData:
    """The ``WordTaggingData`` or ``WordClassificationData`` behind a registered task."""
    lookup.get_provider(task)  # registers the named tasks
    if task not in _DATA:
        raise ValueError(f"{task!r} is not a word-level tagging or classification task; "
                         f"registered ones: {sorted(_DATA)}.")
    return _DATA[task]


def tagging_data(task: str) -> WordTaggingData:
    """The ``WordTaggingData`` behind a registered tagging task."""
    data = word_level_data(task)
    if not isinstance(data, WordTaggingData):
        taggers = sorted(k for k, v in _DATA.items() if isinstance(v, WordTaggingData))
        raise ValueError(f"{task!r} is a sentence-classification task, not a tagging task; "
                         f"tagging tasks: {taggers}.")
    return data


def tag_names(task: str) -> tuple[str, ...]:
    """The tag names of a registered tagging task (tag id i is ``tag_names(task)[i]``)."""
    return tagging_data(task).tag_names


def num_tags(task: str) -> int:
    """The number of tags of a registered tagging task."""
    return len(tag_names(task))


def label_names(task: str) -> tuple[str, ...]:
    """The class names of a registered word-level classification task."""
    data = word_level_data(task)
    if not isinstance(data, WordClassificationData):
        raise ValueError(f"{task!r} is a tagging task; it has tags, not sentence labels.")
    return data.label_names


def num_labels(task: str) -> int:
    """The number of classes of a registered word-level classification task."""
    return len(label_names(task))


def vocabulary_size(task: str) -> int:
    """The size of a registered word-level task's vocabulary (ids 0 .. size - 1)."""
    return len(word_level_data(task).vocabulary)


def pretrained_embeddings(task: str, required: bool = True) -> np.ndarray | None:
    """The initial word embeddings of a ``vectors``-strategy task (for ``models.taglm``,
    ``models.bcn``); for another strategy an error, or None if not ``required`` (an
    ablation over tasks)."""
    data = word_level_data(task)
    if data.embeddings is None and not required:
        return None
    if data.embeddings is None:
        raise ValueError(f"Task {task!r} uses the {data.strategy!r} strategy, which has no "
                         "pretrained embeddings; use a *_vectors task.")
    return data.embeddings


def register_tagging_task(data: _WordLevelData, *,
                          shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER) -> seqio.Task:
    """Registers ``data.name`` (a ``WordTaggingData`` or a ``WordClassificationData``) as a
    seqio task over its splits."""
    tagging = isinstance(data, WordTaggingData)

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        flat, row_splits, rows, ids, targets = data.encoded(split)
        ds = tf.data.Dataset.from_tensor_slices((
            tf.RaggedTensor.from_row_splits(flat, row_splits),
            tf.RaggedTensor.from_row_splits(targets, row_splits) if tagging else targets))
        if shuffle_files:
            ds = ds.shuffle(len(row_splits) - 1, seed=seed, reshuffle_each_iteration=True)
        rows_t, ids_t = tf.constant(rows), tf.constant(ids)

        def encode(types: tf.Tensor, target: tf.Tensor) -> dict[str, tf.Tensor]:
            return {TOKEN_IDS: tf.gather(ids_t, types), CHAR_IDS: tf.gather(rows_t, types),
                    TAG_IDS if tagging else LABEL: target,
                    TOKEN_WEIGHTS: tf.ones(tf.shape(types), tf.float32)}

        return ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)

    def num_examples(split: str) -> int:
        return len(data.sentences(split))

    _DATA[data.name] = data
    if data.name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(data.name)
    return seqio.TaskRegistry.add(
        data.name,
        source=_CountingFunctionSource(dataset_fn, SPLITS, num_examples),
        preprocessors=[functools.partial(bilm.cut_sentences, stats_name=data.name)],
        output_features=output_features(data),
        shuffle_buffer_size=shuffle_buffer_size)


class _CountingFunctionSource(seqio.FunctionDataSource):
    """A ``FunctionDataSource`` that knows its split sizes (for ``train_epochs``)."""

    def __init__(self, dataset_fn: Callable[..., tf.data.Dataset], splits: Sequence[str],
                 count: Callable[[str], int]):
        super().__init__(dataset_fn, splits=splits)
        self._count = count

    def num_input_examples(self, split: str) -> int:
        return self._count(split)


def conll_files_loader(directory: str, tag_names: Sequence[str]
                       ) -> Callable[[str], list[Sentence]]:
    """``load_split`` over ``directory/{train,validation,test}.txt`` (``read_conll``)."""

    def load(split: str) -> list[Sentence]:
        path = os.path.join(directory, f"{split}.txt")
        if not os.path.exists(path):
            raise TaggingDataError(
                f"{path} is missing: the shipped NER set lives in data/ner/austen (rebuild "
                "it with `python data/ner/austen/build.py`).")
        return read_conll(path, tag_names)

    return load


def tfds_loader(name: str, tokens: str, tags: str, tfds_data_dir: str | None
                ) -> Callable[[str], list[Sentence]]:
    """``load_split`` over a prepared TFDS tagging dataset (e.g. ``conll2003``: features
    ``tokens`` and ``ner``, a ClassLabel whose names are the tags)."""
    from tasks.pretraining import PreparedTfdsDataSource

    def load(split: str) -> list[Sentence]:
        import tensorflow_datasets as tfds

        source = PreparedTfdsDataSource(name, tfds_data_dir=tfds_data_dir)
        source.check_prepared()
        builder = tfds.builder(name, data_dir=tfds_data_dir)
        names = builder.info.features[tags].feature.names
        out = []
        for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
            words = [w.decode("utf-8") for w in ex[tokens]]
            if words:
                out.append((words, [names[int(t)] for t in ex[tags]]))
        return out

    return load


def register_austen_ner(data_dir: str, vectors_path: str | None = None,
                        min_count: int = AUSTEN_MIN_COUNT) -> list[str]:
    """``ner_austen``, ``ner_austen_unk_classes`` and (with vectors) ``ner_austen_vectors``
    over ``data_dir/ner/austen``; returns their names."""
    load = conll_files_loader(os.path.join(data_dir, "ner", "austen"), AUSTEN_NER_TAGS)
    names = []
    for strategy in STRATEGIES:
        if strategy == "vectors" and vectors_path is None:
            continue
        name = "ner_austen" + ("" if strategy == "unk" else f"_{strategy}")
        register_tagging_task(WordTaggingData(
            name, load, AUSTEN_NER_TAGS, strategy, min_count,
            vectors_path=vectors_path if strategy == "vectors" else None))
        names.append(name)
    return names


def register_conll2003_words(tfds_data_dir: str | None = None) -> list[str]:
    """``conll2003_ner_words`` and ``conll2003_ner_words_unk_classes`` (TFDS conll2003)."""
    load = tfds_loader(CONLL_TFDS, "tokens", "ner", tfds_data_dir)
    names = []
    for strategy in ("unk", "unk_classes"):
        name = "conll2003_ner_words" + ("" if strategy == "unk" else f"_{strategy}")
        register_tagging_task(WordTaggingData(name, load, CONLL_TAGS, strategy))
        names.append(name)
    return names


def describe(task: str) -> dict[str, Any]:
    """Sizes of a tagging task (sentences, tokens, vocabulary, OOV rates per split)."""
    data = tagging_data(task)
    vocab = data.vocabulary
    out: dict[str, Any] = {"vocabulary": len(vocab), "tags": list(data.tag_names)}
    for split in SPLITS:
        sentences = data._maybe(split)
        tokens = [w for s, _ in sentences for w in s]
        unk = sum(1 for w in tokens if vocab.lookup(w) is None)
        out[split] = {"sentences": len(sentences), "tokens": len(tokens),
                      "oov_tokens": unk}
    return out


def most_frequent_tag_baseline(task: str, split: str = "validation") -> dict[str, float]:
    """The lecture's baseline: each word gets the tag it has most often in the train
    split (unseen words ``O``), scored by ``tasks.metrics.ner_f1`` (conlleval)."""
    import collections

    from tasks import metrics

    data = tagging_data(task)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    for tokens, tags in data.sentences("train"):
        for w, t in zip(tokens, tags, strict=True):
            counts[w][t] += 1
    best = {w: c.most_common(1)[0][0] for w, c in counts.items()}
    sentences = data.sentences(split)
    return metrics.ner_f1([tags for _, tags in sentences],
                          [[best.get(w, "O") for w in tokens] for tokens, _ in sentences])


class WordLevelFormat(formats.InputFormat):
    """Word-level sentences (``tasks/bilm.py`` biLM tasks and the tagging tasks here), one
    a row, cut to ``targets_length`` tokens (counted) and padded with zeros
    (``bilm.pad_and_batch``); a partial last batch gets weight-0 rows."""

    name = "word_level"
    required_lengths = ("targets_length",)
    example_kind = ("word-level sentences (token_ids, char_ids: tasks/bilm.py, tagging.py; "
                    "with tags or a sentence label)")

    def accepts(self, provider: seqio.DatasetProviderBase) -> bool:
        return (bilm.is_bilm_task(provider) or is_tagging_task(provider)
                or is_word_classification_task(provider))

    def dataset(self, request: formats.Request) -> tf.data.Dataset:
        length = request.lengths["targets_length"]
        ds = request.read({k: length for k, feature in request.provider.output_features.items()
                           if feature.rank})  # a sentence's label is not cut
        return bilm.pad_and_batch(ds, length, request.batch_size, request.task,
                                  request.split)
