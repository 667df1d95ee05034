"""Contextual word vectors out (``python -m pretrain_lm.infer --mode=vectors``).

The vectors written for a sentence equal the model's own hidden states for that
sentence, computed here without the extraction code: BERT's encoder layers at each
word's first wordpiece (or the mean of its pieces) after ``[CLS]``, and ELMo's biLM
layers between the ``<S>`` / ``</S>`` positions; words past the input length are counted.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tasks
from models import bert, elmo
from models.characters import CharVocabulary
from pretrain_lm import inference

TASK = "bert_pretrain_austen_uncased"
SENTENCES = [["It", "is", "a", "truth", "universally", "acknowledged"],
             ["Mr.", "Darcy's", "unexpectedly", "disagreeable", "countenance"], []]


@pytest.fixture(scope="module")
def tiny_bert():
    config = bert.BertConfig(vocab_size=7433, hidden_size=32, num_layers=2, num_heads=2,
                             intermediate_size=64, max_position_embeddings=64)
    model = bert.BertPretrainingModel(config, max_seq_length=24)
    params = model.init(jax.random.key(0), model.example_batch(2))
    return model, jax.tree.map(np.asarray, bert_unbox(params))


def bert_unbox(params):
    return jax.tree.map(lambda x: x.value if hasattr(x, "value") else x, params,
                        is_leaf=lambda x: hasattr(x, "value"))


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_bert_vectors_are_the_encoder_layers_at_each_word(tiny_bert, tmp_path, pooling):
    model, params = tiny_bert
    vocab = tasks.get_vocabulary(TASK)
    vectors, counts = inference.contextual_vectors(model, params, TASK, SENTENCES,
                                               pooling=pooling, batch_size=2, progress=False)
    assert counts == {"sentences": 3, "words": 11, "words_truncated": 0}
    path = str(tmp_path / "vectors.npz")
    inference.write_vectors(path, vectors)
    stored = np.load(path)
    names = ["embeddings", "layer_1", "layer_2"]
    assert list(stored["layer_names"]) == names
    for i, words in enumerate(SENTENCES):
        pieces = [[int(t) for t in vocab.encode(w)] for w in words]
        ids = [vocab.cls_id, *[p for word in pieces for p in word], vocab.sep_id]
        hidden, _ = bert.BertEncoder(model.config).apply(
            {"params": params["bert"]}, jnp.asarray([ids]), jnp.zeros((1, len(ids)), jnp.int32),
            jnp.ones((1, len(ids)), jnp.int32), deterministic=True, return_all_layers=True)
        starts = np.cumsum([1] + [len(p) for p in pieces])
        for name, states in zip(names, hidden, strict=True):
            states = np.asarray(states[0])
            expected = np.stack([states[a] if pooling == "first" else states[a:b].mean(0)
                                 for a, b in itertools.pairwise(starts)]
                                ) if words else np.zeros((0, 32))
            got = stored[f"{name}/{i}"]
            assert got.shape == (len(words), 32)
            np.testing.assert_allclose(got, expected, atol=2e-5)
    # Some word has several pieces: the mean differs from the first piece there.
    assert any(len(vocab.encode(w)) > 1 for words in SENTENCES for w in words)


def test_bert_words_past_the_input_length_are_cut_and_counted(tiny_bert):
    model, params = tiny_bert
    long = ["the"] * 30
    vectors, counts = inference.contextual_vectors(model, params, TASK, [long], progress=False,
                                               layers=["layer_2"])
    assert counts["words_truncated"] == 30 - 22  # 24 positions, [CLS] and [SEP] kept
    assert list(vectors[0]) == ["layer_2"] and vectors[0]["layer_2"].shape == (22, 32)
    with pytest.raises(ValueError, match="layer_9"):
        inference.contextual_vectors(model, params, TASK, [long], progress=False,
                                 layers=["layer_9"])


def test_elmo_vectors_are_the_bilm_layers_between_the_boundaries():
    config = elmo.elmo_tiny(vocab_size=50, filters=((1, 8), (2, 8)), projection_dim=8,
                            cell_size=16)
    model = elmo.ELMoLanguageModel(config, max_length=12)
    params = bert_unbox(model.init(jax.random.key(1), model.example_batch(2)))
    vectors, counts = inference.contextual_vectors(model, params, "unused", SENTENCES,
                                               batch_size=2, progress=False)
    assert counts["words_truncated"] == 0
    chars = CharVocabulary(config.max_characters_per_token)
    for i, words in enumerate(SENTENCES[:2]):
        wrapped = chars.encode_batch([words], add_bos_eos=True)
        out = elmo.BiLM(config).apply({"params": params["bilm"]}, jnp.asarray(wrapped))
        assert list(vectors[i]) == ["layer_0", "layer_1", "layer_2"]
        for layer, states in enumerate(out.activations):
            np.testing.assert_allclose(vectors[i][f"layer_{layer}"],
                                       np.asarray(states[0, 1:1 + len(words)]), atol=2e-5)
    assert vectors[2]["layer_1"].shape == (0, 16)
