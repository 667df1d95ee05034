"""Rebuilds austen.txt (BERT pre-training format) from the six novels' plain text.

Input: the novels exported from Debian's ``r-cran-janeaustenr`` (see README.md).
Output: one sentence per line, a blank line between documents (one document per
chapter), the format of google-research/bert's ``create_pretraining_data.py``.

    python data/corpus/build_austen.py OUT.txt emma.txt mansfieldpark.txt ...
"""

from __future__ import annotations

import os
import re
import sys

CHAPTER = re.compile(r"^\s*(CHAPTER|Chapter)\s+([IVXLC0-9]+|[A-Z][A-Za-z-]+)\.?\s*$"
                     r"|^\s*[IVXLC]+\.\s*$")
END_OF_TEXT = ("A NOTE ON THE TEXT", "End of the Project Gutenberg", "*** END OF")
NOT_PROSE = re.compile(r"^(VOLUME|THE END|FINIS|Finis|END OF)")
ABBREVIATIONS = ("Mr", "Mrs", "Dr", "St", "Col", "Capt", "Esq", "Messrs", "Gen", "Rev", "Sir")
# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by a capital.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z])")


def split_sentences(paragraph: str) -> list[str]:
    pieces, start = [], 0
    for match in SENTENCE_END.finditer(paragraph):
        before = paragraph[start:match.start()]
        last_word = re.findall(r"(\w+)\.$", before)
        if last_word and last_word[0] in ABBREVIATIONS:
            continue
        end = match.start() + len(match.group(0).rstrip())
        pieces.append(paragraph[start:end].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def chapters(path: str) -> list[list[str]]:
    """Paragraph lists, one per chapter, of one novel."""
    found, current = [], None
    with open(path, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            if line.strip().startswith(END_OF_TEXT):
                break
            if CHAPTER.match(line):
                if current is not None:
                    found.append(current)
                current = []
            elif current is not None:
                current.append(line)
    if current is not None:
        found.append(current)
    result = []
    for body in found:
        paragraphs = [" ".join(p.split()) for p in "\n".join(body).split("\n\n")]
        paragraphs = [p for p in paragraphs if p and not NOT_PROSE.match(p)]
        if sum(map(len, paragraphs)) >= 500:
            result.append(paragraphs)
    return result


def main(out_path: str, novels: list[str]) -> None:
    documents = sentences = 0
    with open(out_path, "w", encoding="utf-8") as out:
        for path in sorted(novels, key=os.path.basename):
            for paragraphs in chapters(path):
                if documents:
                    out.write("\n")
                for paragraph in paragraphs:
                    for sentence in split_sentences(paragraph):
                        out.write(sentence + "\n")
                        sentences += 1
                documents += 1
    print(f"{out_path}: {documents} documents, {sentences} sentences", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
