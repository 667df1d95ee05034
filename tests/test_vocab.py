"""Tests for tasks.vocab (WordPiece vocabulary) and tasks.learn_vocab."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tasks import learn_vocab, sample_text
from tasks.vocab import VocabularyError, WordPieceVocabulary, basic_tokenize

REPO = pathlib.Path(__file__).resolve().parents[1]
UNCASED = REPO / "data/vocab/pydoc_uncased/vocab.txt"
CASED = REPO / "data/vocab/pydoc_cased/vocab.txt"

# Strings that exercise BERT's normalisation corner cases.
TRICKY = [
    "Héllo, WORLD! Ça va? naïve café — “quoted” ‘text’…",  # noqa: RUF001
    "ΟΔΟΣ İstanbul Straße ǅemal ﬁne Ⅻ",
    "tab\there\nnew\rline\u00a0nbsp\u2028sep\u3000ideo",
    "zero\u200bwidth soft\u00adhyphen ctrl\x07bell nul\x00x repl\ufffdchar form\x0cfeed",
    "中文字符 mixed中文English 日本語",
    "emoji 🙂 and math ∑ x² and accents ÀÉÎÕÜ àéîõü",
    "x" * 201 + " " + "y" * 200 + " z",
    "un\u0301combined e\u0301 a\u0300",
    "",
    "   ",
]


@pytest.fixture(scope="module")
def uncased() -> WordPieceVocabulary:
    return WordPieceVocabulary(str(UNCASED), lower_case=True)


@pytest.fixture(scope="module")
def cased() -> WordPieceVocabulary:
    return WordPieceVocabulary(str(CASED), lower_case=False)


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    sents = sample_text.sample_sentences()
    return sents[::7][:400]


@pytest.fixture()
def tiny_vocab(tmp_path) -> WordPieceVocabulary:
    """BERT's docstring example vocabulary."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "want",
              "##want", "##ed", "wa", "un", "runn", "##ing", ",", "x", "##x"]
    tokens = list(dict.fromkeys(tokens))
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return WordPieceVocabulary(str(path), lower_case=True)


@pytest.mark.parametrize("which", ["uncased", "cased"])
def test_python_and_tf_encodings_agree(which, request, sentences):
    vocab = request.getfixturevalue(which)
    texts = sentences + TRICKY
    tf_ids = vocab.encode_tf(tf.constant(texts)).to_list()
    mismatches = [
        (t, vocab.encode(t), ids)
        for t, ids in zip(texts, tf_ids, strict=True)
        if vocab.encode(t) != ids
    ]
    assert not mismatches, mismatches[:3]
    assert len(sentences) >= 300
    # Scalar input gives a flat id vector.
    assert vocab.encode_tf(tf.constant(texts[0])).numpy().tolist() == vocab.encode(texts[0])
    # Real text: most tokens are known.
    flat = [i for ids in tf_ids[: len(sentences)] for i in ids]
    assert sum(i == vocab.unk_id for i in flat) < 0.01 * len(flat)


def test_basic_tokenizer_uncased_vs_cased():
    text = "Héllo, WORLD! naïve Ça"
    assert basic_tokenize(text, lower_case=True) == ["hello", ",", "world", "!", "naive", "ca"]
    assert basic_tokenize(text, lower_case=False) == ["Héllo", ",", "WORLD", "!", "naïve", "Ça"]
    # Punctuation and CJK split; control characters deleted (joining their neighbours, as
    # BERT's _clean_text does); Unicode spaces split.
    assert basic_tokenize("a.b(c)中文d\x07e\u00a0f", lower_case=False) == [
        "a", ".", "b", "(", "c", ")", "中", "文", "de", "f"]


def test_cased_and_uncased_vocabularies_behave_as_bert(uncased, cased):
    assert uncased.tokenize("The Python") == ["the", "python"]
    assert cased.tokenize("The Python")[0] == "The"
    # An accented word: uncased strips the accent, cased keeps it (and so cannot find it).
    assert uncased.encode("Clâss") == uncased.encode("class")
    assert cased.encode("Clâss") != cased.encode("Class")


def test_wordpiece_greedy_longest_match_unknown_and_long_words(tiny_vocab):
    v = tiny_vocab
    assert v.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert v.tokenize("UNAffable,") == ["un", "##aff", "##able", ","]
    # A word that cannot be covered becomes one [UNK] (not partial pieces).
    assert v.tokenize("unwantedq") == ["[UNK]"]
    # BERT: words longer than 200 characters are [UNK]; 200 are still tokenized.
    assert v.tokenize("x" * 201) == ["[UNK]"]
    assert v.tokenize("x" * 200) == ["x"] + ["##x"] * 199
    for text in ["unwanted running", "unwantedq ,", "x" * 201 + " un", "x" * 200]:
        assert v.encode_tf(tf.constant(text)).numpy().tolist() == v.encode(text)


def test_decode_round_trip(uncased, sentences):
    for s in sentences[:100]:
        ids = uncased.encode(s)
        if uncased.unk_id in ids:
            continue
        expected = " ".join(basic_tokenize(s, lower_case=True))
        assert uncased.decode(ids) == expected
    batch = [uncased.encode(s) for s in sentences[:20]]
    width = max(map(len, batch))
    padded = np.array([ids + [uncased.pad_id] * (width - len(ids)) for ids in batch])
    decoded = [d.decode("utf-8") for d in uncased.decode_tf(tf.constant(padded)).numpy()]
    assert decoded == [uncased.decode(ids) for ids in batch]


def test_special_ids_and_continuation_mask(uncased):
    assert uncased.pad_id == 0
    ids = {uncased.pad_id, uncased.unk_id, uncased.cls_id, uncased.sep_id, uncased.mask_id}
    assert len(ids) == 5 and uncased.special_ids == frozenset(ids)
    assert uncased.eos_id is None
    mask = uncased.continuation_mask
    assert mask.shape == (uncased.vocab_size,) and mask.dtype == bool
    pieces = [t for t in uncased.tokens if t.startswith("##")]
    assert mask.sum() == len(pieces) > 0
    assert not mask[list(ids)].any()


def test_bad_vocab_files(tmp_path):
    with pytest.raises(VocabularyError, match=r"does not exist.*tasks\.learn_vocab"):
        WordPieceVocabulary(str(tmp_path / "nope.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"lacks the special tokens \['\[MASK\]'\]"):
        WordPieceVocabulary(str(bad))
    bad.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhi\nhi\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"bad\.txt:7: duplicate token 'hi'"):
        WordPieceVocabulary(str(bad))


def test_learn_vocab_writes_reserved_tokens_first(tmp_path):
    corpus = sample_text.write_corpus(
        str(tmp_path / "c.txt"), sample_text.sample_documents()[:40]
    )
    out = tmp_path / "v" / "vocab.txt"
    report = learn_vocab.learn_vocab(
        [corpus], 600, str(out), lower_case=True, learn_params={"lower_thresh": 2}
    )
    tokens = out.read_text(encoding="utf-8").splitlines()
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert report.vocab_size == len(tokens) and 300 < len(tokens) < 800
    assert report.num_tokens > 1000 and 0.0 <= report.unk_fraction < 0.01
    assert any(t.startswith("##") for t in tokens)


def test_learn_vocab_cli_reports_bad_corpus_line(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(b"A fine sentence.\n\nAnother one.\nbad \xff byte here\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tasks.learn_vocab", f"--corpus={corpus}", "--vocab_size=50",
         f"--output={tmp_path / 'v.txt'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode != 0
    assert f"{corpus}:4: line is not valid UTF-8" in proc.stderr
    assert not (tmp_path / "v.txt").exists()
