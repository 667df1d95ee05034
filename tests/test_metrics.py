"""Hand-worked cases for tasks/metrics.py (GLUE, CoNLL NER, SQuAD v1.1/v2.0 metrics)."""

import pytest
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.scheme import IOB2

from tasks import metrics

# --------------------------------------------------------------------------------------
# SQuAD.
# --------------------------------------------------------------------------------------


def test_normalize_answer_case_punctuation_articles_whitespace():
    # lower -> "the  cat!", punctuation -> "the  cat", articles -> "  cat", spaces -> "cat".
    assert metrics.normalize_answer("The  Cat!") == "cat"
    assert metrics.normalize_answer("  An apple, a DAY.  ") == "apple day"
    # Articles only as whole words: "theatre" and "another" keep their letters.
    assert metrics.normalize_answer("theatre another") == "theatre another"
    assert metrics.squad_exact("The  Cat!", "cat") == 1.0
    assert metrics.squad_v1([["cat"]], ["The  Cat!"]) == {"exact_match": 100.0, "f1": 100.0}
    assert metrics.squad_exact("cats", "cat") == 0.0


def test_squad_f1_partial_overlap():
    # prediction "fox jumps over"            -> tokens [fox, jumps, over]        (3)
    # gold "the quick brown fox jumps"       -> tokens [quick, brown, fox, jumps] (4)
    # common {fox, jumps} = 2; P = 2/3, R = 2/4 = 1/2;
    # F1 = 2PR / (P + R) = (2/3) / (7/6) = 4/7 = 0.571428...
    f1 = metrics.squad_f1("fox jumps over", "the quick brown fox jumps")
    assert f1 == pytest.approx(4 / 7)
    assert metrics.squad_exact("fox jumps over", "the quick brown fox jumps") == 0.0
    # Repeated tokens are counted with multiplicity: pred [cat, cat], gold [cat]:
    # common 1, P = 1/2, R = 1 -> F1 = 2/3.
    assert metrics.squad_f1("cat cat", "cat") == pytest.approx(2 / 3)
    assert metrics.squad_f1("dog", "cat") == 0.0


def test_squad_v1_max_over_golds():
    targets = [
        ["Denver Broncos", "the Broncos", "Broncos team"],  # "broncos" vs "broncos": exact
        ["fox jumps over the lazy dog", "quick brown fox"],
    ]
    predictions = ["Broncos!", "quick brown fox jumps"]
    # Q1: exact 1 with the 2nd gold; F1 1.
    # Q2: vs gold 1 [fox, jumps, over, lazy, dog]: common {fox, jumps} = 2, P = 2/4,
    #     R = 2/5, F1 = 2 * 0.5 * 0.4 / 0.9 = 4/9;
    #     vs gold 2 [quick, brown, fox]: common 3, P = 3/4, R = 1, F1 = 1.5 / 1.75 = 6/7.
    #     max = 6/7; exact 0.
    result = metrics.squad_v1(targets, predictions)
    assert result["exact_match"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(100 * (1 + 6 / 7) / 2)


def test_squad_v1_golds_that_normalize_to_nothing():
    # evaluate-v1.1.py: exact_match_score = (normalize(pred) == normalize(gold));
    # f1_score returns 0 when the two token lists share no token, *before* any
    # precision/recall -- so a gold that normalizes to "" ("the", ".") never scores F1,
    # while EM compares the two (possibly empty) strings.
    # gold "the" -> "", pred "a" -> "": EM 1, F1 0 (100 / 0 on one question).
    assert metrics.squad_v1([["the"]], ["a"]) == {"exact_match": 100.0, "f1": 0.0}
    # gold "." -> "", pred "Paris" -> "paris": EM 0, F1 0.
    assert metrics.squad_v1([["."]], ["Paris"]) == {"exact_match": 0.0, "f1": 0.0}
    # The best gold wins per metric: golds [".", "Paris"], pred "" ->
    #   vs "."    : EM 1 (both ""), F1 0;  vs "Paris": EM 0, F1 0  -> EM 1, F1 0.
    #   pred "paris" -> vs "Paris": EM 1, F1 1.
    # Two questions: EM (1 + 1) / 2 = 100, F1 (0 + 1) / 2 = 50.
    assert metrics.squad_v1([[".", "Paris"], [".", "Paris"]], ["", "paris"]) == {
        "exact_match": 100.0, "f1": 50.0}
    # One token "the" kept by a longer gold: pred "the cat" -> [cat], gold "The cat." ->
    # [cat]: EM 1, F1 1 -- the v1.1 rule only bites when nothing is shared.
    assert metrics.squad_v1([["The cat."]], ["the cat"]) == {"exact_match": 100.0,
                                                            "f1": 100.0}
    assert metrics.squad_f1("a", "the", version=1) == 0.0
    assert metrics.squad_f1("a", "the", version=2) == 1.0


def test_squad_v2_empty_gold():
    # An unanswerable question (golds []) is scored against [""]: only "" is right.
    assert metrics.squad_v2([[]], [""])["exact"] == 100.0
    assert metrics.squad_v2([[]], [""])["f1"] == 100.0
    assert metrics.squad_v2([[]], ["Paris"])["exact"] == 0.0
    assert metrics.squad_v2([[]], ["Paris"])["f1"] == 0.0
    # An empty prediction on an answerable question scores 0 on both.
    assert metrics.squad_v2([["Paris"]], [""])["f1"] == 0.0
    # v2.0 rule: if either normalized answer is empty, F1 = (both empty).
    assert metrics.squad_f1("the", "") == 1.0  # "the" normalizes to "".
    assert metrics.squad_f1("", "Paris") == 0.0
    # A gold that normalizes to nothing is dropped, as the official script does.
    assert metrics.squad_v2([["The", "Paris"]], ["paris"])["exact"] == 100.0


def test_squad_v2_has_ans_no_ans_split():
    targets = [["Paris"], [], ["red car"], []]
    predictions = ["Paris", "", "red bus", "blue"]
    # Q1 has-ans exact 1 f1 1; Q2 no-ans right (1, 1); Q3 has-ans exact 0 f1 1/2;
    # Q4 no-ans wrong (0, 0).
    result = metrics.squad_v2(targets, predictions)
    assert result["total"] == 4
    assert result["HasAns_total"] == 2
    assert result["NoAns_total"] == 2
    assert result["exact"] == pytest.approx(100 * 2 / 4)
    assert result["f1"] == pytest.approx(100 * 2.5 / 4)
    assert result["HasAns_exact"] == pytest.approx(50.0)
    assert result["HasAns_f1"] == pytest.approx(75.0)
    assert result["NoAns_exact"] == pytest.approx(50.0)
    assert result["NoAns_f1"] == pytest.approx(50.0)

    only_answerable = metrics.squad_v2([["Paris"]], ["Paris"])
    assert "NoAns_total" not in only_answerable and "NoAns_exact" not in only_answerable
    assert only_answerable["HasAns_total"] == 1

    # With no-answer probabilities: Q4's 0.9 > threshold 0.5 -> answered "" -> right;
    # Q1's 0.1 stays answered. Totals: exact 3/4, f1 3.5/4.
    thresholded = metrics.squad_v2(
        targets, predictions, no_answer_probs=[0.1, 0.2, 0.3, 0.9], no_answer_threshold=0.5
    )
    assert thresholded["exact"] == pytest.approx(75.0)
    assert thresholded["f1"] == pytest.approx(87.5)


# The tiny example for the best null threshold:
#   question  golds           predicted text   null_score_diff   raw exact   raw f1
#   q1        ["Paris"]       "Paris"          -2.0              1           1
#   q2        []              "London"         -1.5              0           0
#   q3        ["red car"]     "red bus"        -1.0              0           1/2
#   q4        []              "blue"            3.0              0           0
#   q5        ["blue whale"]  "blue whale"     -0.5              1           1
BEST_TARGETS = [["Paris"], [], ["red car"], [], ["blue whale"]]
BEST_PREDICTIONS = ["Paris", "London", "red bus", "blue", "blue whale"]
BEST_DIFFS = [-2.0, -1.5, -1.0, 3.0, -0.5]


def test_best_null_threshold_hand_worked():
    # Start: predict "" everywhere -> the 2 unanswerable questions are right: score 2.
    # Walk in increasing diff order, answering one more question each step:
    #   q1 (-2.0): has-ans, +exact 1 / +f1 1    -> exact 3, f1 3    (both best, thresh -2.0)
    #   q2 (-1.5): no-ans with text, -1         -> exact 2, f1 2
    #   q3 (-1.0): has-ans, +exact 0 / +f1 0.5  -> exact 2, f1 2.5
    #   q5 (-0.5): has-ans, +exact 1 / +f1 1    -> exact 3, f1 3.5  (f1 best, thresh -0.5;
    #                                              exact 3 is not strictly better than 3)
    #   q4 ( 3.0): no-ans with text, -1         -> exact 2, f1 2.5
    # best_exact = 3/5 = 60 at -2.0; best_f1 = 3.5/5 = 70 at -0.5.
    result = metrics.best_null_threshold(BEST_TARGETS, BEST_PREDICTIONS, BEST_DIFFS)
    assert result == pytest.approx(
        {"best_exact": 60.0, "best_exact_thresh": -2.0, "best_f1": 70.0, "best_f1_thresh": -0.5}
    )
    # Predicting "" where diff > threshold reproduces the best scores.
    at_f1 = metrics.squad_v2(BEST_TARGETS, BEST_PREDICTIONS, BEST_DIFFS, -0.5)
    assert at_f1["f1"] == pytest.approx(70.0)
    at_exact = metrics.squad_v2(BEST_TARGETS, BEST_PREDICTIONS, BEST_DIFFS, -2.0)
    assert at_exact["exact"] == pytest.approx(60.0)


def test_best_null_threshold_answering_nothing_is_best():
    # All answers wrong: answering nothing (score = 1 no-ans question / 2) is best and
    # the threshold stays at the official script's initial 0.0.
    result = metrics.best_null_threshold([["Paris"], []], ["Rome", "Oslo"], [-1.0, -3.0])
    assert result == {
        "best_exact": 50.0, "best_exact_thresh": 0.0, "best_f1": 50.0, "best_f1_thresh": 0.0
    }


# --------------------------------------------------------------------------------------
# NER.
# --------------------------------------------------------------------------------------


def test_ner_conlleval_i_after_o_starts_entity():
    gold = [["O", "B-PER", "I-PER", "O"]]
    pred = [["O", "I-PER", "I-PER", "O"]]
    # conlleval: the I-PER after O opens a PER entity over tokens 1-2, which matches the
    # gold span exactly -> P = R = F1 = 100. Strict IOB2 discards the ill-formed chunk
    # (F1 0), so this case tells the two modes apart.
    assert seqeval_f1(gold, pred, mode="strict", scheme=IOB2) == 0.0
    result = metrics.ner_f1(gold, pred)
    assert result["f1"] == 100.0
    assert result["precision"] == 100.0
    assert result["recall"] == 100.0
    assert result["f1_PER"] == 100.0
    # Token accuracy: 3 of 4 tags agree.
    assert result["accuracy"] == 75.0


def test_ner_counts_and_per_type():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    # Gold entities: PER(0-1), LOC(3), ORG(s2:0)  = 3
    # Pred entities: PER(0-1), ORG(3), ORG(s2:0)  = 3, of which 2 correct.
    # P = R = F1 = 2/3. PER 1/1 -> 100; LOC 0/1 -> 0; ORG: P 1/2, R 1/1 -> F1 2/3.
    result = metrics.ner_f1(gold, pred)
    assert result["precision"] == pytest.approx(200 / 3)
    assert result["recall"] == pytest.approx(200 / 3)
    assert result["f1"] == pytest.approx(200 / 3)
    assert result["f1_PER"] == pytest.approx(100.0)
    assert result["f1_LOC"] == pytest.approx(0.0)
    assert result["f1_ORG"] == pytest.approx(200 / 3)
    assert result["accuracy"] == pytest.approx(100 * 5 / 6)


def test_ner_length_mismatch_names_example():
    with pytest.raises(ValueError, match="Example 1"):
        metrics.ner_f1([["O"], ["O", "B-PER"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="same length"):
        metrics.ner_f1([["O"], ["O"]], [["O"]])


# --------------------------------------------------------------------------------------
# GLUE.
# --------------------------------------------------------------------------------------


def test_matthews_corr_constant_and_perfect():
    targets = [0, 1, 1, 0, 1]
    assert metrics.matthews_corr(targets, [1, 1, 1, 1, 1]) == {"matthews_corr": 0.0}
    assert metrics.matthews_corr(targets, targets)["matthews_corr"] == pytest.approx(100.0)
    assert metrics.matthews_corr(targets, [1 - t for t in targets])["matthews_corr"] == (
        pytest.approx(-100.0)
    )


def test_pearson_spearman_monotone_nonlinear():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [v**3 for v in x]
    result = metrics.pearson_spearman(x, y)
    assert result["spearman"] == pytest.approx(100.0)
    assert 90.0 < result["pearson"] < 99.9
    assert result["pearson_spearman_mean"] == pytest.approx(
        (result["pearson"] + result["spearman"]) / 2
    )


def test_f1_and_accuracy_hand_counted():
    targets = [1, 1, 1, 1, 0, 0, 0, 0]
    predictions = [1, 1, 0, 0, 1, 0, 0, 0]
    # TP 2, FN 2, FP 1, TN 3. Accuracy 5/8 = 62.5.
    # P = 2/3, R = 2/4; F1 = 2TP / (2TP + FP + FN) = 4/7 = 57.142857...
    result = metrics.f1_and_accuracy(targets, predictions)
    assert result["accuracy"] == pytest.approx(62.5)
    assert result["f1"] == pytest.approx(400 / 7)
    assert result["f1_accuracy_mean"] == pytest.approx((400 / 7 + 62.5) / 2)
    assert metrics.accuracy(targets, predictions) == {"accuracy": 62.5}


def test_glue_submission_mnli_label_names(tmp_path):
    out = metrics.write_glue_submission(
        tmp_path, "mnli_matched", [0, 1, 2], [0, 2, 1],
        label_names=["entailment", "neutral", "contradiction"],
    )
    assert out == tmp_path / "MNLI-m.tsv"
    assert out.read_text() == (
        "index\tprediction\n0\tentailment\n1\tcontradiction\n2\tneutral\n"
    )


def test_glue_submission_stsb_floats(tmp_path):
    path = tmp_path / "STS-B.tsv"
    metrics.write_glue_submission(path, "stsb", [0, 1, 2], [3.14159, 0.5, 5])
    assert path.read_text() == "index\tprediction\n0\t3.142\n1\t0.500\n2\t5.000\n"


def test_glue_submission_integer_labels_and_file_names(tmp_path):
    out = metrics.write_glue_submission(tmp_path, "cola", [10, 11], [1, 0])
    assert out.name == "CoLA.tsv"
    assert out.read_text() == "index\tprediction\n10\t1\n11\t0\n"
    assert metrics.GLUE_SUBMISSION_FILES["sst2"] == "SST-2.tsv"
    assert metrics.GLUE_SUBMISSION_FILES["mnli_mismatched"] == "MNLI-mm.tsv"
    assert metrics.GLUE_SUBMISSION_FILES["stsb"] == "STS-B.tsv"
    assert len(metrics.GLUE_SUBMISSION_FILES) == 11
    with pytest.raises(ValueError, match="Unknown GLUE task"):
        metrics.write_glue_submission(tmp_path, "mnli", [0], [0])


# --------------------------------------------------------------------------------------
# Input checks.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, targets, predictions",
    [
        (metrics.accuracy, [0, 1], [0]),
        (metrics.matthews_corr, [0, 1, 1], [0, 1]),
        (metrics.f1_and_accuracy, [0], [0, 1]),
        (metrics.pearson_spearman, [0.1, 0.2, 0.3], [0.1, 0.2]),
        (metrics.ner_f1, [["O"]], [["O"], ["O"]]),
        (metrics.squad_v1, [["a"], ["b"]], ["a"]),
        (metrics.squad_v2, [["a"], []], ["a"]),
    ],
)
def test_mismatched_lengths_raise(fn, targets, predictions):
    with pytest.raises(ValueError, match="same length"):
        fn(targets, predictions)


@pytest.mark.parametrize(
    "fn", [metrics.accuracy, metrics.matthews_corr, metrics.f1_and_accuracy,
           metrics.pearson_spearman, metrics.ner_f1, metrics.squad_v1, metrics.squad_v2],
)
def test_empty_inputs_raise(fn):
    with pytest.raises(ValueError, match="empty"):
        fn([], [])


def test_other_length_mismatches_raise(tmp_path):
    with pytest.raises(ValueError, match="same length"):
        metrics.best_null_threshold(BEST_TARGETS, BEST_PREDICTIONS, BEST_DIFFS[:3])
    with pytest.raises(ValueError, match="same length"):
        metrics.squad_v2(BEST_TARGETS, BEST_PREDICTIONS, no_answer_probs=[0.0])
    with pytest.raises(ValueError, match="same length"):
        metrics.write_glue_submission(tmp_path, "rte", [0, 1], [0])
