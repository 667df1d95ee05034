"""Reading text corpora in BERT's `create_pretraining_data.py` input format.

The format: one sentence per line, a blank line between documents, UTF-8. Every problem
(missing file, empty file, a line that is not UTF-8) raises one `CorpusError` naming the
file and, where it applies, the line number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence

import tensorflow as tf


class CorpusError(ValueError):
    """A corpus file that is missing, empty or malformed; the message names file and line."""


def iter_lines(path: str) -> Iterator[tuple[int, str]]:
    """Yields `(line_number, stripped_line)` of a UTF-8 text file, 1-based."""
    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise CorpusError(f"Corpus file {path!r} does not exist.")
    with tf.io.gfile.GFile(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"{path}:{lineno}: line is not valid UTF-8 ({e.reason} at byte "
                    f"{e.start}); re-encode the file as UTF-8 (e.g. `iconv -t UTF-8`)."
                ) from e
            yield lineno, line.strip()


def tsv_split_sizes(directory: str, splits: Sequence[str]) -> dict[str, int]:
    """Rows of ``directory/<split>.tsv`` after its header line, for the splits present
    (seqio's ``num_input_examples``)."""
    counts = {}
    for split in splits:
        path = os.path.join(directory, f"{split}.tsv")
        if os.path.exists(path):
            with open(path, "rb") as f:
                counts[split] = sum(1 for _ in f) - 1
    return counts


def read_documents(path: str) -> list[list[str]]:
    """Documents (lists of sentences) of a BERT-format corpus file.

    Blank lines separate documents (several blank lines count as one boundary), as in
    google-research/bert `create_training_instances`.
    """
    docs: list[list[str]] = [[]]
    for _, line in iter_lines(path):
        if line:
            docs[-1].append(line)
        elif docs[-1]:
            docs.append([])
    docs = [d for d in docs if d]
    if not docs:
        raise CorpusError(
            f"Corpus file {path!r} is empty (no non-blank lines); expected one sentence per "
            "line with a blank line between documents."
        )
    return docs


def read_all_documents(paths: Sequence[str]) -> list[list[str]]:
    """`read_documents` over several files, concatenated."""
    docs: list[list[str]] = []
    for p in paths:
        docs.extend(read_documents(p))
    return docs


# A newline replaces the whitespace run after `.`, `!` or `?` (plus closing quotes or
# brackets) when a capital letter or digit follows. Written for RE2 (no look-around) so the
# same rule runs in TF (`tf.strings.regex_replace`) and in Python.
SENTENCE_BOUNDARY = (r"([.!?][\"')\]]*)\s+([\"'(\[]?[A-Z0-9])", r"\1\n\2")


def split_sentences(paragraph: str) -> list[str]:
    """Heuristic English sentence splitter (end punctuation followed by a capital)."""
    pattern, repl = SENTENCE_BOUNDARY
    return [s.strip() for s in re.sub(pattern, repl, paragraph).split("\n") if s.strip()]
