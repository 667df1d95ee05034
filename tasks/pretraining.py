"""seqio Task and Mixture registrations for BERT pretraining (MLM + NSP).

Registration is explicit (nothing is registered on import):

* `register_text_corpus_task(name, corpus_path, vocab, ...)`: a BERT-format text file
  (sentence per line, blank line between documents), split by document into `train` and
  `validation` with a stable hash of each document's text.
* `register_bert_tasks(vocab_file, ...)`: TFDS tasks `bert_wikipedia_20230601_en_<vocab>`
  and `bert_lm1b_<vocab>`, the mixture `bert_wiki_lm1b_<vocab>`, and optionally the
  shipped-corpus task `bert_corpus_<vocab>`.

Task names carry the vocabulary (`tasks.vocab.vocab_fingerprint`) but not a length: pair
creation and masking read `max_seq_length` / `max_predictions_per_seq` from the
`sequence_length` given to `get_dataset`, so one task serves every length.

TFDS sources check that the dataset is prepared before reading (nothing is ever
downloaded) and raise `DatasetNotPreparedError` saying how to prepare it.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Sequence

import seqio
import tensorflow as tf

from tasks import corpus as corpus_lib
from tasks import formats
from tasks import preprocessors as pp
from tasks.vocab import WordPieceVocabulary, vocab_fingerprint

DEFAULT_SHUFFLE_BUFFER = 10_000
WIKIPEDIA_TFDS = "wikipedia/20230601.en:1.0.0"
LM1B_TFDS = "lm1b:1.1.0"
LM1B_SENTENCES_PER_DOCUMENT = 16


class DatasetNotPreparedError(RuntimeError):
    """A TFDS dataset a task needs is not prepared under the TFDS data dir."""


@functools.lru_cache(maxsize=32)
def load_vocabulary(vocab_file: str, lower_case: bool = True) -> WordPieceVocabulary:
    """Cached `WordPieceVocabulary` (one object per file and casing)."""
    return WordPieceVocabulary(os.path.abspath(vocab_file), lower_case=lower_case)


def output_features(vocab: WordPieceVocabulary) -> dict[str, seqio.Feature]:
    """Output features of every BERT pretraining task."""

    def feature(vocabulary, dtype=tf.int32, rank=1):
        return seqio.Feature(vocabulary, add_eos=False, dtype=dtype, rank=rank)

    labels = seqio.PassThroughVocabulary(size=2)
    return {
        pp.INPUT_IDS: feature(vocab),
        pp.SEGMENT_IDS: feature(labels),
        pp.NSP_LABELS: feature(labels, rank=0),
        pp.MLM_POSITIONS: feature(seqio.PassThroughVocabulary(size=0)),
        pp.MLM_IDS: feature(vocab),
        pp.MLM_WEIGHTS: feature(seqio.PassThroughVocabulary(size=0), dtype=tf.float32),
    }


def bert_preprocessors(
    stats_name: str,
    *,
    source_preprocessors: Sequence = (),
    short_seq_prob: float = 0.1,
    masked_lm_prob: float = 0.15,
    whole_word_mask: bool = False,
    nsp_reservoir_size: int = 64,
) -> list:
    """Source-specific steps, tokenization, cache placeholder, pairs, masking."""
    return [
        *source_preprocessors,
        pp.tokenize_documents,
        seqio.CacheDatasetPlaceholder(),
        functools.partial(
            pp.create_sentence_pairs,
            short_seq_prob=short_seq_prob,
            nsp_reservoir_size=nsp_reservoir_size,
            stats_name=stats_name,
        ),
        functools.partial(
            pp.mask_tokens, masked_lm_prob=masked_lm_prob, whole_word_mask=whole_word_mask
        ),
    ]


def _add_task(name: str, **kwargs) -> seqio.Task:
    """Registers a task, replacing an earlier registration of the same name."""
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    return seqio.TaskRegistry.add(name, **kwargs)


def _add_mixture(name: str, tasks: Sequence[tuple[str, float]]) -> seqio.Mixture:
    if name in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, list(tasks))


# ---------------------------------------------------------------------------------------
# Text corpus (BERT format)


def _in_validation(document: list[str], validation_fraction: float) -> bool:
    h = zlib.crc32("\n".join(document).encode("utf-8")) / 2**32
    return h < validation_fraction


@functools.lru_cache(maxsize=8)
def _split_corpus(
    corpus_path: str, mtime: float, validation_fraction: float
) -> dict[str, tuple[str, ...]]:
    docs = corpus_lib.read_documents(corpus_path)
    splits: dict[str, list[str]] = {"train": [], "validation": []}
    for d in docs:
        key = "validation" if _in_validation(d, validation_fraction) else "train"
        splits[key].append("\n".join(d))
    if validation_fraction > 0 and not splits["validation"] and len(docs) >= 2:
        splits["validation"].append(splits["train"].pop())  # tiny corpus: last document
    if not splits["train"] or (validation_fraction > 0 and not splits["validation"]):
        raise corpus_lib.CorpusError(
            f"Corpus file {corpus_path!r} has {len(docs)} document(s); a train/validation "
            f"split with validation_fraction={validation_fraction} needs at least 2. "
            "Separate documents with a blank line."
        )
    return {k: tuple(v) for k, v in splits.items()}


def corpus_split_documents(
    corpus_path: str, split: str, validation_fraction: float
) -> tuple[str, ...]:
    """Documents ("\\n"-joined sentences) of `split` of a BERT-format corpus file."""
    corpus_path = os.path.abspath(corpus_path)
    mtime = os.path.getmtime(corpus_path) if os.path.exists(corpus_path) else -1.0
    splits = _split_corpus(corpus_path, mtime, validation_fraction)
    if split not in splits:
        raise ValueError(f"Unknown split {split!r}; expected one of {sorted(splits)}.")
    return splits[split]


def register_text_corpus_task(
    name: str,
    corpus_path: str,
    vocab: WordPieceVocabulary,
    *,
    validation_fraction: float = 0.05,
    short_seq_prob: float = 0.1,
    masked_lm_prob: float = 0.15,
    whole_word_mask: bool = False,
    nsp_reservoir_size: int = 64,
    shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER,
) -> seqio.Task:
    """Registers a BERT pretraining task reading a BERT-format corpus file.

    The file is read when a dataset is first built (not here), so a missing, empty or
    non-UTF-8 file raises `tasks.corpus.CorpusError` from `get_dataset`.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    corpus_path = os.path.abspath(corpus_path)

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
        docs = corpus_split_documents(corpus_path, split, validation_fraction)
        ds = tf.data.Dataset.from_tensor_slices(list(docs))
        if shuffle_files:
            ds = ds.shuffle(len(docs), seed=seed, reshuffle_each_iteration=True)
        return ds.map(lambda t: {"text": t})

    return _add_task(
        name,
        source=seqio.FunctionDataSource(dataset_fn, splits=("train", "validation")),
        preprocessors=bert_preprocessors(
            name,
            short_seq_prob=short_seq_prob,
            masked_lm_prob=masked_lm_prob,
            whole_word_mask=whole_word_mask,
            nsp_reservoir_size=nsp_reservoir_size,
        ),
        output_features=output_features(vocab),
        shuffle_buffer_size=shuffle_buffer_size,
    )


# ---------------------------------------------------------------------------------------
# TFDS


class PreparedTfdsDataSource(seqio.TfdsDataSource):
    """`seqio.TfdsDataSource` that refuses to read (or download) an unprepared dataset."""

    def check_prepared(self) -> None:
        import tensorflow_datasets as tfds

        name = self.tfds_dataset.name
        builder = tfds.builder(name, data_dir=self.tfds_dataset.data_dir)
        name = name.split(":")[0]  # `tfds build` takes the name without the version
        if builder.is_prepared():
            return
        root = builder.data_dir  # <root>/<name>[/<config>]/<version>
        for _ in range(name.count("/") + 2):
            root = os.path.dirname(root)
        needs = "network access"
        if name.startswith("wikipedia"):
            needs += "; wikipedia also needs apache-beam and mwparserfromhell"
        raise DatasetNotPreparedError(
            f"TFDS dataset {name!r} is not prepared under the TFDS data dir {root!r} "
            f"(looked for {builder.data_dir}). Prepare it once ({needs}):\n"
            f"  tfds build {name} --data_dir={root}\n"
            f"or\n  python -m tensorflow_datasets.scripts.download_and_prepare "
            f"--datasets={name} --data_dir={root}\n"
            "then pass that directory as tfds_data_dir (or set TFDS_DATA_DIR)."
        )

    def get_dataset(self, split=None, shuffle=True, seed=None, shard_info=None, **kwargs):
        self.check_prepared()
        return super().get_dataset(split, shuffle, seed, shard_info, **kwargs)

    def list_shards(self, split: str) -> Sequence[str]:
        self.check_prepared()
        return super().list_shards(split)

    def num_input_examples(self, split: str) -> int | None:
        self.check_prepared()
        return super().num_input_examples(split)


def register_wikipedia_task(
    name: str,
    vocab: WordPieceVocabulary,
    *,
    tfds_data_dir: str | None = None,
    shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER,
    **masking: float | bool,
) -> seqio.Task:
    """TFDS `wikipedia/20230601.en`: one article per document, sentences split
    heuristically; validation = the last 1% of `train`. `masking`: `short_seq_prob`,
    `masked_lm_prob`, `whole_word_mask` (see `bert_preprocessors`)."""
    return _add_task(
        name,
        source=PreparedTfdsDataSource(
            WIKIPEDIA_TFDS,
            tfds_data_dir=tfds_data_dir,
            splits={"train": "train[:99%]", "validation": "train[99%:]"},
        ),
        preprocessors=bert_preprocessors(
            name, source_preprocessors=[pp.split_paragraphs_into_sentences], **masking
        ),
        output_features=output_features(vocab),
        shuffle_buffer_size=shuffle_buffer_size,
    )


def register_lm1b_task(
    name: str,
    vocab: WordPieceVocabulary,
    *,
    tfds_data_dir: str | None = None,
    sentences_per_document: int = LM1B_SENTENCES_PER_DOCUMENT,
    shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER,
    **masking: float | bool,
) -> seqio.Task:
    """TFDS `lm1b`: runs of `sentences_per_document` sentences as pseudo-documents.

    lm1b's sentences are shuffled, so the "actual next" sentence is not a real
    continuation and NSP is weak there; use it for MLM.
    """
    group = functools.partial(
        pp.group_sentences_into_documents, sentences_per_document=sentences_per_document
    )
    return _add_task(
        name,
        source=PreparedTfdsDataSource(
            LM1B_TFDS, tfds_data_dir=tfds_data_dir,
            splits={"train": "train", "validation": "test"},
        ),
        preprocessors=bert_preprocessors(name, source_preprocessors=[group], **masking),
        output_features=output_features(vocab),
        shuffle_buffer_size=shuffle_buffer_size,
    )


def register_bert_tasks(
    vocab_file: str,
    lower_case: bool = True,
    *,
    suffix: str | None = None,
    tfds_data_dir: str | None = None,
    corpus_path: str | None = None,
    validation_fraction: float = 0.05,
    whole_word_mask: bool = False,
    short_seq_prob: float = 0.1,
    masked_lm_prob: float = 0.15,
    lm1b_sentences_per_document: int = LM1B_SENTENCES_PER_DOCUMENT,
    shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER,
) -> list[str]:
    """Registers the BERT pretraining tasks of one vocabulary; returns their names.

    With `suffix` (default: the vocabulary's fingerprint, e.g. `austen_uncased_u7433`):
    `bert_wikipedia_<suffix>` and `bert_lm1b_<suffix>` (TFDS), the mixture
    `bert_wiki_lm1b_<suffix>` (Wikipedia 90% / lm1b 10% by rate), and
    `bert_corpus_<suffix>` when `corpus_path` (a BERT-format text file) is given.
    """
    vocab = load_vocabulary(vocab_file, lower_case)
    suffix = suffix or vocab_fingerprint(vocab)
    masking = dict(
        short_seq_prob=short_seq_prob,
        masked_lm_prob=masked_lm_prob,
        whole_word_mask=whole_word_mask,
    )
    common = dict(tfds_data_dir=tfds_data_dir, shuffle_buffer_size=shuffle_buffer_size)
    wiki = register_wikipedia_task(f"bert_wikipedia_{suffix}", vocab, **common, **masking)
    lm1b = register_lm1b_task(
        f"bert_lm1b_{suffix}", vocab, sentences_per_document=lm1b_sentences_per_document,
        **common, **masking,
    )
    mixture = f"bert_wiki_lm1b_{suffix}"
    _add_mixture(mixture, [(wiki.name, 0.9), (lm1b.name, 0.1)])
    names = [wiki.name, lm1b.name, mixture]
    if corpus_path is not None:
        corpus = f"bert_corpus_{suffix}"
        register_text_corpus_task(
            corpus, corpus_path, vocab, validation_fraction=validation_fraction,
            shuffle_buffer_size=shuffle_buffer_size, **masking,
        )
        names.append(corpus)
    return names


class BertPretrainingFormat(formats.InputFormat):
    """Masked-LM + next-sentence pairs (``output_features``) -> BERT's pretraining batches
    (``preprocessors.BertPretrainingFeatureConverter``); a partial last batch is dropped
    and counted (its rows carry no weight to pad with)."""

    name = "bert_pretraining"
    required_lengths = ("max_seq_length", "max_predictions_per_seq")
    example_kind = "BERT pretraining pairs (masked LM + next sentence)"

    def accepts(self, provider: seqio.DatasetProviderBase) -> bool:
        return {pp.MLM_POSITIONS, pp.NSP_LABELS} <= set(provider.output_features)

    def dataset(self, request: formats.Request) -> tf.data.Dataset:
        from tasks import batching

        seq, preds = (request.lengths["max_seq_length"],
                      request.lengths["max_predictions_per_seq"])
        vocab = request.provider.output_features[pp.INPUT_IDS].vocabulary
        ds = request.read(pp.sequence_length(seq, preds))
        converter = pp.BertPretrainingFeatureConverter(pad_id=vocab.pad_id)
        ds = converter(ds, pp.task_feature_lengths(seq, preds))
        return batching.batch_dropping_last(ds, request.batch_size, request.task,
                                            request.split)
