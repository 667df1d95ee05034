"""Tests for tasks.squad: SQuAD windowing, labels and answer post-processing.

Contexts are real text (Jane Austen, data/corpus/austen.txt) tokenized with BERT's
uncased vocabulary, long enough to need several windows.
"""

from __future__ import annotations

import math
import pathlib
import random
import re
import string

import numpy as np
import pytest

from tasks import squad
from tasks.vocab import WordPieceVocabulary

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB = REPO / "data/vocab/bert_uncased/vocab.txt"
AUSTEN = REPO / "data/corpus/austen.txt"

# (max_seq_length, doc_stride, max_query_length)
SETTINGS = [(384, 128, 64), (64, 16, 24)]
NUM_ANSWERS = 200
PUNCT = string.punctuation


@pytest.fixture(scope="module")
def vocab() -> WordPieceVocabulary:
    return WordPieceVocabulary(str(VOCAB), lower_case=True)


@pytest.fixture(scope="module")
def austen_lines() -> list[str]:
    return [line.strip() for line in AUSTEN.read_text(encoding="utf-8").split("\n")]


@pytest.fixture(scope="module")
def contexts(vocab, austen_lines) -> list[str]:
    """Five contexts of 15-40 consecutive sentences and 450-900 wordpieces."""
    out = []
    for first in (30, 4000, 11000, 19000, 27000):
        sentences: list[str] = []
        num_pieces = 0
        i = first
        while (num_pieces < 450 or len(sentences) < 15) and len(sentences) < 40:
            if austen_lines[i]:
                sentences.append(austen_lines[i])
                num_pieces += len(vocab.encode(austen_lines[i]))
            i += 1
        assert 400 <= num_pieces <= 900, num_pieces
        out.append(" ".join(sentences))
    return out


def _make_answers(contexts: list[str], austen_lines: list[str]) -> list[dict]:
    """Random 1-5 word spans with their char offsets; some trimmed of edge punctuation."""
    rng = random.Random(1234)
    questions = [line for line in austen_lines[200:400] if line]
    out = []
    for n in range(NUM_ANSWERS):
        ctx_index = n % len(contexts)
        ctx = contexts[ctx_index]
        words = list(re.finditer(r"\S+", ctx))
        length = rng.randint(1, 5)
        w = rng.randrange(len(words) - length + 1)
        start, end = words[w].start(), words[w + length - 1].end()
        lead = 0
        if rng.random() < 0.5:  # '"Oh' -> 'Oh'
            first = words[w].group()
            if first.lstrip(PUNCT):
                lead = len(first) - len(first.lstrip(PUNCT))
        if rng.random() < 0.5:  # 'Elizabeth,' -> 'Elizabeth'
            last = ctx[max(start + lead, words[w + length - 1].start()) : end]
            if last.rstrip(PUNCT):
                end -= len(last) - len(last.rstrip(PUNCT))
        start += lead
        out.append({
            "ctx_index": ctx_index,
            "first_word": w,
            "lead": lead,
            "start": start,
            "text": ctx[start:end],
            "question": questions[rng.randrange(len(questions))],
        })
    return out


@pytest.fixture(scope="module")
def examples(contexts, austen_lines) -> list[tuple[squad.SquadExample, dict]]:
    out = []
    for n, a in enumerate(_make_answers(contexts, austen_lines)):
        ex = squad.make_example(
            f"q{n}", a["question"], contexts[a["ctx_index"]], [a["text"]], [a["start"]]
        )
        assert ex is not None, a
        out.append((ex, a))
    return out


def _one_hot(feature: dict, position: int, value: float = 10.0) -> np.ndarray:
    logits = np.zeros(len(feature["input_ids"]), np.float32)
    logits[position] = value
    return logits


@pytest.mark.parametrize("max_seq_length,doc_stride,max_query_length", SETTINGS)
def test_windows_labels_and_recovery(
    vocab, examples, max_seq_length, doc_stride, max_query_length
):
    sizes = dict(
        max_seq_length=max_seq_length, doc_stride=doc_stride, max_query_length=max_query_length
    )
    not_in_any_window = 0
    not_recoverable = 0
    multi_window = 0
    recovered = 0
    word_ids_of: dict[tuple[str, ...], list[list[int]]] = {}  # five contexts, 200 answers
    for ex, answer in examples:
        feats = squad.convert_example_to_features(ex, vocab, **sizes, is_training=True)
        assert len(feats) == squad.num_windows(ex, vocab, **sizes)
        multi_window += len(feats) > 1

        # Independent tokenization with the vocabulary's own encoder.
        query = vocab.encode(ex.question_text)[:max_query_length]
        doc = tuple(ex.doc_tokens)
        if doc not in word_ids_of:
            word_ids_of[doc] = [vocab.encode(w) for w in doc]
        word_ids = word_ids_of[doc]
        all_ids = [i for ids in word_ids for i in ids]
        tok_to_orig = [w for w, ids in enumerate(word_ids) for _ in ids]
        orig_to_tok = np.cumsum([0] + [len(ids) for ids in word_ids])
        q, n = len(query), len(all_ids)
        doc_len = max_seq_length - q - 3
        off = q + 2

        # Expected answer wordpiece span (before windowing).
        answer_ids = vocab.encode(answer["text"])
        ts = int(orig_to_tok[answer["first_word"]]) + answer["lead"]
        te = ts + len(answer_ids) - 1
        assert all_ids[ts : te + 1] == answer_ids

        # Window starts advance by doc_stride; the last window ends the document.
        spans = [(k * doc_stride, min(doc_len, n - k * doc_stride)) for k in range(len(feats))]
        assert spans[-1][0] + spans[-1][1] == n
        assert all(s + length < n for s, length in spans[:-1])

        max_ctx_count = np.zeros(n, int)
        best_window = {}
        labelled = []
        for k, (f, (s, length)) in enumerate(zip(feats, spans, strict=True)):
            assert f["doc_span_index"] == k
            for key in ("input_ids", "input_mask", "segment_ids", "token_to_orig_map",
                        "token_is_max_context"):
                assert f[key].dtype == np.int32 and f[key].shape == (max_seq_length,), key
            ids = f["input_ids"]
            real = off + length + 1
            assert ids[0] == vocab.cls_id
            assert ids[1 : q + 1].tolist() == query
            assert ids[q + 1] == vocab.sep_id
            assert ids[off : off + length].tolist() == all_ids[s : s + length]
            assert ids[off + length] == vocab.sep_id
            assert (ids[real:] == vocab.pad_id).all()
            assert f["tokens"] == tuple(vocab.id_to_token(int(i)) for i in ids[:real])
            assert f["input_mask"].tolist() == [1] * real + [0] * (max_seq_length - real)
            assert f["segment_ids"].tolist() == (
                [0] * off + [1] * (length + 1) + [0] * (max_seq_length - real)
            )
            expected_map = np.full(max_seq_length, -1)
            expected_map[off : off + length] = tok_to_orig[s : s + length]
            np.testing.assert_array_equal(f["token_to_orig_map"], expected_map)
            is_max = f["token_is_max_context"]
            assert set(is_max.tolist()) <= {0, 1}
            assert not is_max[:off].any() and not is_max[off + length :].any()
            for t in range(s, s + length):
                if is_max[t - s + off]:
                    max_ctx_count[t] += 1
                    best_window[t] = k

            inside = s <= ts and te <= s + length - 1
            label = (f["start_position"], f["end_position"])
            if inside:
                assert label == (ts - s + off, te - s + off)
                labelled.append(k)
            else:
                assert label == (0, 0)

        # Every doc token is max-context in exactly one window: the one where
        # min(left, right) context (+ 0.01 * window length) is largest.
        assert (max_ctx_count == 1).all()
        for t, k in best_window.items():
            def score(s, length, t=t):
                return min(t - s, s + length - 1 - t) + 0.01 * length
            candidates = [score(s, ln) for s, ln in spans if s <= t < s + ln]
            assert score(*spans[k]) == max(candidates)

        # An answer no longer than the window overlap is always entirely inside a window.
        if te - ts + 1 <= doc_len - doc_stride + 1:
            assert labelled, answer
        if not labelled:
            not_in_any_window += 1

        # Feeding one-hot logits at the labels gives back exactly the answer substring,
        # for every labelled window where the start is max-context (others are filtered).
        any_recovered = False
        for k in labelled:
            f = feats[k]
            sp, ep = f["start_position"], f["end_position"]
            if not f["token_is_max_context"][sp]:
                continue
            starts = [np.zeros(max_seq_length, np.float32) for _ in feats]
            ends = [np.zeros(max_seq_length, np.float32) for _ in feats]
            starts[k], ends[k] = _one_hot(f, sp), _one_hot(f, ep)
            result = squad.postprocess(ex, feats, starts, ends)
            assert result["text"] == answer["text"], (result["text"], answer)
            assert result["text"] == ex.context_text[
                answer["start"] : answer["start"] + len(answer["text"])
            ]
            assert result["score"] == pytest.approx(20.0)
            assert squad.final_prediction(result) == answer["text"]
            any_recovered = True
            recovered += 1
        # Recoverable iff the start token's max-context window holds the whole answer.
        k_best = best_window[ts]
        assert any_recovered == (spans[k_best][0] + spans[k_best][1] - 1 >= te)
        not_recoverable += not any_recovered

    assert multi_window >= len(examples) // 2
    assert recovered >= len(examples)
    if max_seq_length == 384:
        assert not_in_any_window == 0 and not_recoverable == 0
    else:  # rare with 37+ context tokens per window and stride 16
        assert not_recoverable <= len(examples) // 20
    print(f"settings={sizes}: not in any window={not_in_any_window}, "
          f"not recoverable={not_recoverable}")


def test_query_truncation(vocab, contexts, austen_lines):
    long_question = " ".join(austen_lines[30:34])
    assert len(vocab.encode(long_question)) > 64
    for question, max_query_length in ((long_question, 64), (long_question, 5),
                                       ("Who is Emma?", 64)):
        ex = squad.make_example("q", question, contexts[0], [], [])
        feats = squad.convert_example_to_features(
            ex, vocab, max_query_length=max_query_length, is_training=False
        )
        expected = vocab.encode(question)[:max_query_length]
        q = len(expected)
        assert q == min(max_query_length, len(vocab.encode(question)))
        for f in feats:
            assert f["input_ids"][1 : q + 1].tolist() == expected
            assert f["input_ids"][q + 1] == vocab.sep_id
            assert f["segment_ids"][q + 1] == 0 and f["segment_ids"][q + 2] == 1
            assert f["token_to_orig_map"][q + 2] >= 0 and f["token_to_orig_map"][q + 1] == -1
    with pytest.raises(ValueError):
        squad.convert_example_to_features(ex, vocab, max_seq_length=8, max_query_length=5)


def test_make_example():
    ctx = "Emma Woodhouse, handsome, clever,  and rich, with a comfortable home."
    ex = squad.make_example("a", "Who?", ctx, ["Woodhouse,", "Emma"], [5, 0])
    assert ex.doc_tokens[:3] == ("Emma", "Woodhouse,", "handsome,")
    assert (ex.start_position, ex.end_position) == (1, 1)
    assert ex.answers == ("Woodhouse,", "Emma")
    # Whitespace-normalised comparison: the double space is not in doc_tokens.
    i = ctx.index("clever,")
    ex = squad.make_example("b", "What?", ctx, ["clever,  and"], [i])
    assert ex is not None and (ex.start_position, ex.end_position) == (3, 4)
    ex = squad.make_example("c", "What?", ctx, ["handsome"], [ctx.index("handsome")])
    assert (ex.start_position, ex.end_position) == (2, 2)
    # run_squad.py only checks that the words under the offset contain the answer:
    # "Woodhouse" at 0 covers "Emma Woodhouse," and is accepted.
    ex = squad.make_example("d", "Who?", ctx, ["Woodhouse"], [0])
    assert (ex.start_position, ex.end_position) == (0, 1)
    # Skipped: wrong offset, offset outside the context, offset in leading whitespace.
    assert squad.make_example("d", "Who?", ctx, ["rich"], [0]) is None
    assert squad.make_example("d", "Who?", ctx, ["Emma"], [ctx.index("rich")]) is None
    assert squad.make_example("d", "Who?", " " + ctx, [" Emma"], [0]) is None
    assert squad.make_example("e", "Who?", ctx, ["home."], [len(ctx) - 2]) is None
    imp = squad.make_example("f", "Why?", ctx, [], [], is_impossible=True)
    assert (imp.start_position, imp.end_position, imp.is_impossible) == (-1, -1, True)


def test_impossible_and_unlabelled_examples(vocab, contexts):
    imp = squad.make_example("f", "Why?", contexts[1], [], [], is_impossible=True)
    feats = squad.convert_example_to_features(imp, vocab, is_training=True)
    assert len(feats) > 1
    assert all((f["start_position"], f["end_position"]) == (0, 0) for f in feats)
    unlabelled = squad.make_example("g", "Why?", contexts[1], [], [])
    with pytest.raises(ValueError):
        squad.convert_example_to_features(unlabelled, vocab, is_training=True)
    feats = squad.convert_example_to_features(unlabelled, vocab, is_training=False)
    assert all((f["start_position"], f["end_position"]) == (0, 0) for f in feats)


@pytest.mark.parametrize(
    "pred,orig,lower,expected",
    [
        ("steve smith", "Steve Smith's", True, "Steve Smith"),
        ("Steve Smith", "Steve Smith's", False, "Steve Smith"),
        ("steve smith ' s", "Steve Smith's", True, "Steve Smith's"),
        ("1895", "(1895-1943).", True, "1895"),
        ("1895 - 1943", "(1895-1943).", True, "1895-1943"),
        ("cafe", "Café,", True, "Café"),
        ("jose", "«José»", True, "José"),
        ("elizabeth", "Elizabeth,", True, "Elizabeth"),
        ("mr", "Mr.", True, "Mr"),
        ("them", "_them_", True, "them"),
        # Not found (cased mismatch, [UNK], absent): the whole original text.
        ("steve", "Steve Smith's", False, "Steve Smith's"),
        ("[UNK] smith", "Stéve Smith", True, "Stéve Smith"),
        ("bob", "Steve Smith's", True, "Steve Smith's"),
        # Lengths differ after cleaning (zero-width space dropped): the original text.
        ("abcd", "ab\u200bcd", True, "ab\u200bcd"),
    ],
)
def test_get_final_text(pred, orig, lower, expected):
    assert squad.get_final_text(pred, orig, lower) == expected


@pytest.fixture(scope="module")
def small(vocab, contexts):
    """An example with many small windows (64 tokens, stride 16)."""
    ex = squad.make_example("s", "Who is Emma Woodhouse?", contexts[0], [], [])
    feats = squad.convert_example_to_features(
        ex, vocab, max_seq_length=64, doc_stride=16, max_query_length=16, is_training=False
    )
    assert len(feats) > 10
    return ex, feats


def _word_bounds(f: dict) -> tuple[list[int], list[int]]:
    """Context positions of f that start / end a whole doc word inside the window."""
    m = f["token_to_orig_map"]
    ctx = [p for p in range(len(m)) if m[p] >= 0]
    starts = [p for p in ctx[1:] if m[p - 1] != m[p]]
    ends = [p for p in ctx[:-1] if m[p + 1] != m[p]]
    return starts, ends


def _logits(feats, k, start_values, end_values):
    size = len(feats[0]["input_ids"])
    starts = [np.zeros(size, np.float32) for _ in feats]
    ends = [np.zeros(size, np.float32) for _ in feats]
    for p, v in start_values.items():
        starts[k][p] = v
    for p, v in end_values.items():
        ends[k][p] = v
    return starts, ends


def _text(ex, f, s, e):
    m = f["token_to_orig_map"]
    return " ".join(ex.doc_tokens[m[s] : m[e] + 1])


def test_nbest_max_answer_length_and_order(small):
    ex, feats = small
    k = 3
    f = feats[k]
    starts, ends = _word_bounds(f)
    s = next(p for p in starts if f["token_is_max_context"][p] and any(e - p >= 10 for e in ends))
    e_long = next(e for e in ends if e - s + 1 > 5)
    e_short = next(e for e in ends if s <= e and e - s + 1 <= 5)
    e_before = max(e for e in ends if e < s)
    start_logits, end_logits = _logits(
        feats, k, {s: 10.0}, {e_long: 10.0, e_short: 5.0, e_before: 12.0}
    )
    long_text, short_text = _text(ex, f, s, e_long), _text(ex, f, s, e_short)

    r = squad.postprocess(ex, feats, start_logits, end_logits, max_answer_length=30)
    assert (r["text"], r["score"]) == (long_text, pytest.approx(20.0))
    r = squad.postprocess(ex, feats, start_logits, end_logits, max_answer_length=5)
    assert (r["text"], r["score"]) == (short_text, pytest.approx(15.0))
    assert long_text not in [t for t, *_ in r["nbest"]]
    # e_before has the largest end logit but ends before the start: never chosen with s.
    assert all(t != _text(ex, f, s, e_before) for t, *_ in r["nbest"])
    assert r["score"] < 10.0 + 12.0

    # Top-1 start and top-1 end (e_before) make no valid span: run_squad's nonce.
    r = squad.postprocess(ex, feats, start_logits, end_logits, n_best_size=1)
    assert r["text"] == "empty" and r["nbest"] == [("empty", 0.0, 0.0, 1.0)]
    for n_best_size in (2, 5, 20):
        r = squad.postprocess(ex, feats, start_logits, end_logits, n_best_size=n_best_size)
        nbest = r["nbest"]
        assert 1 <= len(nbest) <= n_best_size
        assert len({t for t, *_ in nbest}) == len(nbest)
        scores = [st + en for _, st, en, _ in nbest]
        assert scores == sorted(scores, reverse=True)
        probs = [p for *_, p in nbest]
        assert math.isclose(sum(probs), 1.0) and probs == sorted(probs, reverse=True)
        assert nbest[0][0] == r["text"] == long_text


def test_nbest_excludes_non_max_context_and_non_context(small):
    ex, feats = small
    # A doc token (the start of a word) that is not max-context in window k but is in k2.
    k, s, e = next(
        (k, s, e)
        for k, g in enumerate(feats)
        for s in _word_bounds(g)[0]
        for e in _word_bounds(g)[1]
        if not g["token_is_max_context"][s] and s <= e < s + 3
    )
    f = feats[k]
    word = f["token_to_orig_map"][s]
    r = squad.postprocess(ex, feats, *_logits(feats, k, {s: 10.0}, {e: 10.0}))
    assert r["score"] < 20.0
    assert r["text"] != _text(ex, f, s, e)

    # The same span in the token's max-context window is chosen.
    k2, s2 = next(
        (k2, p) for k2, g in enumerate(feats) for p in range(len(g["input_ids"]))
        if g["token_is_max_context"][p] and g["token_to_orig_map"][p] == word
        and (p == 0 or g["token_to_orig_map"][p - 1] != word)
    )
    assert k2 != k
    e2 = s2 + (e - s)
    r = squad.postprocess(ex, feats, *_logits(feats, k2, {s2: 10.0}, {e2: 10.0}))
    assert (r["text"], r["score"]) == (_text(ex, f, s, e), pytest.approx(20.0))

    # Starts or ends on [CLS], the query, [SEP] or padding are never chosen.
    for g_index in (k2, len(feats) - 1):  # the last window has padding
        g = feats[g_index]
        sep1 = int(np.argmax(g["token_to_orig_map"] >= 0)) - 1
        sep2 = len(g["tokens"]) - 1
        assert g["tokens"][sep1] == g["tokens"][sep2] == "[SEP]"
        outside = {0: 50.0, 1: 40.0, 2: 40.0, sep1: 30.0, sep2: 30.0}
        outside.update({p: 30.0 for p in range(sep2 + 1, len(g["input_ids"]))})
        m = g["token_to_orig_map"]
        gs = next(p for p in range(len(m)) if g["token_is_max_context"][p])
        ge = next(p for p in range(gs, len(m)) if m[p] >= 0 and m[p + 1] != m[p])
        r = squad.postprocess(ex, feats, *_logits(feats, g_index, {**outside, gs: 1.0},
                                                  {**outside, ge: 1.0}))
        assert (r["text"], r["score"]) == (_text(ex, g, gs, ge), pytest.approx(2.0))


def test_version_2_null_score(small):
    ex, feats = small
    k = 2
    f = feats[k]
    starts, ends = _word_bounds(f)
    s = next(p for p in starts if f["token_is_max_context"][p])
    e = next(p for p in ends if p >= s)
    answer = _text(ex, f, s, e)
    start_logits, end_logits = _logits(feats, k, {s: 10.0}, {e: 10.0})

    # Null score = min over windows of start[0] + end[0]: here 1 + 1 in window 4.
    for j, (st, en) in enumerate(zip(start_logits, end_logits, strict=True)):
        st[0], en[0] = 5.0 + j, 5.0
    start_logits[4][0], end_logits[4][0] = 1.0, 1.0
    r = squad.postprocess(ex, feats, start_logits, end_logits, version_2=True)
    assert r["text"] == answer and r["score"] == pytest.approx(20.0)
    assert r["null_score_diff"] == pytest.approx(2.0 - 20.0)
    assert ("", 1.0, 1.0) in [(t, st, en) for t, st, en, _ in r["nbest"]]
    assert squad.final_prediction(r, 0.0, version_2=True) == answer
    assert squad.final_prediction(r, -18.5, version_2=True) == ""
    assert squad.final_prediction(r, -17.5, version_2=True) == answer

    # A strong null answer in every window: diff > 0, "" predicted with threshold 0.
    for st, en in zip(start_logits, end_logits, strict=True):
        st[0], en[0] = 20.0, 10.0
    start_logits[7][0] = 25.0  # not the minimum: ignored
    r = squad.postprocess(ex, feats, start_logits, end_logits, version_2=True)
    assert r["text"] == answer
    assert r["null_score_diff"] == pytest.approx(30.0 - 20.0)
    assert r["nbest"][0][:3] == ("", 20.0, 10.0)
    assert squad.final_prediction(r, 0.0, version_2=True) == ""
    assert squad.final_prediction(r, 9.5, version_2=True) == ""
    assert squad.final_prediction(r, 10.5, version_2=True) == answer
    assert squad.final_prediction(r, 0.0, version_2=False) == answer
    # SQuAD 1.1: no null candidate in the n-best.
    r1 = squad.postprocess(ex, feats, start_logits, end_logits, version_2=False)
    assert r1["text"] == answer and "" not in [t for t, *_ in r1["nbest"]]
