"""A small real English corpus that is always available: Python's own documentation.

`pydoc_data.topics` ships with every CPython (PSF licence) and holds ~450 kB of the
language reference as prose. Tests use it to build a BERT-format corpus file and to learn
a small vocabulary without downloading anything. It is test/demo material, not the
shipped training corpus (that lives under `data/corpus/`).
"""

from __future__ import annotations

import os
import re

from tasks.corpus import split_sentences


def sample_documents(paragraphs_per_document: int = 6) -> list[list[str]]:
    """Documents (lists of sentences) from the Python reference manual's topics."""
    from pydoc_data.topics import topics

    docs: list[list[str]] = []
    for key in sorted(topics):
        paragraphs = []
        for block in re.split(r"\n\s*\n", topics[key]):
            text = " ".join(line.strip() for line in block.splitlines()).strip()
            # Prose only: skip headings (*****), code and one-liners.
            if len(text.split()) < 6 or set(text) <= set("*=-~ ") or text.startswith(">>>"):
                continue
            paragraphs.append(split_sentences(text))
        for i in range(0, len(paragraphs), paragraphs_per_document):
            doc = [s for p in paragraphs[i : i + paragraphs_per_document] for s in p]
            if doc:
                docs.append(doc)
    return docs


def sample_sentences(limit: int | None = None) -> list[str]:
    """Sentences of `sample_documents()` in order."""
    sents = [s for d in sample_documents() for s in d]
    return sents if limit is None else sents[:limit]


def write_corpus(path: str, documents: list[list[str]]) -> str:
    """Writes documents in BERT format (sentence per line, blank line between documents)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(d) for d in documents) + "\n")
    return path
