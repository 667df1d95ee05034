"""ELMo (models/elmo.py): the biLM's directions and padding, the character CNN, the scalar
mix, the LM loss and its training, the sampled softmax and the parameter counts."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.core import meta

from models import characters, elmo
from tasks import word_vocab

TINY = elmo.ELMoConfig(char_embed_dim=4, filters=((1, 4), (2, 8)), num_highway=2,
                       projection_dim=8, num_layers=2, cell_size=16, vocab_size=30)
WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "big", "red", "hat",
         "with", "one", "old", "man", "who", "saw", "her", "tall", "green", "tree", "by"]
VOCAB = word_vocab.WordVocabulary(["<PAD>", "<UNK>", "<S>", "</S>", *WORDS])
CHARS = characters.CharVocabulary()
SENTENCES = [["the", "cat", "sat", "on", "a", "red", "mat"],
             ["one", "old", "man", "saw", "her"]]


def _batch(sentences, pad_to: int | None = None) -> dict:
    char_ids = CHARS.encode_batch(sentences)
    token_ids = np.zeros(char_ids.shape[:2], np.int32)
    for i, s in enumerate(sentences):
        token_ids[i, :len(s) + 2] = VOCAB.encode(["<S>", *s, "</S>"])
    if pad_to is not None:
        extra = pad_to - char_ids.shape[1]
        char_ids = np.pad(char_ids, ((0, 0), (0, extra), (0, 0)))
        token_ids = np.pad(token_ids, ((0, 0), (0, extra)))
    return {"char_ids": char_ids, "token_ids": token_ids,
            "token_weights": (token_ids > 0).astype(np.float32)}


@pytest.fixture(scope="module")
def lm():
    """``(model, params, jitted evaluation loss(params, batch))`` of the tiny LM."""
    model = elmo.ELMoLanguageModel(TINY, max_length=9)
    # An "rbg" key: the same initialisers, half the compile time of threefry on CPU.
    init = jax.jit(model.init)
    params = meta.unbox(init(jax.random.key(7, impl="rbg"), model.example_batch(2)))
    evaluate = jax.jit(lambda p, b: model.loss(p, b, rng=None, train=False))
    return model, params, evaluate


@pytest.fixture(scope="module")
def bilm(lm):
    """``(params, jitted apply(params, char_ids))`` of the tiny biLM (the LM's)."""
    network = elmo.BiLM(TINY)
    return lm[1]["bilm"], jax.jit(lambda p, c: network.apply({"params": p}, c))


def test_config_matches_the_char_vocabulary_and_checks_its_sizes():
    assert elmo.ELMoConfig().char_vocab_size == characters.NUM_CHAR_IDS == 262
    assert elmo.ELMoConfig().max_characters_per_token == characters.MAX_WORD_LENGTH
    assert elmo.ELMoConfig().num_filters == 2048
    with pytest.raises(ValueError, match="projects down"):
        dataclasses.replace(TINY, cell_size=4)
    with pytest.raises(ValueError, match="does not fit"):
        dataclasses.replace(TINY, max_characters_per_token=1)
    with pytest.raises(ValueError, match="cnn_activation"):
        dataclasses.replace(TINY, cnn_activation="gelu")


def test_forward_never_sees_the_future_nor_backward_the_past(bilm):
    params, apply = bilm
    batch = _batch(SENTENCES)["char_ids"]
    k = 3
    changed = batch.copy()
    changed[:, k] = CHARS.encode_word("zebra")
    a, b = apply(params, batch), apply(params, changed)
    dim = TINY.projection_dim
    lengths = [len(s) + 2 for s in SENTENCES]
    pairs = [(a.forward, b.forward, a.backward, b.backward)] + [
        (x[..., :dim], y[..., :dim], x[..., dim:], y[..., dim:])
        for x, y in zip(a.activations[1:], b.activations[1:], strict=True)]
    for fa, fb, ba, bb in pairs:
        fa, fb, ba, bb = map(np.asarray, (fa, fb, ba, bb))
        np.testing.assert_array_equal(fa[:, :k], fb[:, :k])
        np.testing.assert_array_equal(ba[:, k + 1:], bb[:, k + 1:])
        for row, n in enumerate(lengths):
            for t in range(k, n):
                assert not np.array_equal(fa[row, t], fb[row, t]), (row, t)
            for t in range(k + 1):
                assert not np.array_equal(ba[row, t], bb[row, t]), (row, t)
    token_a, token_b = np.asarray(a.activations[0]), np.asarray(b.activations[0])
    np.testing.assert_array_equal(np.delete(token_a, k, 1), np.delete(token_b, k, 1))
    assert not np.array_equal(token_a[:, k], token_b[:, k])


def test_padding_changes_no_valid_output(bilm):
    params, apply = bilm
    batch = _batch(SENTENCES)
    time = batch["char_ids"].shape[1]
    short = len(SENTENCES[1]) + 2
    out = apply(params, batch["char_ids"])
    padded = apply(params, _batch(SENTENCES, pad_to=time + 4)["char_ids"])
    np.testing.assert_array_equal(out.mask, padded.mask[:, :time])
    assert not np.asarray(padded.mask[:, time:]).any()
    assert np.asarray(out.mask).sum(1).tolist() == [time, short]
    for x, y in zip(out.activations, padded.activations, strict=True):
        assert x.shape == (2, time, 2 * TINY.projection_dim)
        np.testing.assert_allclose(y[:, :time], x, atol=1e-6)
        np.testing.assert_array_equal(y[:, time:], 0.0)
        np.testing.assert_array_equal(x[1, short:], 0.0)  # the short row's padding


def test_char_cnn_matches_numpy_and_gives_zero_at_padding_tokens(bilm):
    params = bilm[0]["char_cnn"]
    char_ids = _batch(SENTENCES)["char_ids"]
    out = np.asarray(jax.jit(elmo.CharCNN(TINY).apply)({"params": params}, char_ids))
    assert out.shape == (2, char_ids.shape[1], TINY.projection_dim)
    np.testing.assert_array_equal(out[1, len(SENTENCES[1]) + 2:], 0.0)
    assert np.abs(out[:, :len(SENTENCES[1]) + 2]).min(-1).max() > 0
    p = jax.tree.map(np.asarray, params)
    x = p["char_embed"][char_ids[0, 1]]  # "the": [50, char_embed_dim]
    features = []
    for i, (width, _) in enumerate(TINY.filters):
        kernel = p[f"cnn_{i}_kernel"]
        conv = np.stack([np.einsum("we,wen->n", x[s:s + width], kernel)
                         for s in range(50 - width + 1)]) + p[f"cnn_{i}_bias"]
        features.append(np.maximum(conv.max(0), 0.0))  # max over positions, then relu
    h = np.concatenate(features)
    for i in range(TINY.num_highway):
        hw = p[f"highway_{i}"]
        np.testing.assert_array_equal(hw["gate_bias"], -2.0)  # bilm-tf's b_carry
        gate = 1 / (1 + np.exp(-(h @ hw["gate_kernel"] + hw["gate_bias"])))
        h = (gate * np.maximum(h @ hw["transform_kernel"] + hw["transform_bias"], 0)
             + (1 - gate) * h)
    want = h @ p["projection_kernel"] + p["projection_bias"]
    np.testing.assert_allclose(out[0, 1], want, rtol=1e-5, atol=1e-6)


def test_highway_with_a_closed_gate_is_the_identity(bilm):
    params = bilm[0]["char_cnn"]["highway_0"]
    x = jax.random.normal(jax.random.key(2), (5, TINY.num_filters))
    apply = jax.jit(elmo.Highway().apply)
    closed = dict(params, gate_bias=jnp.full((TINY.num_filters,), -1e9))
    np.testing.assert_array_equal(apply({"params": closed}, x), x)
    opened = dict(params, gate_bias=jnp.full((TINY.num_filters,), 1e9))
    np.testing.assert_allclose(
        apply({"params": opened}, x),
        jax.nn.relu(x @ params["transform_kernel"] + params["transform_bias"]), atol=1e-6)


def test_scalar_mix_one_hot_weights_and_layer_norm():
    keys = jax.random.split(jax.random.key(4), 3)
    tensors = [jax.random.normal(k, (2, 5, 6)) * (j + 1) + j for j, k in enumerate(keys)]
    mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    noisy = [jnp.where(mask[..., None], t, 1e3) for t in tensors]  # junk at padding
    mix, normed_mix = elmo.ScalarMix(3), elmo.ScalarMix(3, do_layer_norm=True)
    params = mix.init(jax.random.key(5), tensors)["params"]
    weights, gamma = elmo.scalar_mix_weights(params)
    np.testing.assert_allclose(weights, [1 / 3] * 3, rtol=1e-6)
    assert gamma == 1.0

    @jax.jit
    def run(params):
        v = {"params": params}
        return (mix.apply(v, method=elmo.ScalarMix.normalized_weights), mix.apply(v, tensors),
                normed_mix.apply(v, tensors, mask), normed_mix.apply(v, noisy, mask))

    w, mixed, _, _ = run({"scalar_weights": jnp.array([0.3, -1.2, 2.0]),
                          "gamma": jnp.array(0.5)})
    np.testing.assert_allclose(float(jnp.sum(w)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mixed, 0.5 * sum(w[j] * tensors[j] for j in range(3)),
                               atol=1e-5)
    valid = np.asarray(mask)
    for j in range(3):
        one_hot = {"scalar_weights": jnp.where(jnp.arange(3) == j, 0.0, -1e9),
                   "gamma": jnp.array(1.7)}
        w, mixed, normed, normed_noisy = map(np.asarray, run(one_hot))
        np.testing.assert_array_equal(w, np.arange(3) == j)
        np.testing.assert_allclose(mixed, 1.7 * tensors[j], atol=1e-6)
        # Layer norm: one mean / variance over the unmasked entries; padding ignored.
        np.testing.assert_allclose(normed[valid].mean() / 1.7, 0.0, atol=1e-5)
        np.testing.assert_allclose(normed[valid].var() / 1.7**2, 1.0, rtol=1e-4)
        np.testing.assert_array_equal(normed[~valid], 0.0)
        np.testing.assert_allclose(normed_noisy, normed, atol=1e-5)


def test_elmo_representations_are_frozen_layers(bilm):
    params, apply = bilm
    char_ids = _batch(SENTENCES)["char_ids"]
    mix = elmo.ScalarMix(TINY.num_layers + 1)
    mix_params = {"scalar_weights": jnp.array([0.1, 0.2, 0.3]), "gamma": jnp.array(1.0)}

    def downstream(bilm_params, mix_params):  # the LM's params hold the biLM's as "bilm"
        layers, m = elmo.elmo_representations({"bilm": bilm_params}, char_ids, TINY)
        return jnp.sum(mix.apply({"params": mix_params}, layers, m) ** 2), (layers, m)

    grad = jax.jit(jax.grad(downstream, argnums=(0, 1), has_aux=True))
    (g_bilm, g_mix), (acts, mask) = grad(params, mix_params)
    want = apply(params, char_ids)
    assert len(acts) == TINY.num_layers + 1
    for x, y in zip(acts, want.activations, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)
    np.testing.assert_array_equal(mask, want.mask)
    assert all(not np.asarray(g).any() for g in jax.tree.leaves(g_bilm))  # frozen
    assert np.abs(np.asarray(g_mix["scalar_weights"])).sum() > 0
    # Without <S> and </S>: the words only.
    words, word_mask = elmo.remove_sentence_boundaries(acts, mask)
    assert np.asarray(word_mask).sum(1).tolist() == [len(s) for s in SENTENCES]
    short = len(SENTENCES[1])
    np.testing.assert_array_equal(words[2][1, :short], acts[2][1, 1:short + 1])
    np.testing.assert_array_equal(words[2][1, short:], 0.0)
    np.testing.assert_array_equal(words[0][0], acts[0][0, 1:-1])


def test_lm_loss_starts_near_log_vocab_and_trains(lm):
    model, params, evaluate = lm
    assert model.input_vocab_size == 30
    assert model.example_batch(2)["char_ids"].shape == (2, 9, 50)
    assert params["softmax_kernel"].shape == (30, TINY.projection_dim)
    batch = _batch(SENTENCES)
    loss, metrics = evaluate(params, batch)
    assert np.isfinite(loss)
    assert abs(float(loss) - np.log(30)) < 0.25, float(loss)
    # Both directions score every word plus </S> (forward) or <S> (backward).
    targets = sum(len(s) + 1 for s in SENTENCES)
    assert float(metrics["forward_nll"][1]) == float(metrics["backward_nll"][1]) == targets
    assert float(metrics["nll"][1]) == 2 * targets
    np.testing.assert_allclose(
        float(loss), 0.5 * sum(float(metrics[k][0]) / targets
                               for k in ("forward_nll", "backward_nll")), rtol=1e-6)
    averages = {k: float(v[0] / v[1]) for k, v in metrics.items()}
    derived = model.derived_metrics(averages)
    np.testing.assert_allclose(derived["perplexity"], np.exp(averages["nll"]), rtol=1e-6)
    assert set(derived) == {"perplexity", "forward_perplexity", "backward_perplexity"}
    # Padding positions appended to the batch change neither the loss nor the counts.
    padded_loss, padded_metrics = evaluate(params, _batch(SENTENCES, pad_to=13))
    np.testing.assert_allclose(padded_loss, loss, rtol=1e-6)
    assert float(padded_metrics["nll"][1]) == 2 * targets

    tx = optax.adam(3e-2)

    @jax.jit
    def step(params, opt_state, rng):
        grads = jax.grad(lambda p: model.loss(p, batch, rng=rng, train=True)[0])(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for i in range(30):
        params, opt_state = step(params, opt_state, jax.random.key(100 + i))
    trained, _ = evaluate(params, batch)
    print(f"ELMo tiny LM: loss {float(loss):.3f} (ln 30 = {np.log(30):.3f}) -> "
          f"{float(trained):.3f} after 30 Adam steps")
    assert float(trained) < 0.5 * float(loss)


def test_sampled_softmax_matches_numpy_and_trains_the_full_softmax(lm):
    vocab = 30
    ids = np.asarray(elmo.log_uniform_samples(jax.random.key(8), 200_000, vocab))
    probs = np.exp(np.asarray(elmo.log_uniform_log_prob(jnp.arange(vocab), vocab)))
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.bincount(ids, minlength=vocab) / ids.size, probs,
                               atol=3e-3)
    rng = np.random.default_rng(0)
    x, kernel = rng.normal(size=(3, 4, 5)), rng.normal(size=(vocab, 5))
    bias, targets = rng.normal(size=vocab), rng.integers(0, vocab, size=(3, 4))
    samples = np.array([0, 1, 1, 4, int(targets[0, 0]), 9])  # a repeat and a hit
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    got = elmo.sampled_softmax_nll(f32(x), jnp.asarray(targets), f32(kernel), f32(bias),
                                   jnp.asarray(samples))
    log_q = np.log(len(samples) * probs)
    want = np.zeros(targets.shape)
    for idx in np.ndindex(targets.shape):
        y = targets[idx]
        true = x[idx] @ kernel[y] + bias[y] - log_q[y]
        others = [x[idx] @ kernel[s] + bias[s] - log_q[s] for s in samples if s != y]
        want[idx] = np.log(np.exp(true) + np.sum(np.exp(others))) - true
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # Trained on the sampled loss (fresh negatives each step), the full softmax improves.
    x, targets = jnp.asarray(x.reshape(12, 5), jnp.float32), jnp.asarray(targets.ravel())

    def full_nll(w):
        logits = x @ w["kernel"].T + w["bias"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), targets[:, None], 1))

    @jax.jit
    def sgd(w, key):
        negatives = elmo.log_uniform_samples(key, 8, vocab)
        grads = jax.grad(lambda w: jnp.mean(elmo.sampled_softmax_nll(
            x, targets, w["kernel"], w["bias"], negatives)))(w)
        return jax.tree.map(lambda p, g: p - 0.5 * g, w, grads)

    w = {"kernel": jnp.zeros((vocab, 5)), "bias": jnp.zeros(vocab)}
    before = float(full_nll(w))
    for i in range(40):
        w = sgd(w, jax.random.key(i))
    assert float(full_nll(w)) < 0.5 * before

    # The LM's training loss with a sampled softmax: finite, over the same positions.
    full_model, params, _ = lm
    sampled = dataclasses.replace(TINY, num_samples=10, dropout=0.0)  # faster to compile
    model = dataclasses.replace(full_model, config=sampled)
    batch = _batch(SENTENCES)
    loss, metrics = jax.jit(lambda p, r: model.loss(p, batch, rng=r, train=True))(
        params, jax.random.key(10))
    assert np.isfinite(loss) and "token_accuracy" not in metrics
    assert float(metrics["nll"][1]) == 2 * sum(len(s) + 1 for s in SENTENCES)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name,want", [("elmo_original", 93_600_864),
                                       ("elmo_medium", 28_027_744),
                                       ("elmo_small", 13_593_312)])
def test_parameter_count_by_hand(name, want):
    cfg = getattr(elmo, name)()
    e, f, p, h = cfg.char_embed_dim, cfg.num_filters, cfg.projection_dim, cfg.cell_size
    by_hand = (262 * e                                              # char embeddings
               + sum(w * e * n + n for w, n in cfg.filters)         # CNN kernels + biases
               + cfg.num_highway * 2 * (f * f + f)                  # highway W/b, gate W/b
               + f * p + p                                          # projection 2048 -> p
               + 2 * cfg.num_layers * (2 * p * 4 * h + 4 * h + h * p))  # LSTMP, 2 directions
    assert by_hand == want == cfg.num_parameters()
    char_ids = jax.ShapeDtypeStruct((1, 2, 50), jnp.int32)
    shapes = jax.eval_shape(lambda c: elmo.BiLM(cfg).init(jax.random.key(0), c), char_ids)
    got = _count(meta.unbox(shapes))
    print(f"{name}: biLM parameters {got:,} (by hand {by_hand:,}; paper/AllenNLP "
          f"{want / 1e6:.1f}M)")
    assert got == by_hand
    lm = jax.eval_shape(lambda c: elmo.ELMoLM(cfg).init(jax.random.key(0), c), char_ids)
    assert _count(meta.unbox(lm)) == cfg.num_parameters(softmax=True) == by_hand + (
        cfg.vocab_size * (p + 1))
