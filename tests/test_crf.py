"""The linear-chain CRF (models/crf.py) against brute-force enumeration of tag sequences."""

from __future__ import annotations

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from models import crf

K = 4
LENGTHS = (5, 3, 1, 0, 4)  # one batch, padded to 5; includes a zero-length sequence
BIO_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
BIOES_TAGS = ("O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC")


def _random_params(k: int, seed: int, scale: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    return {"params": {
        "transitions": jnp.asarray(scale * rng.normal(size=(k, k)), jnp.float32),
        "start_transitions": jnp.asarray(scale * rng.normal(size=(k,)), jnp.float32),
        "end_transitions": jnp.asarray(scale * rng.normal(size=(k,)), jnp.float32)}}


def _batch(k: int, lengths: tuple[int, ...], seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    t = max(lengths)
    emissions = (scale * rng.normal(size=(len(lengths), t, k))).astype(np.float32)
    mask = np.arange(t)[None] < np.asarray(lengths)[:, None]
    return emissions, mask


def _as64(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = params["params"]
    return tuple(np.asarray(p[n], np.float64)
                 for n in ("transitions", "start_transitions", "end_transitions"))


def _paths(k: int, n: int) -> np.ndarray:
    return np.array(list(itertools.product(range(k), repeat=n)), np.int64).reshape(-1, n)


def _brute_scores(emissions: np.ndarray, params: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every tag sequence of length ``n`` ([P, n]) and its score ([P]), in float64."""
    transitions, start, end = _as64(params)
    em = np.asarray(emissions[:n], np.float64)
    paths = _paths(em.shape[-1], n)
    scores = (start[paths[:, 0]] + em[np.arange(n), paths].sum(1)
              + transitions[paths[:, :-1], paths[:, 1:]].sum(1) + end[paths[:, -1]])
    return paths, scores


def _logsumexp(x: np.ndarray) -> float:
    m = np.max(x)
    return float(m + np.log(np.sum(np.exp(x - m))))


def _is_allowed(path: np.ndarray, allowed: tuple[np.ndarray, np.ndarray, np.ndarray]) -> bool:
    transitions, start, end = allowed
    return bool(start[path[0]] and end[path[-1]]
                and all(transitions[a, b] for a, b in itertools.pairwise(path)))


def test_log_partition_matches_brute_force_and_ignores_padding():
    model = crf.CRF(K)
    params = _random_params(K, seed=0)
    emissions, mask = _batch(K, LENGTHS, seed=1)
    log_z = np.asarray(model.apply(params, emissions, mask, method=crf.CRF.log_partition))
    for b, n in enumerate(LENGTHS):
        expected = 0.0 if n == 0 else _logsumexp(_brute_scores(emissions[b], params, n)[1])
        np.testing.assert_allclose(log_z[b], expected, rtol=1e-5, atol=1e-4)

    # Whatever sits at padded positions (huge values, inf, NaN) changes nothing.
    for junk in (1e3, np.inf, np.nan):
        perturbed = np.where(mask[..., None], emissions, np.float32(junk))
        again = model.apply(params, perturbed, mask, method=crf.CRF.log_partition)
        np.testing.assert_array_equal(np.asarray(again), log_z)

    # mask=None means all positions are real.
    full = model.apply(params, emissions[:1], None, method=crf.CRF.log_partition)
    np.testing.assert_allclose(full, log_z[:1], rtol=1e-6)


def test_viterbi_matches_brute_force_argmax():
    model = crf.CRF(K)
    params = _random_params(K, seed=2)
    emissions, mask = _batch(K, LENGTHS, seed=3)
    emissions[~mask] = 50.0  # must not influence decoding
    tags, best = model.apply(params, emissions, mask, method=crf.CRF.viterbi)
    tags, best = np.asarray(tags), np.asarray(best)
    assert tags.dtype == np.int32 and tags.shape == mask.shape
    assert np.all(tags[~mask] == 0)
    for b, n in enumerate(LENGTHS):
        if n == 0:
            assert best[b] == 0.0
            continue
        paths, scores = _brute_scores(emissions[b], params, n)
        order = np.sort(scores)
        assert order[-1] - order[-2] > 1e-3  # a unique maximum
        np.testing.assert_array_equal(tags[b, :n], paths[np.argmax(scores)])
        np.testing.assert_allclose(best[b], scores.max(), rtol=1e-5, atol=1e-4)
    # The reported best score is the score of the returned tags.
    score = model.apply(params, emissions, tags, mask, method=crf.CRF.score)
    np.testing.assert_allclose(score, best, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_log_likelihood_is_brute_force_log_softmax(n):
    model = crf.CRF(K)
    params = _random_params(K, seed=4 + n)
    emissions, _ = _batch(K, (n,), seed=10 + n)
    paths, scores = _brute_scores(emissions[0], params, n)
    # All K**n taggings of one sentence, as one batch, padded by 2 with junk tags (-1).
    num = len(paths)
    em = np.concatenate([np.repeat(emissions, num, 0), np.full((num, 2, K), 7, np.float32)], 1)
    tags = np.concatenate([paths, np.full((num, 2), -1)], 1)
    mask = np.arange(n + 2)[None] < np.full((num, 1), n)
    log_likelihood = np.asarray(model.apply(params, em, tags, mask))
    expected = scores - _logsumexp(scores)
    np.testing.assert_allclose(log_likelihood, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.exp(log_likelihood).sum(), 1.0, rtol=1e-5)

    score = model.apply(params, em, tags, mask, method=crf.CRF.score)
    log_z = model.apply(params, em, mask, method=crf.CRF.log_partition)
    np.testing.assert_allclose(log_likelihood, score - log_z, rtol=1e-6, atol=1e-5)
    nll = model.apply(params, em, tags, mask, method=crf.CRF.nll)
    np.testing.assert_allclose(nll, -log_likelihood.mean(), rtol=1e-5)


def test_zero_length_sequences_score_zero():
    model = crf.CRF(K)
    params = _random_params(K, seed=5)
    emissions = np.ones((2, 3, K), np.float32)
    mask = np.zeros((2, 3), bool)
    tags = np.ones((2, 3), np.int32)
    np.testing.assert_array_equal(model.apply(params, emissions, tags, mask), [0.0, 0.0])
    decoded, best = model.apply(params, emissions, mask, method=crf.CRF.viterbi)
    np.testing.assert_array_equal(decoded, np.zeros((2, 3)))
    np.testing.assert_array_equal(best, [0.0, 0.0])
    # nll averages over the non-empty sequences only.
    mask[0, :2] = True
    ll = model.apply(params, emissions, tags, mask)
    nll = model.apply(params, emissions, tags, mask, method=crf.CRF.nll)
    np.testing.assert_allclose(nll, -ll[0], rtol=1e-6)


def test_gradients_are_finite_and_marginals_match_brute_force():
    allowed = crf.allowed_transitions(BIO_TAGS, "BIO")
    k = len(BIO_TAGS)
    model = crf.CRF(k, *allowed)
    params = _random_params(k, seed=6)
    lengths = (4, 2, 0)
    emissions, mask = _batch(k, lengths, seed=7)
    emissions[~mask] = np.nan
    tags = np.array([[1, 2, 0, 3], [2, 2, -1, -1], [0, 0, 0, 0]])  # row 1 starts with I-PER

    def loss(p, e):
        return model.apply(p, e, tags, mask, method=crf.CRF.nll)

    value, (grad_params, grad_emissions) = jax.value_and_grad(loss, argnums=(0, 1))(
        params, jnp.asarray(emissions))
    assert np.isfinite(value) and value > 1e3  # the disallowed gold sequence costs ~1e4
    for leaf in jax.tree.leaves((grad_params, grad_emissions)):
        assert np.all(np.isfinite(leaf))
    assert np.all(np.asarray(grad_emissions)[~mask] == 0)
    # Disallowed entries are constants: they get no gradient.
    np.testing.assert_array_equal(np.asarray(grad_params["params"]["transitions"])[~allowed[0]],
                                  0.0)
    np.testing.assert_array_equal(
        np.asarray(grad_params["params"]["start_transitions"])[~allowed[1]], 0.0)

    # d log Z / d emissions = posterior marginals; brute force over allowed paths only.
    marginals = np.asarray(jax.grad(lambda e: jnp.sum(model.apply(
        params, e, mask, method=crf.CRF.log_partition)))(jnp.asarray(emissions)))
    np.testing.assert_allclose(
        marginals, model.apply(params, emissions, mask, method=crf.CRF.marginals), atol=1e-6)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(marginals[b, n:], 0.0)
        if n == 0:
            continue
        paths, scores = _brute_scores(emissions[b], params, n)
        ok = np.array([_is_allowed(p, allowed) for p in paths])
        probs = np.where(ok, np.exp(scores - _logsumexp(scores[ok])), 0.0)
        expected = np.zeros((n, k))
        for i in range(n):
            np.add.at(expected[i], paths[:, i], probs)
        np.testing.assert_allclose(marginals[b, :n], expected, atol=1e-5)
        np.testing.assert_allclose(marginals[b, :n].sum(-1), 1.0, atol=1e-5)


def test_allowed_transitions_bio_and_bioes():
    transitions, start, end = crf.allowed_transitions(("O", "B-PER", "I-PER", "I-LOC"), "BIO")
    np.testing.assert_array_equal(transitions.astype(int), [[1, 1, 0, 0],
                                                            [1, 1, 1, 0],
                                                            [1, 1, 1, 0],
                                                            [1, 1, 0, 1]])
    np.testing.assert_array_equal(start, [True, True, False, False])
    np.testing.assert_array_equal(end, [True, True, True, True])

    tags = ("O", "B-X", "I-X", "E-X", "S-X", "B-Y-Z", "E-Y-Z")  # labels may contain '-'
    transitions, start, end = crf.allowed_transitions(tags, "BIOES")
    np.testing.assert_array_equal(transitions.astype(int), [[1, 1, 0, 0, 1, 1, 0],
                                                            [0, 0, 1, 1, 0, 0, 0],
                                                            [0, 0, 1, 1, 0, 0, 0],
                                                            [1, 1, 0, 0, 1, 1, 0],
                                                            [1, 1, 0, 0, 1, 1, 0],
                                                            [0, 0, 0, 0, 0, 0, 1],
                                                            [1, 1, 0, 0, 1, 1, 0]])
    np.testing.assert_array_equal(start, [1, 1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(end, [1, 0, 0, 1, 1, 0, 1])

    for bad, scheme in (("E-PER", "BIO"), ("PER", "BIO"), ("BI-PER", "BIO"), ("-PER", "BIO"),
                        ("O-PER", "BIOES"), ("B-", "BIO")):
        with pytest.raises(ValueError, match="not 'O'"):
            crf.allowed_transitions(("O", bad), scheme)
    with pytest.raises(ValueError, match="scheme"):
        crf.allowed_transitions(("O",), "IOB1")


@pytest.mark.parametrize("scheme,tag_names", [("BIO", BIO_TAGS), ("BIOES", BIOES_TAGS[:5])])
def test_constrained_viterbi_and_partition(scheme, tag_names):
    allowed = crf.allowed_transitions(tag_names, scheme)
    k = len(tag_names)
    model = crf.CRF(k, *allowed)
    params = _random_params(k, seed=8)
    i_per, b_per = tag_names.index("I-PER"), tag_names.index("B-PER")

    # Emissions that strongly favour a disallowed sequence: I-PER first, B-PER last.
    emissions = np.zeros((1, 3, k), np.float32)
    emissions[0, 0, i_per] = 20.0
    emissions[0, 2, b_per] = 20.0
    tags, _ = model.apply(params, emissions, None, method=crf.CRF.viterbi)
    assert _is_allowed(np.asarray(tags[0]), allowed)
    unconstrained, _ = crf.CRF(k).apply(params, emissions, None, method=crf.CRF.viterbi)
    assert not _is_allowed(np.asarray(unconstrained[0]), allowed)  # the test has teeth

    # Random, sharp emissions: the constrained CRF is the brute force over allowed paths.
    lengths = (4, 1, 3, 0)
    emissions, mask = _batch(k, lengths, seed=9, scale=4.0)
    tags, best = model.apply(params, emissions, mask, method=crf.CRF.viterbi)
    log_z = model.apply(params, emissions, mask, method=crf.CRF.log_partition)
    for b, n in enumerate(lengths):
        if n == 0:
            assert log_z[b] == 0.0
            continue
        paths, scores = _brute_scores(emissions[b], params, n)
        ok = np.array([_is_allowed(p, allowed) for p in paths])
        assert 0 < ok.sum() < len(paths)
        np.testing.assert_array_equal(tags[b, :n], paths[ok][np.argmax(scores[ok])])
        np.testing.assert_allclose(best[b], scores[ok].max(), rtol=1e-5, atol=1e-4)
        # The masking constant's effect (exp(-1e4)) is far below float32 resolution.
        np.testing.assert_allclose(log_z[b], _logsumexp(scores[ok]), rtol=1e-5, atol=1e-4)


def test_module_is_hashable_and_validates_shapes():
    allowed = crf.allowed_transitions(BIO_TAGS)
    model = crf.CRF(len(BIO_TAGS), *allowed)
    assert model == crf.CRF(len(BIO_TAGS), *allowed)
    assert hash(model) == hash(crf.CRF(len(BIO_TAGS), *allowed))
    with pytest.raises(ValueError, match="transitions_allowed"):
        crf.CRF(3, *allowed).init(jax.random.key(0), np.zeros((1, 2, 3)), np.zeros((1, 2)))


def test_jit_matches_eager():
    model = crf.CRF(K, *crf.allowed_transitions(("O", "B-A", "I-A", "B-B")))
    emissions, mask = _batch(K, LENGTHS, seed=11)
    tags = np.zeros(mask.shape, np.int32)
    params = model.init(jax.random.key(0), emissions, tags, mask)
    for method, args in ((crf.CRF.log_likelihood, (tags, mask)), (crf.CRF.viterbi, (mask,)),
                         (crf.CRF.marginals, (mask,))):
        eager = model.apply(params, emissions, *args, method=method)
        jitted = jax.jit(lambda p, e, *a, m=method: model.apply(p, e, *a, method=m))(
            params, emissions, *args)
        for x, y in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


class _Tagger(nn.Module):
    """Embedding -> Dense emissions -> CRF, the smallest possible neural tagger."""

    vocab_size: int
    tag_names: tuple[str, ...]

    def setup(self) -> None:
        self.embed = nn.Embed(self.vocab_size, 16)
        self.project = nn.Dense(len(self.tag_names))
        self.crf = crf.CRF(len(self.tag_names), *crf.allowed_transitions(self.tag_names))

    def emissions(self, tokens: jax.Array) -> jax.Array:
        return self.project(jnp.tanh(self.embed(tokens)))

    def __call__(self, tokens: jax.Array, tags: jax.Array, mask: jax.Array) -> jax.Array:
        return self.crf.nll(self.emissions(tokens), tags, mask)

    def decode(self, tokens: jax.Array, mask: jax.Array) -> jax.Array:
        return self.crf.viterbi(self.emissions(tokens), mask)[0]


def test_tiny_tagger_trains_with_optax():
    # Token 0 -> O, tokens 1-2 start a PER / LOC entity, 3-4 continue the open one.
    tag_names = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    rng = np.random.default_rng(12)
    batch, length = 16, 8
    tokens = np.zeros((batch, length), np.int32)
    tags = np.zeros((batch, length), np.int32)
    for b in range(batch):
        t = 0
        while t < length:
            if rng.random() < 0.5:
                t += 1
                continue
            entity = int(rng.integers(2))  # 0: PER, 1: LOC
            span = int(rng.integers(1, 4))
            for i in range(t, min(t + span, length)):
                tokens[b, i] = 1 + entity if i == t else 3 + int(rng.integers(2))
                tags[b, i] = 1 + 2 * entity + (i > t)
            t += span
    lengths = rng.integers(3, length + 1, size=batch)
    mask = np.arange(length)[None] < lengths[:, None]

    model = _Tagger(5, tag_names)
    params = model.init(jax.random.key(0), tokens, tags, mask)
    optimizer = optax.adam(0.05)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(model.apply)(params, tokens, tags, mask)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(60):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.2 * losses[0], losses
    decoded = np.asarray(jax.jit(model.apply, static_argnames="method")(
        params, tokens, mask, method="decode"))
    assert np.mean(decoded[mask] == tags[mask]) > 0.95
    assert np.all(decoded[~mask] == 0)
