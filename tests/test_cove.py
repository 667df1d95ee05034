"""CoVe (McCann et al. 2017; models/cove.py): the MT-LSTM encoder, its attentional decoder,
the word-level source task, and the CoVe hook of the tagger (models/taglm.py)."""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.core import meta

import tasks
from models import cove
from tasks import translation
from tasks.bilm import tokenize
from tasks.word_vectors import load_vectors

TASK = "translate_en_de_debian_l10n_cove"
VECTORS = os.path.join(os.path.dirname(__file__), "..", "data", "vectors",
                       "ppmi_svd_50d.txt.gz")
TINY = cove.CoVeConfig(vector_dim=8, hidden=6, target_vocab_size=20, target_embed_dim=5,
                       dropout=0.0)


def _unbox(tree):
    return meta.unbox(tree)


def _init(module_or_model, *args):
    """Parameters (unboxed), initialised under jit (eager init compiles op by op)."""
    return _unbox(jax.jit(module_or_model.init)(jax.random.key(0), *args))


def test_encoder_output_ignores_what_follows_the_sentence():
    enc = cove.CoVeEncoder(TINY)
    rng = np.random.default_rng(0)
    words = rng.normal(size=(2, 5, 8)).astype(np.float32)
    lengths = np.array([5, 3])
    params = _init(enc, words, np.ones((2, 5), bool))
    run = jax.jit(enc.apply)
    short = run(params, words, np.arange(5)[None] < lengths[:, None])
    # Longer padding, and garbage instead of zeros at the padded positions.
    longer = np.concatenate([words, rng.normal(size=(2, 4, 8)).astype(np.float32)], 1)
    longer[1, 3:] = rng.normal(size=(6, 8))
    out = run(params, longer, np.arange(9)[None] < lengths[:, None])
    assert out.shape == (2, 9, 2 * TINY.hidden)
    np.testing.assert_allclose(out[0, :5], short[0], atol=1e-6)
    np.testing.assert_allclose(out[1, :3], short[1, :3], atol=1e-6)
    assert np.all(np.asarray(out[1, 3:]) == 0.0)


def test_encoder_is_bidirectional():
    """The top layer at every position reads the whole sentence; in one layer the forward
    half reads only the words up to the position and the backward half those after it."""
    words = np.random.default_rng(1).normal(size=(1, 6, 8)).astype(np.float32)
    mask = np.ones((1, 6), bool)
    later, earlier = words.copy(), words.copy()
    later[0, 4] += 1.0
    earlier[0, 1] += 1.0
    h = TINY.hidden
    for num_layers in (2, 1):
        enc = cove.CoVeEncoder(dataclasses.replace(TINY, num_encoder_layers=num_layers))
        params = _init(enc, words, mask)
        run = jax.jit(enc.apply)
        base, out_later, out_earlier = (np.asarray(run(params, x, mask))
                                        for x in (words, later, earlier))
        assert np.abs(out_later[0, 1] - base[0, 1]).max() > 1e-4, num_layers
        assert np.abs(out_earlier[0, 4] - base[0, 4]).max() > 1e-4, num_layers
        if num_layers == 1:
            np.testing.assert_allclose(out_later[0, :4, :h], base[0, :4, :h], atol=1e-6)
            np.testing.assert_allclose(out_earlier[0, 2:, h:], base[0, 2:, h:], atol=1e-6)
            assert np.abs(out_later[0, 1, h:] - base[0, 1, h:]).max() > 1e-4
            assert np.abs(out_earlier[0, 4, :h] - base[0, 4, :h]).max() > 1e-4


@functools.cache
def _tiny_model(input_feeding: bool) -> tuple[cove.CoVeTranslationModel, dict]:
    table = np.random.default_rng(2).normal(size=(30, 8)).astype(np.float32)
    table[:2] = 0.0
    cfg = dataclasses.replace(TINY, input_feeding=input_feeding)
    model = cove.CoVeTranslationModel(cfg, 7, 6, word_vectors=table)
    return model, _init(model, model.example_batch(2))


@pytest.mark.parametrize("input_feeding", [False, True])
def test_decoder_never_sees_future_targets(input_feeding):
    model, params = _tiny_model(input_feeding)
    apply = jax.jit(model.apply)
    rng = np.random.default_rng(3)
    batch = {"encoder_input_tokens": np.array([[5, 9, 2, 7, 0, 0, 0], [3, 4, 5, 6, 7, 8, 1]]),
             "decoder_input_tokens": rng.integers(1, 20, size=(2, 6))}
    batch["decoder_input_tokens"][:, 0] = 0
    base = np.asarray(apply(params, batch))
    changed = {**batch, "decoder_input_tokens": batch["decoder_input_tokens"].copy()}
    changed["decoder_input_tokens"][:, 3] = (changed["decoder_input_tokens"][:, 3] % 19) + 1
    out = np.asarray(apply(params, changed))
    np.testing.assert_allclose(out[:, :3], base[:, :3], atol=1e-6)
    assert np.abs(out[:, 3] - base[:, 3]).max() > 1e-5
    # Every position reads the source (attention).
    other = {**batch, "encoder_input_tokens": batch["encoder_input_tokens"].copy()}
    other["encoder_input_tokens"][0, 1] = 12
    assert np.abs(np.asarray(apply(params, other))[0] - base[0]).max(axis=-1).min() > 1e-6


def test_word_vectors_are_a_constant_not_a_parameter():
    model, params = _tiny_model(False)
    assert set(params) == {"cove", "decoder"}
    assert all(x.shape != model.word_vectors.shape for x in jax.tree.leaves(params))
    # CoVe alone, as a downstream model builds it, has exactly the `cove` subtree.
    standalone = jax.eval_shape(cove.CoVeEncoder(model.config).init, jax.random.key(1),
                                jnp.zeros((1, 3, 8)), jnp.ones((1, 3), bool))["params"]
    assert jax.tree.map(jnp.shape, _unbox(standalone)) == jax.tree.map(jnp.shape,
                                                                       params["cove"])
    with pytest.raises(ValueError, match="vector_dim"):
        cove.CoVeTranslationModel(model.config, word_vectors=np.zeros((30, 5))).vector_table()


def test_task_source_ids_are_the_vector_rows():
    ds = tasks.get_dataset(TASK, split="validation", inputs_length=64, targets_length=64,
                           batch_size=8, seed=0, shuffle=False, num_epochs=1)
    batch = next(ds.as_numpy_iterator())
    sources, targets = translation.read_parallel_tsv(
        os.path.join(os.path.dirname(__file__), "..", "data", "parallel", "en-de",
                     "validation.tsv"), "en", "de")
    vectors = load_vectors(VECTORS)
    table = translation.source_word_vectors(TASK)
    assert table.shape == (len(vectors) + 2, 50)
    assert np.all(table[:2] == 0.0)
    np.testing.assert_array_equal(table[2:], vectors.vectors)
    seen_unknown = False
    for row, sentence in zip(batch["encoder_input_tokens"], sources[:8], strict=True):
        words = [w.lower() for w in tokenize(sentence)]
        ids = row[row > 0]
        assert len(ids) == len(words)
        for i, w in zip(ids, words, strict=True):
            if w in vectors.index:
                assert i == vectors.index[w] + 2
                np.testing.assert_array_equal(table[i], vectors.vectors[vectors.index[w]])
            else:
                assert i == 1
                seen_unknown = True
    assert seen_unknown
    # The targets are the piece task's: its sentencepiece ids + EOS.
    pieces = tasks.get_vocabulary("translate_en_de_debian_l10n")
    assert tasks.get_vocabulary(TASK) == pieces
    for row, sentence in zip(batch["decoder_target_tokens"], targets[:8], strict=True):
        assert list(row[row > 0]) == [*pieces.encode(sentence), pieces.eos_id]
    assert tasks.get_stats(TASK)["examples"] >= 8  # lengths are counted (count_truncation)
    coverage = translation.source_coverage(TASK, "validation")
    assert coverage["tokens"] == 10050 and 0.2 < coverage["unknown_rate"] < 0.3


def test_model_refuses_a_task_without_a_word_source():
    with pytest.raises(ValueError, match="source_word_vectors"):
        cove.CoVeTranslationModel(cove.CoVeConfig()).vector_table()
    model = cove.CoVeTranslationModel(cove.CoVeConfig(),
                                      word_vectors=translation.source_word_vectors(TASK))
    model.check_task(tasks.task_info(TASK))
    with pytest.raises(ValueError, match="translate_en_de_debian_l10n_cove"):
        model.check_task(tasks.task_info("translate_en_de_debian_l10n"))


def _batches(split: str, batch_size: int, length: int, num_epochs: int | None = None):
    return tasks.get_dataset(TASK, split=split, inputs_length=length, targets_length=length,
                             batch_size=batch_size, seed=0, shuffle=split == "train",
                             num_epochs=num_epochs).as_numpy_iterator()


def unigram_perplexity(split: str = "validation", length: int = 48) -> float:
    """Held-out perplexity of the train split's target-piece unigram distribution (add-one
    smoothed over the 4,000 pieces), over the same (cut) targets and weights as the eval."""
    counts: collections.Counter[int] = collections.Counter()
    for b in _batches("train", 256, length, num_epochs=1):
        counts.update(b["decoder_target_tokens"][b["decoder_loss_weights"] > 0].tolist())
    size = tasks.get_vocabulary(TASK).vocab_size
    total = sum(counts.values()) + size
    nll = n = 0.0
    for b in _batches(split, 256, length, num_epochs=1):
        for t in b["decoder_target_tokens"][b["decoder_loss_weights"] > 0].tolist():
            nll -= math.log((counts[t] + 1) / total)
            n += 1
    return math.exp(nll / n)


def _train(model: cove.CoVeTranslationModel, steps: int, batch_size: int, length: int,
           learning_rate: float):
    params = _init(model, model.example_batch(batch_size))
    opt = optax.adam(learning_rate)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch, rng):
        (loss, _), grads = jax.value_and_grad(
            lambda p: model.loss(p, batch, rng=rng, train=True), has_aux=True)(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    data = _batches("train", batch_size, length)
    for i in range(steps):
        params, state, loss = step(params, state, next(data), jax.random.key(i))
        losses.append(float(loss))
    return params, losses


def test_a_tiny_model_learns_the_shipped_corpus():
    model = cove.CoVeTranslationModel(
        cove.CoVeConfig(hidden=16, target_vocab_size=4000, target_embed_dim=16,
                        input_feeding=False, dropout=0.0), 24, 24,
        word_vectors=translation.source_word_vectors(TASK))
    _, losses = _train(model, 30, 16, 24, 1e-2)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses


@pytest.mark.slow  # ~3 min on 2 busy CPU cores
def test_held_out_perplexity_is_well_below_unigram():
    model = cove.CoVeTranslationModel(
        cove.CoVeConfig(hidden=64, target_embed_dim=64, input_feeding=False, dropout=0.1),
        32, 32, word_vectors=translation.source_word_vectors(TASK))
    params, _ = _train(model, 400, 32, 32, 1e-2)
    evaluate = jax.jit(lambda p, b: model.loss(p, b, rng=None, train=False)[1]["nll"])
    nll = count = 0.0
    for b in _batches("validation", 64, 32, num_epochs=1):
        total, n = evaluate(params, b)
        nll, count = nll + float(total), count + float(n)
    assert math.exp(nll / count) < 0.5 * unigram_perplexity(length=32)


def test_tagger_reads_cove_from_an_mt_run():
    """With ``TaggerConfig.cove`` the tagger's ``cove`` parameters have the MT model's
    encoder names and shapes (so PretrainedParams(subtrees=("cove",)) loads them), change
    the emissions, and get no gradient."""
    from models import taglm
    from tasks.tagging import AUSTEN_NER_TAGS

    cfg = dataclasses.replace(TINY, vector_dim=8)
    tagger = taglm.TaggerModel(
        taglm.TaggerConfig(vocab_size=40, num_tags=len(AUSTEN_NER_TAGS), word_embed_dim=8,
                           char_encoder="none", hidden=8, cove=cfg),
        AUSTEN_NER_TAGS, max_length=7)
    rng = np.random.default_rng(4)
    batch = tagger.example_batch(2)
    batch["token_ids"] = rng.integers(1, 40, batch["token_ids"].shape).astype(np.int32)
    batch["token_ids"][0, 5:] = 0
    params = _init(tagger, batch)
    mt = cove.CoVeTranslationModel(cfg, word_vectors=np.zeros((30, 8), np.float32))
    mt_params = jax.eval_shape(mt.init, jax.random.key(1), mt.example_batch(1))
    assert jax.tree.map(jnp.shape, params["cove"]) == jax.tree.map(
        jnp.shape, _unbox(mt_params)["cove"])

    emit = jax.jit(lambda p: tagger._emissions(p, batch, None, False))
    perturbed = {**params, "cove": jax.tree.map(lambda x: x * 1.5, params["cove"])}
    assert not np.allclose(emit(params), emit(perturbed), atol=1e-6)
    grads = jax.jit(jax.grad(lambda p: tagger.loss(p, batch, rng=jax.random.key(2),
                                                   train=True)[0]))(params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads["cove"]))
    with pytest.raises(ValueError, match=r"cove\.vector_dim"):
        taglm.TaggerConfig(vocab_size=40, num_tags=7, word_embed_dim=50, cove=cfg)
