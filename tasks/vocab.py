"""WordPiece vocabulary (BERT `vocab.txt`) as a `seqio.Vocabulary`.

Two independent implementations of BERT's tokenizer live here and must agree exactly:

* `encode` (pure Python) is a port of google-research/bert `tokenization.py`
  (`BasicTokenizer` + `WordpieceTokenizer`): clean control characters, split CJK
  characters, lower-case and strip accents (uncased only), split punctuation, then greedy
  longest-match-first WordPiece with `[UNK]` for words that cannot be covered or are
  longer than 200 characters.
* `encode_tf` (inside `tf.data`) reproduces the same normalisation with TF string ops and
  tokenizes with `tensorflow_text` (`RegexSplitter` rules of `BasicTokenizer` +
  `FastWordpieceTokenizer`).

Both return flat wordpiece id sequences (no [CLS]/[SEP]; the preprocessors add those).
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Iterable

import numpy as np
import seqio
import tensorflow as tf
import tensorflow_text as tf_text

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
RESERVED_TOKENS = (PAD, UNK, CLS, SEP, MASK)
SUFFIX_INDICATOR = "##"
# google-research/bert WordpieceTokenizer.max_input_chars_per_word.
MAX_CHARS_PER_WORD = 200

# CJK ideograph ranges, exactly as BERT's `_is_chinese_char` (and tensorflow_text).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
_CJK_REGEX = "|".join(f"[\\x{{{lo:X}}}-\\x{{{hi:X}}}]" for lo, hi in _CJK_RANGES)
_PUNCT_REGEX = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
# Characters BERT (and Python's str.split) treat as whitespace after cleaning.
_SPACE_REGEX = r"[\t\n\r\p{Zs}\p{Zl}\p{Zp}]"
# Characters BERT's `_clean_text` deletes: NUL, U+FFFD and control/format characters.
_DELETE_REGEX = r"[\p{Cc}\p{Cf}\x{FFFD}]"


class VocabularyError(ValueError):
    """A vocab.txt that is missing or cannot be used as a BERT WordPiece vocabulary."""


def load_vocab_file(vocab_file: str) -> list[str]:
    """Reads a BERT vocab.txt (one token per line; the line number is the id)."""
    learn_hint = (
        "Learn one with `python -m tasks.learn_vocab --corpus=FILE --vocab_size=N "
        "--output=PATH/vocab.txt` or point vocab_file at an existing BERT vocab.txt."
    )
    if not tf.io.gfile.exists(vocab_file):
        raise VocabularyError(f"Vocabulary file {vocab_file!r} does not exist. {learn_hint}")
    with tf.io.gfile.GFile(vocab_file, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise VocabularyError(f"{vocab_file}:{line}: not valid UTF-8 ({e.reason}).") from e
    tokens = [t.strip() for t in text.split("\n")]
    if tokens and tokens[-1] == "":
        tokens.pop()  # trailing newline
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if not tok:
            raise VocabularyError(f"{vocab_file}:{i + 1}: empty token line. {learn_hint}")
        if tok in seen:
            raise VocabularyError(
                f"{vocab_file}:{i + 1}: duplicate token {tok!r} (first on line "
                f"{seen[tok] + 1}); every token must be unique."
            )
        seen[tok] = i
    missing = [t for t in RESERVED_TOKENS if t not in seen]
    if missing:
        raise VocabularyError(
            f"Vocabulary file {vocab_file!r} lacks the special tokens {missing}; a BERT "
            f"vocabulary needs all of {list(RESERVED_TOKENS)}. {learn_hint}"
        )
    return tokens


# ---------------------------------------------------------------------------------------
# Pure-Python BERT tokenizer (port of google-research/bert tokenization.py).


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _split_on_punctuation(token: str) -> list[str]:
    out: list[list[str]] = []
    start_new = True
    for ch in token:
        if _is_punctuation(ch):
            out.append([ch])
            start_new = True
        else:
            if start_new:
                out.append([])
            start_new = False
            out[-1].append(ch)
    return ["".join(x) for x in out]


def basic_tokenize(text: str, lower_case: bool) -> list[str]:
    """BERT's BasicTokenizer: cleaned, (lower-cased, accent-stripped) words and punctuation."""
    cleaned = []
    for ch in text:
        if ord(ch) == 0 or ord(ch) == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            cleaned.append(" ")
        elif _is_cjk(ch):
            cleaned.append(f" {ch} ")
        else:
            cleaned.append(ch)
    words: list[str] = []
    for token in "".join(cleaned).split():
        if lower_case:
            token = _strip_accents(token.lower())
        words.extend(_split_on_punctuation(token))
    return " ".join(words).split()


def bert_normalize_tf(s: tf.Tensor, lower_case: bool) -> tf.Tensor:
    """BERT's text cleaning (+ lower-casing and accent stripping if uncased) in TF ops."""
    s = tf.strings.regex_replace(s, _SPACE_REGEX, " ")
    s = tf.strings.regex_replace(s, _DELETE_REGEX, "")
    if lower_case:
        s = tf.strings.lower(s, encoding="utf-8")
        s = tf_text.normalize_utf8(s, "NFD")
        s = tf.strings.regex_replace(s, r"\p{Mn}", "")
    return s


class WordPieceVocabulary(seqio.Vocabulary):
    """BERT WordPiece vocabulary read from `vocab.txt`; see the module docstring."""

    def __init__(self, vocab_file: str, lower_case: bool = True):
        self._vocab_file = os.fspath(vocab_file)
        self._lower_case = bool(lower_case)
        self._tokens = load_vocab_file(self._vocab_file)
        self._token_to_id = {t: i for i, t in enumerate(self._tokens)}
        super().__init__(extra_ids=0)

    # -- identity ---------------------------------------------------------------------
    @property
    def vocab_file(self) -> str:
        return self._vocab_file

    @property
    def lower_case(self) -> bool:
        return self._lower_case

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self._tokens)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WordPieceVocabulary):
            return False
        return self._lower_case == other._lower_case and self._tokens == other._tokens

    def __hash__(self) -> int:
        return hash((self._lower_case, len(self._tokens), self._tokens[-1]))

    def __repr__(self) -> str:
        return (
            f"WordPieceVocabulary({self._vocab_file!r}, lower_case={self._lower_case}, "
            f"size={len(self._tokens)})"
        )

    # -- special ids ------------------------------------------------------------------
    @property
    def pad_id(self) -> int:
        return self._token_to_id[PAD]

    @property
    def unk_id(self) -> int:
        return self._token_to_id[UNK]

    @property
    def cls_id(self) -> int:
        return self._token_to_id[CLS]

    @property
    def sep_id(self) -> int:
        return self._token_to_id[SEP]

    @property
    def mask_id(self) -> int:
        return self._token_to_id[MASK]

    @property
    def eos_id(self) -> int | None:
        return None

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of [PAD], [UNK], [CLS], [SEP], [MASK]."""
        return frozenset(self._token_to_id[t] for t in RESERVED_TOKENS)

    @property
    def _base_vocab_size(self) -> int:
        return len(self._tokens)

    @functools.cached_property
    def continuation_mask(self) -> np.ndarray:
        """Bool [vocab_size]: True for `##` suffix pieces (used by whole-word masking)."""
        return np.array([t.startswith(SUFFIX_INDICATOR) for t in self._tokens], dtype=bool)

    def id_to_token(self, i: int) -> str:
        return self._tokens[i]

    def token_to_id(self, token: str) -> int:
        return self._token_to_id.get(token, self.unk_id)

    # -- Python encode/decode -------------------------------------------------------
    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > MAX_CHARS_PER_WORD:
            return [self.unk_id]
        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else SUFFIX_INDICATOR + word[start:end]
                found = self._token_to_id.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    def tokenize(self, s: str) -> list[str]:
        """Wordpiece strings for `s` (Python implementation)."""
        return [self._tokens[i] for i in self._encode(s)]

    def _encode(self, s: str) -> list[int]:
        ids: list[int] = []
        for word in basic_tokenize(s, self._lower_case):
            ids.extend(self._wordpiece(word))
        return ids

    def _decode(self, ids: Iterable[int]) -> str:
        pieces = [self._tokens[int(i)] for i in ids if int(i) != self.pad_id]
        return " ".join(pieces).replace(" " + SUFFIX_INDICATOR, "")

    # -- TensorFlow encode/decode ---------------------------------------------------
    @functools.cached_property
    def _tf_wordpiece(self) -> tf_text.FastWordpieceTokenizer:
        # Built eagerly (init_scope): the cached tokenizer's model tensor must not belong
        # to the graph of whichever tf.data function first asked for it, or a second
        # pipeline (e.g. the evaluation split) would capture a foreign symbolic tensor.
        with tf.init_scope():
            return tf_text.FastWordpieceTokenizer(
                vocab=self._tokens,
                suffix_indicator=SUFFIX_INDICATOR,
                # Bytes limit well above BERT's character limit, applied separately.
                max_bytes_per_word=4 * MAX_CHARS_PER_WORD + 4,
                token_out_type=tf.int32,
                unknown_token=UNK,
                no_pretokenization=True,
            )

    def normalize_tf(self, s: tf.Tensor) -> tf.Tensor:
        return bert_normalize_tf(s, self._lower_case)

    def basic_tokenize_tf(self, s: tf.Tensor) -> tf.RaggedTensor:
        """Words (as strings) of a 1-D string tensor: ragged [batch, words]."""
        return tf_text.regex_split(
            self.normalize_tf(s),
            delim_regex_pattern=f"\\s+|{_PUNCT_REGEX}|{_CJK_REGEX}",
            keep_delim_regex_pattern=f"{_PUNCT_REGEX}|{_CJK_REGEX}",
        )

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
        s = tf.convert_to_tensor(s, dtype=tf.string)
        scalar = s.shape.rank == 0
        words = self.basic_tokenize_tf(tf.reshape(s, [-1]))  # [batch, words]
        flat_words = words.flat_values
        pieces = self._tf_wordpiece.tokenize(flat_words)  # [num_words, pieces]
        too_long = tf.strings.length(flat_words, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        keep = pieces.with_flat_values(tf.gather(~too_long, pieces.value_rowids()))
        # Row i of `unk` is [UNK] where word i is longer than BERT's limit, else empty.
        unk = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.shape(flat_words)[0]], tf.constant(self.unk_id)),
            tf.ones_like(pieces.row_lengths()),
        )
        unk = tf.ragged.boolean_mask(unk, unk.with_flat_values(too_long))
        word_ids = tf.concat([tf.ragged.boolean_mask(pieces, keep), unk], axis=1)
        ids = words.with_flat_values(word_ids).merge_dims(1, 2)  # [batch, pieces]
        if scalar:
            return ids[0]
        return ids

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        ids = tf.convert_to_tensor(ids)
        table = tf.constant(self._tokens)
        pieces = tf.gather(table, ids)
        ragged = tf.ragged.boolean_mask(pieces, tf.not_equal(ids, self.pad_id))
        joined = tf.strings.reduce_join(ragged, axis=-1, separator=" ")
        return tf.strings.regex_replace(joined, " " + SUFFIX_INDICATOR, "")


def vocab_fingerprint(vocab: WordPieceVocabulary) -> str:
    """Short stable name for a vocabulary, for task names (e.g. `vocab_u2000`)."""
    base = os.path.splitext(os.path.basename(vocab.vocab_file))[0]
    parent = os.path.basename(os.path.dirname(vocab.vocab_file))
    stem = base if base != "vocab" or not parent else parent
    stem = "".join(c if c.isalnum() else "_" for c in stem).strip("_").lower() or "vocab"
    return f"{stem}_{'u' if vocab.lower_case else 'c'}{vocab.vocab_size}"

