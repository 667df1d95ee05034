"""Intrinsic evaluation of a word-vector table: word similarity and word analogies.

    from tasks import benchmark_data as bd, word_vector_eval as wve
    glove = bd.glove_6b_50d()
    wve.word_pair_correlation(glove, bd.wordsim353())       # Spearman x 100, coverage
    wve.analogy_accuracy(glove, bd.analogies(), restrict_vocab=30_000)

The protocols are the usual ones (word2vec's ``compute-accuracy``, gensim's
``evaluate_word_pairs`` / ``evaluate_word_analogies``), so figures are comparable:

* Only the first ``restrict_vocab`` words of the table are searched and looked up (tables
  are sorted by frequency); matching is case-insensitive, and of several case variants
  of a word the first (most frequent) one is used.
* Similarity: the cosine of the two words' vectors against the human score, Spearman's
  rho and Pearson's r over the pairs whose words are both known. Pairs with an unknown
  word are skipped and counted (``oov_pairs``), never scored as 0.
* Analogies (3CosAdd, Mikolov et al. 2013): for "a is to b as c is to ?" the answer is the
  word whose unit vector has the largest cosine with ``b - a + c`` (unit vectors), the
  three question words excluded. Questions with an unknown word are skipped and counted.
  Sections whose name starts with ``gram`` are syntactic, the others semantic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.stats

from tasks.word_vectors import PretrainedVectors


def _vocabulary(vectors: PretrainedVectors, restrict_vocab: int | None
                ) -> tuple[dict[str, int], np.ndarray]:
    """Lower-cased word -> row (first occurrence wins) and the unit-length rows, of the
    first ``restrict_vocab`` words."""
    n = len(vectors) if restrict_vocab is None else min(restrict_vocab, len(vectors))
    index: dict[str, int] = {}
    for i, word in enumerate(vectors.words[:n]):
        index.setdefault(word.lower(), i)
    rows = np.asarray(vectors.vectors[:n], np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return index, rows / np.maximum(norms, np.finfo(np.float32).tiny)


def word_pair_correlation(vectors: PretrainedVectors,
                          pairs: Sequence[tuple[str, str, float]], *,
                          restrict_vocab: int | None = None) -> dict[str, float]:
    """Spearman and Pearson correlation (x 100) of cosine similarity with the human
    scores, over the pairs whose two words are among the first ``restrict_vocab``
    words; ``pairs`` / ``oov_pairs`` count the pairs scored and skipped."""
    index, unit = _vocabulary(vectors, restrict_vocab)
    model, gold, oov = [], [], 0
    for a, b, score in pairs:
        i, j = index.get(a.lower()), index.get(b.lower())
        if i is None or j is None:
            oov += 1
            continue
        model.append(float(unit[i] @ unit[j]))
        gold.append(float(score))
    if len(model) < 2:
        raise ValueError(f"Only {len(model)} of {len(pairs)} pairs have both words in the "
                         "vectors' vocabulary: no correlation can be computed.")
    return {"spearman": 100 * float(scipy.stats.spearmanr(gold, model).statistic),
            "pearson": 100 * float(scipy.stats.pearsonr(gold, model).statistic),
            "pairs": len(model), "oov_pairs": oov}


def analogy_accuracy(vectors: PretrainedVectors,
                     questions: Sequence[tuple[str, str, str, str, str]], *,
                     restrict_vocab: int | None = 30_000, batch_size: int = 1024
                     ) -> dict[str, Any]:
    """3CosAdd accuracy (x 100) on ``(section, a, b, c, d)`` questions: ``semantic``,
    ``syntactic``, ``total`` and per ``sections``, with the questions scored
    (``questions``) and skipped for an unknown word (``oov_questions``)."""
    index, unit = _vocabulary(vectors, restrict_vocab)
    known, oov = [], 0
    for section, *words in questions:
        ids = [index.get(w.lower()) for w in words]
        if None in ids:
            oov += 1
        else:
            known.append((section, *ids))
    correct: dict[str, list[int]] = {}
    for start in range(0, len(known), batch_size):
        chunk = known[start:start + batch_size]
        a, b, c, d = (np.array([q[k] for q in chunk]) for k in range(1, 5))
        query = unit[b] - unit[a] + unit[c]
        scores = query @ unit.T  # the ranking of cos(query, w); the query's norm is common
        rows = np.arange(len(chunk))
        for excluded in (a, b, c):
            scores[rows, excluded] = -np.inf
        hits = scores.argmax(axis=1) == d
        for (section, *_), hit in zip(chunk, hits, strict=True):
            correct.setdefault(section, []).append(int(hit))

    def accuracy(groups: Sequence[str]) -> float:
        hits = [h for s in groups for h in correct.get(s, [])]
        return 100 * float(np.mean(hits)) if hits else 0.0

    sections = list(dict.fromkeys(q[0] for q in questions))
    semantic = [s for s in sections if not s.startswith("gram")]
    syntactic = [s for s in sections if s.startswith("gram")]
    return {"semantic": accuracy(semantic), "syntactic": accuracy(syntactic),
            "total": accuracy(sections), "questions": len(known), "oov_questions": oov,
            "sections": {s: {"accuracy": accuracy([s]), "questions": len(correct.get(s, []))}
                         for s in sections}}
