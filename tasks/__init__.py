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

import dataclasses
import importlib
import typing
from collections.abc import Mapping

from tasks import formats, lookup

if typing.TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["get_dataset", "get_provider", "get_stats", "get_vocabulary", "preprocessors",
           "pretraining", "task_info", "vocab"]

_SUBMODULES = (
    "batching", "benchmark_data", "benchmark_tasks", "bilm", "conll", "corpus", "finetuning",
    "formats", "glue", "imdb", "language_modeling", "learn_bpe", "learn_vocab", "lookup",
    "metrics", "ppmi_svd", "preprocessors", "pretraining", "registry", "sample_text", "squad",
    "tagging", "translation", "vocab", "word_vector_eval", "word_vocab",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"tasks.{name}")
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")


def _register_named_tasks() -> None:
    import tasks.registry  # noqa: F401  (registers the named tasks once)


# The named tasks of tasks/registry.py are registered by the first lookup that misses.
lookup.on_first_miss(_register_named_tasks)
get_provider = lookup.get_provider
get_vocabulary = lookup.get_vocabulary


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


def task_info(task_or_mixture: str) -> lookup.TaskInfo:
    """What a model's ``check_task`` may know of the task (``tasks.lookup.TaskInfo``):
    its features' vocabulary sizes and, where it has them, its fine-tuning head and
    labels or its tag names."""
    from tasks import finetuning, tagging

    provider = get_provider(task_or_mixture)
    info = lookup.TaskInfo(task_or_mixture, provider.output_features)
    if finetuning.is_finetuning_task(provider):
        spec = finetuning.provider_spec(provider)
        info = dataclasses.replace(info, head=spec.head, label_names=tuple(spec.label_names))
    if tagging.is_tagging_task(provider):
        info = dataclasses.replace(info, tag_names=tuple(tagging.tag_names(task_or_mixture)))
    if tagging.is_word_classification_task(provider):
        info = dataclasses.replace(info, head="classification",
                                   label_names=tuple(tagging.label_names(task_or_mixture)))
    return info


def num_examples(task_or_mixture: str, split: str) -> int:
    """Examples in a split before preprocessing (for a mixture: summed over its tasks)."""
    import seqio

    provider = get_provider(task_or_mixture)
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

    provider = get_provider(task_or_mixture)
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

    provider = get_provider(task_or_mixture)
    names = {task_or_mixture}
    if isinstance(provider, seqio.Mixture):
        names |= {t.name for t in provider.tasks}
    total: collections.Counter = collections.Counter()
    for n in names:
        total.update(pp.get_stats(n))
    return dict(total)


def input_formats() -> dict[str, formats.InputFormat]:
    """Every input format by name (``tasks.formats``), in the order ``get_dataset`` tries
    them when the caller names none."""
    from tasks import finetuning, language_modeling, pretraining, tagging, translation

    found = (language_modeling.BpttStreamFormat(), tagging.WordLevelFormat(),
             translation.Seq2SeqFormat(), language_modeling.DecoderFormat(),
             finetuning.FineTuningFormat(), pretraining.BertPretrainingFormat())
    return {f.name: f for f in found}


def infer_input_format(task_or_mixture: str, feature_lengths: Mapping[str, int | None]
                       ) -> str:
    """The format a task's examples are read in when the model names none: BPTT streams
    if ``bptt`` is given, else the first format that accepts the task."""
    provider = get_provider(task_or_mixture)
    for name, fmt in input_formats().items():
        if name == "bptt_stream" and feature_lengths.get("bptt") is None:
            continue
        if fmt.accepts(provider):
            return name
    raise formats.InputFormatError(
        f"No input format reads task {task_or_mixture!r} (features "
        f"{sorted(provider.output_features)}); formats: {sorted(input_formats())}.")


def get_dataset(
    task_or_mixture: str,
    *,
    split: str,
    batch_size: int,
    seed: int,
    shuffle: bool,
    shard_index: int = 0,
    num_shards: int = 1,
    num_epochs: int | None = None,
    reverse: bool = False,
    pack: bool = False,
    input_format: str | None = None,
    **feature_lengths: int | None,
) -> tf.data.Dataset:
    """Fixed-shape batches of a task or mixture for this process, in an input format.

    ``input_format`` names how the examples become batches (``tasks.formats``; a model
    names its own as ``Model.input_format``); None infers it from the task. The
    ``feature_lengths`` the format needs fix the shapes (``max_seq_length``,
    ``max_predictions_per_seq``, ``inputs_length``, ``targets_length``, ``bptt``).
    ``batch_size`` is per process. Each batch is a dict of numpy-convertible arrays:

    * ``bert_pretraining``: ``input_ids``, ``input_mask``, ``segment_ids`` [batch,
      max_seq_length] int32; ``masked_lm_positions``, ``masked_lm_ids``
      [batch, max_predictions_per_seq] int32; ``masked_lm_weights`` float32;
      ``next_sentence_labels`` [batch] int32.
    * ``finetuning`` (``tasks/finetuning.py``): ``input_ids``, ``input_mask``,
      ``segment_ids``, ``example_weight`` and the head's labels.
    * ``word_level`` (``tasks/bilm.py``, ``tasks/tagging.py``): ``token_ids``,
      ``token_weights`` [batch, targets_length], ``char_ids`` [batch, targets_length, 50],
      one sentence a row, and ``tag_ids`` for tagging tasks.
    * ``seq2seq`` / ``decoder``: seqio's ``EncDecFeatureConverter`` /
      ``DecoderFeatureConverter`` features; with ``pack=True``, several examples a row
      (seqio's packing) and their ``*_segment_ids`` / ``*_positions``, which the
      Transformer and GPT read (``Model.supports_packing``).
    * ``bptt_stream``: row r of each batch continues row r of the batch before, in
      windows of about ``bptt`` ids padded to ``targets_length``
      (``tasks.language_modeling.bptt_stream_dataset``).

    With finite ``num_epochs`` a partial last batch is filled with rows of weight 0
    (counted as ``examples_padding_last_batch``), so evaluation sees every example
    exactly once; BERT pretraining, whose rows carry no weight, drops it instead
    (logged, counted as ``examples_dropped_by_batching``; ``get_stats``).

    ``reverse=True`` reads every document right to left (ULMFiT's backward models): BPTT
    streams of the reversed documents, or, for classification / regression fine-tuning
    tasks, each example's ids reversed with the padding still at the end. Other formats
    refuse it.

    The same arguments give the same batches. The pipeline supports iterator
    checkpointing (``clu.data.dataset_iterator.TfDatasetIterator(ds, checkpoint=True)``).

    Raises:
      tasks.formats.InputFormatError: the task's examples are not of the format's kind,
        or a length it needs is missing; the message names the fix.
    """
    from tasks import batching

    batching.hide_accelerators_from_tensorflow()
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index={shard_index} must be in [0, num_shards={num_shards}).")
    name = input_format or infer_input_format(task_or_mixture, feature_lengths)
    known = input_formats()
    if name not in known:
        raise formats.InputFormatError(
            f"Unknown input format {name!r}; known: {sorted(known)}.")
    request = formats.Request(
        task_or_mixture, get_provider(task_or_mixture), split, feature_lengths, batch_size,
        seed, shuffle, shard_index, num_shards, num_epochs, reverse, pack)
    fmt = known[name]
    fmt.check(request)
    return fmt.dataset(request)
