"""Builds the Austen novel-attribution set from data/corpus/austen.txt.

Each example is one sentence of 12-50 words; its label is the novel it comes from. The
split is by chapter (never by sentence), so no chapter gives sentences to two splits:
within each novel, chapter k goes to `validation` when k % 10 == 3, to `test` when
k % 10 == 7, else to `train`. Sentences are then sampled (seed 0) to the sizes below.

    python data/classification/austen_novels/build.py
"""

from __future__ import annotations

import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "corpus", "austen.txt")
# (label, chapters, first words of the novel's first chapter): austen.txt holds the
# novels in this order (build_austen.py sorts them by file name).
NOVELS = (
    ("emma", 55, "Emma Woodhouse, handsome, clever"),
    ("mansfield_park", 48, "About thirty years ago Miss Maria Ward"),
    ("northanger_abbey", 31, "No one who had ever seen Catherine Morland"),
    ("persuasion", 24, "Sir Walter Elliot, of Kellynch Hall"),
    ("pride_and_prejudice", 61, "It is a truth universally acknowledged"),
    ("sense_and_sensibility", 50, "The family of Dashwood had long been settled"),
)
SIZES = {"train": 3000, "validation": 600, "test": 600}
MIN_WORDS, MAX_WORDS = 12, 50


def split_of(chapter: int) -> str:
    return {3: "validation", 7: "test"}.get(chapter % 10, "train")


def main() -> None:
    with open(CORPUS, encoding="utf-8") as f:
        chapters = [c for c in f.read().split("\n\n") if c.strip()]
    if len(chapters) != sum(n for _, n, _ in NOVELS):
        raise SystemExit(f"expected {sum(n for _, n, _ in NOVELS)} chapters, got {len(chapters)}")
    pools: dict[str, list[tuple[str, str]]] = {s: [] for s in SIZES}
    start = 0
    for label, count, opening in NOVELS:
        if not chapters[start].startswith(opening):
            raise SystemExit(f"chapter {start} does not open {label}: {chapters[start][:60]!r}")
        for k, chapter in enumerate(chapters[start:start + count]):
            for sentence in chapter.split("\n"):
                if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
                    pools[split_of(k)].append((sentence, label))
        start += count
    rng = random.Random(0)
    for split, size in SIZES.items():
        rows = rng.sample(pools[split], size)
        with open(os.path.join(HERE, f"{split}.tsv"), "w", encoding="utf-8", newline="") as f:
            f.write("sentence\tlabel\n")
            for sentence, label in rows:
                if "\t" in sentence:
                    raise SystemExit(f"tab inside a sentence: {sentence!r}")
                f.write(f"{sentence}\t{label}\n")
        print(f"{split}: {size} of {len(pools[split])} eligible sentences")


if __name__ == "__main__":
    main()
