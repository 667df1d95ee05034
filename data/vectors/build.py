"""Builds `ppmi_svd_50d.txt.gz`: 50-d count-based word vectors (a GloVe stand-in).

Run from the repository root (deterministic; about a minute on one CPU core):

    python data/vectors/build.py

What it does (Levy, Goldberg & Dagan 2015, "Improving distributional similarity with
lessons learned from word embeddings", the PPMI + SVD recipe):

1. Corpus: `data/corpus/gcide/gcide.txt` (all of it) and the *train* chapters of
   `data/corpus/austen.txt` (`tasks.pretraining.corpus_split_documents(..., "train", 0.05)`).
   Austen's validation chapters are the held-out text of the NER evaluation set and are
   never read.
2. Tokens: `tasks.bilm.tokenize` on each line (one sentence), then lower-cased.
3. Vocabulary: words with count >= MIN_COUNT, at most MAX_VOCAB, by descending count (ties in
   code-point order).
4. Co-occurrences: symmetric window of WINDOW tokens each side, within a sentence,
   weighted 1/distance as in GloVe. Out-of-vocabulary tokens keep their positions (they
   are not removed before windowing) and are simply not counted.
5. PPMI with context-distribution smoothing: PMI(w, c) = log(P(w, c) / (P(w) P_a(c))),
   P_a(c) = #(c)^ALPHA / sum_c' #(c')^ALPHA, negative values (and non-co-occurring pairs)
   set to 0.
6. Truncated SVD (`scipy.sparse.linalg.svds`, ARPACK, fixed start vector) of rank DIM;
   vectors W = U * S^P (eigenvalue weighting P = 0.5). Each singular vector's sign is fixed
   (largest-magnitude component of U positive), then rows are L2-normalised (cosine
   similarity = dot product; Levy et al. normalise too).
7. Output: GloVe text format (no header, `word v1 ... v50`), words by descending count,
   values to 5 decimals, gzip with mtime 0 (the file is byte-reproducible for the same
   numpy/scipy/BLAS).
"""

from __future__ import annotations

import collections
import gzip
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tasks.bilm import tokenize  # noqa: E402
from tasks.pretraining import corpus_split_documents  # noqa: E402

GCIDE = os.path.join(ROOT, "data/corpus/gcide/gcide.txt")
AUSTEN = os.path.join(ROOT, "data/corpus/austen.txt")
VALIDATION_FRACTION = 0.05
OUT = os.path.join(ROOT, "data/vectors/ppmi_svd_50d.txt.gz")

MIN_COUNT = 5
MAX_VOCAB = 20_000
WINDOW = 5
ALPHA = 0.75
DIM = 50
P = 0.5
SEED = 0


def sentences() -> list[list[str]]:
    """Lower-cased tokenised sentences: GCIDE, then Austen's train chapters."""
    with open(GCIDE, encoding="utf-8") as f:
        lines = f.read().split("\n")
    docs = corpus_split_documents(AUSTEN, "train", VALIDATION_FRACTION)
    lines += [line for doc in docs for line in doc.split("\n")]
    out = [[t.lower() for t in tokenize(line)] for line in lines]
    return [s for s in out if s]


def vocabulary(sents: list[list[str]]) -> tuple[list[str], np.ndarray]:
    counts = collections.Counter(t for s in sents for t in s)
    kept = sorted((w for w, c in counts.items() if c >= MIN_COUNT),
                  key=lambda w: (-counts[w], w))[:MAX_VOCAB]
    return kept, np.array([counts[w] for w in kept], dtype=np.int64)


def cooccurrences(sents: list[list[str]], words: list[str]) -> sp.csr_matrix:
    """Symmetric 1/distance-weighted counts within WINDOW tokens of the same sentence."""
    index = {w: i for i, w in enumerate(words)}
    ids = np.array([index.get(t, -1) for s in sents for t in s], dtype=np.int64)
    sent = np.repeat(np.arange(len(sents)), [len(s) for s in sents])
    rows, cols, vals = [], [], []
    for d in range(1, WINDOW + 1):
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


def ppmi(m: sp.csr_matrix) -> sp.csr_matrix:
    total = m.sum()
    row = np.asarray(m.sum(axis=1)).ravel()
    col_a = np.asarray(m.sum(axis=0)).ravel() ** ALPHA
    p_w = row / total
    p_c = col_a / col_a.sum()
    coo = m.tocoo()
    pmi = np.log(coo.data / total) - np.log(p_w[coo.row]) - np.log(p_c[coo.col])
    keep = pmi > 0
    out = sp.coo_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=m.shape).tocsr()
    out.sort_indices()
    return out


def factorise(m: sp.csr_matrix) -> np.ndarray:
    v0 = np.random.default_rng(SEED).standard_normal(min(m.shape))
    u, s, _ = svds(m, k=DIM, v0=v0, solver="arpack", random_state=SEED)
    order = np.argsort(-s)
    u, s = u[:, order], s[order]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(DIM)])
    w = u * signs * s ** P
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    return w / np.where(norms > 0, norms, 1.0)


def write(words: list[str], vecs: np.ndarray) -> None:
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                   filename="") as f:
        for w, v in zip(words, vecs, strict=True):
            vals = " ".join(f"{x:.5f}".replace("-0.00000", "0.00000") for x in v)
            f.write(f"{w} {vals}\n".encode())


def main() -> None:
    t0 = time.time()
    sents = sentences()
    n_tokens = sum(len(s) for s in sents)
    print(f"{len(sents):,} sentences, {n_tokens:,} tokens ({time.time() - t0:.1f}s)")
    words, counts = vocabulary(sents)
    print(f"vocabulary: {len(words):,} words (count >= {counts[-1]}), covering "
          f"{counts.sum() / n_tokens:.2%} of the tokens")
    m = cooccurrences(sents, words)
    print(f"co-occurrence matrix: {m.nnz:,} non-zeros ({time.time() - t0:.1f}s)")
    p = ppmi(m)
    print(f"PPMI matrix: {p.nnz:,} positive entries ({time.time() - t0:.1f}s)")
    vecs = factorise(p)
    print(f"SVD done ({time.time() - t0:.1f}s)")
    write(words, vecs)
    print(f"wrote {OUT}: {os.path.getsize(OUT):,} bytes ({time.time() - t0:.1f}s total)")


if __name__ == "__main__":
    main()
