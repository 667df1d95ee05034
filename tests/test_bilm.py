"""The word-level biLM task (tasks/bilm.py) and a tiny ELMo trained on it end to end."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tasks
from models.characters import CharVocabulary
from tasks import bilm
from tasks.word_vocab import WordVocabulary

TASK = "bilm_austen_words"
MAX_LENGTH = 32


def _vocab() -> WordVocabulary:
    return tasks.get_vocabulary(TASK).word_vocab


def _corpus() -> str:
    from tasks import registry

    return registry.AUSTEN_CORPUS


def _first_batch(split: str, batch_size: int = 8, max_length: int = MAX_LENGTH) -> dict:
    ds = tasks.get_dataset(TASK, split=split, targets_length=max_length,
                           batch_size=batch_size, seed=0, shuffle=False, num_epochs=1)
    return next(ds.as_numpy_iterator())


def test_tokenizer_splits_punctuation_and_keeps_case():
    assert bilm.tokenize("Mr. Woodhouse's self-denying friend--12!") == [
        "Mr", ".", "Woodhouse's", "self", "-", "denying", "friend", "-", "-", "12", "!"]


def test_shipped_vocabulary_is_the_train_split_min_count_3_one():
    from tasks import registry

    vocab = _vocab()
    assert os.path.exists(registry.AUSTEN_WORDS_VOCAB)
    assert tasks.get_vocabulary(TASK).vocab_size == len(vocab) == 7944
    assert bilm.BOS in vocab and bilm.EOS in vocab
    assert bilm.build_vocabulary(_corpus()).tokens == vocab.tokens
    assert tasks.vocabulary_record(TASK)["sha256"] is not None


def test_a_vocabulary_built_on_first_use_is_built_once_and_must_have_its_size():
    built = []

    def build() -> WordVocabulary:
        built.append(1)
        return WordVocabulary.from_corpus([[bilm.BOS, "a", "b", bilm.EOS]], min_count=1)

    lazy = bilm.WordIdVocabulary(build, 6)  # <PAD>, <UNK> and 4 words
    assert lazy.vocab_size == 6 and not built
    assert lazy.tokens[2:] == lazy.word_vocab.tokens[2:] and len(built) == 1
    assert lazy == bilm.WordIdVocabulary(lazy._build, 6) != bilm.WordIdVocabulary(build, 7)
    with pytest.raises(ValueError, match="has 6 tokens, not the 7 its task declares"):
        _ = bilm.WordIdVocabulary(build, 7).word_vocab
    with pytest.raises(ValueError, match="needs its size"):
        bilm.WordIdVocabulary(build)


def test_examples_decode_to_the_validation_sentences():
    batch = _first_batch("validation")
    assert batch["token_ids"].shape == (8, MAX_LENGTH)
    assert batch["char_ids"].shape == (8, MAX_LENGTH, 50)
    assert batch["token_weights"].dtype == np.float32
    vocab, chars = _vocab(), CharVocabulary()
    sentences = bilm.split_sentences(_corpus(), "validation")[:8]
    for row, words in enumerate(sentences):
        words = [bilm.BOS, *words, bilm.EOS][:MAX_LENGTH]
        n = len(words)
        decoded = vocab.decode(batch["token_ids"][row, :n])
        assert [w if w in vocab else "<UNK>" for w in words] == decoded
        np.testing.assert_array_equal(batch["token_ids"][row, n:], 0)
        np.testing.assert_array_equal(batch["token_weights"][row], np.arange(MAX_LENGTH) < n)
        want = np.stack([chars.bos_chars, *(chars.encode_word(w) for w in words[1:])])
        if words[-1] == bilm.EOS:
            want[-1] = chars.eos_chars
        np.testing.assert_array_equal(batch["char_ids"][row, :n], want)
        np.testing.assert_array_equal(batch["char_ids"][row, n:], 0)


def test_truncation_and_last_batch_padding_are_counted():
    from tasks import preprocessors as pp

    pp.STATS.reset(TASK)
    sentences = bilm.split_sentences(_corpus(), "validation")
    lengths = np.array([len(s) + 2 for s in sentences])
    ds = tasks.get_dataset(TASK, split="validation", targets_length=10, batch_size=64,
                           seed=0, shuffle=False, num_epochs=1)
    rows = sum(float(b["token_weights"][:, 0].sum()) for b in ds.as_numpy_iterator())
    stats = tasks.get_stats(TASK)
    assert rows == len(sentences) == stats["sentences"]
    assert stats["tokens"] == lengths.sum()
    assert stats["truncated_sentences"] == (lengths > 10).sum() > 0
    assert stats["truncated_tokens"] == np.maximum(lengths - 10, 0).sum()
    assert stats["examples_padding_last_batch"] == (-len(sentences)) % 64


def _targets(split: str) -> np.ndarray:
    """Both directions' target word ids of the (cut) sentences, as the model scores them."""
    vocab = _vocab()
    out = []
    for s in bilm.split_sentences(_corpus(), split):
        ids = vocab.encode([bilm.BOS, *s, bilm.EOS])[:MAX_LENGTH]
        out += ids[1:] + ids[:-1]
    return np.array(out)


@pytest.mark.slow  # ~130 s on 2 CPU cores (100 steps: ~110 s, ratio 0.79 only)
def test_tiny_elmo_learns_from_the_austen_sentences(tmp_path):
    """The demo gin file, 150 steps of 32 sentences: held-out perplexity (both directions,
    the whole validation split) well below an add-one unigram model of the training words."""
    import gin

    from pretrain_lm import gin_utils, trainer

    gin.clear_config()
    try:
        gin_utils.parse(["elmo/demo_bilm_tiny_austen.gin"], [
            f"MODEL_DIR = '{tmp_path}'", "TRAIN_STEPS = 150",
            "trainer.train.eval_every = 150", "trainer.train.checkpoint_every = 150",
            "trainer.train.log_every = 50", "trainer.train.progress_bar = False",
            "partitioning.Partitioner.num_devices = 1"])
        results = gin.get_configurable(trainer.train)()
    finally:
        gin.clear_config()
    size = tasks.get_vocabulary(TASK).vocab_size
    counts = np.bincount(_targets("train"), minlength=size) + 1.0
    held_out = _targets("validation")
    unigram = float(np.exp(-np.log(counts[held_out] / counts.sum()).mean()))
    print(f"\nheld-out perplexity: unigram {unigram:.1f}, tiny ELMo "
          f"{results['eval/perplexity']:.1f}")
    assert results["eval/perplexity"] < 0.8 * unigram
