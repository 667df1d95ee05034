"""SQuAD 1.1 / 2.0 feature creation and answer post-processing for BERT fine-tuning.

A pure Python/numpy port of google-research/bert `run_squad.py` (no TensorFlow or JAX
is needed to call it; `tasks.vocab` is imported lazily for BERT's basic tokenizer):

* `make_example` builds a `SquadExample` from TFDS-style fields (`read_squad_examples`):
  the context is split on whitespace into `doc_tokens` and the first answer's character
  offset is mapped to word indices.
* `convert_example_to_features` tokenizes the question and the context with WordPiece and
  cuts the context into overlapping windows (`convert_examples_to_features`,
  `_improve_answer_span`, `_check_is_max_context`): one model input per window,
  `[CLS] query [SEP] doc_span [SEP]`, padded to `max_seq_length`, with start/end labels.
  `num_windows` counts the windows of one example without building them.
* `postprocess` turns the per-window start/end logits of one example into the n-best
  answers, mapped back to the original context text (`write_predictions`,
  `get_final_text`, `_get_best_indexes`, `_compute_softmax`); `final_prediction` applies
  the SQuAD 2.0 null-answer threshold.

The behaviour, including its known quirks, is the reference implementation's: answers are
re-assembled from whitespace-split context words joined by single spaces, so a context
with runs of whitespace inside an answer gives that answer with single spaces.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from tasks.vocab import WordPieceVocabulary

# Text of the nonce prediction run_squad.py emits when no candidate is valid.
_EMPTY_TEXT = "empty"


def _basic_tokenize(text: str, lower_case: bool) -> list[str]:
    # Imported here so that importing tasks.squad stays cheap (tasks.vocab loads TF).
    from tasks.vocab import basic_tokenize

    return basic_tokenize(text, lower_case)


def _is_whitespace(c: str) -> bool:
    """Whitespace as run_squad.py's `read_squad_examples` splits the context."""
    return c in " \t\r\n" or ord(c) == 0x202F


@dataclasses.dataclass(frozen=True)
class SquadExample:
    """One question about one context.

    `doc_tokens` is the context split on whitespace; `start_position`/`end_position` are
    the indices in `doc_tokens` of the first and last word of the first answer (-1 when
    the question is impossible or the example has no answer).
    """

    qas_id: str
    question_text: str
    context_text: str
    doc_tokens: tuple[str, ...]
    answers: tuple[str, ...]
    start_position: int
    end_position: int
    is_impossible: bool = False


def split_context(context: str) -> tuple[list[str], list[int]]:
    """Whitespace-split `context`: (doc_tokens, char_to_word_offset), as run_squad.py."""
    doc_tokens: list[str] = []
    char_to_word_offset: list[int] = []
    prev_is_whitespace = True
    for c in context:
        if _is_whitespace(c):
            prev_is_whitespace = True
        else:
            if prev_is_whitespace:
                doc_tokens.append(c)
            else:
                doc_tokens[-1] += c
            prev_is_whitespace = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def make_example(
    qas_id: str,
    question: str,
    context: str,
    answer_texts: Sequence[str],
    answer_starts: Sequence[int],
    is_impossible: bool = False,
) -> SquadExample | None:
    """Builds a `SquadExample` from TFDS-style fields (`answer_start` = character offset).

    The first answer gives the word positions. Returns None when that answer cannot be
    found in the context at its offset (run_squad.py's whitespace-normalised check, or an
    offset outside the context); the caller should count such examples as skipped.
    An example that is neither impossible nor has answers gets positions -1 (fine for
    prediction; `convert_example_to_features(..., is_training=True)` rejects it).
    """
    if len(answer_texts) != len(answer_starts):
        raise ValueError(
            f"{qas_id}: {len(answer_texts)} answer texts but {len(answer_starts)} answer starts"
        )
    doc_tokens, char_to_word_offset = split_context(context)
    start_position = end_position = -1
    if not is_impossible and len(answer_texts):
        answer, offset = answer_texts[0], int(answer_starts[0])
        last = offset + len(answer) - 1
        if not answer or offset < 0 or last >= len(char_to_word_offset):
            return None
        start_position = char_to_word_offset[offset]
        end_position = char_to_word_offset[last]
        if start_position < 0:  # the answer starts in whitespace before the first word
            return None
        actual_text = " ".join(doc_tokens[start_position : end_position + 1])
        cleaned_answer_text = " ".join(answer.split())
        if actual_text.find(cleaned_answer_text) == -1:
            return None
    return SquadExample(
        qas_id=str(qas_id),
        question_text=question,
        context_text=context,
        doc_tokens=tuple(doc_tokens),
        answers=tuple(answer_texts),
        start_position=start_position,
        end_position=end_position,
        is_impossible=bool(is_impossible),
    )


# ---------------------------------------------------------------------------------------
# Features.


@functools.lru_cache(maxsize=1 << 17)
def _wordpiece_word(vocab: WordPieceVocabulary, text: str) -> tuple[int, ...]:
    ids: list[int] = []
    for word in _basic_tokenize(text, vocab.lower_case):
        ids.extend(vocab._wordpiece(word))
    return tuple(ids)


def wordpiece_tokenize(vocab: WordPieceVocabulary, text: str) -> list[int]:
    """WordPiece ids of `text` (BERT's FullTokenizer: basic_tokenize, then WordPiece).

    Meant for one whitespace token of a context (results are cached per text) or a
    question; same ids as `vocab.encode(text)`.
    """
    return list(_wordpiece_word(vocab, text))


class _DocSpan(NamedTuple):
    start: int
    length: int


def _improve_answer_span(
    doc_ids: Sequence[int], input_start: int, input_end: int, answer_ids: Sequence[int]
) -> tuple[int, int]:
    """The first (leftmost start, longest) sub-span of [input_start, input_end] whose
    wordpieces are exactly the answer's; else the input span (run_squad.py)."""
    answer_ids = list(answer_ids)
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            if list(doc_ids[new_start : new_end + 1]) == answer_ids:
                return new_start, new_end
    return input_start, input_end


def _doc_spans(num_doc_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[_DocSpan]:
    spans: list[_DocSpan] = []
    start_offset = 0
    while start_offset < num_doc_tokens:
        length = min(num_doc_tokens - start_offset, max_tokens_for_doc)
        spans.append(_DocSpan(start_offset, length))
        if start_offset + length == num_doc_tokens:
            break
        start_offset += min(length, doc_stride)
    return spans


def _max_context_span(doc_spans: Sequence[_DocSpan], num_doc_tokens: int) -> list[int]:
    """For each doc token, the index of its 'max context' span (`_check_is_max_context`):
    the span maximising min(left, right context) + 0.01 * span length, first on ties."""
    best_score: list[float | None] = [None] * num_doc_tokens
    best_span = [-1] * num_doc_tokens
    for span_index, span in enumerate(doc_spans):
        end = span.start + span.length - 1
        for position in range(span.start, end + 1):
            score = min(position - span.start, end - position) + 0.01 * span.length
            current = best_score[position]
            if current is None or score > current:
                best_score[position] = score
                best_span[position] = span_index
    return best_span


def _check_window_sizes(
    max_seq_length: int, doc_stride: int, max_query_length: int, query_length: int
) -> int:
    if doc_stride <= 0:
        raise ValueError(f"doc_stride must be positive, got {doc_stride}")
    if max_query_length <= 0:
        raise ValueError(f"max_query_length must be positive, got {max_query_length}")
    # The -3 accounts for [CLS], [SEP] and [SEP].
    max_tokens_for_doc = max_seq_length - query_length - 3
    if max_tokens_for_doc <= 0:
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for the context after a query "
            f"of {query_length} wordpieces; it must exceed max_query_length + 3."
        )
    return max_tokens_for_doc


def _tokenize_example(
    example: SquadExample, vocab: WordPieceVocabulary, max_query_length: int
) -> tuple[list[int], list[int], list[int], list[int]]:
    """(query_ids, all_doc_ids, tok_to_orig_index, orig_to_tok_index)."""
    query_ids = wordpiece_tokenize(vocab, example.question_text)[:max_query_length]
    tok_to_orig_index: list[int] = []
    orig_to_tok_index: list[int] = []
    all_doc_ids: list[int] = []
    for i, token in enumerate(example.doc_tokens):
        orig_to_tok_index.append(len(all_doc_ids))
        sub_ids = _wordpiece_word(vocab, token)
        tok_to_orig_index.extend([i] * len(sub_ids))
        all_doc_ids.extend(sub_ids)
    return query_ids, all_doc_ids, tok_to_orig_index, orig_to_tok_index


def num_windows(
    example: SquadExample,
    vocab: WordPieceVocabulary,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> int:
    """Number of features (context windows) `convert_example_to_features` makes."""
    query_ids, all_doc_ids, _, _ = _tokenize_example(example, vocab, max_query_length)
    max_tokens_for_doc = _check_window_sizes(
        max_seq_length, doc_stride, max_query_length, len(query_ids)
    )
    return len(_doc_spans(len(all_doc_ids), max_tokens_for_doc, doc_stride))


def convert_example_to_features(
    example: SquadExample,
    vocab: WordPieceVocabulary,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    is_training: bool = True,
) -> list[dict[str, Any]]:
    """Model inputs for every context window of one example (run_squad.py).

    Each feature is a dict with int32 arrays of length `max_seq_length`:
      input_ids            `[CLS] query [SEP] doc_span [SEP]` then `vocab.pad_id` padding
      input_mask           1 on real tokens, 0 on padding
      segment_ids          0 on [CLS] query [SEP] and padding, 1 on doc_span [SEP]
      token_to_orig_map    index into `example.doc_tokens` of each context position, -1
                           elsewhere
      token_is_max_context 1 where this window is the token's max-context window, else 0
    and the ints `start_position`, `end_position` (wordpiece positions of the answer in
    this window; 0, 0 = [CLS] when the example is impossible, the answer is not entirely
    inside the window, or `is_training` is False) and `doc_span_index` (window number).
    `tokens` (a tuple of the wordpiece strings of the unpadded sequence) is metadata for
    `postprocess`, not a model input.
    """
    query_ids, all_doc_ids, tok_to_orig_index, orig_to_tok_index = _tokenize_example(
        example, vocab, max_query_length
    )
    max_tokens_for_doc = _check_window_sizes(
        max_seq_length, doc_stride, max_query_length, len(query_ids)
    )

    tok_start_position = tok_end_position = -1
    if is_training and not example.is_impossible:
        if example.start_position < 0 or not example.answers:
            raise ValueError(
                f"{example.qas_id}: training example without an answer position that is "
                "not marked impossible"
            )
        tok_start_position = orig_to_tok_index[example.start_position]
        if example.end_position < len(example.doc_tokens) - 1:
            tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
        else:
            tok_end_position = len(all_doc_ids) - 1
        tok_start_position, tok_end_position = _improve_answer_span(
            all_doc_ids,
            tok_start_position,
            tok_end_position,
            wordpiece_tokenize(vocab, example.answers[0]),
        )

    doc_spans = _doc_spans(len(all_doc_ids), max_tokens_for_doc, doc_stride)
    max_context_span = _max_context_span(doc_spans, len(all_doc_ids))
    doc_offset = len(query_ids) + 2

    features = []
    for doc_span_index, span in enumerate(doc_spans):
        doc_slice = slice(span.start, span.start + span.length)
        ids = [vocab.cls_id, *query_ids, vocab.sep_id, *all_doc_ids[doc_slice], vocab.sep_id]
        num_real = len(ids)
        input_ids = np.full(max_seq_length, vocab.pad_id, np.int32)
        input_ids[:num_real] = ids
        input_mask = np.zeros(max_seq_length, np.int32)
        input_mask[:num_real] = 1
        segment_ids = np.zeros(max_seq_length, np.int32)
        segment_ids[doc_offset:num_real] = 1
        context = slice(doc_offset, doc_offset + span.length)
        token_to_orig_map = np.full(max_seq_length, -1, np.int32)
        token_to_orig_map[context] = tok_to_orig_index[doc_slice]
        token_is_max_context = np.zeros(max_seq_length, np.int32)
        token_is_max_context[context] = [
            int(s == doc_span_index) for s in max_context_span[doc_slice]
        ]

        start_position = end_position = 0
        if is_training and not example.is_impossible:
            doc_end = span.start + span.length - 1
            if tok_start_position >= span.start and tok_end_position <= doc_end:
                start_position = tok_start_position - span.start + doc_offset
                end_position = tok_end_position - span.start + doc_offset

        features.append({
            "input_ids": input_ids,
            "input_mask": input_mask,
            "segment_ids": segment_ids,
            "token_to_orig_map": token_to_orig_map,
            "token_is_max_context": token_is_max_context,
            "start_position": start_position,
            "end_position": end_position,
            "doc_span_index": doc_span_index,
            "tokens": tuple(vocab.id_to_token(i) for i in ids),
        })
    return features


# ---------------------------------------------------------------------------------------
# Post-processing.


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool) -> str:
    """Projects a normalised prediction back onto the original text (run_squad.py).

    E.g. pred_text "steve smith", orig_text "Steve Smith's" -> "Steve Smith": `orig_text`
    is basic-tokenized, `pred_text` located in it, and the characters aligned one-to-one
    after removing spaces. When that heuristic fails, `orig_text` is returned.
    """

    def strip_spaces(text: str) -> tuple[str, dict[int, int]]:
        ns_chars = []
        ns_to_s_map: dict[int, int] = {}
        for i, c in enumerate(text):
            if c == " ":
                continue
            ns_to_s_map[len(ns_chars)] = i
            ns_chars.append(c)
        return "".join(ns_chars), ns_to_s_map

    tok_text = " ".join(_basic_tokenize(orig_text, do_lower_case))
    start_position = tok_text.find(pred_text)
    if start_position == -1:
        return orig_text
    end_position = start_position + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s_map = strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        return orig_text
    tok_s_to_ns_map = {s: ns for ns, s in tok_ns_to_s_map.items()}

    ns_start = tok_s_to_ns_map.get(start_position)
    orig_start_position = orig_ns_to_s_map.get(ns_start) if ns_start is not None else None
    if orig_start_position is None:
        return orig_text
    ns_end = tok_s_to_ns_map.get(end_position)
    orig_end_position = orig_ns_to_s_map.get(ns_end) if ns_end is not None else None
    if orig_end_position is None:
        return orig_text
    return orig_text[orig_start_position : orig_end_position + 1]


def _get_best_indexes(logits: Sequence[float], n_best_size: int) -> list[int]:
    """Indices of the n largest logits, largest first, lower index first on ties."""
    index_and_score = sorted(enumerate(logits), key=lambda x: x[1], reverse=True)
    return [i for i, _ in index_and_score[:n_best_size]]


def _compute_softmax(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    max_score = max(scores)
    exp_scores = [math.exp(s - max_score) for s in scores]
    total = sum(exp_scores)
    return [x / total for x in exp_scores]


class _Prelim(NamedTuple):
    feature_index: int
    start_index: int
    end_index: int
    start_logit: float
    end_logit: float


def postprocess(
    example: SquadExample,
    features: Sequence[dict[str, Any]],
    start_logits_per_feature: Sequence[Sequence[float]],
    end_logits_per_feature: Sequence[Sequence[float]],
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
    do_lower_case: bool = True,
) -> dict[str, Any]:
    """The n-best answers of one example from its windows' logits (`write_predictions`).

    `features` are `convert_example_to_features(example, ...)` (in order) and the logits
    are [max_seq_length] per feature. Candidates are the top-`n_best_size` start and end
    positions of each window with start and end on context tokens, end >= start, at most
    `max_answer_length` wordpieces, and the start in its max-context window.

    Returns a dict with
      text             best non-null answer, in the original context's characters
      score            its start + end logit (-inf if there is no non-null candidate)
      null_score_diff  score_null - score, score_null = min over windows of
                       start[0] + end[0] (+inf when there is no non-null candidate)
      nbest            [(text, start_logit, end_logit, probability)] best first; with
                       `version_2` it includes the null answer "".
    With no valid candidate at all (and not `version_2`) the text is run_squad.py's
    nonce "empty" with logits 0.
    """
    if not len(features) == len(start_logits_per_feature) == len(end_logits_per_feature):
        raise ValueError(
            f"{len(features)} features but {len(start_logits_per_feature)} start and "
            f"{len(end_logits_per_feature)} end logit rows"
        )
    prelim: list[_Prelim] = []
    score_null = math.inf
    min_null_feature_index = 0
    null_start_logit = null_end_logit = 0.0
    for feature_index, feature in enumerate(features):
        start_logits = [float(x) for x in np.asarray(start_logits_per_feature[feature_index])]
        end_logits = [float(x) for x in np.asarray(end_logits_per_feature[feature_index])]
        token_to_orig_map = feature["token_to_orig_map"]
        token_is_max_context = feature["token_is_max_context"]
        num_positions = len(token_to_orig_map)
        feature_null_score = start_logits[0] + end_logits[0]
        if feature_null_score < score_null:
            score_null = feature_null_score
            min_null_feature_index = feature_index
            null_start_logit, null_end_logit = start_logits[0], end_logits[0]
        start_indexes = _get_best_indexes(start_logits, n_best_size)
        end_indexes = _get_best_indexes(end_logits, n_best_size)
        for start_index in start_indexes:
            if start_index >= num_positions or token_to_orig_map[start_index] < 0:
                continue
            if not token_is_max_context[start_index]:
                continue
            for end_index in end_indexes:
                if end_index >= num_positions or token_to_orig_map[end_index] < 0:
                    continue
                if end_index < start_index:
                    continue
                if end_index - start_index + 1 > max_answer_length:
                    continue
                prelim.append(
                    _Prelim(
                        feature_index,
                        start_index,
                        end_index,
                        start_logits[start_index],
                        end_logits[end_index],
                    )
                )
    if version_2 and features:
        prelim.append(
            _Prelim(min_null_feature_index, 0, 0, null_start_logit, null_end_logit)
        )
    prelim.sort(key=lambda p: p.start_logit + p.end_logit, reverse=True)

    seen: set[str] = set()
    nbest: list[tuple[str, float, float]] = []
    for pred in prelim:
        if len(nbest) >= n_best_size:
            break
        if pred.start_index > 0:  # a non-null prediction
            feature = features[pred.feature_index]
            tok_text = " ".join(feature["tokens"][pred.start_index : pred.end_index + 1])
            tok_text = tok_text.replace(" ##", "").replace("##", "")
            tok_text = " ".join(tok_text.strip().split())
            orig_doc_start = int(feature["token_to_orig_map"][pred.start_index])
            orig_doc_end = int(feature["token_to_orig_map"][pred.end_index])
            orig_text = " ".join(example.doc_tokens[orig_doc_start : orig_doc_end + 1])
            final_text = get_final_text(tok_text, orig_text, do_lower_case)
            if final_text in seen:
                continue
        else:
            final_text = ""
        seen.add(final_text)
        nbest.append((final_text, pred.start_logit, pred.end_logit))

    if version_2 and features and "" not in seen:
        nbest.append(("", null_start_logit, null_end_logit))
    if not nbest:
        nbest.append((_EMPTY_TEXT, 0.0, 0.0))

    probs = _compute_softmax([s + e for _, s, e in nbest])
    best_non_null = next((entry for entry in nbest if entry[0]), None)
    if best_non_null is None:
        text, score = "", -math.inf
    else:
        text, score = best_non_null[0], best_non_null[1] + best_non_null[2]
    return {
        "text": text,
        "score": score,
        "null_score_diff": score_null - score if features and best_non_null else math.inf,
        "nbest": [(t, s, e, p) for (t, s, e), p in zip(nbest, probs, strict=True)],
    }


def final_prediction(
    result: dict[str, Any], null_threshold: float = 0.0, version_2: bool = False
) -> str:
    """The answer string of a `postprocess` result: "" when `version_2` and
    null_score_diff > null_threshold, else the best non-null text."""
    if version_2 and result["null_score_diff"] > null_threshold:
        return ""
    return result["text"]


# ---------------------------------------------------------------------------------------
# seqio tasks (TFDS squad/v1.1, squad/v2.0) and scoring.

SQUAD_TFDS = {"v1": "squad/v1.1:3.0.0", "v2": "squad/v2.0:3.0.0"}
DOC_STRIDE, MAX_QUERY_LENGTH = 128, 64
N_BEST_SIZE, MAX_ANSWER_LENGTH = 20, 30


def _windows_numpy(vocab: WordPieceVocabulary, max_seq_length: int, stats_name: str,
                   qas_id: bytes, question: bytes, context: bytes, texts: np.ndarray,
                   starts: np.ndarray, impossible: bool) -> tuple[np.ndarray, ...]:
    """All windows of one TFDS example as stacked arrays (inside ``tf.numpy_function``).

    An example whose first answer is not found at its offset is kept for evaluation
    but gets ``example_weight`` 0 (no training signal), and is counted.
    """
    from tasks import preprocessors as pp

    decoded = [t.decode("utf-8") for t in texts]
    fields = (qas_id.decode("utf-8"), question.decode("utf-8"), context.decode("utf-8"))
    for what, text in (("context", fields[2]), ("question", fields[1])):
        if not text.strip():
            raise ValueError(f"SQuAD example {fields[0]!r} has an empty {what}; every "
                             "question needs a non-empty question and context paragraph. "
                             "Fix or drop it in the data.")
    example = make_example(*fields, decoded, [int(s) for s in starts], bool(impossible))
    weight = 1.0
    if example is None:
        example = dataclasses.replace(make_example(*fields, [], []), answers=tuple(decoded))
        weight = 0.0
    features = convert_example_to_features(
        example, vocab, max_seq_length, DOC_STRIDE, MAX_QUERY_LENGTH,
        is_training=example.start_position >= 0 or example.is_impossible)
    pp.STATS.add(stats_name, {"examples": 1, "windows": len(features),
                              "examples_answer_not_found": int(weight == 0.0)})
    stack = {k: np.stack([f[k] for f in features]).astype(np.int32)
             for k in ("input_ids", "input_mask", "segment_ids", "start_position",
                       "end_position")}
    return (stack["input_ids"], stack["input_mask"], stack["segment_ids"],
            stack["start_position"], stack["end_position"],
            np.full([len(features)], weight, np.float32))


def squad_windows(dataset: Any, sequence_length: dict[str, int], output_features: Any, *,
                  stats_name: str) -> Any:
    """seqio preprocessor: TFDS SQuAD examples -> one example per context window."""
    import tensorflow as tf

    from tasks import finetuning as ft

    vocab = output_features[ft.INPUT_IDS].vocabulary
    max_len = sequence_length[ft.INPUT_IDS]
    make = functools.partial(_windows_numpy, vocab, max_len, stats_name)

    def windows(ex: dict[str, Any]) -> Any:
        impossible = ex.get("is_impossible", tf.constant(False))
        outs = tf.numpy_function(
            make, [ex["id"], ex["question"], ex["context"], ex["answers"]["text"],
                   ex["answers"]["answer_start"], impossible],
            [tf.int32] * 5 + [tf.float32], stateful=False)
        ids, mask, segments, start, end, weight = outs
        n = tf.shape(ids)[0]
        meta = {"id": ex["id"], "question": ex["question"], "context": ex["context"],
                "answer_texts": ex["answers"]["text"],
                "answer_starts": ex["answers"]["answer_start"], "is_impossible": impossible}
        per_window = {
            ft.INPUT_IDS: tf.reshape(ids, [-1, max_len]),
            ft.INPUT_MASK: tf.reshape(mask, [-1, max_len]),
            ft.SEGMENT_IDS: tf.reshape(segments, [-1, max_len]),
            ft.START: tf.reshape(start, [-1]), ft.END: tf.reshape(end, [-1]),
            ft.EXAMPLE_WEIGHT: tf.reshape(weight, [-1]),
            "window": tf.range(n),
        }
        repeated = {k: tf.repeat(tf.expand_dims(v, 0), n, axis=0) for k, v in meta.items()
                    if v.shape.rank == 0}
        windows_ds = tf.data.Dataset.from_tensor_slices({**per_window, **repeated})
        ragged = {k: v for k, v in meta.items() if v.shape.rank != 0}
        return windows_ds.map(lambda w: {**w, **ragged})

    return dataset.flat_map(windows)


def register_squad(vocab: WordPieceVocabulary, version: str, *, suffix: str | None = None,
                   tfds_data_dir: str | None = None) -> str:
    """Registers ``squad_<version>_<suffix>`` (``version``: v1 or v2); splits train and
    validation (SQuAD's test set is hidden)."""
    from tasks import finetuning as ft
    from tasks import metrics
    from tasks.pretraining import PreparedTfdsDataSource
    from tasks.vocab import vocab_fingerprint

    name = f"squad_{version}_{suffix or vocab_fingerprint(vocab)}"
    metric = metrics.squad_v1 if version == "v1" else metrics.squad_v2
    main = "f1" if version == "v1" else "best_f1"
    ft.add_task(
        name, ft.TaskSpec("span", (), metric, main),
        source=PreparedTfdsDataSource(SQUAD_TFDS[version], tfds_data_dir=tfds_data_dir,
                                      splits={"train": "train", "validation": "validation"}),
        preprocessors=[functools.partial(squad_windows, stats_name=name)],
        output_features=ft.output_features(vocab, "span"),
    )
    return name


def score_predictions(task: str, windows: Sequence[dict[str, Any]],
                      outputs: dict[str, np.ndarray], *,
                      n_best_size: int = N_BEST_SIZE,
                      max_answer_length: int = MAX_ANSWER_LENGTH,
                      null_threshold: float = 0.0) -> tuple[dict[str, float], list[str]]:
    """SQuAD metrics and answer texts from the per-window logits of a split.

    Windows are grouped by question id (they arrive in order), each question's windows
    are rebuilt and checked against those the model saw, and ``postprocess`` picks the
    answer. SQuAD 2.0 reports EM/F1 at ``null_threshold`` and at the threshold on the
    null-score difference that is best on this split (``best_exact``/``best_f1``).
    """
    from tasks import finetuning as ft
    from tasks import lookup, metrics

    version_2 = ft.get_spec(task).metric_fn is metrics.squad_v2
    vocab = lookup.get_vocabulary(task)
    max_len = len(windows[0][ft.INPUT_IDS])
    groups: dict[str, list[int]] = {}
    for i, w in enumerate(windows):
        groups.setdefault(w["id"].decode("utf-8"), []).append(i)
    targets, predictions, non_null, diffs = [], [], [], []
    for qas_id, rows in groups.items():
        w = windows[rows[0]]
        texts = [t.decode("utf-8") for t in w["answer_texts"]]
        example = make_example(qas_id, w["question"].decode("utf-8"),
                               w["context"].decode("utf-8"), [], [])
        example = dataclasses.replace(example, answers=tuple(texts))
        features = convert_example_to_features(example, vocab, max_len, DOC_STRIDE,
                                               MAX_QUERY_LENGTH, is_training=False)
        if len(features) != len(rows) or any(
                not np.array_equal(f["input_ids"], windows[r][ft.INPUT_IDS])
                for f, r in zip(features, rows, strict=False)):
            raise ValueError(f"Question {qas_id}: the evaluated windows do not match the "
                             "rebuilt ones (were the windows reordered?).")
        result = postprocess(example, features, outputs["start_logits"][rows],
                             outputs["end_logits"][rows], n_best_size, max_answer_length,
                             version_2=version_2, do_lower_case=vocab.lower_case)
        predictions.append(final_prediction(result, null_threshold, version_2))
        non_null.append(result["text"])
        diffs.append(result["null_score_diff"])
        targets.append(texts if not bool(w["is_impossible"]) else [])
    if not version_2:
        return metrics.squad_v1(targets, predictions), predictions
    scores = metrics.squad_v2(targets, predictions)
    scores.update(metrics.best_null_threshold(targets, non_null, diffs))
    return scores, predictions
