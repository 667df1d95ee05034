"""Count-based word vectors: PPMI + truncated SVD (Levy, Goldberg & Dagan 2015, "Improving
distributional similarity with lessons learned from word embeddings").

    vectors = ppmi_svd.train_vectors(sentences)        # tasks.word_vectors.PretrainedVectors
    ppmi_svd.write_glove_text(vectors.words, vectors.vectors, "vectors.txt.gz")

Steps (the defaults are ``data/vectors/build.py``'s, which makes the shipped
``ppmi_svd_50d.txt.gz``):

1. Vocabulary: words with count >= ``min_count``, at most ``max_vocab``, by descending
   count (ties in code-point order).
2. Co-occurrences: a symmetric window of ``window`` tokens each side, within a sentence,
   weighted 1/distance as in GloVe. Out-of-vocabulary tokens keep their positions and
   are not counted.
3. PPMI with context-distribution smoothing: PMI(w, c) = log(P(w, c) / (P(w) P_a(c))),
   P_a(c) = #(c)^alpha / sum_c' #(c')^alpha; negative values and non-co-occurring pairs
   are 0.
4. Truncated SVD (ARPACK, fixed start vector) of rank ``dim``; W = U * S^p. Each singular
   vector's sign is fixed (largest-magnitude component positive); rows are L2-normalised.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import os
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from tasks.word_vectors import PretrainedVectors


@dataclasses.dataclass(frozen=True)
class PpmiSvdConfig:
    """The recipe's settings (the shipped vectors' defaults)."""

    min_count: int = 5
    max_vocab: int = 20_000
    window: int = 5
    alpha: float = 0.75
    dim: int = 50
    p: float = 0.5
    seed: int = 0


def train_vectors(sentences: Sequence[Sequence[str]],
                  config: PpmiSvdConfig = PpmiSvdConfig()) -> PretrainedVectors:
    """PPMI-SVD vectors of the words of ``sentences`` (token lists), most frequent first;
    ``stats`` counts tokens, vocabulary coverage and PPMI entries."""
    words, counts = vocabulary(sentences, config)
    m = cooccurrences(sentences, words, config.window)
    p = ppmi(m, config.alpha)
    n_tokens = sum(len(s) for s in sentences)
    stats = {"sentences": len(sentences), "tokens": n_tokens, "vocabulary": len(words),
             "tokens_covered": int(counts.sum()), "cooccurrence_nonzeros": int(m.nnz),
             "ppmi_entries": int(p.nnz)}
    return PretrainedVectors(words, factorise(p, config).astype(np.float32), stats)


def vocabulary(sentences: Sequence[Sequence[str]], config: PpmiSvdConfig
               ) -> tuple[list[str], np.ndarray]:
    counts = collections.Counter(t for s in sentences for t in s)
    kept = sorted((w for w, c in counts.items() if c >= config.min_count),
                  key=lambda w: (-counts[w], w))[:config.max_vocab]
    return kept, np.array([counts[w] for w in kept], dtype=np.int64)


def cooccurrences(sentences: Sequence[Sequence[str]], words: list[str], window: int
                  ) -> sp.csr_matrix:
    """Symmetric 1/distance-weighted counts within ``window`` tokens of the same sentence."""
    index = {w: i for i, w in enumerate(words)}
    ids = np.array([index.get(t, -1) for s in sentences for t in s], dtype=np.int64)
    sent = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        a, b = ids[:-d], ids[d:]
        ok = (sent[:-d] == sent[d:]) & (a >= 0) & (b >= 0)
        a, b = a[ok], b[ok]
        w = np.full(len(a), 1.0 / d)
        rows += [a, b]
        cols += [b, a]
        vals += [w, w]
    n = len(words)
    m = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n)).tocsr()
    m.sum_duplicates()
    return m


def ppmi(m: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    total = m.sum()
    row = np.asarray(m.sum(axis=1)).ravel()
    col_a = np.asarray(m.sum(axis=0)).ravel() ** alpha
    p_w = row / total
    p_c = col_a / col_a.sum()
    coo = m.tocoo()
    pmi = np.log(coo.data / total) - np.log(p_w[coo.row]) - np.log(p_c[coo.col])
    keep = pmi > 0
    out = sp.coo_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=m.shape).tocsr()
    out.sort_indices()
    return out


def factorise(m: sp.csr_matrix, config: PpmiSvdConfig) -> np.ndarray:
    v0 = np.random.default_rng(config.seed).standard_normal(min(m.shape))
    u, s, _ = svds(m, k=config.dim, v0=v0, solver="arpack", random_state=config.seed)
    order = np.argsort(-s)
    u, s = u[:, order], s[order]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(config.dim)])
    w = u * signs * s ** config.p
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    return w / np.where(norms > 0, norms, 1.0)


def write_glove_text(words: Sequence[str], vectors: np.ndarray, path: str) -> None:
    """GloVe text format (no header, ``word v1 ... vd``), values to 5 decimals; gzip with
    mtime 0 when ``path`` ends in ``.gz`` (byte-reproducible for the same numpy/scipy)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lines = (f"{w} " + " ".join(f"{x:.5f}".replace("-0.00000", "0.00000") for x in v) + "\n"
             for w, v in zip(words, vectors, strict=True))
    with open(path, "wb") as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
                for line in lines:
                    f.write(line.encode())
        else:
            for line in lines:
                raw.write(line.encode())
