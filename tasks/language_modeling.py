r"""Decoder-only (GPT-style) language-modelling tasks: running text cut into chunks.

* ``register_corpus_lm_task(name, corpus_path, vocab)``: a BERT-format text file (one
  sentence per line, a blank line between documents; ``data/corpus/austen.txt`` has one
  document per chapter), split into ``train`` / ``validation`` by document exactly as the
  BERT task (``tasks.pretraining.corpus_split_documents``: a stable hash of each
  chapter), so no chapter is in both splits.
* ``register_lm1b_lm_task(name, vocab)``: TFDS ``lm1b`` (``validation`` = its ``test``
  split); its sentences are independent (shuffled), so each one ends in EOS and runs of
  ``sentences_per_group`` of them form the pseudo-documents that are cut into chunks.
  ``DatasetNotPreparedError`` with the ``tfds build`` command when absent.
* ``register_all_lm_tasks(data_dir)``: ``lm_austen_spm8k`` and ``lm1b_lm_spm8k`` with the
  shipped 8,000-piece BPE model ``data/vocab/spm_austen_8k/spm.model``.

Layout, GPT-2 style: within a document the sentences are joined with spaces into running
text, tokenized with the sentencepiece vocabulary, and one EOS closes the document (the
``<|endoftext|>`` of GPT-2). The document's ids are cut into consecutive chunks of
``targets_length`` ids (the length given to ``tasks.get_dataset``); the last chunk of a
document is shorter unless the length divides evenly. It is kept (padded with loss
weight 0 by seqio's ``DecoderFeatureConverter``) unless ``drop_remainder=True``, which
drops it and counts its ids. So every id of the text is trained on exactly once per epoch,
predicted from the ids before it in its chunk (the first from the start id 0).

BPTT streams for AWD-LSTM / ULMFiT (``bptt_stream_dataset``, ``tasks.get_dataset(bptt=...)``)
read each document whole instead of in chunks and lay the documents end to end in
``batch_size`` rows that continue each other from batch to batch. With ``reverse`` (ULMFiT's
backward LM; ``DataConfig.reverse``) every document's ids are reversed first
(``reverse_document``: the ids before its closing EOS right to left, the EOS still last, so
it still separates the documents), then streamed and windowed exactly as forward: row r of
batch k + 1 still continues row r of batch k, so the carried hidden state stays right.

Counters (``tasks.get_stats(name)``, from ``tasks.preprocessors.STATS``): ``documents``,
``empty_documents`` (skipped), ``tokens`` (ids incl. EOS), ``chunks``, ``partial_chunks``
(kept short last chunks), ``remainder_chunks_dropped`` / ``remainder_tokens_dropped``
(with ``drop_remainder``), ``unk_tokens``.

Learn the vocabulary (train split only; ids pad 0, eos 1, unk 2):

    python -m tasks.language_modeling --corpus=data/corpus/austen.txt --vocab_size=8000 \
      --model_prefix=data/vocab/spm_austen_8k/spm
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import seqio
import tensorflow as tf

from tasks import formats
from tasks import preprocessors as pp
from tasks.pretraining import LM1B_TFDS, PreparedTfdsDataSource, corpus_split_documents

SPLITS = ("train", "validation")
DEFAULT_VALIDATION_FRACTION = 0.05
# Chunks of one document are consecutive in the stream (after the documents themselves are
# shuffled); the buffer mixes the chunks of many documents.
DEFAULT_SHUFFLE_BUFFER = 10_000
# Austen: ~27 chunks of 128 ids per chapter, so 2,000 chunks span ~75 of the 254 training
# chapters, and the buffer fills in about a second (10,000 ~ the whole epoch takes ~4 s).
AUSTEN_SHUFFLE_BUFFER = 2_000
LM1B_SENTENCES_PER_GROUP = 256
AUSTEN_SPM = os.path.join("vocab", "spm_austen_8k", "spm.model")
GCIDE_SPM = os.path.join("vocab", "spm_gcide_8k", "spm.model")


# ---------------------------------------------------------------------------------------
# Vocabulary


def corpus_training_sentences(corpus_path: str,
                              validation_fraction: float = DEFAULT_VALIDATION_FRACTION
                              ) -> list[str]:
    """The sentences (lines) of the train-split documents of a BERT-format corpus."""
    docs = corpus_split_documents(corpus_path, "train", validation_fraction)
    return [line for doc in docs for line in doc.split("\n") if line.strip()]


def learn_corpus_bpe(corpus_path: str, model_prefix: str, vocab_size: int = 8000,
                     validation_fraction: float = DEFAULT_VALIDATION_FRACTION) -> str:
    """A BPE sentencepiece model (``tasks.translation.learn_bpe``) learned from the train
    split's sentences only; returns the ``.model`` path."""
    from tasks.translation import learn_bpe

    sentences = corpus_training_sentences(corpus_path, validation_fraction)
    return learn_bpe(sentences, model_prefix, vocab_size)


# ---------------------------------------------------------------------------------------
# Preprocessors


def join_sentences(text: tf.Tensor) -> tf.Tensor:
    """A document's sentences (one per line) as running text, separated by one space."""
    lines = tf.strings.strip(tf.strings.split(text, sep="\n"))
    lines = tf.boolean_mask(lines, tf.strings.length(lines) > 0)
    return tf.strings.reduce_join(lines, separator=" ")


def group_sentences(ds: tf.data.Dataset, output_features: Mapping[str, seqio.Feature],
                    sentences_per_group: int = LM1B_SENTENCES_PER_GROUP) -> tf.data.Dataset:
    """Tokenized one-sentence examples -> pseudo-documents: each sentence followed by EOS,
    runs of ``sentences_per_group`` concatenated (the last run may be shorter)."""
    eos = output_features["targets"].vocabulary.eos_id

    def with_eos(ex: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return tf.concat([tf.cast(ex["targets"], tf.int32), tf.constant([eos], tf.int32)], 0)

    ds = ds.map(with_eos, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ragged_batch(sentences_per_group)
    return ds.map(lambda r: {"targets": r.flat_values}, num_parallel_calls=tf.data.AUTOTUNE)


def chunk_lengths(num_tokens: int, length: int, drop_remainder: bool = False) -> list[int]:
    """Lengths of the consecutive chunks ``chunk_documents`` cuts ``num_tokens`` ids into."""
    full, rest = divmod(num_tokens, length)
    return [length] * full + ([rest] if rest and not drop_remainder else [])


def chunk_documents(ds: tf.data.Dataset, sequence_length: Mapping[str, int],
                    output_features: Mapping[str, seqio.Feature], *, stats_name: str,
                    append_eos: bool = True, drop_remainder: bool = False
                    ) -> tf.data.Dataset:
    """One tokenized document -> consecutive chunks of ``sequence_length["targets"]`` ids.

    With ``append_eos`` an EOS is put after the document's last id first. The last, short
    chunk is kept unless ``drop_remainder`` (then its ids are counted as dropped); empty
    documents are skipped and counted. Only ``targets`` is kept.
    """
    length = int(sequence_length["targets"])
    if length < 1:
        raise ValueError(f"targets_length must be positive, got {length}.")
    vocab = output_features["targets"].vocabulary
    eos, unk = vocab.eos_id, getattr(vocab, "unk_id", None)

    def record(n_text: np.ndarray, n_unk: np.ndarray) -> np.int32:
        n_text, n_unk = int(n_text), int(n_unk)
        if n_text == 0:
            pp.STATS.add(stats_name, {"documents": 1, "empty_documents": 1})
            return np.int32(0)
        n = n_text + int(append_eos)
        full, rest = divmod(n, length)
        kept_rest = bool(rest) and not drop_remainder
        pp.STATS.add(stats_name, {
            "documents": 1, "tokens": n, "unk_tokens": n_unk,
            "chunks": full + int(kept_rest), "partial_chunks": int(kept_rest),
            "remainder_chunks_dropped": int(bool(rest) and drop_remainder),
            "remainder_tokens_dropped": rest if drop_remainder else 0})
        return np.int32(0)

    def to_chunks(ex: Mapping[str, tf.Tensor]) -> tf.data.Dataset:
        text = tf.cast(ex["targets"], tf.int32)
        n_text = tf.size(text)
        n_unk = (tf.reduce_sum(tf.cast(text == unk, tf.int32)) if unk is not None
                 else tf.constant(0, tf.int32))
        zero = tf.ensure_shape(tf.numpy_function(record, [n_text, n_unk], tf.int32,
                                                 stateful=False), [])
        tokens = tf.concat([text, [eos]], 0) if append_eos else text
        tokens = tokens[:tf.where(n_text > 0, tf.size(tokens), 0)]  # empty: no lone EOS
        n = tf.size(tokens)
        full, rest = n // length, n % length
        lengths = tf.fill([full], length)
        if not drop_remainder:
            lengths = tf.concat([lengths, tf.reshape(rest, [1])[:tf.minimum(rest, 1)]], 0)
        kept = tokens[:tf.reduce_sum(lengths)] + zero
        chunks = tf.RaggedTensor.from_row_lengths(kept, tf.cast(lengths, tf.int64))
        return tf.data.Dataset.from_tensor_slices(chunks).map(lambda t: {"targets": t})

    return ds.flat_map(to_chunks)


# ---------------------------------------------------------------------------------------
# BPTT streams (AWD-LSTM / ULMFiT): batches that continue each other row by row


def bptt_lengths(total: int, bptt: int, max_length: int, rng: np.random.Generator | None
                 ) -> list[int]:
    """Consecutive BPTT window lengths covering ``total`` positions. With ``rng`` they vary
    as AWD-LSTM's: ``bptt`` with probability 0.95, else ``bptt / 2``, then ``N(that, 5)``,
    at least 5 and at most ``max_length``; without, every window is ``bptt`` long."""
    lengths, done = [], 0
    while done < total:
        if rng is None:
            n = bptt
        else:
            mean = bptt if rng.random() < 0.95 else bptt / 2
            n = max(5, int(rng.normal(mean, 5)))
        n = min(n, max_length, total - done)
        lengths.append(n)
        done += n
    return lengths


def reverse_document(ids: np.ndarray, eos_id: int | None) -> np.ndarray:
    """A document's ids read right to left (the backward LM's text): everything before a
    closing ``eos_id`` reversed, that EOS kept last (the separator between documents;
    lm1b's sentence groups end in EOS after every sentence, so each reversed sentence is
    again followed by one). A document without a closing EOS is reversed whole."""
    ids = np.asarray(ids)
    if eos_id is not None and len(ids) and ids[-1] == eos_id:
        return np.concatenate([ids[-2::-1], ids[-1:]])
    return ids[::-1].copy()


def bptt_stream_batches(documents: list[np.ndarray], batch_size: int, bptt: int,
                        max_length: int, rng: np.random.Generator | None, *,
                        shuffle: bool, stats_name: str) -> dict[str, np.ndarray]:
    """One epoch of stream batches ``[steps, batch_size, max_length]``.

    The documents (each ending in EOS; shuffled when ``shuffle``) are concatenated into one
    stream, cut into ``batch_size`` equal rows, and the rows are read in windows of
    ``bptt_lengths``: row ``r`` of batch ``k + 1`` continues row ``r`` of batch ``k``, so a
    model can carry its hidden state across batches. Inputs are the stream, targets the
    stream one step ahead; positions past a window's length are padding (weight 0). The
    ``len(stream) - 1`` mod ``batch_size`` ids that do not fill a row are counted as
    ``stream_tokens_dropped``.
    """
    if not documents:
        raise ValueError(f"{stats_name}: no documents to build BPTT streams from.")
    order = rng.permutation(len(documents)) if shuffle and rng is not None else range(
        len(documents))
    stream = np.concatenate([documents[i] for i in order]).astype(np.int32)
    per_row = (len(stream) - 1) // batch_size
    if per_row < 1:
        raise ValueError(f"{stats_name}: {len(stream)} ids cannot fill {batch_size} rows; "
                         "use a smaller batch.")
    used = per_row * batch_size
    pp.STATS.add(stats_name, {"stream_tokens": used,
                              "stream_tokens_dropped": len(stream) - 1 - used})
    inputs = stream[:used].reshape(batch_size, per_row)
    targets = stream[1:used + 1].reshape(batch_size, per_row)
    lengths = bptt_lengths(per_row, bptt, max_length, rng if shuffle else None)
    steps = len(lengths)
    out = {"decoder_input_tokens": np.zeros((steps, batch_size, max_length), np.int32),
           "decoder_target_tokens": np.zeros((steps, batch_size, max_length), np.int32),
           "decoder_loss_weights": np.zeros((steps, batch_size, max_length), np.float32)}
    start = 0
    for k, n in enumerate(lengths):
        out["decoder_input_tokens"][k, :, :n] = inputs[:, start:start + n]
        out["decoder_target_tokens"][k, :, :n] = targets[:, start:start + n]
        out["decoder_loss_weights"][k, :, :n] = 1.0
        start += n
    return out


def bptt_stream_dataset(provider: seqio.Task, *, split: str, batch_size: int, bptt: int,
                        max_length: int, seed: int, shuffle: bool, shard_index: int = 0,
                        num_shards: int = 1, num_epochs: int | None = None,
                        reverse: bool = False) -> tf.data.Dataset:
    """Batches of :func:`bptt_stream_batches` for a decoder-only LM task, epoch after
    epoch (``num_epochs`` None: forever), each epoch's document order and window lengths
    drawn from ``(seed, shard_index, epoch)``; windows vary only when ``shuffle``
    (training). The split's documents of this shard are read into memory once; with
    ``reverse`` each one is reversed (``reverse_document``) before it is streamed, the
    backward LM's data (same seed: the same document order and windows as forward).
    Checkpointable like every other pipeline (the epoch index is the iterator state)."""
    if not 0 < bptt <= max_length:
        raise ValueError(f"bptt={bptt} must be in (0, targets_length={max_length}].")
    whole = provider.get_dataset(
        sequence_length={"targets": 2**30}, split=split, use_cached=False, shuffle=False,
        seed=seed, num_epochs=1,
        shard_info=seqio.ShardInfo(shard_index, num_shards) if num_shards > 1 else None)
    documents = [np.asarray(ex["targets"], np.int32) for ex in whole.as_numpy_iterator()]
    if reverse:
        eos = provider.output_features["targets"].vocabulary.eos_id
        documents = [reverse_document(d, eos) for d in documents]
    name = provider.name

    def epoch(e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, shard_index, int(e)])
        b = bptt_stream_batches(documents, batch_size, bptt, max_length, rng,
                                shuffle=shuffle, stats_name=name)
        return (b["decoder_input_tokens"], b["decoder_target_tokens"],
                b["decoder_loss_weights"])

    def batches(e: tf.Tensor) -> tf.data.Dataset:
        parts = tf.numpy_function(epoch, [e], (tf.int32, tf.int32, tf.float32),
                                  stateful=False)
        shape = [None, batch_size, max_length]
        parts = [tf.ensure_shape(x, shape) for x in parts]
        return tf.data.Dataset.from_tensor_slices(
            dict(zip(("decoder_input_tokens", "decoder_target_tokens",
                      "decoder_loss_weights"), parts, strict=True)))

    epochs = tf.data.Dataset.range(num_epochs) if num_epochs else tf.data.Dataset.range(
        2**62)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_external_state_policy = (
        tf.data.experimental.ExternalStatePolicy.IGNORE)
    return epochs.flat_map(batches).with_options(options).prefetch(2)


def _add(name: str, **kwargs: object) -> seqio.Task:
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    return seqio.TaskRegistry.add(name, **kwargs)


def output_features(vocab: seqio.Vocabulary) -> dict[str, seqio.Feature]:
    """Only ``targets``: ``tasks.get_dataset`` then uses seqio's DecoderFeatureConverter."""
    return {"targets": seqio.Feature(vocab, add_eos=False)}


# ---------------------------------------------------------------------------------------
# Tasks


def register_corpus_lm_task(name: str, corpus_path: str, vocab: seqio.Vocabulary,
                            validation_fraction: float = DEFAULT_VALIDATION_FRACTION, *,
                            drop_remainder: bool = False,
                            shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER) -> seqio.Task:
    """A language-modelling task over a BERT-format corpus file, split by document.

    The file is read when a dataset is first built, so a missing or malformed file raises
    ``tasks.corpus.CorpusError`` from ``get_dataset``.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    corpus_path = os.path.abspath(corpus_path)
    return register_documents_lm_task(
        name, lambda split: list(corpus_split_documents(corpus_path, split,
                                                        validation_fraction)),
        vocab, drop_remainder=drop_remainder, shuffle_buffer_size=shuffle_buffer_size)


def register_documents_lm_task(name: str, documents: Callable[[str], list[str]],
                               vocab: seqio.Vocabulary, *, drop_remainder: bool = False,
                               shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER,
                               splits: Sequence[str] = SPLITS) -> seqio.Task:
    """A language-modelling task whose split ``s`` is the documents ``documents(s)`` (each
    one sentence per line), read when a dataset is first built."""

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                   ) -> tf.data.Dataset:
        docs = documents(split)
        ds = tf.data.Dataset.from_tensor_slices(list(docs))
        if shuffle_files:
            ds = ds.shuffle(len(docs), seed=seed, reshuffle_each_iteration=True)
        return ds.map(lambda t: {"targets": join_sentences(t)})

    return _add(
        name,
        source=seqio.FunctionDataSource(dataset_fn, splits=tuple(splits)),
        preprocessors=[
            seqio.preprocessors.tokenize,
            seqio.CacheDatasetPlaceholder(),
            functools.partial(chunk_documents, stats_name=name, append_eos=True,
                              drop_remainder=drop_remainder),
        ],
        output_features=output_features(vocab),
        shuffle_buffer_size=shuffle_buffer_size)


def sentence_stream_preprocessors(name: str, *, text_key: str = "text",
                                  sentences_per_group: int = LM1B_SENTENCES_PER_GROUP,
                                  drop_remainder: bool = False) -> list:
    """Preprocessors of a source of independent one-sentence examples (``text_key``):
    tokenize, EOS after every sentence, groups of ``sentences_per_group``, chunks."""
    return [
        functools.partial(seqio.preprocessors.rekey, key_map={"targets": text_key}),
        seqio.preprocessors.tokenize,
        functools.partial(group_sentences, sentences_per_group=sentences_per_group),
        seqio.CacheDatasetPlaceholder(),
        functools.partial(chunk_documents, stats_name=name, append_eos=False,
                          drop_remainder=drop_remainder),
    ]


def register_lm1b_lm_task(name: str, vocab: seqio.Vocabulary, *,
                          tfds_data_dir: str | None = None,
                          sentences_per_group: int = LM1B_SENTENCES_PER_GROUP,
                          drop_remainder: bool = False,
                          shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER) -> seqio.Task:
    """TFDS ``lm1b`` (train / validation = test): every sentence ends in EOS; runs of
    ``sentences_per_group`` sentences are cut into chunks like a corpus document
    (``sentence_stream_preprocessors``). Reading it before it is prepared raises
    ``tasks.pretraining.DatasetNotPreparedError`` with the ``tfds build`` command."""
    return _add(
        name,
        source=PreparedTfdsDataSource(LM1B_TFDS, tfds_data_dir=tfds_data_dir,
                                      splits={"train": "train", "validation": "test"}),
        preprocessors=sentence_stream_preprocessors(
            name, sentences_per_group=sentences_per_group, drop_remainder=drop_remainder),
        output_features=output_features(vocab),
        shuffle_buffer_size=shuffle_buffer_size)


def register_all_lm_tasks(data_dir: str, tfds_data_dir: str | None = None) -> list[str]:
    """``lm_austen_spm8k`` (``data_dir/corpus/austen.txt``) and ``lm1b_lm_spm8k`` (TFDS),
    both with ``data_dir/vocab/spm_austen_8k/spm.model``; for ULMFiT, with the BPE model
    learned from GCIDE (``data_dir/vocab/spm_gcide_8k``): ``lm_gcide8k`` (general
    domain, ``data_dir/corpus/gcide/gcide.txt``) and ``lm_austen_novels_gcide8k`` (the
    sentences of the ``austen_novels`` classification task's train / validation splits,
    one document each: target-task LM fine-tuning that never reads the test split), and
    ``lm1b_lm_gcide8k`` (TFDS lm1b, the full-scale general-domain corpus). Returns their
    names."""
    from tasks import glue

    vocab = seqio.SentencePieceVocabulary(os.path.join(data_dir, AUSTEN_SPM))
    austen = register_corpus_lm_task("lm_austen_spm8k",
                                     os.path.join(data_dir, "corpus", "austen.txt"), vocab,
                                     shuffle_buffer_size=AUSTEN_SHUFFLE_BUFFER)
    lm1b = register_lm1b_lm_task("lm1b_lm_spm8k", vocab, tfds_data_dir=tfds_data_dir)
    gcide_vocab = seqio.SentencePieceVocabulary(os.path.join(data_dir, GCIDE_SPM))
    gcide = register_corpus_lm_task("lm_gcide8k",
                                    os.path.join(data_dir, "corpus", "gcide", "gcide.txt"),
                                    gcide_vocab, shuffle_buffer_size=AUSTEN_SHUFFLE_BUFFER)
    novels_dir = os.path.join(data_dir, "classification", "austen_novels")
    novels = register_documents_lm_task(
        "lm_austen_novels_gcide8k",
        lambda split: glue.read_labelled_tsv(os.path.join(novels_dir, f"{split}.tsv"),
                                             glue.AUSTEN_NOVELS)[0],
        gcide_vocab, shuffle_buffer_size=AUSTEN_SHUFFLE_BUFFER)
    lm1b_gcide = register_lm1b_lm_task("lm1b_lm_gcide8k", gcide_vocab,
                                       tfds_data_dir=tfds_data_dir)
    return [austen.name, lm1b.name, gcide.name, novels.name, lm1b_gcide.name]


# ---------------------------------------------------------------------------------------
# Command line: learn the vocabulary


def _is_decoder_lm_task(provider: seqio.DatasetProviderBase) -> bool:
    return set(provider.output_features) == {"targets"}


class DecoderFormat(formats.InputFormat):
    """Decoder-only LM examples (``targets``) -> seqio ``DecoderFeatureConverter`` batches,
    one example a row or packed (``pack``); a partial last batch gets rows of weight 0."""

    name = "decoder"
    packs = True
    required_lengths = ("targets_length",)
    example_kind = "decoder-only LM examples (targets only)"

    def accepts(self, provider: seqio.DatasetProviderBase) -> bool:
        return _is_decoder_lm_task(provider)

    def dataset(self, request: formats.Request) -> tf.data.Dataset:
        from tasks import batching

        lengths = {"targets": request.lengths["targets_length"]}
        ds = seqio.DecoderFeatureConverter(pack=request.pack)(request.read(lengths), lengths)
        return batching.batch_padding_last(ds, request.batch_size, request.task,
                                           request.split)


class BpttStreamFormat(formats.InputFormat):
    """Decoder-only LM text as BPTT streams (``bptt_stream_dataset``): row r of each
    batch continues row r of the batch before, in windows of about ``bptt`` ids padded
    to ``targets_length``; ``reverse`` streams every document right to left."""

    name = "bptt_stream"
    required_lengths = ("targets_length", "bptt")
    example_kind = "decoder-only LM text (targets only)"
    reads_backward = True

    def accepts(self, provider: seqio.DatasetProviderBase) -> bool:
        return _is_decoder_lm_task(provider)

    def dataset(self, request: formats.Request) -> tf.data.Dataset:
        return bptt_stream_dataset(
            request.provider, split=request.split, batch_size=request.batch_size,
            bptt=request.lengths["bptt"], max_length=request.lengths["targets_length"],
            seed=request.seed, shuffle=request.shuffle, shard_index=request.shard_index,
            num_shards=request.num_shards, num_epochs=request.num_epochs,
            reverse=request.reverse)


def main(argv: list[str]) -> None:
    """``--corpus``, ``--model_prefix``, ``--vocab_size``, ``--validation_fraction``."""
    import time

    from absl import flags

    del argv
    values = flags.FLAGS
    if not values.corpus or not values.model_prefix:
        sys.exit("error: give --corpus and --model_prefix.")
    start = time.perf_counter()
    sentences = corpus_training_sentences(values.corpus, values.validation_fraction)
    path = learn_corpus_bpe(values.corpus, values.model_prefix, values.vocab_size,
                            values.validation_fraction)
    print(f"wrote {path} from {len(sentences):,} train-split sentences of {values.corpus} "
          f"in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("corpus", None, "BERT-format corpus (sentence per line).")
    flags.DEFINE_string("model_prefix", None, "Output path prefix (.model / .vocab).")
    flags.DEFINE_integer("vocab_size", 8000, "Number of pieces.")
    flags.DEFINE_float("validation_fraction", DEFAULT_VALIDATION_FRACTION,
                       "Documents held out as in the task (not learned from).")
    app.run(main)
