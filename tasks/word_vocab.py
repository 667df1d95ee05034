"""Word-level vocabularies and `<UNK>` handling.

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
  them: `models/characters.py` (`CharVocabulary`).
* Pretrained vectors (GloVe, word2vec, fastText) and the embedding matrices built from
  them: `tasks/word_vectors.py`.

Every problem raises a `VocabularyError`; what is skipped or cut is counted
(`WordVocabulary.stats`) and logged, never dropped silently.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

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
