r"""Learns a BERT WordPiece vocabulary (`vocab.txt`) from BERT-format corpus files.

    python -m tasks.learn_vocab --corpus=data/corpus/corpus.txt --vocab_size=8000 \
        --output=data/vocab/corpus_uncased/vocab.txt [--lower_case=true] [--min_count=10]

Uses `tensorflow_text.tools.wordpiece_vocab.bert_vocab_from_dataset` on the corpus text
normalised exactly as `WordPieceVocabulary` normalises it. The reserved tokens
[PAD] [UNK] [CLS] [SEP] [MASK] come first ([PAD] = 0). Prints the vocabulary size and its
coverage: the fraction of wordpiece tokens of the corpus that become [UNK]. The learner
may return somewhat more or fewer tokens than `--vocab_size` (it searches a count threshold).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from absl import app, flags, logging

from tasks import corpus as corpus_lib
from tasks import vocab as vocab_lib


@dataclasses.dataclass(frozen=True)
class VocabReport:
    """What `learn_vocab` produced."""

    path: str
    vocab_size: int
    num_tokens: int  # wordpiece tokens of the corpus under the new vocabulary
    num_unk: int

    @property
    def unk_fraction(self) -> float:
        return self.num_unk / max(1, self.num_tokens)


def learn_vocab(
    corpus_files: Sequence[str],
    vocab_size: int,
    output: str,
    *,
    lower_case: bool = True,
    learn_params: dict | None = None,
) -> VocabReport:
    """Learns a vocabulary from `corpus_files`, writes it to `output`, returns a report."""
    import tensorflow as tf
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as bvfd

    if vocab_size <= len(vocab_lib.RESERVED_TOKENS):
        raise ValueError(f"--vocab_size={vocab_size} must exceed the 5 reserved tokens.")
    sentences = [s for d in corpus_lib.read_all_documents(corpus_files) for s in d]
    # Normalise with the vocabulary's own TF rules, then let the learner split words on
    # whitespace/punctuation only (lower_case=False: already done, and identically).
    ds = tf.data.Dataset.from_tensor_slices(sentences).batch(1024)
    ds = ds.map(lambda s: vocab_lib.bert_normalize_tf(s, lower_case))
    tokens = bvfd.bert_vocab_from_dataset(
        ds,
        vocab_size=vocab_size,
        reserved_tokens=list(vocab_lib.RESERVED_TOKENS),
        bert_tokenizer_params={"lower_case": False},
        learn_params=learn_params or {},
    )
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with tf.io.gfile.GFile(output, "w") as f:
        f.write("".join(t + "\n" for t in tokens))
    vocab = vocab_lib.WordPieceVocabulary(output, lower_case=lower_case)
    ids = vocab.encode_tf(tf.constant(sentences)).flat_values
    report = VocabReport(
        path=output,
        vocab_size=vocab.vocab_size,
        num_tokens=int(tf.size(ids)),
        num_unk=int(tf.reduce_sum(tf.cast(ids == vocab.unk_id, tf.int64))),
    )
    logging.info("Wrote %s", report)
    return report


_CORPUS = flags.DEFINE_multi_string("corpus", None, "BERT-format corpus file(s).")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", None, "Target vocabulary size (maximum).")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write vocab.txt.")
_LOWER_CASE = flags.DEFINE_bool("lower_case", True, "Uncased (lower-case, strip accents).")
_MIN_COUNT = flags.DEFINE_integer(
    "min_count", 10, "Least count of a word to be considered (learner's lower_thresh); "
    "use 1-2 for corpora under a few MB."
)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        report = learn_vocab(
            _CORPUS.value,
            _VOCAB_SIZE.value,
            _OUTPUT.value,
            lower_case=_LOWER_CASE.value,
            learn_params={"lower_thresh": _MIN_COUNT.value},
        )
    except corpus_lib.CorpusError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {report.path}: vocab_size={report.vocab_size}")
    print(
        f"coverage: {report.num_unk} of {report.num_tokens} corpus wordpieces are [UNK] "
        f"({100 * report.unk_fraction:.3f}%)"
    )


if __name__ == "__main__":
    flags.mark_flags_as_required(["corpus", "vocab_size", "output"])
    app.run(main)
