"""How the reference fine-tuning (``benchmarks.finetune_reference``) turns benchmark rows
into wordpiece ids with a HuggingFace tokenizer: BERT's pair truncation, and NER tags at
each word's first wordpiece; and the splits every task is scored on, which
``benchmarks.finetune_compare`` reads too. Kept free of command-line flags so tests and
both scripts can import it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Splits scored after training: the dev set; CoNLL-2003 also its test set (eng.testb).
EVAL_SPLITS = {"conll2003": ("validation", "test")}


def encode(tokenizer: Any, examples: Sequence[dict[str, Any]], text_a: str,
           text_b: str | None, max_len: int) -> tuple[list[list[int]], list[list[int]], int]:
    """Token ids and segment ids of each example, longest-first truncated; and how many
    examples were truncated."""
    ids, segments, truncated = [], [], 0
    for ex in examples:
        a = tokenizer.tokenize(ex[text_a])
        b = tokenizer.tokenize(ex[text_b]) if text_b else []
        budget = max_len - (3 if text_b else 2)
        if len(a) + len(b) > budget:
            truncated += 1
        while len(a) + len(b) > budget:  # BERT's _truncate_seq_pair
            if len(a) > len(b):
                a.pop()
            else:
                b.pop()
        tokens = ["[CLS]", *a, "[SEP]"] + ([*b, "[SEP]"] if text_b else [])
        ids.append(tokenizer.convert_tokens_to_ids(tokens))
        segments.append([0] * (len(a) + 2) + [1] * (len(b) + 1 if text_b else 0))
    return ids, segments, truncated


def encode_tagged(tokenizer: Any, sentences: Sequence[Any], max_len: int
                  ) -> tuple[list[list[int]], list[list[int]], list[list[int | None]], int]:
    """``[CLS] wordpieces [SEP]`` of each tagged sentence with its tag at each word's
    first wordpiece (BERT's NER recipe, as ``tasks.finetuning.encode_tagged_words``):
    token ids, the position of each word's first wordpiece (None for a word cut by the
    length limit or with no wordpiece: it is predicted ``O``), and how many words were
    cut or had no position."""
    ids, positions, lost = [], [], 0
    for sentence in sentences:
        pieces: list[str] = []
        where: list[int | None] = []
        full = False  # once a word does not fit, every later word is cut too
        for word in sentence.tokens:
            word_pieces = tokenizer.tokenize(word)
            full = full or len(pieces) + len(word_pieces) > max_len - 2
            if full or not word_pieces:
                where.append(None)
                lost += 1
                continue
            where.append(len(pieces) + 1)
            pieces += word_pieces
        ids.append(tokenizer.convert_tokens_to_ids(["[CLS]", *pieces, "[SEP]"]))
        positions.append(where)
    return ids, [[0] * len(x) for x in ids], positions, lost
