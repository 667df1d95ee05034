"""Tests for tasks.word_vocab: word vocabularies with <UNK> classes, ELMo character ids,
pretrained word-vector files and Dhingra et al. (2017)'s test-time vocabulary extension.

The vocabulary and coverage tests use the shipped corpus `data/corpus/austen.txt` (its
first 5,000 sentences, split with `simple_tokenize`). The vector-loading tests use tiny
hand-written vectors, written to tmp_path in each file format: they test the *formats*
(and the errors), not the quality of any embedding.
"""

from __future__ import annotations

import collections
import gzip
import itertools
import pathlib

import numpy as np
import pytest

from models.characters import CharVocabulary
from tasks.word_vectors import (
    PretrainedVectors,
    WordVectorError,
    embedding_matrix,
    extend_with_pretrained,
    load_vectors,
)
from tasks.word_vocab import (
    ALLCAPS,
    CAP,
    HYPHEN,
    NUM,
    PAD,
    PUNCT,
    UNK,
    UNK_CLASSES,
    VocabularyError,
    WordVocabulary,
    simple_tokenize,
    unk_signature,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
AUSTEN = REPO / "data/corpus/austen.txt"


@pytest.fixture(scope="module")
def austen() -> list[list[str]]:
    """The first 5,000 sentences of the Austen corpus, tokenised."""
    sents = []
    with open(AUSTEN, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                sents.append(simple_tokenize(line))
            if len(sents) == 5000:
                break
    return sents


# ---------------------------------------------------------------------------------------
# WordVocabulary


def test_ordering_min_count_and_max_size():
    sents = [["b", "a", "c", "a"], ["b", "d", "a"], ["e", "c", "b"], ["f"]]
    # counts: a 3, b 3, c 2, d 1, e 1, f 1
    vocab = WordVocabulary.from_corpus(sents, min_count=2)
    assert vocab.tokens == (PAD, UNK, "a", "b", "c")  # a/b tie: alphabetical
    assert (vocab.pad_id, vocab.unk_id, len(vocab)) == (0, 1, 5)
    assert vocab.encode(["b", "d", "c", "zzz"]) == [3, 1, 4, 1]
    assert vocab.decode([3, 1, 0]) == ["b", UNK, PAD]
    assert vocab.stats["rare_types"] == 3 and vocab.stats["rare_tokens"] == 3
    assert vocab.stats["types"] == 6 and vocab.stats["tokens"] == 11

    everything = WordVocabulary.from_corpus(sents, min_count=1)
    assert everything.tokens[2:] == ("a", "b", "c", "d", "e", "f")

    capped = WordVocabulary.from_corpus(sents, min_count=1, max_size=4)
    assert capped.tokens[2:] == ("a", "b", "c", "d")  # max_size counts words only
    assert capped.stats["dropped_by_max_size_types"] == 2
    assert capped.stats["dropped_by_max_size_tokens"] == 2

    kept = WordVocabulary.from_corpus(sents, min_count=2, keep={"f", "never-seen"})
    assert kept.tokens[2:] == ("a", "b", "c", "f")
    assert kept.stats["kept_by_keep"] == 1

    lowered = WordVocabulary.from_corpus([["The", "the", "THE", "x", "Y"]], min_count=3,
                                         lower=True, keep={"Y"})
    assert lowered.tokens == (PAD, UNK, "the", "y")
    assert lowered.encode(["tHe", "x"]) == [2, 1]

    with pytest.raises(VocabularyError, match="min_count"):
        WordVocabulary.from_corpus(sents, min_count=0)
    with pytest.raises(TypeError, match="simple_tokenize"):
        WordVocabulary.from_corpus(["a sentence that was not split"])
    with pytest.raises(TypeError, match="split it first"):
        vocab.encode("a b")


def test_austen_vocabulary_against_independent_counts(austen):
    counts = collections.Counter(w for s in austen for w in s)
    vocab = WordVocabulary.from_corpus(austen, min_count=5)
    frequent = {w for w, c in counts.items() if c >= 5}
    assert set(vocab.tokens[2:]) == frequent
    assert len(vocab) == 2 + len(frequent)
    ranked = [counts[w] for w in vocab.tokens[2:]]
    assert ranked == sorted(ranked, reverse=True)
    pairs = itertools.pairwise(vocab.tokens[2:])
    assert all(a < b for a, b in pairs if counts[a] == counts[b])  # ties: code-point order
    assert vocab.tokens[2:6] == (",", ".", "to", "the")  # "The" is counted apart from "the"
    # On its own training data the unknown tokens are exactly the rare ones.
    cov = vocab.coverage(austen)
    rare_tokens = sum(c for c in counts.values() if c < 5)
    assert cov["tokens"] == sum(counts.values()) == vocab.stats["tokens"]
    assert cov["unknown_tokens"] == rare_tokens == vocab.stats["rare_tokens"]
    assert cov["unknown_types"] == vocab.stats["rare_types"]


def test_coverage_on_held_out_austen(austen):
    train, held_out = austen[:4000], austen[4000:]
    vocab = WordVocabulary.from_corpus(train, min_count=3, unk_classes=True)
    known = set(vocab.tokens)
    tokens = [w for s in held_out for w in s]
    unknown = [w for w in tokens if w not in known]
    cov = vocab.coverage(held_out)
    assert cov["tokens"] == len(tokens) > 20_000
    assert cov["unknown_tokens"] == len(unknown) > 0
    assert cov["unknown_rate"] == pytest.approx(len(unknown) / len(tokens))
    assert 0.02 < cov["unknown_rate"] < 0.15
    assert cov["types"] == len(set(tokens))
    assert cov["unknown_types"] == len(set(unknown))
    assert sum(cov["by_class"].values()) == len(unknown)
    expected = collections.Counter(
        unk_signature(w) if unk_signature(w) in known else UNK for w in unknown)
    assert cov["by_class"] == dict(expected)
    assert np.isnan(vocab.coverage([])["unknown_rate"])


def test_save_load_round_trip(tmp_path, austen):
    for kwargs in (dict(min_count=5), dict(min_count=3, unk_classes=True, lower=True)):
        vocab = WordVocabulary.from_corpus(austen[:2000], **kwargs)
        path = tmp_path / "vocab.txt"
        vocab.save(path)
        lines = path.read_text(encoding="utf-8").split("\n")
        assert lines[:2] == [PAD, UNK] and lines[-1] == ""
        assert len(lines) - 1 == len(vocab)
        loaded = WordVocabulary.load(path, lower=kwargs.get("lower", False))
        assert loaded == vocab
        assert loaded.unk_classes == bool(kwargs.get("unk_classes"))
        sent = austen[3000]
        assert loaded.encode(sent) == vocab.encode(sent)


def test_load_errors_name_the_line(tmp_path):
    with pytest.raises(VocabularyError, match="does not exist"):
        WordVocabulary.load(tmp_path / "missing.txt")
    bad = tmp_path / "dup.txt"
    bad.write_text(f"{PAD}\n{UNK}\nthe\nof\nthe\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"dup.txt:5: duplicate token 'the'.*line 3"):
        WordVocabulary.load(bad)
    bad.write_text("the\nof\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="first two lines"):
        WordVocabulary.load(bad)
    bad.write_text(f"{PAD}\n{UNK}\nthe\nEmma\n", encoding="utf-8")
    assert len(WordVocabulary.load(bad)) == 4
    with pytest.raises(VocabularyError, match=r":4: .*'Emma'.*lower=False"):
        WordVocabulary.load(bad, lower=True)


@pytest.mark.parametrize("word, signature", [
    ("1811", NUM), ("twenty-1", NUM), ("3rd", NUM),
    ("--", PUNCT), ("&", PUNCT), ("...", PUNCT),
    ("BBC", ALLCAPS), ("U.S.", ALLCAPS),
    ("Woodhouse", CAP), ("'Tis", CAP), ("I", CAP), ("Éloïse", CAP),
    ("self-denying", HYPHEN), ("wedding-day", HYPHEN),
    ("walking", "<UNK-ing>"), ("wanted", "<UNK-ed>"), ("cheerfully", "<UNK-ly>"),
    ("shawls", "<UNK-s>"), ("distress", UNK), ("analysis", UNK), ("virus", UNK),
    ("decision", "<UNK-ion>"), ("teacher", "<UNK-er>"), ("kindest", "<UNK-est>"),
    ("natural", "<UNK-al>"), ("civility", "<UNK-ity>"), ("happy", "<UNK-y>"),
    ("heroic", "<UNK-ic>"), ("agreeable", "<UNK-able>"), ("happiness", "<UNK-ness>"),
    ("engagement", "<UNK-ment>"), ("famous", "<UNK-ous>"), ("attentive", "<UNK-ive>"),
    ("sing", UNK), ("bed", UNK), ("is", UNK), ("glad", UNK), ("café", UNK),
])
def test_unk_signature(word, signature):
    assert unk_signature(word) == signature
    assert signature in (*UNK_CLASSES, UNK)


def test_unk_classes_only_those_seen_in_training():
    sents = [["the", "the", "cat", "cat"], ["the", "cat", "walking", "Emma"]] * 1
    vocab = WordVocabulary.from_corpus(sents, min_count=2, unk_classes=True)
    # Rare training words: walking (-ing), Emma (CAP); only those classes are added,
    # in UNK_CLASSES order, before the words.
    assert vocab.tokens == (PAD, UNK, CAP, "<UNK-ing>", "cat", "the")  # 3 each: a-z
    assert vocab.stats["unk_class_tokens"] == {CAP: 1, "<UNK-ing>": 1}
    ids = vocab.encode(["Knightley", "talking", "1811", "happiness", "the"])
    assert vocab.decode(ids) == [CAP, "<UNK-ing>", UNK, UNK, "the"]
    assert "Knightley" not in vocab and "the" in vocab
    assert vocab.special_ids == frozenset({0, 1, 2, 3})

    # lower=True: lookup lower-cases, the class comes from the word as written.
    lowered = WordVocabulary.from_corpus([["Emma", "emma", "Walking", "x"]], min_count=2,
                                         unk_classes=True, lower=True)
    # Rare: "Walking" (CAP as written, although its lower-cased form would be -ing), "x".
    assert lowered.tokens == (PAD, UNK, CAP, "emma")
    assert lowered.lookup("EMMA") == lowered.lookup("emma") is not None
    assert lowered.decode(lowered.encode(["Harriet", "x"])) == [CAP, UNK]


# ---------------------------------------------------------------------------------------
# CharVocabulary (bilm-tf ids + 1)


def _chars(*ids: int, length: int = 50) -> list[int]:
    return list(ids) + [261] * (length - len(ids))


def test_char_ids_match_bilm_tf():
    cv = CharVocabulary()
    rows = cv.encode_words(["a", "Hi", "é", ""])
    assert rows.dtype == np.int32 and rows.shape == (4, 50)
    assert rows[0].tolist() == _chars(259, ord("a") + 1, 260)
    assert rows[1].tolist() == _chars(259, 73, 106, 260)
    assert rows[2].tolist() == _chars(259, 0xC3 + 1, 0xA9 + 1, 260)  # é = C3 A9 in UTF-8
    assert rows[3].tolist() == _chars(259, 260)
    assert cv.bos_chars.tolist() == _chars(259, 257, 260)
    assert cv.eos_chars.tolist() == _chars(259, 258, 260)
    assert cv.num_truncated == 0 and cv.num_encoded == 4


def test_char_ids_truncate_long_words_and_count():
    cv = CharVocabulary()
    long_word = "abcdefghij" * 6  # 60 bytes
    row = cv.encode_words([long_word])[0]
    assert row[0] == 259 and row[49] == 260
    assert row[1:49].tolist() == [b + 1 for b in long_word[:48].encode()]
    assert cv.num_truncated == 1
    cv.encode_words(["x" * 48])  # exactly fits: BOW + 48 + EOW = 50
    assert cv.num_truncated == 1
    cv.encode_words(["x" * 49, "é" * 30])
    assert cv.num_truncated == 3
    accents = cv.encode_word("é" * 30)
    assert accents[1:49].tolist() == [0xC3 + 1, 0xA9 + 1] * 24 and accents[49] == 260


def test_char_sentences_and_batches():
    cv = CharVocabulary(max_word_length=6)
    sent = cv.encode_sentence(["ab"])
    assert sent.tolist() == [[259, 257, 260, 261, 261, 261], [259, 98, 99, 260, 261, 261],
                             [259, 258, 260, 261, 261, 261]]
    batch = cv.encode_batch([["ab", "c"], ["d"]])
    assert batch.shape == (2, 4, 6)
    assert (batch[1, 3] == 0).all() and (batch[1, :3] != 0).all()
    with pytest.raises(ValueError, match="max_word_length"):
        CharVocabulary(max_word_length=2)


# ---------------------------------------------------------------------------------------
# Pretrained vectors

WORDS = ["the", ",", "Emma", "naïve", "wedding-day"]
VECS = np.array([[0.1, -0.2, 0.3], [1.0, 2.0, 3.0], [-1.5, 0.25, 1e-3],
                 [4.0, -4.0, 0.5], [0.0, 0.0, -2.5]], dtype=np.float32)


def _lines(words=WORDS, vecs=VECS, trailing: str = "") -> list[str]:
    return [w + " " + " ".join(repr(float(x)) for x in v) + trailing for w, v in
            zip(words, vecs, strict=True)]


def _write(path: pathlib.Path, lines: list[str], gz: bool = False) -> pathlib.Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture()
def vector_files(tmp_path) -> dict[str, tuple[pathlib.Path, str]]:
    header = [f"{len(WORDS)} {VECS.shape[1]}"]
    return {
        "glove": (_write(tmp_path / "glove.txt", _lines()), "glove"),
        "glove_gz": (_write(tmp_path / "glove.txt.gz", _lines(), gz=True), "auto"),
        # word2vec's C tool writes a space after every value.
        "word2vec": (_write(tmp_path / "w2v.txt", header + _lines(trailing=" ")), "word2vec"),
        "fasttext": (_write(tmp_path / "wiki.vec", header + _lines()), "fasttext"),
        "auto_header": (_write(tmp_path / "auto.vec", header + _lines()), "auto"),
        "auto_glove": (_write(tmp_path / "auto.txt", _lines()), "auto"),
    }


def test_every_format_loads_the_same_vectors(vector_files):
    for name, (path, fmt) in vector_files.items():
        loaded = load_vectors(path, fmt=fmt)
        assert isinstance(loaded, PretrainedVectors)
        words, vectors = loaded
        assert words == WORDS, name
        assert vectors.dtype == np.float32 and vectors.shape == (5, 3), name
        np.testing.assert_array_equal(vectors, VECS, err_msg=name)
        assert loaded.stats["vectors"] == 5 and loaded.stats["malformed"] == 0
    first = load_vectors(vector_files["fasttext"][0], limit=2)
    assert first.words == WORDS[:2] and first.stats["limit_reached"] == 1
    assert load_vectors(vector_files["glove"][0], limit=5).stats["limit_reached"] == 0


def test_glove_words_with_spaces_and_duplicates(tmp_path):
    lines = [*_lines(), ". . . 7.0 8.0 9.0", "non\u00a0breaking 1 2 3", "the 9 9 9"]
    loaded = load_vectors(_write(tmp_path / "glove840.txt", lines))
    assert loaded.words == [*WORDS, ". . .", "non\u00a0breaking"]
    np.testing.assert_array_equal(loaded.vectors[5], [7.0, 8.0, 9.0])
    np.testing.assert_array_equal(loaded.vectors[0], VECS[0])  # first "the" wins
    assert loaded.stats["words_with_spaces"] == 1
    assert loaded.stats["duplicates"] == 1
    assert loaded.dim == 3 and loaded.index["the"] == 0


@pytest.mark.parametrize("bad_line, message", [
    ("broken 1.0 2.0", r"2 values, expected 3"),
    ("broken 1.0 2.0 3.0 4.0", r"4 values, expected 3"),
    ("broken 1.0 abc 3.0", r"value 'abc' is not a number"),
    ("broken 1.0 nan 3.0", r"the vector holds NaN or infinity"),
])
def test_malformed_lines_name_file_and_line(tmp_path, bad_line, message):
    lines = _lines()
    lines.insert(2, bad_line)  # third line of the GloVe file
    path = _write(tmp_path / "bad.txt", lines)
    with pytest.raises(WordVectorError, match=rf"bad\.txt:3: {message}"):
        load_vectors(path)
    # In a word2vec file the same line is line 4 (after the header).
    w2v = _write(tmp_path / "bad.vec", [f"{len(lines)} 3", *lines])
    with pytest.raises(WordVectorError, match=rf"bad\.vec:4: {message}"):
        load_vectors(w2v, fmt="word2vec")
    skipped = load_vectors(path, skip_malformed=True)
    assert skipped.words == WORDS and skipped.stats["malformed"] == 1


def test_vector_file_level_errors(tmp_path):
    glove = _write(tmp_path / "g.txt", _lines())
    with pytest.raises(WordVectorError, match=r"g\.txt:1: expected a `count dim` header"):
        load_vectors(glove, fmt="word2vec")
    short = _write(tmp_path / "short.vec", ["9 3", *_lines()])
    with pytest.raises(WordVectorError, match=r"announces 9 vectors, the file holds 5"):
        load_vectors(short)
    with pytest.raises(WordVectorError, match="does not exist"):
        load_vectors(tmp_path / "nope.txt")
    with pytest.raises(WordVectorError, match="fmt="):
        load_vectors(glove, fmt="bin")
    binary = tmp_path / "w2v.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01 binary\n")
    with pytest.raises(WordVectorError, match="save_word2vec_format"):
        load_vectors(binary)


# ---------------------------------------------------------------------------------------
# Embedding matrices and Dhingra et al. (2017)


def test_embedding_matrix_rows_and_counts():
    vocab = WordVocabulary([PAD, UNK, CAP, "the", "emma", "Naïve", "sofa"])
    emb, counts = embedding_matrix(vocab, WORDS, VECS, np.random.default_rng(0))
    assert emb.shape == (7, 3) and emb.dtype == np.float32
    assert counts == {"exact": 1, "lowercase": 1, "random": 2, "special": 3}
    np.testing.assert_array_equal(emb[0], 0.0)  # <PAD>
    np.testing.assert_array_equal(emb[3], VECS[0])  # the
    # "emma" is not in the vectors ("Emma" is, but only lower-casing is tried): random.
    np.testing.assert_array_equal(emb[5], VECS[3])  # Naïve -> naïve
    for i in (1, 2, 4, 6):  # <UNK>, <UNK-CAP>, emma, sofa: random, non-zero
        assert np.abs(emb[i]).sum() > 0
        assert not any(np.array_equal(emb[i], v) for v in VECS)
    again, _ = embedding_matrix(vocab, WORDS, VECS, np.random.default_rng(0))
    np.testing.assert_array_equal(emb, again)
    with pytest.raises(ValueError, match="len\\(words\\)"):
        embedding_matrix(vocab, WORDS[:2], VECS, np.random.default_rng(0))


def test_extend_with_pretrained_dhingra(austen):
    vocab = WordVocabulary.from_corpus(austen[:1000], min_count=5)
    pre_words = ["the", "Emma", "spinster", "xylophone", "harpsichord"]
    pre_vecs = np.arange(15, dtype=np.float32).reshape(5, 3)
    emb, _ = embedding_matrix(vocab, pre_words, pre_vecs, np.random.default_rng(0))
    assert "spinster" not in vocab and "harpsichord" not in vocab and "the" in vocab
    test = ["the", "spinster", "the", "harpsichord", "qwzx", "spinster", "qwzx", "Emma"]

    new_vocab, new_emb, counts = extend_with_pretrained(vocab, emb, test, pre_words, pre_vecs)
    in_vocab = {w for w in set(test) if w in vocab}
    assert in_vocab == {"the", "Emma"}
    assert counts == {
        "in_vocab_types": 2, "in_vocab_tokens": 3,
        "pretrained_types": 2, "pretrained_tokens": 3,
        "unk_types": 1, "unk_tokens": 2,
        "random_types": 0, "random_tokens": 0,
    }
    assert len(new_vocab) == len(vocab) + 2 and len(vocab) == emb.shape[0]  # vocab untouched
    assert new_vocab.tokens[-2:] == ("spinster", "harpsichord")
    np.testing.assert_array_equal(new_emb[:len(vocab)], emb)
    np.testing.assert_array_equal(new_emb[new_vocab.lookup("spinster")], pre_vecs[2])
    np.testing.assert_array_equal(new_emb[new_vocab.lookup("harpsichord")], pre_vecs[4])
    assert new_vocab.encode(["qwzx"]) == [new_vocab.unk_id]

    rv, remb, rcounts = extend_with_pretrained(vocab, emb, test, pre_words, pre_vecs,
                                               oov="random", rng=np.random.default_rng(1))
    assert (rcounts["random_types"], rcounts["random_tokens"], rcounts["unk_types"]) == (1, 2, 0)
    assert rv.tokens[-3:] == ("spinster", "harpsichord", "qwzx")
    assert remb.shape == (len(vocab) + 3, 3) and np.abs(remb[-1]).sum() > 0
    with pytest.raises(ValueError, match="rng="):
        extend_with_pretrained(vocab, emb, test, pre_words, pre_vecs, oov="random")
    with pytest.raises(TypeError, match="flatten"):
        extend_with_pretrained(vocab, emb, [["the"]], pre_words, pre_vecs)
