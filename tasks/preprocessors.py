"""BERT pretraining examples as seqio preprocessors (google-research/bert
`create_pretraining_data.py`, see paper-tables B7).

Pipeline of a pretraining Task (one input example = one DOCUMENT, feature `text` with one
sentence per line):

  precache   `tokenize_documents`     sentences -> wordpiece ids (TF, `encode_tf`)
             seqio.CacheDatasetPlaceholder
  postcache  `create_sentence_pairs`  document-aware [CLS] A [SEP] B [SEP] pairs + NSP label
             `mask_tokens`            15% MLM selection, 80/10/10, optional whole-word
  converter  `BertPretrainingFeatureConverter`  pad to fixed shapes, add `input_mask`

Randomness. Pair creation and masking sit after the cache placeholder (so after seqio's
`repeat`): each epoch gets new pairs and new masks, like BERT's `dupe_factor` but unbounded.
Both take per-element seeds from `seqio.map_over_dataset(num_seeds=1)`, which seqio derives
from `get_dataset(seed=...)`: the same seed gives the same examples, another seed others.
Masking uses stateless TF random ops. Pair creation runs BERT's Python algorithm verbatim in
a `tf.numpy_function` seeded from the element's seed, so it is a pure function of its
inputs; its only side effect is counting into `STATS`. Hence iterator checkpoints stay exact
(`EXTERNAL_STATE_POLICY` must be IGNORE on the final dataset; `tasks.get_dataset` sets it).

Random next sentence. BERT draws B from a random document of the whole corpus. A stream
cannot, so B is drawn from a uniformly random document of a reservoir holding the previous
`nsp_reservoir_size` documents of the (shuffled) stream, carried in `tf.data` scan state and
therefore saved with iterator checkpoints. Before any other document has been seen (the first
document of a pipeline) B comes from the same document, BERT's own fallback when its ten
tries find no other document; this is counted (`nsp_random_from_same_document`).

Counting. Nothing is dropped silently: `STATS[stats_name]` counts documents, empty documents
skipped, sentences that tokenized to nothing, instances, random-next instances, segments put
back, pairs truncated and tokens truncated, [UNK] tokens; it is logged every `LOG_EVERY`
documents and available through `get_stats(name)`.
"""

from __future__ import annotations

import collections
import functools
import random
import threading
from collections.abc import Mapping

import numpy as np
import seqio
import tensorflow as tf
from absl import logging

from tasks.corpus import SENTENCE_BOUNDARY

INPUT_IDS = "input_ids"
SEGMENT_IDS = "segment_ids"
INPUT_MASK = "input_mask"
NSP_LABELS = "next_sentence_labels"
MLM_POSITIONS = "masked_lm_positions"
MLM_IDS = "masked_lm_ids"
MLM_WEIGHTS = "masked_lm_weights"
# Intermediate (cacheable) features of a tokenized document.
DOC_TOKENS = "doc_tokens"
DOC_SENTENCE_LENGTHS = "doc_sentence_lengths"
DOC_EMPTY_SENTENCES = "doc_empty_sentences"

LOG_EVERY = 10_000  # documents between stats log lines


# ---------------------------------------------------------------------------------------
# Counters


class PipelineStats:
    """Thread-safe per-name counters filled from inside tf.data pipelines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, collections.Counter] = collections.defaultdict(
            collections.Counter
        )

    def add(self, name: str, counts: Mapping[str, int]) -> None:
        with self._lock:
            c = self._counts[name]
            before = c["documents"]
            c.update({k: int(v) for k, v in counts.items() if v})
            after = c["documents"]
        if after // LOG_EVERY > before // LOG_EVERY:
            self.log(name)

    def get(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.get(name, {}))

    def reset(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._counts.clear()
            else:
                self._counts.pop(name, None)

    def log(self, name: str) -> None:
        counts = self.get(name)
        logging.info("Data pipeline %r: %s", name, ", ".join(f"{k}={v}" for k, v in
                                                            sorted(counts.items())))


STATS = PipelineStats()


def get_stats(name: str) -> dict[str, int]:
    """Counters (documents, truncations, skips, ...) of pipelines named `name` so far."""
    return STATS.get(name)


def _vocab(output_features: Mapping[str, seqio.Feature]):
    return output_features[INPUT_IDS].vocabulary


# ---------------------------------------------------------------------------------------
# Pre-cache: documents -> token ids


def split_paragraphs_into_sentences(
    ds: tf.data.Dataset, text_key: str = "text"
) -> tf.data.Dataset:
    """Puts each sentence of `text` on its own line (heuristic English splitter)."""
    pattern, repl = SENTENCE_BOUNDARY

    def fn(ex):
        ex = dict(ex)
        ex[text_key] = tf.strings.regex_replace(ex[text_key], pattern, repl)
        return ex

    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def group_sentences_into_documents(
    ds: tf.data.Dataset, sentences_per_document: int, text_key: str = "text"
) -> tf.data.Dataset:
    """Joins runs of `sentences_per_document` one-sentence examples into pseudo-documents."""
    ds = ds.map(lambda ex: ex[text_key]).batch(sentences_per_document)
    return ds.map(lambda s: {text_key: tf.strings.reduce_join(s, separator="\n")})


def tokenize_documents(
    ds: tf.data.Dataset,
    output_features: Mapping[str, seqio.Feature],
    text_key: str = "text",
) -> tf.data.Dataset:
    """`text` (sentences on lines) -> flat `doc_tokens` + `doc_sentence_lengths`.

    Blank lines are separators and ignored; a non-blank line that tokenizes to nothing
    (e.g. only control characters) is counted in `doc_empty_sentences`.
    """
    vocab = _vocab(output_features)

    def fn(ex):
        lines = tf.strings.strip(tf.strings.split(ex[text_key], sep="\n"))
        lines = tf.boolean_mask(lines, tf.strings.length(lines) > 0)
        ids = vocab.encode_tf(lines)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        nonempty = lengths > 0
        return {
            DOC_TOKENS: tf.cast(ids.flat_values, tf.int32),
            DOC_SENTENCE_LENGTHS: tf.boolean_mask(lengths, nonempty),
            DOC_EMPTY_SENTENCES: tf.reduce_sum(tf.cast(~nonempty, tf.int32)),
        }

    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------
# Post-cache: documents -> sentence pairs (BERT create_instances_from_document)


def _truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng) -> int:
    """BERT's truncate_seq_pair; returns the number of tokens removed."""
    removed = 0
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()
        removed += 1
    return removed


def create_instances_from_document(
    document: list[list[int]],
    other_documents: list[list[list[int]]],
    max_seq_length: int,
    short_seq_prob: float,
    rng: random.Random,
    cls_id: int,
    sep_id: int,
    counts: collections.Counter,
) -> list[tuple[list[int], list[int], int]]:
    """google-research/bert `create_instances_from_document` without the masking.

    `other_documents` stands in for "all other documents"; if it is empty, B of a random
    pair is taken from `document` itself (BERT's fallback). Returns (ids, segment_ids,
    is_random_next) triples; updates `counts`.
    """
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)
        counts["documents_short_target"] += 1
    instances = []
    current_chunk: list[list[int]] = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = [t for j in range(a_end) for t in current_chunk[j]]
                tokens_b: list[int] = []
                if len(current_chunk) == 1 or rng.random() < 0.5:
                    is_random_next = 1
                    target_b_length = target_seq_length - len(tokens_a)
                    if other_documents:
                        random_document = other_documents[rng.randint(0, len(other_documents) - 1)]
                    else:
                        random_document = document
                        counts["nsp_random_from_same_document"] += 1
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    num_unused_segments = len(current_chunk) - a_end
                    counts["segments_put_back"] += num_unused_segments
                    i -= num_unused_segments
                else:
                    is_random_next = 0
                    tokens_b = [t for segment in current_chunk[a_end:] for t in segment]
                removed = _truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                if removed:
                    counts["pairs_truncated"] += 1
                    counts["tokens_truncated"] += removed
                ids = [cls_id, *tokens_a, sep_id, *tokens_b, sep_id]
                segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                instances.append((ids, segment_ids, is_random_next))
                counts["instances"] += 1
                counts["instances_random_next"] += is_random_next
            current_chunk = []
            current_length = 0
        i += 1
    return instances


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    return [a.tolist() for a in np.split(flat, np.cumsum(lengths)[:-1])] if len(lengths) else []


def _pairs_numpy(
    tokens, sentence_lengths, empty_sentences, seed, res_tokens, res_sentence_lengths,
    res_doc_sentences, *, max_seq_length, short_seq_prob, cls_id, sep_id, unk_id, stats_name,
):
    """numpy_function body: one document (+ reservoir) -> flattened instances."""
    counts: collections.Counter = collections.Counter()
    counts["documents"] += 1
    counts["sentences_without_tokens"] += int(empty_sentences)
    counts["tokens"] += len(tokens)
    counts["unk_tokens"] += int(np.sum(tokens == unk_id))
    instances = []
    if len(sentence_lengths) == 0:
        counts["documents_empty_skipped"] += 1
    else:
        s0, s1 = (int(x) & 0xFFFFFFFF for x in seed)
        rng = random.Random((s0 << 32) | s1)
        document = _split(tokens, sentence_lengths)
        sents = _split(res_tokens, res_sentence_lengths)
        bounds = np.concatenate([[0], np.cumsum(res_doc_sentences)]).astype(int)
        others = [sents[bounds[k] : bounds[k + 1]] for k in range(len(res_doc_sentences))]
        instances = create_instances_from_document(
            document, others, max_seq_length, short_seq_prob, rng, cls_id, sep_id, counts
        )
    STATS.add(stats_name, counts)
    ids = np.zeros([len(instances), max_seq_length], np.int32)
    seg = np.zeros([len(instances), max_seq_length], np.int32)
    for row, (inst_ids, inst_seg, _) in enumerate(instances):
        ids[row, : len(inst_ids)] = inst_ids
        seg[row, : len(inst_seg)] = inst_seg
    lengths = np.array([len(inst[0]) for inst in instances], np.int32)
    nsp = np.array([inst[2] for inst in instances], np.int32)
    return ids, seg, lengths, nsp


@seqio.map_over_dataset(num_seeds=1)
def _attach_seed(ex, seed):
    return {**ex, "_seed": seed}


def create_sentence_pairs(
    ds: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    *,
    short_seq_prob: float = 0.1,
    nsp_reservoir_size: int = 64,
    stats_name: str = "default",
) -> tf.data.Dataset:
    """Tokenized documents -> BERT sentence pairs.

    Output features: `input_ids` ([CLS] A [SEP] B [SEP], length <= sequence_length
    ["input_ids"]), `segment_ids` (0 for [CLS] A [SEP], 1 for B [SEP]) and
    `next_sentence_labels` (0 = B is the actual continuation, 1 = B is random).
    """
    max_seq_length = int(sequence_length[INPUT_IDS])
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for A and B.")
    vocab = _vocab(output_features)
    k = int(nsp_reservoir_size)
    if k < 1:
        raise ValueError(f"nsp_reservoir_size must be >= 1, got {k}.")

    def scan_fn(state, ex):
        r_tok, r_len, r_docs = state
        out = {**ex, "_r_tok": r_tok, "_r_len": r_len, "_r_docs": r_docs}
        lengths = ex[DOC_SENTENCE_LENGTHS]
        num_sents = tf.size(lengths)
        add = num_sents > 0
        r_tok = tf.cond(add, lambda: tf.concat([r_tok, ex[DOC_TOKENS]], 0), lambda: r_tok)
        r_len = tf.cond(add, lambda: tf.concat([r_len, lengths], 0), lambda: r_len)
        r_docs = tf.cond(add, lambda: tf.concat([r_docs, [num_sents]], 0), lambda: r_docs)
        evict = tf.size(r_docs) > k
        drop_sents = tf.where(evict, r_docs[0], 0)
        drop_toks = tf.reduce_sum(r_len[:drop_sents])
        new_state = (r_tok[drop_toks:], r_len[drop_sents:], r_docs[tf.cast(evict, tf.int32):])
        return new_state, out

    empty = tf.zeros([0], tf.int32)
    ds = _attach_seed(ds).scan((empty, empty, empty), scan_fn)
    fn = functools.partial(
        _pairs_numpy,
        max_seq_length=max_seq_length,
        short_seq_prob=float(short_seq_prob),
        cls_id=vocab.cls_id,
        sep_id=vocab.sep_id,
        unk_id=vocab.unk_id,
        stats_name=stats_name,
    )

    def make_pairs(ex):
        ids, seg, lengths, nsp = tf.numpy_function(
            fn,
            [ex[DOC_TOKENS], ex[DOC_SENTENCE_LENGTHS], ex[DOC_EMPTY_SENTENCES], ex["_seed"],
             ex["_r_tok"], ex["_r_len"], ex["_r_docs"]],
            [tf.int32] * 4,
            stateful=False,
            name="bert_sentence_pairs",
        )
        return {
            INPUT_IDS: tf.ensure_shape(ids, [None, max_seq_length]),
            SEGMENT_IDS: tf.ensure_shape(seg, [None, max_seq_length]),
            "_length": tf.ensure_shape(lengths, [None]),
            NSP_LABELS: tf.ensure_shape(nsp, [None]),
        }

    def unpad(ex):
        n = ex.pop("_length")
        return {**ex, INPUT_IDS: ex[INPUT_IDS][:n], SEGMENT_IDS: ex[SEGMENT_IDS][:n]}

    ds = ds.map(make_pairs, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.flat_map(tf.data.Dataset.from_tensor_slices).map(unpad)


# ---------------------------------------------------------------------------------------
# Post-cache: masked LM (BERT create_masked_lm_predictions, stateless TF)


def mask_tokens(
    ds: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    *,
    masked_lm_prob: float = 0.15,
    whole_word_mask: bool = False,
) -> tf.data.Dataset:
    """Selects and corrupts MLM positions as BERT does; adds the `masked_lm_*` features.

    Candidates are all tokens except [CLS], [SEP] and [PAD]. num_to_predict =
    min(max_predictions, max(1, round(len(input_ids) * masked_lm_prob))) with Python's
    round-half-to-even. Candidate words are visited in random order and taken while they
    fit (with `whole_word_mask`, a `##` piece joins the previous candidate's word). Each
    chosen position: 80% [MASK], else 50/50 original / uniform random vocabulary id.
    """
    max_predictions = int(sequence_length[MLM_POSITIONS])
    vocab = _vocab(output_features)
    special = tf.constant(sorted({vocab.cls_id, vocab.sep_id, vocab.pad_id}), tf.int32)
    continuation = tf.constant(vocab.continuation_mask)
    vocab_size = vocab.vocab_size
    max_seq_length = sequence_length.get(INPUT_IDS)
    if max_seq_length and round(max_seq_length * masked_lm_prob) > max_predictions:
        logging.warning(
            "max_predictions_per_seq=%d caps masking: examples longer than %d tokens get "
            "fewer than %.0f%% of tokens predicted (BERT behaves the same).",
            max_predictions, int((max_predictions + 0.5) / masked_lm_prob),
            100 * masked_lm_prob,
        )

    @seqio.map_over_dataset(num_seeds=1)
    def fn(ex, seed):
        ids = ex[INPUT_IDS]
        n = tf.size(ids)
        eligible = tf.reduce_all(ids[:, None] != special[None, :], axis=1)
        if whole_word_mask:
            has_previous = tf.cumsum(tf.cast(eligible, tf.int32), exclusive=True) > 0
            joins = tf.gather(continuation, ids) & has_previous
            word_start = eligible & ~joins
        else:
            word_start = eligible
        num_words = tf.reduce_sum(tf.cast(word_start, tf.int32))
        word_of_pos = tf.cumsum(tf.cast(word_start, tf.int32)) - 1
        word_len = tf.math.unsorted_segment_sum(
            tf.cast(eligible, tf.int32), tf.where(eligible, word_of_pos, num_words), num_words + 1
        )[:num_words]
        num_to_predict = tf.minimum(
            max_predictions,
            tf.maximum(1, tf.cast(tf.round(tf.cast(n, tf.float64) * masked_lm_prob), tf.int32)),
        )
        seeds = tf.random.experimental.stateless_split(seed, 4)
        order = tf.argsort(tf.random.stateless_uniform([num_words], seeds[0]))
        lens = tf.gather(word_len, order)
        if whole_word_mask:
            taken_after = tf.scan(
                lambda c, w: tf.where(c + w <= num_to_predict, c + w, c), lens, initializer=0
            )
            taken_before = tf.concat([[0], taken_after[:-1]], 0)
            take = taken_after > taken_before
        else:
            take = tf.cumsum(lens) <= num_to_predict
        word_taken = tf.scatter_nd(order[:, None], take, [num_words])
        word_taken = tf.concat([word_taken, [False]], 0)  # slot for non-candidates
        selected = tf.gather(word_taken, tf.where(eligible, word_of_pos, num_words))
        u_mask = tf.random.stateless_uniform([n], seeds[1])
        u_keep = tf.random.stateless_uniform([n], seeds[2])
        random_ids = tf.random.stateless_uniform(
            [n], seeds[3], minval=0, maxval=vocab_size, dtype=tf.int32
        )
        corrupted = tf.where(
            u_mask < 0.8, vocab.mask_id, tf.where(u_keep < 0.5, ids, random_ids)
        )
        positions = tf.cast(tf.where(selected)[:, 0], tf.int32)
        num = tf.size(positions)
        pad = [[0, max_predictions - num]]
        return {
            **ex,
            INPUT_IDS: tf.where(selected, corrupted, ids),
            MLM_POSITIONS: tf.pad(positions, pad),
            MLM_IDS: tf.pad(tf.gather(ids, positions), pad),
            MLM_WEIGHTS: tf.pad(tf.ones([num], tf.float32), pad),
        }

    return fn(ds)


# ---------------------------------------------------------------------------------------
# Feature converter


def task_feature_lengths(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, int]:
    """Lengths of every task feature (scalar `next_sentence_labels` gets 0)."""
    return {
        INPUT_IDS: max_seq_length,
        SEGMENT_IDS: max_seq_length,
        NSP_LABELS: 0,
        MLM_POSITIONS: max_predictions_per_seq,
        MLM_IDS: max_predictions_per_seq,
        MLM_WEIGHTS: max_predictions_per_seq,
    }


def sequence_length(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, int]:
    """`sequence_length` to pass to `Task.get_dataset` (the non-scalar features)."""
    lengths = task_feature_lengths(max_seq_length, max_predictions_per_seq)
    return {k: v for k, v in lengths.items() if k != NSP_LABELS}


_Spec = seqio.FeatureConverter.FeatureSpec


class BertPretrainingFeatureConverter(seqio.FeatureConverter):
    """Pads BERT pretraining features to fixed shapes and adds `input_mask`.

    Model features: `input_ids`, `input_mask`, `segment_ids` [max_seq_length] int32;
    `masked_lm_positions`, `masked_lm_ids` [max_predictions] int32; `masked_lm_weights`
    [max_predictions] float32; `next_sentence_labels` [] int32. No packing.
    """

    TASK_FEATURES = {
        INPUT_IDS: _Spec(dtype=tf.int32),
        SEGMENT_IDS: _Spec(dtype=tf.int32),
        NSP_LABELS: _Spec(dtype=tf.int32, rank=0),
        MLM_POSITIONS: _Spec(dtype=tf.int32),
        MLM_IDS: _Spec(dtype=tf.int32),
        MLM_WEIGHTS: _Spec(dtype=tf.float32),
    }
    MODEL_FEATURES = {**TASK_FEATURES, INPUT_MASK: _Spec(dtype=tf.int32)}
    PACKING_FEATURE_DTYPES = {}

    def __init__(self, pad_id: int = 0, **kwargs) -> None:
        if kwargs.get("pack"):
            raise ValueError("BertPretrainingFeatureConverter does not pack examples.")
        kwargs["pack"] = False
        super().__init__(**kwargs)
        self._pad_id = pad_id

    def _convert_features(
        self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int]
    ) -> tf.data.Dataset:
        lengths = self.get_model_feature_lengths(task_feature_lengths)

        def pad(ex):
            out = {}
            for key, value in ex.items():
                if key not in self.TASK_FEATURES:
                    continue
                if key == NSP_LABELS:
                    out[key] = tf.ensure_shape(value, [])
                    continue
                pad_value = self._pad_id if key == INPUT_IDS else 0
                padded = tf.pad(value, [[0, lengths[key] - tf.size(value)]],
                                constant_values=tf.cast(pad_value, value.dtype))
                out[key] = tf.ensure_shape(padded, [lengths[key]])
            mask = tf.ones_like(ex[INPUT_IDS])
            out[INPUT_MASK] = tf.ensure_shape(
                tf.pad(mask, [[0, lengths[INPUT_MASK] - tf.size(mask)]]), [lengths[INPUT_MASK]]
            )
            return out

        return ds.map(pad, num_parallel_calls=tf.data.AUTOTUNE)

    def get_model_feature_lengths(
        self, task_feature_lengths: Mapping[str, int]
    ) -> dict[str, int]:
        return {**task_feature_lengths, INPUT_MASK: task_feature_lengths[INPUT_IDS]}
