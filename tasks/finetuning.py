"""Fine-tuning tasks: what every GLUE / SQuAD / NER / shipped-data task shares.

A fine-tuning task is a seqio Task whose examples carry BERT inputs (``input_ids``,
``segment_ids``: ``[CLS] A [SEP] B [SEP]`` with segment ids 0/1) and labels of one
head (``models.bert.HEADS``), plus a ``TaskSpec`` registered under the same name that
says which head and labels it needs and how to score predictions (``tasks.metrics``).

* ``encode_text_pair``: text (pair) -> wordpieces, BERT's longest-first truncation to
  ``max_seq_length`` (counted, never silent), string labels -> ids;
* ``encode_tagged_words``: words + tags -> wordpieces with the tag on each word's
  first wordpiece (``label_weights`` 1 there), words cut by the length limit counted;
* ``FineTuningFeatureConverter``: pads to fixed shapes, adds ``input_mask`` and
  ``example_weight`` (1; the evaluator pads the last batch with weight-0 rows);
* ``pack_examples``: several examples a row instead (``tasks.get_dataset(pack=True)``:
  seqio's packer; each example's label sits at its first position, ``input_mask``
  numbers the examples of a row, ``positions`` restart for each);
* ``reverse_documents``: each example's ids right to left before padding (ULMFiT's
  backward classifier, ``tasks.get_dataset(reverse=True)``; the padding stays at the end);
* ``eval_examples``: the unpadded examples of a split with their metadata (ids, gold
  answers, word tags) for ``pretrain_lm.evaluate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from tasks import formats, lookup
from tasks import preprocessors as pp
from tasks.vocab import WordPieceVocabulary

INPUT_IDS, SEGMENT_IDS, INPUT_MASK = pp.INPUT_IDS, pp.SEGMENT_IDS, pp.INPUT_MASK
LABEL = "label"
LABEL_IDS, LABEL_WEIGHTS = "label_ids", "label_weights"
START, END = "start_position", "end_position"
EXAMPLE_WEIGHT = "example_weight"
TRUNCATED = "num_truncated"  # wordpieces (pairs) or words (tagging) cut by the limit


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How a fine-tuning task is modelled and scored.

    Args:
      head: ``classification``, ``regression``, ``span`` or ``token``.
      label_names: class / tag names (index = label id); empty for regression/span.
      metric_fn: ``(targets, predictions) -> {name: value}`` (``tasks.metrics``).
      main_metric: the number a sweep maximises on the dev split.
      glue_name: key of ``tasks.metrics.GLUE_SUBMISSION_FILES`` for GLUE tasks.
    """

    head: str
    label_names: tuple[str, ...]
    metric_fn: Callable[..., dict[str, float]]
    main_metric: str
    glue_name: str | None = None

    @property
    def num_labels(self) -> int:
        return max(len(self.label_names), 1)


SPECS: dict[str, TaskSpec] = {}


def get_spec(task: str) -> TaskSpec:
    """The ``TaskSpec`` of a registered fine-tuning task (clear error otherwise)."""
    if task not in SPECS:
        lookup.ensure_registered()
    if task not in SPECS:
        raise ValueError(
            f"{task!r} is not a registered fine-tuning task. Known: {sorted(SPECS)}")
    return SPECS[task]


def add_task(name: str, spec: TaskSpec, **task_kwargs: Any) -> seqio.Task:
    """Registers a seqio Task and its ``TaskSpec`` (replacing earlier registrations)."""
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    SPECS[name] = spec
    return seqio.TaskRegistry.add(name, metric_fns=[spec.metric_fn], **task_kwargs)


def output_features(vocab: WordPieceVocabulary, head: str) -> dict[str, seqio.Feature]:
    """Output features of a fine-tuning task of ``head``."""

    def feature(vocabulary: seqio.Vocabulary, dtype: tf.DType = tf.int32,
                rank: int = 1) -> seqio.Feature:
        return seqio.Feature(vocabulary, add_eos=False, dtype=dtype, rank=rank)

    plain = seqio.PassThroughVocabulary(size=0)
    features = {INPUT_IDS: feature(vocab), SEGMENT_IDS: feature(plain)}
    if head == "classification":
        features[LABEL] = feature(plain, rank=0)
    elif head == "regression":
        features[LABEL] = feature(plain, tf.float32, rank=0)
    elif head == "span":
        features[START] = feature(plain, rank=0)
        features[END] = feature(plain, rank=0)
    elif head == "token":
        features[LABEL_IDS] = feature(plain)
        features[LABEL_WEIGHTS] = feature(plain, tf.float32)
    else:
        raise ValueError(f"Unknown head {head!r}.")
    return features


def _count(stats_name: str, key: str, value: tf.Tensor) -> tf.Tensor:
    """Adds ``value`` to the pipeline counter ``key``; returns it (as an example field)."""

    def record(v: np.ndarray) -> np.int32:
        pp.STATS.add(stats_name, {"examples": 1, key: int(v), f"{key}_examples": int(v > 0)})
        return np.int32(v)

    return tf.ensure_shape(
        tf.numpy_function(record, [tf.cast(value, tf.int32)], tf.int32, stateful=False), [])


def truncate_pair_lengths(len_a: tf.Tensor, len_b: tf.Tensor, budget: int
                          ) -> tuple[tf.Tensor, tf.Tensor]:
    """Lengths after BERT's ``_truncate_seq_pair`` (pop from the longer, ties from B)."""
    keep_b = tf.minimum(len_b, tf.maximum(budget // 2, budget - len_a))
    keep_a = tf.minimum(len_a, budget - keep_b)
    return keep_a, keep_b


def encode_text_pair(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    *,
    text_a: str,
    text_b: str | None = None,
    label: str | None = "label",
    label_names: Sequence[str] = (),
    stats_name: str,
) -> tf.data.Dataset:
    """``[CLS] A [SEP] (B [SEP])`` ids and segment ids; string labels mapped to ids.

    Longest-first truncation to ``sequence_length["input_ids"]``; the number of
    wordpieces cut is the example's ``num_truncated`` and counted in
    ``tasks.get_stats(task)``. Other fields (``idx`` ...) pass through.
    """
    vocab = output_features[INPUT_IDS].vocabulary
    max_len = sequence_length[INPUT_IDS]
    budget = max_len - (3 if text_b else 2)
    cls, sep = tf.constant([vocab.cls_id]), tf.constant([vocab.sep_id])
    table = None
    if label_names:
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(label_names)), tf.range(len(label_names), dtype=tf.int32)),
            default_value=-1)

    def fn(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        a = tf.cast(vocab.encode_tf(ex[text_a]), tf.int32)
        b = tf.cast(vocab.encode_tf(ex[text_b]), tf.int32) if text_b else a[:0]
        len_a, len_b = tf.size(a), tf.size(b)
        keep_a, keep_b = truncate_pair_lengths(len_a, len_b, budget)
        ids = [cls, a[:keep_a], sep]
        segments = [tf.zeros([keep_a + 2], tf.int32)]
        if text_b:
            ids += [b[:keep_b], sep]
            segments.append(tf.ones([keep_b + 1], tf.int32))
        out = {k: v for k, v in ex.items() if k not in (text_a, text_b)}
        out[INPUT_IDS] = tf.concat(ids, 0)
        out[SEGMENT_IDS] = tf.concat(segments, 0)
        out[TRUNCATED] = _count(stats_name, "truncated_wordpieces",
                                len_a + len_b - keep_a - keep_b)
        if label is not None and table is not None:
            out[LABEL] = table.lookup(ex[label])
        elif label is not None:
            out[LABEL] = tf.cast(ex[label], output_features[LABEL].dtype)
        return out

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def encode_document(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    *,
    text: str,
    label: str = "label",
    label_names: Sequence[str],
    stats_name: str,
) -> tf.data.Dataset:
    """A document's ids with no special tokens (e.g. for a recurrent classifier over a
    sentencepiece vocabulary), cut to ``sequence_length["input_ids"]`` (the ids cut are
    the example's ``num_truncated`` and counted as ``truncated_tokens``), all-zero segment
    ids, and the label id. An empty document stops the pipeline with an error naming it."""
    vocab = output_features[INPUT_IDS].vocabulary
    max_len = sequence_length[INPUT_IDS]
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(label_names)), tf.range(len(label_names), dtype=tf.int32)),
        default_value=-1)
    num_labels = len(label_names)
    unknown_label = (f"{stats_name}: a label outside {list(label_names)}; fix the data or "
                     "the task's label names")

    def fn(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        ids = tf.cast(vocab.encode_tf(ex[text]), tf.int32)
        check = tf.debugging.assert_positive(
            tf.size(ids), message=f"{stats_name}: an empty document (no tokens); remove it "
            "from the data or give it text")
        with tf.control_dependencies([check]):
            kept = ids[:max_len]
        out = {k: v for k, v in ex.items() if k != text}
        out[INPUT_IDS] = kept
        out[SEGMENT_IDS] = tf.zeros_like(kept)
        out[TRUNCATED] = _count(stats_name, "truncated_tokens", tf.size(ids) - tf.size(kept))
        given = ex[label]
        label_id = (table.lookup(given) if given.dtype == tf.string
                    else tf.cast(given, tf.int32))
        known = tf.debugging.assert_equal((label_id >= 0) & (label_id < num_labels), True,
                                          message=unknown_label)
        with tf.control_dependencies([known]):
            out[LABEL] = tf.identity(label_id)
        return out

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def encode_tagged_words(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    *,
    words: str = "tokens",
    tags: str = "ner",
    stats_name: str,
) -> tf.data.Dataset:
    """Words + tag ids -> ``[CLS] wordpieces [SEP]`` with each tag on its word's first
    wordpiece (``label_weights`` 1 there, 0 elsewhere). Words beyond the length limit
    are cut and counted (``num_truncated``); ``word_tags`` keeps every gold tag so the
    evaluation scores the whole sentence (a cut word counts as predicted ``O``)."""
    vocab = output_features[INPUT_IDS].vocabulary
    budget = sequence_length[INPUT_IDS] - 2

    def fn(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        word_strings = ex[words]
        pieces = tf.cast(vocab.encode_tf(word_strings), tf.int32)  # ragged [words, pieces]
        lengths = pieces.row_lengths()
        ends = tf.cumsum(lengths)
        fits = ends <= budget
        n_words = tf.reduce_sum(tf.cast(fits, tf.int32))
        kept = pieces[:n_words]
        flat = kept.flat_values
        first = tf.cast(tf.equal(
            tf.ragged.range(kept.row_lengths()).flat_values, 0), tf.float32)
        word_tags = tf.cast(ex[tags], tf.int32)
        tag_per_piece = tf.gather(word_tags[:n_words], kept.value_rowids())
        zero_i, zero_f = tf.zeros([1], tf.int32), tf.zeros([1], tf.float32)
        out = {k: v for k, v in ex.items() if k not in (words, tags)}
        out[INPUT_IDS] = tf.concat([[vocab.cls_id], flat, [vocab.sep_id]], 0)
        out[SEGMENT_IDS] = tf.zeros_like(out[INPUT_IDS])
        out[LABEL_IDS] = tf.concat([zero_i, tag_per_piece * tf.cast(first, tf.int32), zero_i], 0)
        out[LABEL_WEIGHTS] = tf.concat([zero_f, first, zero_f], 0)
        out["word_tags"] = word_tags
        # A word with no wordpiece at all (e.g. only control characters) has no label
        # position either; it is scored like a cut word.
        lost = tf.size(word_tags) - tf.cast(tf.reduce_sum(first), tf.int32)
        out[TRUNCATED] = _count(stats_name, "words_without_label_position", lost)
        return out

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


# Heads whose label belongs to the whole example: reading its ids backward keeps the label.
REVERSIBLE_HEADS = ("classification", "regression")


def reverse_documents(dataset: tf.data.Dataset, head: str, *, name: str = "") -> tf.data.Dataset:
    """Every example's sequence features (``input_ids``, ``segment_ids``, ``input_mask``
    when present) reversed, before the converter pads them: the padding stays at the end,
    so ``input_mask`` and the classifier's pooling read the same valid ids, right to left
    (ULMFiT's backward classifier). What truncation kept is reversed, so the forward and
    the backward model see the same ids. Only for document-level labels
    (``REVERSIBLE_HEADS``); meant for ids without special tokens (``encode_document``)."""
    if head not in REVERSIBLE_HEADS:
        raise ValueError(f"Task {name!r} has a {head!r} head, whose labels are tied to "
                         f"positions; reading it backward (reverse=True) is supported for "
                         f"{list(REVERSIBLE_HEADS)} heads only: set DataConfig.reverse = False.")
    keys = (INPUT_IDS, SEGMENT_IDS, INPUT_MASK)

    def fn(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {k: (tf.reverse(v, [0]) if k in keys else v) for k, v in ex.items()}

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


PACKABLE_HEADS = ("classification", "regression", "token")
POSITIONS = "positions"


def pack_examples(ds: tf.data.Dataset, head: str, max_seq_length: int, *, name: str
                  ) -> tf.data.Dataset:
    """Several examples a row (seqio's ``trim_and_pack_dataset``), in the features
    ``models.bert.BertFineTuningModel`` reads packed: ``input_ids``, ``segment_ids``,
    ``input_mask`` (the example's number in its row: 1, 2, ...; 0 = padding),
    ``positions`` (0 at each example's ``[CLS]``), and the labels: ``label`` and
    ``example_weight`` (1) at each example's first position for the sentence-level
    heads, ``label_ids`` / ``label_weights`` per position for the token head.

    seqio's packer moves int32 features and reads a feature's length as its count of
    non-zero values, so every feature travels non-zero at every real position: ids and
    tags shifted by one, floats (regression labels, label weights) as their float32 bit
    pattern with 0.0 sent as -0.0 (``tf.bitcast``: exact). The span head (SQuAD windows)
    is refused."""
    if head not in PACKABLE_HEADS:
        raise formats.InputFormatError(
            f"pack=True for fine-tuning packs the {list(PACKABLE_HEADS)} heads; "
            f"{name!r} has a {head!r} head: set DataConfig.pack = False.")

    def float_bits(x: tf.Tensor) -> tf.Tensor:
        x = tf.cast(x, tf.float32)
        return tf.bitcast(tf.where(tf.equal(x, 0.0), tf.constant(-0.0), x), tf.int32)

    def from_bits(x: tf.Tensor) -> tf.Tensor:
        return tf.bitcast(x, tf.float32) + 0.0  # -0.0 + 0.0 = 0.0

    def encode(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        ids = ex[INPUT_IDS]
        ones = tf.ones_like(ids)
        out = {INPUT_IDS: ids, SEGMENT_IDS: ex[SEGMENT_IDS] + 1}
        if head == "token":
            out[LABEL_IDS] = ex[LABEL_IDS] + 1
            out[LABEL_WEIGHTS] = float_bits(ex[LABEL_WEIGHTS])
        elif head == "classification":
            out[LABEL] = ones * (tf.cast(ex[LABEL], tf.int32) + 1)
        else:
            out[LABEL] = ones * float_bits(ex[LABEL])
        return out

    def decode(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        example_ids = ex[f"{INPUT_IDS}_segment_ids"]
        real = example_ids > 0
        out = {INPUT_IDS: ex[INPUT_IDS], SEGMENT_IDS: tf.maximum(ex[SEGMENT_IDS] - 1, 0),
               INPUT_MASK: example_ids, POSITIONS: ex[f"{INPUT_IDS}_positions"]}
        if head == "token":
            out[LABEL_IDS] = tf.maximum(ex[LABEL_IDS] - 1, 0)
            out[LABEL_WEIGHTS] = tf.where(real, from_bits(ex[LABEL_WEIGHTS]), 0.0)
            out[EXAMPLE_WEIGHT] = tf.cast(real, tf.float32)
            return out
        first = real & tf.equal(out[POSITIONS], 0)
        out[LABEL] = (tf.where(first, ex[LABEL] - 1, 0) if head == "classification"
                      else tf.where(first, from_bits(ex[LABEL]), 0.0))
        out[EXAMPLE_WEIGHT] = tf.cast(first, tf.float32)
        return out

    ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = seqio.utils.trim_and_pack_dataset(
        ds, {k: max_seq_length for k in ds.element_spec})
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


_Spec = seqio.FeatureConverter.FeatureSpec


class FineTuningFeatureConverter(seqio.FeatureConverter):
    """Pads the task features of one head to ``max_seq_length`` and adds ``input_mask``
    and ``example_weight``; metadata fields (strings, ids, gold word tags) are dropped."""

    TASK_FEATURES = {INPUT_IDS: _Spec(dtype=tf.int32), SEGMENT_IDS: _Spec(dtype=tf.int32)}
    MODEL_FEATURES = {**TASK_FEATURES, INPUT_MASK: _Spec(dtype=tf.int32)}
    PACKING_FEATURE_DTYPES = {}
    SEQUENCE_FEATURES = (INPUT_IDS, SEGMENT_IDS, LABEL_IDS, LABEL_WEIGHTS)
    SCALAR_FEATURES = (LABEL, START, END)

    def __init__(self, head: str, pad_id: int = 0, **kwargs: Any) -> None:
        kwargs["pack"] = False
        super().__init__(**kwargs)
        self._pad_id = pad_id
        labels = {
            "classification": {LABEL: _Spec(dtype=tf.int32, rank=0)},
            "regression": {LABEL: _Spec(dtype=tf.float32, rank=0)},
            "span": {START: _Spec(dtype=tf.int32, rank=0), END: _Spec(dtype=tf.int32, rank=0)},
            "token": {LABEL_IDS: _Spec(dtype=tf.int32), LABEL_WEIGHTS: _Spec(dtype=tf.float32)},
        }[head]
        self.TASK_FEATURES = {**type(self).TASK_FEATURES, **labels}
        self.MODEL_FEATURES = {**self.TASK_FEATURES, INPUT_MASK: _Spec(dtype=tf.int32),
                               EXAMPLE_WEIGHT: _Spec(dtype=tf.float32, rank=0)}

    def _convert_features(self, ds: tf.data.Dataset,
                          task_feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
        length = task_feature_lengths[INPUT_IDS]

        def pad(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            out = {}
            for key, spec in self.TASK_FEATURES.items():
                value = ex[key]
                if spec.rank == 0:
                    out[key] = tf.ensure_shape(value, [])
                    continue
                fill = self._pad_id if key == INPUT_IDS else 0
                out[key] = tf.ensure_shape(tf.pad(
                    value, [[0, length - tf.size(value)]],
                    constant_values=tf.cast(fill, value.dtype)), [length])
            mask = ex.get(INPUT_MASK, tf.ones_like(ex[INPUT_IDS]))  # windows bring theirs
            out[INPUT_MASK] = tf.ensure_shape(
                tf.pad(mask, [[0, length - tf.size(mask)]]), [length])
            out[EXAMPLE_WEIGHT] = tf.ensure_shape(tf.cast(
                ex.get(EXAMPLE_WEIGHT, tf.constant(1.0)), tf.float32), [])
            return out

        return ds.map(pad, num_parallel_calls=tf.data.AUTOTUNE)

    def get_model_feature_lengths(self, task_feature_lengths: Mapping[str, int]
                                  ) -> dict[str, int]:
        length = task_feature_lengths[INPUT_IDS]
        return {k: (length if spec.rank == 1 else 0)
                for k, spec in self.MODEL_FEATURES.items()}


def is_finetuning_task(provider: seqio.DatasetProviderBase) -> bool:
    """True for tasks (or mixtures of tasks) registered through ``add_task``."""
    if isinstance(provider, seqio.Mixture):
        return all(t.name in SPECS for t in provider.tasks)
    return provider.name in SPECS


def provider_spec(provider: seqio.DatasetProviderBase) -> TaskSpec:
    """The ``TaskSpec`` of a task, or of a mixture whose tasks share one head/labels."""
    names = [t.name for t in provider.tasks] if isinstance(provider, seqio.Mixture) else [
        provider.name]
    specs = {(SPECS[n].head, SPECS[n].label_names) for n in names}
    if len(specs) != 1:
        raise ValueError(f"Mixture {provider.name!r} mixes tasks of different heads or "
                         f"labels: {sorted(specs)}; train one head per mixture.")
    return SPECS[names[0]]


def head_of(task: str) -> str:
    """The head a task (or mixture) fine-tunes: ``runs/finetune.gin``'s ``HEAD``."""
    return provider_spec(lookup.get_provider(task)).head


def num_labels_of(task: str) -> int:
    """The outputs of its head: the labels of a classification or token task, 1 for
    regression, 2 (start and end) for span (``runs/finetune.gin``'s ``NUM_LABELS``)."""
    spec = provider_spec(lookup.get_provider(task))
    return {"regression": 1, "span": 2}.get(spec.head, len(spec.label_names))


def sequence_length(provider: seqio.DatasetProviderBase, max_seq_length: int
                    ) -> dict[str, int]:
    """``sequence_length`` for ``Task.get_dataset``: every rank-1 feature at the limit."""
    return {k: max_seq_length for k, f in provider.output_features.items() if f.rank == 1}


def eval_examples(task: str, split: str, max_seq_length: int,
                  ) -> Iterator[dict[str, np.ndarray]]:
    """Unpadded, unshuffled examples of ``split`` with every metadata field, in order."""
    from tasks import batching

    provider = lookup.get_provider(task)
    batching.hide_accelerators_from_tensorflow()
    ds = provider.get_dataset(
        sequence_length(provider, max_seq_length), split=split, use_cached=False,
        shuffle=False, num_epochs=1, trim_output_features=False, try_in_mem_cache=False)
    yield from ds.as_numpy_iterator()


def pad_example(ex: Mapping[str, np.ndarray], max_seq_length: int, pad_id: int
                ) -> dict[str, np.ndarray]:
    """The model features of one ``eval_examples`` example, as the converter pads them."""
    out: dict[str, np.ndarray] = {}
    n = len(ex[INPUT_IDS])
    for key in FineTuningFeatureConverter.SEQUENCE_FEATURES:
        if key in ex:
            value = np.asarray(ex[key])
            fill = pad_id if key == INPUT_IDS else 0
            out[key] = np.pad(value, (0, max_seq_length - n), constant_values=fill)
    for key in FineTuningFeatureConverter.SCALAR_FEATURES:
        if key in ex:
            out[key] = np.asarray(ex[key])
    if INPUT_MASK in ex:
        out[INPUT_MASK] = np.pad(np.asarray(ex[INPUT_MASK], np.int32), (0, max_seq_length - n))
    else:
        out[INPUT_MASK] = (np.arange(max_seq_length) < n).astype(np.int32)
    out[EXAMPLE_WEIGHT] = np.float32(1.0)  # evaluation scores every example
    return out


class FineTuningFormat(formats.InputFormat):
    """A fine-tuning head's examples (tasks registered through ``add_task``) ->
    ``FineTuningFeatureConverter`` batches, or packed rows (``pack``: ``pack_examples``);
    ``reverse`` reads each document right to left (``reverse_documents``); a partial last
    batch gets weight-0 rows."""

    name = "finetuning"
    required_lengths = ("max_seq_length",)
    example_kind = "fine-tuning examples (tasks/finetuning.py)"
    reads_backward = True
    packs = True

    def accepts(self, provider: seqio.DatasetProviderBase) -> bool:
        return is_finetuning_task(provider)

    def dataset(self, request: formats.Request) -> tf.data.Dataset:
        from tasks import batching

        max_seq_length = request.lengths["max_seq_length"]
        head = provider_spec(request.provider).head
        ds = request.read(sequence_length(request.provider, max_seq_length))
        if request.reverse:
            ds = reverse_documents(ds, head, name=request.task)
        vocab = request.provider.output_features[INPUT_IDS].vocabulary
        if request.pack:
            if vocab.pad_id != 0:
                raise formats.InputFormatError(
                    f"pack=True pads with id 0, and {request.task!r}'s vocabulary pads with "
                    f"{vocab.pad_id}: set DataConfig.pack = False.")
            ds = pack_examples(ds, head, max_seq_length, name=request.task)
        else:
            converter = FineTuningFeatureConverter(head, pad_id=vocab.pad_id)
            ds = converter(ds, {k: max_seq_length if f.rank else 0
                                for k, f in converter.TASK_FEATURES.items()})
        return batching.batch_padding_last(ds, request.batch_size, request.task,
                                           request.split)
