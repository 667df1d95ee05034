r"""Learn a shared source/target BPE vocabulary (sentencepiece) from a parallel corpus.

    python -m tasks.learn_bpe --corpus=data/parallel/en-de/train.tsv --vocab_size=4000 \
      --model_prefix=data/vocab/spm_en_de_4k/spm

Reads both columns of a ``source<TAB>target`` TSV (header line first) and writes
``<prefix>.model`` / ``<prefix>.vocab`` with ids pad=0, eos=1, unk=2 (seqio's layout).
"""

from __future__ import annotations

import sys

from absl import app, flags

_CORPUS = flags.DEFINE_string("corpus", None, "Training TSV (header: source<TAB>target).")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 8000, "Number of pieces.")
_PREFIX = flags.DEFINE_string("model_prefix", None, "Output path prefix.")


def main(argv: list[str]) -> None:
    del argv
    from tasks import translation

    if not _CORPUS.value or not _PREFIX.value:
        sys.exit("error: give --corpus and --model_prefix.")
    with open(_CORPUS.value, encoding="utf-8") as f:
        source, target = f.readline().rstrip("\n").split("\t")
    sources, targets = translation.read_parallel_tsv(_CORPUS.value, source, target)
    path = translation.learn_bpe(sources + targets, _PREFIX.value, _VOCAB_SIZE.value)
    print(f"wrote {path} from {len(sources)} pairs ({source}, {target})")


if __name__ == "__main__":
    app.run(main)
