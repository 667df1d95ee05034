"""Evaluation metrics for BERT fine-tuning benchmarks, as the benchmarks define them.

Each metric function follows seqio's `metric_fn(targets, predictions) -> dict` convention
and reports percentages in 0..100, the way the GLUE and SQuAD leaderboards print them
(Matthews correlation and Pearson/Spearman correlations are multiplied by 100 too):

* GLUE: `accuracy` (SST-2, MNLI, QNLI, RTE, WNLI), `matthews_corr` (CoLA),
  `f1_and_accuracy` (MRPC, QQP), `pearson_spearman` (STS-B); test-set predictions go
  to the GLUE server through `write_glue_submission` and `GLUE_SUBMISSION_FILES`.
* CoNLL-2003 NER: `ner_f1`, entity-level precision/recall/F1 counted as the `conlleval`
  script counts them (seqeval's default mode).
* SQuAD: `squad_v1` and `squad_v2` reproduce the official evaluate-v1.1.py and
  evaluate-v2.0.py scripts (`normalize_answer`, `squad_exact`, `squad_f1`);
  `best_null_threshold` is evaluate-v2.0.py's `find_best_thresh`, used to pick the
  null-answer threshold on the dev set.

Per-example helpers (`squad_exact`, `squad_f1`) return fractions in 0..1, as the
official scripts do; only the aggregated metrics are percentages.
"""

from __future__ import annotations

import collections
import math
import os
import pathlib
import re
import string
from collections.abc import Sequence

import numpy as np
import scipy.stats
import seqeval.metrics
import sklearn.metrics
from seqeval.metrics import sequence_labeling

__all__ = [
    "GLUE_SUBMISSION_FILES",
    "accuracy",
    "best_null_threshold",
    "f1_and_accuracy",
    "matthews_corr",
    "ner_f1",
    "normalize_answer",
    "pearson_spearman",
    "squad_exact",
    "squad_f1",
    "squad_v1",
    "squad_v2",
    "write_glue_submission",
]


def _check_pair(targets: Sequence, predictions: Sequence, what: str = "targets") -> int:
    """Raises ValueError unless `targets` and `predictions` are non-empty and equally long."""
    n_t, n_p = len(targets), len(predictions)
    if n_t != n_p:
        raise ValueError(
            f"{what} and predictions must have the same length; got {n_t} {what} "
            f"and {n_p} predictions."
        )
    if n_t == 0:
        raise ValueError(f"{what} and predictions are empty; there is nothing to score.")
    return n_t


# --------------------------------------------------------------------------------------
# GLUE classification and regression.
# --------------------------------------------------------------------------------------


def accuracy(targets: Sequence, predictions: Sequence) -> dict[str, float]:
    """Percentage of predictions equal to their targets (SST-2, MNLI, QNLI, RTE, WNLI)."""
    _check_pair(targets, predictions)
    return {"accuracy": 100.0 * float(sklearn.metrics.accuracy_score(targets, predictions))}


def matthews_corr(targets: Sequence, predictions: Sequence) -> dict[str, float]:
    """Matthews correlation coefficient x 100 (CoLA); a constant predictor scores 0."""
    _check_pair(targets, predictions)
    mcc = sklearn.metrics.matthews_corrcoef(targets, predictions)
    return {"matthews_corr": 100.0 * float(mcc)}


def f1_and_accuracy(targets: Sequence, predictions: Sequence) -> dict[str, float]:
    """Binary F1 of class 1, accuracy and their mean (MRPC, QQP); labels are 0/1.

    F1 is 0 when there is neither a predicted nor a true positive.
    """
    _check_pair(targets, predictions)
    f1 = 100.0 * float(
        sklearn.metrics.f1_score(targets, predictions, pos_label=1, average="binary",
                                 zero_division=0)
    )
    acc = 100.0 * float(sklearn.metrics.accuracy_score(targets, predictions))
    return {"f1": f1, "accuracy": acc, "f1_accuracy_mean": (f1 + acc) / 2.0}


def pearson_spearman(targets: Sequence, predictions: Sequence) -> dict[str, float]:
    """Pearson and Spearman correlations x 100 and their mean (STS-B).

    A correlation is undefined (NaN, with scipy's warning) when either side is constant.
    """
    n = _check_pair(targets, predictions)
    if n < 2:
        raise ValueError("pearson_spearman needs at least 2 examples to correlate.")
    t = np.asarray(targets, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    pearson = 100.0 * float(scipy.stats.pearsonr(t, p)[0])
    spearman = 100.0 * float(scipy.stats.spearmanr(t, p)[0])
    return {
        "pearson": pearson,
        "spearman": spearman,
        "pearson_spearman_mean": (pearson + spearman) / 2.0,
    }


# --------------------------------------------------------------------------------------
# Named-entity recognition (CoNLL-2003).
# --------------------------------------------------------------------------------------


def ner_f1(
    targets: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Entity-level precision, recall and F1 as `conlleval` counts them, plus token accuracy.

    `targets` and `predictions` are lists of tag sequences ("B-PER", "I-ORG", "O", ...),
    one per sentence. Entities are chunked in seqeval's default (conlleval) mode, not
    strict mode: an "I-X" that follows "O" or another type starts a new entity, as in
    conlleval. An entity counts as correct only when its type and span both match.
    Returns "precision", "recall", "f1", "accuracy" (token-level) and "f1_<TYPE>" for each
    entity type seen in either targets or predictions. Undefined ratios are 0.
    """
    _check_pair(targets, predictions)
    y_true: list[list[str]] = []
    y_pred: list[list[str]] = []
    for i, (t, p) in enumerate(zip(targets, predictions, strict=True)):
        if isinstance(t, str) or isinstance(p, str):
            raise ValueError(
                f"Example {i}: ner_f1 expects a sequence of tags per example "
                f"(e.g. ['B-PER', 'I-PER', 'O']), got a string."
            )
        if len(t) != len(p):
            raise ValueError(
                f"Example {i}: the target has {len(t)} tags but the prediction has {len(p)}."
            )
        y_true.append([str(tag) for tag in t])
        y_pred.append([str(tag) for tag in p])

    precision, recall, f1, _ = sequence_labeling.precision_recall_fscore_support(
        y_true, y_pred, average="micro", zero_division=0
    )
    result = {
        "precision": 100.0 * float(precision),
        "recall": 100.0 * float(recall),
        "f1": 100.0 * float(f1),
        "accuracy": 100.0 * float(seqeval.metrics.accuracy_score(y_true, y_pred)),
    }
    # seqeval orders the per-type rows by the sorted union of gold and predicted types.
    types = sorted(
        {name for name, _, _ in sequence_labeling.get_entities(y_true)}
        | {name for name, _, _ in sequence_labeling.get_entities(y_pred)}
    )
    _, _, f1_per_type, _ = sequence_labeling.precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    for name, value in zip(types, f1_per_type, strict=True):
        result[f"f1_{name}"] = 100.0 * float(value)
    return result


# --------------------------------------------------------------------------------------
# SQuAD v1.1 / v2.0, following the official evaluation scripts.
# --------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official SQuAD)."""
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def squad_exact(prediction: str, gold: str) -> float:
    """1.0 if the normalized prediction equals the normalized gold answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str, *, version: int = 2) -> float:
    """Token-level F1 (0..1) of the normalized answers.

    ``version=2`` (evaluate-v2.0.py): if either normalized answer has no tokens (a
    no-answer), F1 is 1.0 when both are empty and 0.0 otherwise. ``version=1``
    (evaluate-v1.1.py): no tokens in common is F1 0.0, even when both are empty (a gold
    answer such as "the" or "." normalizes to nothing and can never score F1).
    """
    pred_toks = _tokens(prediction)
    gold_toks = _tokens(gold)
    if version == 2 and (not pred_toks or not gold_toks):
        return float(pred_toks == gold_toks)
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2.0 * precision * recall / (precision + recall)


def squad_v1(targets: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, float]:
    """SQuAD v1.1 exact match and F1, as evaluate-v1.1.py scores them: each prediction
    against its best gold. Unlike v2.0, a gold that normalizes to nothing ("the", ".")
    matches an empty prediction exactly (EM 1) but scores F1 0.

    `targets[i]` is the list of gold answer strings of question i (at least one).
    """
    n = _check_pair(targets, predictions)
    exact = f1 = 0.0
    for i, (golds, pred) in enumerate(zip(targets, predictions, strict=True)):
        if isinstance(golds, str):
            raise ValueError(f"Example {i}: targets must be lists of gold answers, got a string.")
        if not golds:
            raise ValueError(
                f"Example {i} has no gold answer; SQuAD v1.1 questions all have one "
                "(use squad_v2 for unanswerable questions)."
            )
        exact += max(squad_exact(pred, g) for g in golds)
        f1 += max(squad_f1(pred, g, version=1) for g in golds)
    return {"exact_match": 100.0 * exact / n, "f1": 100.0 * f1 / n}


def _squad_v2_raw_scores(
    targets: Sequence[Sequence[str]], predictions: Sequence[str]
) -> tuple[list[float], list[float], list[bool]]:
    """Per-question exact and F1 (0..1) and has-answer flags, as evaluate-v2.0.py computes.

    Gold answers that normalize to nothing are dropped; a question left without gold
    answers is scored against [""], so only an empty prediction is right.
    """
    _check_pair(targets, predictions)
    exact, f1, has_ans = [], [], []
    for i, (golds, pred) in enumerate(zip(targets, predictions, strict=True)):
        if isinstance(golds, str):
            raise ValueError(f"Example {i}: targets must be lists of gold answers, got a string.")
        has_ans.append(bool(golds))
        scored = [g for g in golds if normalize_answer(g)] or [""]
        exact.append(max(squad_exact(pred, g) for g in scored))
        f1.append(max(squad_f1(pred, g) for g in scored))
    return exact, f1, has_ans


def squad_v2(
    targets: Sequence[Sequence[str]],
    predictions: Sequence[str],
    no_answer_probs: Sequence[float] | None = None,
    no_answer_threshold: float = 1.0,
) -> dict[str, float]:
    """SQuAD v2.0 exact and F1, overall and split into answerable / unanswerable questions.

    `targets[i]` lists the gold answers of question i; [] marks an unanswerable question,
    which only the empty prediction "" answers correctly. If `no_answer_probs` is given,
    a question whose no-answer probability (or score) is > `no_answer_threshold` is
    treated as answered with "" (the official script's --na-prob-file and
    --na-prob-thresh). Returns "exact", "f1", "total" and the same with "HasAns_" and
    "NoAns_" prefixes; a split with no questions is left out.
    """
    exact, f1, has_ans = _squad_v2_raw_scores(targets, predictions)
    if no_answer_probs is not None:
        _check_pair(targets, no_answer_probs, what="targets")
        for i, prob in enumerate(no_answer_probs):
            if float(prob) > no_answer_threshold:
                exact[i] = f1[i] = float(not has_ans[i])

    def summary(indices: list[int], prefix: str) -> dict[str, float]:
        total = len(indices)
        return {
            f"{prefix}exact": 100.0 * sum(exact[i] for i in indices) / total,
            f"{prefix}f1": 100.0 * sum(f1[i] for i in indices) / total,
            f"{prefix}total": float(total),
        }

    result = summary(list(range(len(exact))), "")
    has = [i for i, h in enumerate(has_ans) if h]
    no = [i for i, h in enumerate(has_ans) if not h]
    if has:
        result.update(summary(has, "HasAns_"))
    if no:
        result.update(summary(no, "NoAns_"))
    return result


def _find_best_thresh(
    predictions: Sequence[str],
    scores: Sequence[float],
    null_score_diffs: Sequence[float],
    has_ans: Sequence[bool],
) -> tuple[float, float]:
    """evaluate-v2.0.py's find_best_thresh: the best score (%) and the threshold giving it.

    Start from predicting "" everywhere (every unanswerable question right), then lower
    the bar question by question in increasing order of null score: answering an
    answerable question gains its score, answering an unanswerable one with a non-empty
    string loses 1. The threshold is the null score of the last question answered at the
    best point (0.0 if answering nothing is best).
    """
    cur_score = float(sum(1 for h in has_ans if not h))
    best_score = cur_score
    best_thresh = 0.0
    order = sorted(range(len(scores)), key=lambda i: null_score_diffs[i])
    for i in order:
        if has_ans[i]:
            diff = scores[i]
        elif predictions[i]:
            diff = -1.0
        else:
            diff = 0.0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = float(null_score_diffs[i])
    return 100.0 * best_score / len(scores), best_thresh


def best_null_threshold(
    targets: Sequence[Sequence[str]],
    predictions: Sequence[str],
    null_score_diffs: Sequence[float],
) -> dict[str, float]:
    """The null-answer threshold that maximizes SQuAD v2.0 exact and F1 (find_best_thresh).

    `predictions[i]` is the best non-null answer text of question i and
    `null_score_diffs[i]` is null_score - best_non_null_score (higher: more likely
    unanswerable). Predicting "" for the questions whose diff is > threshold gives the
    best score. Returns "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh".
    """
    exact, f1, has_ans = _squad_v2_raw_scores(targets, predictions)
    _check_pair(targets, null_score_diffs, what="targets")
    diffs = [float(d) for d in null_score_diffs]
    if any(math.isnan(d) for d in diffs):
        raise ValueError("null_score_diffs contains NaN.")
    best_exact, exact_thresh = _find_best_thresh(predictions, exact, diffs, has_ans)
    best_f1, f1_thresh = _find_best_thresh(predictions, f1, diffs, has_ans)
    return {
        "best_exact": best_exact,
        "best_exact_thresh": exact_thresh,
        "best_f1": best_f1,
        "best_f1_thresh": f1_thresh,
    }


# --------------------------------------------------------------------------------------
# GLUE test-server submissions.
# --------------------------------------------------------------------------------------

GLUE_SUBMISSION_FILES: dict[str, str] = {
    "cola": "CoLA.tsv",
    "sst2": "SST-2.tsv",
    "mrpc": "MRPC.tsv",
    "qqp": "QQP.tsv",
    "stsb": "STS-B.tsv",
    "mnli_matched": "MNLI-m.tsv",
    "mnli_mismatched": "MNLI-mm.tsv",
    "qnli": "QNLI.tsv",
    "rte": "RTE.tsv",
    "wnli": "WNLI.tsv",
    "ax": "AX.tsv",
}


def write_glue_submission(
    path: str | os.PathLike[str],
    task: str,
    indices: Sequence[int],
    predictions: Sequence,
    label_names: Sequence[str] | None = None,
) -> pathlib.Path:
    """Writes test-set predictions in the TSV format the GLUE server reads.

    The file has the header "index\\tprediction" and one row per example. For "stsb" the
    prediction is a float with 3 decimals; otherwise it is a class index, written as its
    label name when `label_names` is given (e.g. MNLI/AX ["entailment", "neutral",
    "contradiction"], RTE/QNLI ["entailment", "not_entailment"]) and as an integer when
    not. If `path` is a directory, or a path without a file suffix (then created), the file
    is written inside it under the name in `GLUE_SUBMISSION_FILES[task]`. Returns the path
    written.
    """
    if task not in GLUE_SUBMISSION_FILES:
        raise ValueError(
            f"Unknown GLUE task {task!r}; expected one of {sorted(GLUE_SUBMISSION_FILES)}."
        )
    _check_pair(indices, predictions, what="indices")
    if task == "stsb" and label_names is not None:
        raise ValueError("STS-B is a regression task; it takes no label_names.")

    def fmt(i: int, p) -> str:
        if task == "stsb":
            return f"{float(p):.3f}"
        if label_names is not None and isinstance(p, str):
            if p not in label_names:
                raise ValueError(f"Row {i}: prediction {p!r} is not one of {list(label_names)}.")
            return p
        k = int(p)
        if k != p:
            raise ValueError(f"Row {i}: {task} prediction {p!r} is not a class index.")
        if label_names is None:
            return str(k)
        if not 0 <= k < len(label_names):
            raise ValueError(
                f"Row {i}: class index {k} is out of range for label_names {list(label_names)}."
            )
        return label_names[k]

    out = pathlib.Path(path)
    if out.is_dir() or not out.suffix:  # a folder (e.g. eval_test/step_N), made if new
        out.mkdir(parents=True, exist_ok=True)
        out = out / GLUE_SUBMISSION_FILES[task]
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["index\tprediction"]
    lines += [
        f"{int(idx)}\t{fmt(row, p)}"
        for row, (idx, p) in enumerate(zip(indices, predictions, strict=True))
    ]
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    return out
