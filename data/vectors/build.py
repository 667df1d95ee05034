"""Builds `ppmi_svd_50d.txt.gz`: 50-d count-based word vectors (a GloVe stand-in).

Run from the repository root (deterministic; about a minute on one CPU core):

    python data/vectors/build.py

What it does (Levy, Goldberg & Dagan 2015, "Improving distributional similarity with
lessons learned from word embeddings", the PPMI + SVD recipe of `tasks/ppmi_svd.py`):

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

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tasks import ppmi_svd  # noqa: E402
from tasks.bilm import tokenize  # noqa: E402
from tasks.pretraining import corpus_split_documents  # noqa: E402

GCIDE = os.path.join(ROOT, "data/corpus/gcide/gcide.txt")
AUSTEN = os.path.join(ROOT, "data/corpus/austen.txt")
VALIDATION_FRACTION = 0.05
OUT = os.path.join(ROOT, "data/vectors/ppmi_svd_50d.txt.gz")

CONFIG = ppmi_svd.PpmiSvdConfig(min_count=5, max_vocab=20_000, window=5, alpha=0.75, dim=50,
                                p=0.5, seed=0)


def sentences() -> list[list[str]]:
    """Lower-cased tokenised sentences: GCIDE, then Austen's train chapters."""
    with open(GCIDE, encoding="utf-8") as f:
        lines = f.read().split("\n")
    docs = corpus_split_documents(AUSTEN, "train", VALIDATION_FRACTION)
    lines += [line for doc in docs for line in doc.split("\n")]
    out = [[t.lower() for t in tokenize(line)] for line in lines]
    return [s for s in out if s]


def main() -> None:
    t0 = time.time()
    sents = sentences()
    n_tokens = sum(len(s) for s in sents)
    print(f"{len(sents):,} sentences, {n_tokens:,} tokens ({time.time() - t0:.1f}s)")
    words, counts = ppmi_svd.vocabulary(sents, CONFIG)
    print(f"vocabulary: {len(words):,} words (count >= {counts[-1]}), covering "
          f"{counts.sum() / n_tokens:.2%} of the tokens")
    m = ppmi_svd.cooccurrences(sents, words, CONFIG.window)
    print(f"co-occurrence matrix: {m.nnz:,} non-zeros ({time.time() - t0:.1f}s)")
    p = ppmi_svd.ppmi(m, CONFIG.alpha)
    print(f"PPMI matrix: {p.nnz:,} positive entries ({time.time() - t0:.1f}s)")
    vecs = ppmi_svd.factorise(p, CONFIG)
    print(f"SVD done ({time.time() - t0:.1f}s)")
    ppmi_svd.write_glove_text(words, vecs, OUT)
    print(f"wrote {OUT}: {os.path.getsize(OUT):,} bytes ({time.time() - t0:.1f}s total)")


if __name__ == "__main__":
    main()
