"""Data for pretrain_lm: the one seam between the trainer and TensorFlow/seqio.

    import tasks
    ds = tasks.get_dataset("bert_pretrain_austen_uncased", split="train",
                           max_seq_length=128, max_predictions_per_seq=20,
                           batch_size=32, seed=0, shuffle=True)
    for batch in ds.as_numpy_iterator(): ...       # dict of fixed-shape numpy arrays

The named tasks of `tasks/registry.py` are registered on first use; register your own
with `tasks.pretraining.register_text_corpus_task(...)` or `register_bert_tasks(...)`.
Importing `tasks` is cheap: TensorFlow and seqio load on first use.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    import tensorflow as tf

    from tasks.vocab import WordPieceVocabulary

__all__ = ["get_dataset", "get_stats", "get_vocabulary", "preprocessors", "pretraining", "vocab"]

_SUBMODULES = (
    "benchmark_data", "benchmark_tasks", "bilm", "conll", "corpus", "finetuning", "glue",
    "imdb", "language_modeling", "learn_bpe", "learn_vocab", "metrics", "preprocessors",
    "pretraining", "registry", "sample_text", "squad", "tagging", "translation", "vocab",
    "word_vocab",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"tasks.{name}")
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")


def _provider(task_or_mixture: str):
    import seqio

    import tasks.registry  # noqa: F401  (registers the named tasks once)

    try:
        return seqio.get_mixture_or_task(task_or_mixture)
    except ValueError:
        known = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
        raise ValueError(
            f"No seqio task or mixture named {task_or_mixture!r} is registered. Register it "
            "first, e.g. tasks.pretraining.register_text_corpus_task(name, corpus_path, "
            "vocab) or tasks.pretraining.register_bert_tasks(vocab_file, ...). Registered: "
            f"{[k for k in known if k.startswith('bert')] or known[:20]}"
        ) from None


def get_vocabulary(task_or_mixture: str) -> WordPieceVocabulary:
    """The input vocabulary of a registered task or mixture (the model needs vocab_size)."""
    from tasks import preprocessors as pp

    features = _provider(task_or_mixture).output_features
    if "token_ids" in features and "targets" not in features:  # tasks/bilm.py, tagging.py
        return features["token_ids"].vocabulary
    return features[pp.INPUT_IDS if pp.INPUT_IDS in features else "targets"].vocabulary


def vocabulary_record(task_or_mixture: str) -> dict[str, typing.Any]:
    """What identifies a task's vocabulary: its size and a SHA-256 of its pieces
    (the sentencepiece model proto, or the WordPiece token list), for
    ``pretrain_lm.checkpoints.check_vocabulary``."""
    import hashlib

    vocab = get_vocabulary(task_or_mixture)
    if hasattr(vocab, "sp_model"):
        content = vocab.sp_model
    elif hasattr(vocab, "tokens"):
        content = "\n".join(vocab.tokens).encode("utf-8")
    else:
        content = None
    return {"task": task_or_mixture, "vocab_size": int(vocab.vocab_size),
            "sha256": hashlib.sha256(content).hexdigest() if content is not None else None}


def num_examples(task_or_mixture: str, split: str) -> int:
    """Examples in a split before preprocessing (for a mixture: summed over its tasks)."""
    import seqio

    provider = _provider(task_or_mixture)
    members = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    total = 0
    for task in members:
        n = task.num_input_examples(split)
        if n is None:
            raise ValueError(f"Task {task.name!r} does not know how many {split!r} examples "
                             "it has; give TRAIN_STEPS instead of EPOCHS.")
        total += int(n)
    return total


def check_prepared(task_or_mixture: str) -> None:
    """Raises ``tasks.pretraining.DatasetNotPreparedError`` (naming the ``tfds build``
    command) if a TFDS dataset that the task or mixture reads is not prepared."""
    import seqio

    from tasks.pretraining import PreparedTfdsDataSource

    provider = _provider(task_or_mixture)
    members = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    for task in members:
        if isinstance(task.source, PreparedTfdsDataSource):
            task.source.check_prepared()


def get_stats(task_or_mixture: str) -> dict[str, int]:
    """Counters of what the pipelines of this task/mixture truncated, skipped or dropped.

    For a mixture, the counters of its tasks are summed; `examples_dropped_by_batching`
    is recorded under the name passed to `get_dataset`.
    """
    import collections

    import seqio

    from tasks import preprocessors as pp

    provider = _provider(task_or_mixture)
    names = {task_or_mixture}
    if isinstance(provider, seqio.Mixture):
        names |= {t.name for t in provider.tasks}
    total: collections.Counter = collections.Counter()
    for n in names:
        total.update(pp.get_stats(n))
    return dict(total)


def _hide_accelerators_from_tensorflow() -> None:
    """The input pipeline runs on the host; TF must not take GPU memory from JAX."""
    import contextlib

    import tensorflow as tf

    # RuntimeError: TF already initialised its devices; nothing can change now.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")


def get_dataset(
    task_or_mixture: str,
    *,
    split: str,
    max_seq_length: int | None = None,
    max_predictions_per_seq: int | None = None,
    inputs_length: int | None = None,
    targets_length: int | None = None,
    batch_size: int,
    seed: int,
    shuffle: bool,
    shard_index: int = 0,
    num_shards: int = 1,
    num_epochs: int | None = None,
    bptt: int | None = None,
    reverse: bool = False,
) -> tf.data.Dataset:
    """Fixed-shape batches of a pretraining or fine-tuning task for this process.

    `batch_size` is the per-process batch. Each batch is a dict: `input_ids`,
    `input_mask`, `segment_ids` [batch, max_seq_length] int32; `masked_lm_positions`,
    `masked_lm_ids` [batch, max_predictions_per_seq] int32; `masked_lm_weights`
    [batch, max_predictions_per_seq] float32; `next_sentence_labels` [batch] int32.

    Fine-tuning tasks (`tasks/finetuning.py`) give `input_ids`, `input_mask`,
    `segment_ids`, `example_weight` and their head's labels; with finite `num_epochs`
    their last partial batch is filled with rows of `example_weight` 0 (counted as
    `examples_padding_last_batch`), so evaluation sees every example exactly once.

    Word-level biLM tasks (`tasks/bilm.py`, for ELMo) give `token_ids`, `token_weights`
    [batch, targets_length] and `char_ids` [batch, targets_length, 50], one sentence a
    row, padded with zeros; a partial last batch is filled with weight-0 rows as above.

    Word-level tagging tasks (`tasks/tagging.py`, for the TagLM / ELMo taggers) give the
    same plus `tag_ids` [batch, targets_length].

    Decoder-only LM tasks with `bptt` give BPTT stream batches instead
    (`tasks.language_modeling.bptt_stream_dataset`): row r of each batch continues row r
    of the batch before, in windows of about `bptt` ids padded to `targets_length`.

    `reverse=True` reads every document right to left (ULMFiT's backward models): BPTT
    streams of the reversed documents (`language_modeling.reverse_document`), or, for
    classification / regression fine-tuning tasks, each example's ids reversed with the
    padding still at the end (`finetuning.reverse_documents`). Other tasks refuse it.

    The same arguments give the same batches. The pipeline supports iterator
    checkpointing (`clu.data.dataset_iterator.TfDatasetIterator(ds, checkpoint=True)`).
    With finite `num_epochs` the last partial batch is dropped, logged and counted
    (`get_stats(...)["examples_dropped_by_batching"]`).
    """
    import seqio
    import tensorflow as tf
    from absl import logging

    from tasks import preprocessors as pp

    _hide_accelerators_from_tensorflow()
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index={shard_index} must be in [0, num_shards={num_shards}).")
    provider = _provider(task_or_mixture)
    vocab = get_vocabulary(task_or_mixture)
    finetuning = importlib.import_module("tasks.finetuning")
    is_finetuning = finetuning.is_finetuning_task(provider)
    converter = None
    if reverse and bptt is None and not is_finetuning:
        raise ValueError(f"reverse=True (backward reading) needs BPTT streams (bptt=...) or a "
                         f"classification fine-tuning task; {task_or_mixture!r} is neither: "
                         "set DataConfig.reverse = False.")
    if bptt is not None:
        if set(provider.output_features) != {"targets"} or targets_length is None:
            raise ValueError(f"bptt={bptt} needs a decoder-only LM task and targets_length; "
                             f"{task_or_mixture!r} is not one, or targets_length is missing.")
        from tasks import language_modeling

        return language_modeling.bptt_stream_dataset(
            provider, split=split, batch_size=batch_size, bptt=bptt,
            max_length=targets_length, seed=seed, shuffle=shuffle, shard_index=shard_index,
            num_shards=num_shards, num_epochs=num_epochs, reverse=reverse)
    bilm = importlib.import_module("tasks.bilm")
    tagging = importlib.import_module("tasks.tagging")
    if bilm.is_bilm_task(provider) or tagging.is_tagging_task(provider):
        if targets_length is None:
            raise ValueError(f"Word-level task {task_or_mixture!r} needs targets_length "
                             "(DataConfig.feature_lengths = {'targets_length': ...}).")
        ds = provider.get_dataset(
            sequence_length={k: targets_length for k in provider.output_features},
            split=split,
            use_cached=False, shuffle=shuffle, seed=seed,
            shard_info=seqio.ShardInfo(shard_index, num_shards) if num_shards > 1 else None,
            num_epochs=num_epochs, try_in_mem_cache=False)
        return bilm.pad_and_batch(ds, targets_length, batch_size, task_or_mixture, split)
    if set(provider.output_features) in ({"inputs", "targets"}, {"targets"}):
        # Sequence-to-sequence (translation) or decoder-only LM: seqio's converters.
        lengths = {"targets": targets_length}
        if "inputs" in provider.output_features:
            lengths["inputs"] = inputs_length
            converter = seqio.EncDecFeatureConverter(pack=False)
        else:
            converter = seqio.DecoderFeatureConverter(pack=False)
        if None in lengths.values():
            raise ValueError(f"Task {task_or_mixture!r} needs feature lengths {sorted(lengths)} "
                             "(DataConfig.feature_lengths = {'inputs_length': ..., "
                             "'targets_length': ...}).")
    elif is_finetuning:
        lengths = finetuning.sequence_length(provider, max_seq_length)
    elif max_predictions_per_seq is None:
        raise ValueError(f"Pretraining task {task_or_mixture!r} needs max_predictions_per_seq.")
    else:
        lengths = pp.sequence_length(max_seq_length, max_predictions_per_seq)
    kwargs = dict(
        sequence_length=lengths,
        split=split,
        use_cached=False,
        shuffle=shuffle,
        seed=seed,
        shard_info=seqio.ShardInfo(shard_index, num_shards) if num_shards > 1 else None,
        num_epochs=num_epochs,
        try_in_mem_cache=False,
    )
    if isinstance(provider, seqio.Mixture):
        kwargs["log_mixing_proportions"] = False
    ds = provider.get_dataset(**kwargs)
    if converter is not None:
        ds = converter(ds, lengths)
        return _batch_padding_last(ds, batch_size, task_or_mixture, split)
    if is_finetuning:
        head = finetuning.provider_spec(provider).head
        if reverse:
            ds = finetuning.reverse_documents(ds, head, name=task_or_mixture)
        converter = finetuning.FineTuningFeatureConverter(head, pad_id=vocab.pad_id)
        ds = converter(ds, {k: max_seq_length if f.rank else 0
                            for k, f in converter.TASK_FEATURES.items()})
        return _batch_padding_last(ds, batch_size, task_or_mixture, split)
    converter = pp.BertPretrainingFeatureConverter(pad_id=vocab.pad_id)
    ds = converter(ds, pp.task_feature_lengths(max_seq_length, max_predictions_per_seq))

    def report_dropped(n):
        n = int(n)
        pp.STATS.add(task_or_mixture, {"examples_dropped_by_batching": n})
        logging.warning(
            "%s/%s: dropped the last %d example(s) of the epoch (partial batch of %d).",
            task_or_mixture, split, n, batch_size,
        )
        return False

    def full_batch(batch):
        n = tf.shape(batch[pp.INPUT_IDS])[0]
        return tf.cond(
            n == batch_size,
            lambda: tf.constant(True),
            lambda: tf.numpy_function(report_dropped, [n], tf.bool, stateful=False),
        )

    ds = ds.batch(batch_size, drop_remainder=False).filter(full_batch)
    ds = ds.map(
        lambda b: {k: tf.ensure_shape(v, [batch_size, *v.shape[1:]]) for k, v in b.items()}
    )
    options = tf.data.Options()
    options.deterministic = True
    # The numpy functions are pure apart from counting; iterator checkpoints stay exact.
    options.experimental_external_state_policy = (
        tf.data.experimental.ExternalStatePolicy.IGNORE
    )
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _batch_padding_last(ds: tf.data.Dataset, batch_size: int, name: str, split: str
                        ) -> tf.data.Dataset:
    """Batches; a partial last batch is filled with all-zero rows (`example_weight` or
    `decoder_loss_weights` 0: they count for nothing)."""
    import tensorflow as tf
    from absl import logging

    from tasks import preprocessors as pp

    def report(n):
        pp.STATS.add(name, {"examples_padding_last_batch": int(n)})
        logging.info("%s/%s: last batch holds %d padding row(s) of weight 0.", name, split,
                     int(n))
        return n

    def fill(batch):
        n = tf.shape(next(iter(batch.values())))[0]
        missing = batch_size - n
        missing = tf.cond(missing > 0, lambda: tf.numpy_function(
            report, [missing], tf.int32, stateful=False), lambda: missing)
        return {k: tf.ensure_shape(
                    tf.pad(v, [[0, missing]] + [[0, 0]] * (len(v.shape) - 1)),
                    [batch_size, *v.shape[1:]])
                for k, v in batch.items()}

    ds = ds.batch(batch_size).map(fill)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_external_state_policy = (
        tf.data.experimental.ExternalStatePolicy.IGNORE)
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
