"""ELMo's character ids: how a word is fed to the character CNNs of ELMo and TagLM.

The models own this input format (the CNN's 262-row character embedding is sized by it);
the word-level tasks (``tasks/bilm.py``, ``tasks/tagging.py``) write it. It is bilm-tf's
``UnicodeCharsVocabulary`` plus the ``+1`` its ``Batcher`` adds, so pretrained ELMo
weights read what they were trained on. Words cut to ``max_word_length`` are counted
(``CharVocabulary.num_truncated``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from absl import logging

# bilm-tf `UnicodeCharsVocabulary`: ids 0-255 are the UTF-8 bytes of the word, then
BOS_CHAR = 256  # <begin sentence>
EOS_CHAR = 257  # <end sentence>
BOW_CHAR = 258  # <begin word>
EOW_CHAR = 259  # <end word>
PAD_CHAR = 260  # <padding> (character slots after the end of word)
# ... and bilm-tf's `Batcher` adds 1 to all of them (`char_ids + 1`), so that id 0 is free
# for the character slots of whole-token padding positions. The ids this module returns
# include that +1: byte b -> b + 1, BOW 259, EOW 260, PAD 261, BOS 257, EOS 258. A character
# CNN over them needs 262 character embeddings (bilm-tf's `n_characters` 262 at inference).
CHAR_OFFSET = 1
NUM_CHAR_IDS = PAD_CHAR + CHAR_OFFSET + 1
MAX_WORD_LENGTH = 50


class CharVocabulary:
    """Words as fixed-length character-id rows, exactly as pretrained ELMo expects them.

    A word becomes `[BOW, byte_1 .. byte_k, EOW, PAD, ..., PAD]` (+1 each, see the constants
    above), `max_word_length` long. A word of more than `max_word_length - 2` UTF-8 bytes is
    cut to its first `max_word_length - 2` bytes (BOW and EOW kept) as bilm-tf does; the cut
    may fall inside a multi-byte character, again as in bilm-tf, so pretrained weights see
    what they saw in training. Each cut word is counted in `num_truncated`.
    """

    def __init__(self, max_word_length: int = MAX_WORD_LENGTH):
        if max_word_length < 3:
            raise ValueError(f"max_word_length={max_word_length} must be >= 3 (BOW, one "
                             "character, EOW); ELMo uses 50.")
        self.max_word_length = int(max_word_length)
        self.num_truncated = 0
        self.num_encoded = 0

    @property
    def bos_chars(self) -> np.ndarray:
        """The row of the begin-of-sentence token (bilm-tf `bos_chars`, +1)."""
        return self._special_row(BOS_CHAR)

    @property
    def eos_chars(self) -> np.ndarray:
        """The row of the end-of-sentence token (bilm-tf `eos_chars`, +1)."""
        return self._special_row(EOS_CHAR)

    def _special_row(self, c: int) -> np.ndarray:
        row = np.full([self.max_word_length], PAD_CHAR, dtype=np.int32)
        row[:3] = (BOW_CHAR, c, EOW_CHAR)
        return row + CHAR_OFFSET

    def encode_word(self, word: str) -> np.ndarray:
        """int32 [max_word_length] character ids of one word."""
        data = word.encode("utf-8", "ignore")
        limit = self.max_word_length - 2
        self.num_encoded += 1
        if len(data) > limit:
            self.num_truncated += 1
            if self.num_truncated <= 5:
                logging.info("CharVocabulary: cut a word of %d bytes to %d: %r...", len(data),
                             limit, word[:20])
            data = data[:limit]
        row = np.full([self.max_word_length], PAD_CHAR, dtype=np.int32)
        row[0] = BOW_CHAR
        row[1:len(data) + 1] = np.frombuffer(data, dtype=np.uint8)
        row[len(data) + 1] = EOW_CHAR
        return row + CHAR_OFFSET

    def encode_words(self, words: Sequence[str]) -> np.ndarray:
        """int32 [len(words), max_word_length]."""
        if isinstance(words, str):
            raise TypeError(f"encode_words needs a sequence of words, not a string "
                            f"({words[:40]!r}); split it first.")
        if not words:
            return np.zeros([0, self.max_word_length], dtype=np.int32)
        return np.stack([self.encode_word(w) for w in words])

    def encode_sentence(self, words: Sequence[str], add_bos_eos: bool = True) -> np.ndarray:
        """int32 [len(words) (+2), max_word_length], with the sentence-boundary rows."""
        rows = self.encode_words(words)
        if add_bos_eos:
            rows = np.concatenate([self.bos_chars[None], rows, self.eos_chars[None]])
        return rows

    def encode_batch(self, sentences: Sequence[Sequence[str]], add_bos_eos: bool = True
                     ) -> np.ndarray:
        """int32 [batch, longest (+2), max_word_length]; token slots past a sentence's end
        are all 0 (bilm-tf `Batcher`)."""
        rows = [self.encode_sentence(s, add_bos_eos) for s in sentences]
        longest = max((len(r) for r in rows), default=0)
        out = np.zeros([len(rows), longest, self.max_word_length], dtype=np.int32)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out
