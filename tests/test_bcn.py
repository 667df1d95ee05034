"""CoVe's biattentive classification network (models/bcn.py) and the word-level
classification tasks it reads (tasks/tagging.py WordClassificationData): the pooling
against numpy, padding that changes nothing, the fixed word vectors and MT-LSTM, the
shipped task's batches and bad input, and a BCN that really learns."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tasks
from models import bcn, cove
from pretrain_lm import optimizers
from tasks import glue, tagging

NOVELS = "austen_novels_words_vectors"


def _tiny(with_cove: bool = False, **overrides) -> bcn.BCNClassifier:
    cfg = bcn.BCNConfig(
        vocab_size=40, num_classes=3, word_embed_dim=8, feedforward_dim=8, hidden=8,
        maxout_dims=(8,), maxout_pool=2, dropout=0.0,
        cove=cove.CoVeConfig(vector_dim=8, hidden=6) if with_cove else None, **overrides)
    return bcn.BCNClassifier(cfg, max_length=12)


def _batch(seed: int = 0, rows: int = 3, length: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch = _tiny().example_batch(rows)
    batch["token_ids"] = rng.integers(1, 40, (rows, length)).astype(np.int32)
    batch["char_ids"] = rng.integers(1, 200, (rows, length, 50)).astype(np.int32)
    batch["label"] = rng.integers(0, 3, rows).astype(np.int32)
    batch["token_ids"][0, 5:] = 0  # a shorter sentence
    batch["char_ids"][0, 5:] = 0
    batch["token_weights"] = (batch["token_ids"] > 0).astype(np.float32)
    return batch


def _unboxed(params: dict) -> dict:
    return jax.tree.map(jnp.asarray, jax.tree.map(
        lambda x: getattr(x, "value", x), params, is_leaf=lambda x: hasattr(x, "value")))


def test_masked_pools_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7, 5)).astype(np.float32)
    scores = rng.normal(size=(4, 7)).astype(np.float32)
    lengths = np.array([7, 3, 1, 5])
    mask = np.arange(7)[None, :] < lengths[:, None]
    got = np.asarray(bcn.masked_pools(jnp.asarray(x), jnp.asarray(mask), bcn.POOLS,
                                      jnp.asarray(scores)))
    for row, n in enumerate(lengths):
        valid = x[row, :n]
        weights = np.exp(scores[row, :n] - scores[row, :n].max())
        weights /= weights.sum()
        want = np.concatenate([valid.max(0), valid.mean(0), valid.min(0), weights @ valid])
        np.testing.assert_allclose(got[row], want, rtol=1e-5, atol=1e-6)


def test_padding_changes_no_logit():
    """The same sentences padded to 12 or to 20 tokens give the same logits: the
    biattention, the biLSTMs and every pooling see only the valid words."""
    model = _tiny(char_encoder="cnn")
    batch = _batch()
    params = model.init(jax.random.PRNGKey(0), batch)
    longer = {k: (np.pad(v, [(0, 0), (0, 8)] + [(0, 0)] * (v.ndim - 2)) if v.ndim > 1 else v)
              for k, v in batch.items()}
    np.testing.assert_allclose(model.logits(params, batch), model.logits(params, longer),
                               rtol=1e-5, atol=1e-5)
    # ... and a row's logits do not depend on the other rows.
    alone = {k: v[:1] for k, v in batch.items()}
    np.testing.assert_allclose(model.logits(params, batch)[:1], model.logits(params, alone),
                               rtol=1e-5, atol=1e-5)


def test_word_vectors_and_cove_stay_fixed():
    """The BCN's ``cove`` subtree has the MT-LSTM's names and shapes (so
    PretrainedParams(subtrees=("cove",)) loads it from a CoVe translation run); it and the
    word vectors get no gradient, and ``adamw(frozen=...)`` leaves them bit-identical while
    the rest trains. The word vectors start as the task's table."""
    table = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)
    model = bcn.BCNClassifier(_tiny(with_cove=True).config, max_length=12,
                              word_embeddings=table)
    batch = _batch()
    params = _unboxed(model.init(jax.random.PRNGKey(0), batch))
    np.testing.assert_array_equal(params["word_embed"]["embedding"], table)
    mt = cove.CoVeTranslationModel(
        cove.CoVeConfig(vector_dim=8, hidden=6, target_vocab_size=9),
        word_vectors=np.zeros((10, 8), np.float32))
    mt_params = _unboxed(mt.init(jax.random.PRNGKey(1), {
        "encoder_input_tokens": np.ones((2, 5), np.int32),
        "decoder_input_tokens": np.ones((2, 4), np.int32)}))
    assert (jax.tree.map(lambda x: x.shape, params["cove"])
            == jax.tree.map(lambda x: x.shape, mt_params["cove"]))

    grads = jax.jit(jax.grad(lambda p: model.loss(p, batch, rng=None, train=True)[0]))(params)
    for fixed in ("word_embed", "cove"):
        assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads[fixed]))
    assert float(jnp.abs(grads["encoder"]["forward"]["input_kernel"]).max()) > 0
    tx = optimizers.adamw(1e-2, warmup_steps=0, total_steps=10, weight_decay=0.1,
                          frozen=("word_embed", "cove")).tx
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = jax.tree.map(lambda p, u: p + u, params, updates)
    for fixed in ("word_embed", "cove"):
        for a, b in zip(jax.tree.leaves(params[fixed]), jax.tree.leaves(new[fixed]),
                        strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(params["logits"]["kernel"], new["logits"]["kernel"])


def test_shipped_word_classification_task_batches_match_the_file():
    """Each row carries its sentence's words and label; a sentence cut to the length keeps
    its label, and the cut is counted; the partial last batch has weight-0 rows."""
    info = tasks.task_info(NOVELS)
    assert (info.head, info.label_names) == ("classification", glue.AUSTEN_NOVELS)
    assert [tasks.num_examples(NOVELS, s) for s in ("train", "validation", "test")] == [
        3000, 600, 600]
    data = tagging.word_level_data(NOVELS)
    expected = data.sentences("validation")
    rows = list(tasks.get_dataset(NOVELS, split="validation", targets_length=12,
                                  batch_size=256, seed=0, shuffle=False,
                                  num_epochs=1).as_numpy_iterator())
    assert [len(b["label"]) for b in rows] == [256, 256, 256]
    weights = np.concatenate([b["token_weights"] for b in rows])
    assert int((weights.sum(axis=1) > 0).sum()) == 600
    labels = np.concatenate([b["label"] for b in rows])[:600]
    assert labels.tolist() == [label for _, label in expected]
    first = rows[0]["token_ids"][0]
    words = [data.vocabulary.id_to_token(i) for i in first[first > 0]]
    assert words == [data.vocabulary.id_to_token(data.vocabulary.token_to_id(w))
                     for w in expected[0][0][:12]]
    stats = tasks.get_stats(NOVELS)
    long = sum(len(tokens) > 12 for tokens, _ in expected)
    assert stats["truncated_sentences"] == long > 0


def test_bad_classification_input_gives_clear_errors():
    def load(split):
        return {"train": [(["Emma", "smiled"], 0)], "validation": [(["Emma"], 7)],
                "test": [([], 0)]}[split]

    data = tagging.WordClassificationData("bad_novels", load, ("a", "b"), "unk")
    with pytest.raises(tagging.TaggingDataError, match=r"sentence 0 has label 7, outside 0\.\.1"):
        data.sentences("validation")
    with pytest.raises(tagging.TaggingDataError, match="sentence 0 is empty"):
        data.sentences("test")
    with pytest.raises(ValueError, match=r"only it, needs vectors_path"):
        tagging.WordClassificationData("bad", load, ("a", "b"))
    with pytest.raises(ValueError, match="sentence-classification task, not a tagging task"):
        tagging.tag_names(NOVELS)
    with pytest.raises(ValueError, match="tagging task; it has tags"):
        tagging.label_names("ner_austen")
    with pytest.raises(ValueError, match="not a word-level classification task"):
        _tiny().check_task(tasks.task_info("ner_austen"))
    with pytest.raises(ValueError, match=r"has 6 classes"):
        _tiny().check_task(tasks.task_info(NOVELS))
    with pytest.raises(ValueError, match=r"must equal cove\.vector_dim"):
        bcn.BCNConfig(vocab_size=5, num_classes=2, word_embed_dim=8,
                      cove=cove.CoVeConfig(vector_dim=50))
