"""Tests for models.decoding: greedy, sampling and beam search against brute force and HF.

* toy step functions: a fixed random "bigram" table, and a variant whose logits also depend
  on the position and on a per-row state (a running hash and a per-item "encoder" vector),
  so that beam search's state tiling / gathering is exercised;
* greedy == a Python argmax loop; beam search with a beam wide enough to be exhaustive ==
  enumeration of every sequence, for both length-penalty conventions; early stopping saves
  steps without changing results; no NaN with ``-inf`` logits; sharded inputs;
* sampling: ``top_k=1`` == greedy, empirical frequencies == true probabilities, top-k/top-p
  masks == HF's warpers, top-p never samples the tail;
* parity with HF ``generate`` (greedy and beam search) on a tiny random GPT-2, called from
  the step function through ``jax.pure_callback`` (no cache: the prefix is kept in the state).
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import decoding

# ----------------------------------------------------------------------------- toy models

V = 5
EOS = 1
BOS = 4
H = 11  # hash buckets
EMB = 3
MAX_POS = 16

_rng = np.random.default_rng(1234)
TABLE = _rng.normal(size=(V, V)) * 1.5
HTAB = _rng.normal(size=(H, V))
POS = _rng.normal(size=(MAX_POS, V)) * 0.5
WEMB = _rng.normal(size=(EMB, V))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def bigram_step(table: np.ndarray):
    """Stateless step function: logits = table[token]."""
    t = jnp.asarray(table, jnp.float32)

    def step_fn(tokens, state, step):
        del step
        return t[tokens], state

    return step_fn


def stateful_step(tokens, state, step):
    """Logits depend on the token, the position, a running hash and a per-item vector."""
    h, emb = state["h"], state["emb"]
    logits = (
        jnp.asarray(TABLE, jnp.float32)[tokens]
        + jnp.asarray(HTAB, jnp.float32)[h % H]
        + jnp.asarray(POS, jnp.float32)[step]
        + emb @ jnp.asarray(WEMB, jnp.float32)
    )
    return logits, {"h": (h * 7 + tokens + 1) % H, "emb": emb}


def stateful_np(token: int, h: int, emb: np.ndarray, step: int) -> tuple[np.ndarray, int]:
    """float64 reference of ``stateful_step`` for one row: (log-probs, new hash)."""
    logits = TABLE[token] + HTAB[h % H] + POS[step] + emb @ WEMB
    return _log_softmax(logits), (h * 7 + token + 1) % H


def toy_state(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {
        "h": r.integers(0, H, size=(batch,)).astype(np.int32),
        "emb": r.normal(size=(batch, EMB)).astype(np.float32),
    }


def enumerate_sequences(h0: int, emb: np.ndarray, max_length: int) -> list[tuple[list, float]]:
    """Every sequence the decoder can return: ending in EOS, or truncated at max_length."""
    out = []

    def rec(token, h, step, seq, logp):
        lp, h2 = stateful_np(token, h, emb, step)
        for v in range(V):
            s, total = [*seq, v], logp + lp[v]
            if v == EOS or len(s) == max_length:
                out.append((s, total))
            else:
                rec(v, h2, step + 1, s, total)

    rec(BOS, h0, 0, [], 0.0)
    return out


def penalty(length: int, alpha: float, kind: str) -> float:
    return ((5 + length) / 6) ** alpha if kind == "gnmt" else float(length) ** alpha


def counting(step_fn, calls: list):
    """Wraps a step function to record (at run time) every step it is called for."""

    def wrapped(tokens, state, step):
        jax.debug.callback(lambda s: calls.append(int(s)), step)
        return step_fn(tokens, state, step)

    return wrapped


def pad_row(seq: list, max_length: int) -> list:
    return list(seq) + [decoding.PAD_ID] * (max_length - len(seq))


# ----------------------------------------------------------------------------- helpers


def test_tile_and_gather_beams():
    tree = {"a": jnp.arange(6).reshape(2, 3), "b": jnp.array([10.0, 20.0])}
    tiled = decoding.tile_beams(tree, 2)
    np.testing.assert_array_equal(tiled["b"], [10, 10, 20, 20])
    np.testing.assert_array_equal(tiled["a"][2], [3, 4, 5])
    flat = {"x": jnp.arange(6) * 10}  # batch 2, beam 3
    out = decoding.gather_beams(flat, jnp.array([[2, 0], [1, 1]]), 2, 3)
    np.testing.assert_array_equal(out["x"], [20, 0, 40, 40])


# ----------------------------------------------------------------------------- greedy


def test_greedy_matches_python_argmax_loop_with_eos_and_padding():
    batch, max_length = 6, 7
    state = toy_state(batch, seed=3)
    calls: list[int] = []
    run = jax.jit(
        lambda st: decoding.greedy(
            counting(stateful_step, calls),
            st,
            bos_id=BOS,
            eos_id=EOS,
            max_length=max_length,
            batch_size=batch,
        )
    )
    tokens, lengths = jax.block_until_ready(run(state))
    jax.effects_barrier()
    expected, exp_len = [], []
    for row in range(batch):
        tok, h, seq = BOS, int(state["h"][row]), []
        for step in range(max_length):
            lp, h = stateful_np(tok, h, state["emb"][row].astype(np.float64), step)
            tok = int(np.argmax(lp))
            seq.append(tok)
            if tok == EOS:
                break
        expected.append(pad_row(seq, max_length))
        exp_len.append(len(seq))
    np.testing.assert_array_equal(tokens, expected)
    np.testing.assert_array_equal(lengths, exp_len)
    # The data exercises both finished-by-EOS (then padded) and truncated rows.
    assert min(exp_len) < max_length and max(exp_len) == max_length
    # Loop stops once every row is done, not earlier.
    assert max(calls) == max(exp_len) - 1


def test_greedy_stops_early_when_all_rows_finished():
    table = np.zeros((V, V))
    table[:, 2] = 3.0
    table[2, EOS] = 5.0  # BOS -> 2 -> EOS
    calls: list[int] = []
    tokens, lengths = jax.jit(
        lambda: decoding.greedy(
            counting(bigram_step(table), calls),
            {},
            bos_id=jnp.array([BOS, 3, 0]),  # per-row start tokens
            eos_id=EOS,
            max_length=9,
            batch_size=3,
        )
    )()
    jax.effects_barrier()
    np.testing.assert_array_equal(tokens, [pad_row([2, EOS], 9)] * 3)
    np.testing.assert_array_equal(lengths, [2, 2, 2])
    assert sorted(set(calls)) == [0, 1]


# ----------------------------------------------------------------------------- beam search


@pytest.mark.parametrize(
    ("kind", "alpha", "early"),
    [("gnmt", 0.6, True), ("gnmt", 0.6, False), ("hf", 1.0, True), ("hf", -0.5, "never")],
)
def test_beam_search_exhaustive_equals_brute_force(kind, alpha, early):
    # vocab 5, max_length 4: <= 64 alive prefixes and 320 continuations per step, so beam 160
    # (320 candidates) keeps everything and the result must be the exact top-160.
    batch, max_length, beam = 2, 4, 160
    state = toy_state(batch, seed=7)
    tokens, scores = jax.jit(
        lambda st: decoding.beam_search(
            stateful_step,
            st,
            bos_id=BOS,
            eos_id=EOS,
            max_length=max_length,
            batch_size=batch,
            beam_size=beam,
            alpha=alpha,
            length_penalty=kind,
            early_stopping=early,
        )
    )(state)
    tokens, scores = np.asarray(tokens), np.asarray(scores)
    assert np.all(np.isfinite(scores))
    for row in range(batch):
        seqs = enumerate_sequences(int(state["h"][row]), state["emb"][row].astype(np.float64),
                                   max_length)
        assert len(seqs) == 1 + 4 + 16 + 64 + 256
        ranked = sorted(((lp / penalty(len(s), alpha, kind), s, lp) for s, lp in seqs),
                        key=lambda x: -x[0])
        true_scores = np.array([r[0] for r in ranked[:beam]])
        # Scores: best first, equal to the true top-k.
        assert np.all(np.diff(scores[row]) <= 0)
        np.testing.assert_allclose(scores[row], true_scores, atol=2e-5, rtol=1e-5)
        lookup = {tuple(s): (sc, lp) for sc, s, lp in ranked}
        for k in range(beam):
            ids = tokens[row, k].tolist()
            n = ids.index(EOS) + 1 if EOS in ids else max_length
            assert all(t == decoding.PAD_ID for t in ids[n:])
            _, lp = lookup[tuple(ids[:n])]
            # Each returned score is its sequence's recomputed log-prob sum / penalty.
            np.testing.assert_allclose(scores[row, k], lp / penalty(n, alpha, kind),
                                       atol=2e-5, rtol=1e-5)
            # Identical sequences wherever the ranking is not a float32 near-tie.
            gaps = np.abs(true_scores - true_scores[k])
            gaps[k] = np.inf
            if gaps.min() > 1e-4:
                assert tuple(ids[:n]) == tuple(ranked[k][1])


def test_beam_search_eos_padding_and_state_gather_small_beam():
    # A narrow (non-exhaustive) beam: every returned score must equal the log-prob of its
    # tokens recomputed along that sequence (which depends on the sequence's running hash,
    # so it breaks if the state is not reordered with the beams), divided by the penalty.
    batch, max_length, beam = 4, 6, 3
    state = toy_state(batch, seed=11)
    for kind in ("gnmt", "hf"):
        tokens, scores = decoding.beam_search(
            stateful_step, state, bos_id=BOS, eos_id=EOS, max_length=max_length,
            batch_size=batch, beam_size=beam, alpha=0.6, length_penalty=kind,
        )
        tokens, scores = np.asarray(tokens), np.asarray(scores)
        assert tokens.shape == (batch, beam, max_length) and scores.shape == (batch, beam)
        saw_eos = saw_truncated = False
        for row in range(batch):
            assert np.all(np.diff(scores[row]) <= 0)
            assert len({tuple(t) for t in tokens[row]}) == beam  # distinct hypotheses
            for k in range(beam):
                ids = tokens[row, k].tolist()
                n = ids.index(EOS) + 1 if EOS in ids else max_length
                saw_eos |= n < max_length or ids[-1] == EOS
                saw_truncated |= EOS not in ids
                assert all(t == decoding.PAD_ID for t in ids[n:])
                tok, h, total = BOS, int(state["h"][row]), 0.0
                for step, nxt in enumerate(ids[:n]):
                    lp, h = stateful_np(tok, h, state["emb"][row].astype(np.float64), step)
                    total += lp[nxt]
                    tok = nxt
                np.testing.assert_allclose(scores[row, k], total / penalty(n, 0.6, kind),
                                           rtol=1e-5, atol=1e-5)
        assert saw_eos and saw_truncated


def test_beam_search_early_stopping_saves_steps_not_results():
    rng = np.random.default_rng(5)
    table = rng.normal(size=(6, 6))
    table[:, EOS] += 2.5  # EOS likely: finished hypotheses fill up early
    max_length = 10
    results, steps = {}, {}
    for early in (True, False):
        calls: list[int] = []
        out = jax.jit(
            lambda early=early, calls=calls: decoding.beam_search(
                counting(bigram_step(table), calls), {}, bos_id=jnp.arange(2, 6),
                eos_id=EOS, max_length=max_length, batch_size=4, beam_size=3, alpha=0.6,
                early_stopping=early,
            )
        )()
        jax.effects_barrier()
        results[early], steps[early] = jax.device_get(out), len(calls)
    assert steps[False] == max_length
    assert steps[True] < max_length
    np.testing.assert_array_equal(results[True][0], results[False][0])
    np.testing.assert_allclose(results[True][1], results[False][1], rtol=1e-6)


def test_beam_search_no_nan_with_minus_inf_logits():
    table = np.where(np.eye(V, k=1) + np.eye(V, k=-1) + np.eye(V) > 0, 0.0, -np.inf)
    table[:, EOS] = -0.5  # EOS reachable from everywhere
    table[EOS, :] = -np.inf
    table[EOS, EOS] = 0.0
    for kind in ("gnmt", "hf"):
        tokens, scores = decoding.beam_search(
            bigram_step(table), {}, bos_id=BOS, eos_id=EOS, max_length=4, batch_size=1,
            beam_size=8, length_penalty=kind,
        )
        tokens, scores = np.asarray(tokens), np.asarray(scores)
        assert not np.any(np.isnan(scores))
        live = np.isfinite(scores[0])
        assert live.sum() >= 3 and np.all(scores[0][~live] == -np.inf)
        for ids in tokens[0][live].tolist():  # only allowed transitions are used
            prev = BOS
            for t in ids:
                if prev == EOS:
                    assert t == decoding.PAD_ID
                    continue
                assert np.isfinite(table[prev, t])
                prev = t
        assert np.all(tokens[0][~live] == decoding.PAD_ID)


def test_sharded_inputs_give_the_same_result():
    devices = jax.devices()
    batch = len(devices)
    mesh = jax.sharding.Mesh(np.array(devices), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    state = toy_state(batch, seed=2)
    sharded = jax.device_put(state, sharding)

    @jax.jit
    def run(st):
        kw = {"bos_id": BOS, "eos_id": EOS, "max_length": 5, "batch_size": batch}
        return (decoding.greedy(stateful_step, st, **kw),
                decoding.beam_search(stateful_step, st, beam_size=2, **kw))

    got, want = run(sharded), run(jax.device_put(state, devices[0]))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


# ----------------------------------------------------------------------------- sampling


def test_sample_top_k_1_equals_greedy():
    batch, max_length = 6, 7
    state = toy_state(batch, seed=3)
    kw = {"bos_id": BOS, "eos_id": EOS, "max_length": max_length, "batch_size": batch}
    want = decoding.greedy(stateful_step, state, **kw)
    got = decoding.sample(stateful_step, state, jax.random.key(0), top_k=1, temperature=0.7, **kw)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, 0), (0.6, 3)])
def test_sample_frequencies_match_probabilities(temperature, top_k):
    vocab, eos, bos, n = 4, 3, 1, 40000
    table = np.random.default_rng(9).normal(size=(vocab, vocab))

    def probs(row):
        logits = table[row] / temperature
        if top_k:
            logits = np.where(logits < np.sort(logits)[-top_k], -np.inf, logits)
        return np.exp(_log_softmax(logits))

    tokens, lengths = decoding.sample(
        bigram_step(table), {}, jax.random.key(42), bos_id=bos, eos_id=eos, max_length=2,
        batch_size=n, temperature=temperature, top_k=top_k,
    )
    tokens = np.asarray(tokens)
    p0 = probs(bos)
    max_dev = 0.0
    for a, b in itertools.product(range(vocab), range(vocab)):
        if a == eos:
            p = p0[a] if b == decoding.PAD_ID else 0.0
        else:
            p = p0[a] * probs(a)[b]
        freq = np.mean((tokens[:, 0] == a) & (tokens[:, 1] == b))
        if p == 0.0:
            assert freq == 0.0, (a, b)
        else:
            max_dev = max(max_dev, abs(freq - p) / np.sqrt(p * (1 - p) / n))
    assert max_dev < 4.5
    np.testing.assert_array_equal(lengths, np.where(tokens[:, 0] == eos, 1, 2))


def test_filter_logits_matches_hf_warpers():
    torch = pytest.importorskip("torch")
    lp = pytest.importorskip("transformers.generation.logits_process")
    logits = np.random.default_rng(0).normal(size=(64, 30)).astype(np.float32) * 2
    for temperature, top_k, top_p in [(1.0, 5, 1.0), (0.7, 0, 0.8), (1.3, 10, 0.5),
                                      (1.0, 0, 0.05), (1.0, 1, 1.0), (0.9, 0, 0.999)]:
        scores = torch.from_numpy(logits.copy())
        if temperature != 1.0:
            scores = lp.TemperatureLogitsWarper(temperature)(None, scores)
        if top_k:
            scores = lp.TopKLogitsWarper(top_k)(None, scores)
        if top_p < 1.0:
            scores = lp.TopPLogitsWarper(top_p)(None, scores)
        ours = np.asarray(decoding.filter_logits(jnp.asarray(logits), temperature=temperature,
                                                 top_k=top_k, top_p=top_p))
        theirs = scores.numpy()
        np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(theirs))
        assert 0 < np.isfinite(ours).sum() < ours.size or top_p > 0.99
        np.testing.assert_allclose(ours[np.isfinite(ours)], theirs[np.isfinite(theirs)],
                                   rtol=1e-6)
    # Ties: top-k keeps every token tied with the k-th; top-p keeps the smallest set
    # (ties broken towards the lower id), at least one token.
    tied = jnp.array([[0.0, 3.0, 3.0, 3.0, 1.0]])
    np.testing.assert_array_equal(
        np.isfinite(decoding.filter_logits(tied, top_k=2)), [[False, True, True, True, False]])
    np.testing.assert_array_equal(
        np.isfinite(decoding.filter_logits(tied, top_p=0.05)), [[False, True, False, False, False]])
    np.testing.assert_array_equal(
        np.isfinite(decoding.filter_logits(tied, top_p=0.5)), [[False, True, True, False, False]])


def test_top_p_never_samples_the_tail():
    vocab = 8
    logits = np.log(np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005]))
    table = np.tile(logits, (vocab, 1))
    tokens, _ = decoding.sample(
        bigram_step(table), {}, jax.random.key(1), bos_id=0, eos_id=vocab + 1, max_length=3,
        batch_size=5000, top_p=0.75,
    )
    counts = np.bincount(np.asarray(tokens).ravel(), minlength=vocab)
    # 0.4 + 0.25 = 0.65 < 0.75 <= 0.8: the nucleus is {0, 1, 2}.
    assert np.all(counts[3:] == 0)
    np.testing.assert_allclose(counts[:3] / counts.sum(), np.array([0.4, 0.25, 0.15]) / 0.8,
                               atol=0.02)


# ----------------------------------------------------------------------------- HF parity


GPT_VOCAB, GPT_EOS, GPT_PAD, GPT_LEN = 50, 2, 0, 8
PROMPTS = [3, 4, 5, 6, 7, 8]


@functools.cache
def tiny_gpt2(seed: int):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        vocab_size=GPT_VOCAB, n_positions=16, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=PROMPTS[0], eos_token_id=GPT_EOS, pad_token_id=GPT_PAD,
        initializer_range=0.2,
    )
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        model.transformer.wte.weight[GPT_EOS] *= 3.0  # EOS at varied positions
    return model


def gpt2_step_fn(model):
    """Cache-free step function: the prefix lives in the state; torch runs via pure_callback."""
    torch = pytest.importorskip("torch")

    def run(prefix, step):
        with torch.no_grad():
            out = model(input_ids=torch.from_numpy(np.asarray(prefix, np.int64))).logits
        return out[:, int(step)].numpy().astype(np.float32)

    def step_fn(tokens, state, step):
        prefix = state["prefix"].at[:, step].set(tokens)
        spec = jax.ShapeDtypeStruct((tokens.shape[0], GPT_VOCAB), jnp.float32)
        logits = jax.pure_callback(run, spec, prefix, step)
        return logits, {"prefix": prefix}

    return step_fn


def _trim(ids: list[int]) -> list[int]:
    return ids[: ids.index(GPT_EOS) + 1] if GPT_EOS in ids else ids


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_matches_hf_generate(seed):
    torch = pytest.importorskip("torch")
    model = tiny_gpt2(seed)
    prompts = torch.tensor(PROMPTS)[:, None]
    hf = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts),
                        max_new_tokens=GPT_LEN, do_sample=False, num_beams=1,
                        eos_token_id=GPT_EOS, pad_token_id=GPT_PAD)[:, 1:].numpy()
    state = {"prefix": jnp.zeros((len(PROMPTS), GPT_LEN), jnp.int32)}
    tokens, lengths = jax.jit(lambda st: decoding.greedy(
        gpt2_step_fn(model), st, bos_id=jnp.array(PROMPTS), eos_id=GPT_EOS,
        max_length=GPT_LEN, batch_size=len(PROMPTS)))(state)
    tokens = np.asarray(tokens)
    np.testing.assert_array_equal(tokens[:, : hf.shape[1]], hf)
    assert np.all(tokens[:, hf.shape[1]:] == GPT_PAD)
    np.testing.assert_array_equal(lengths, [len(_trim(r)) for r in hf.tolist()])


@pytest.mark.parametrize(
    ("seed", "alpha", "early"),
    # Chosen so that HF's three early-stopping modes give different beams on these prompts.
    [(0, 1.0, True), (1, 0.6, True), (0, 2.0, True), (1, 1.0, False), (1, 1.5, False),
     (1, 1.5, "never")],
)
def test_beam_search_matches_hf_generate(seed, alpha, early):
    torch = pytest.importorskip("torch")
    model = tiny_gpt2(seed)
    beams = 3
    prompts = torch.tensor(PROMPTS)[:, None]
    hf = model.generate(
        input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=GPT_LEN,
        do_sample=False, num_beams=beams, num_return_sequences=beams, length_penalty=alpha,
        early_stopping=early, eos_token_id=GPT_EOS, pad_token_id=GPT_PAD,
        output_scores=True, return_dict_in_generate=True,
    )
    hf_seqs = hf.sequences[:, 1:].numpy().reshape(len(PROMPTS), beams, -1)
    hf_scores = hf.sequences_scores.numpy().reshape(len(PROMPTS), beams)
    state = {"prefix": jnp.zeros((len(PROMPTS), GPT_LEN), jnp.int32)}
    tokens, scores = jax.jit(lambda st: decoding.beam_search(
        gpt2_step_fn(model), st, bos_id=jnp.array(PROMPTS), eos_id=GPT_EOS,
        max_length=GPT_LEN, batch_size=len(PROMPTS), beam_size=beams, alpha=alpha,
        length_penalty="hf", early_stopping=early))(state)
    tokens, scores = np.asarray(tokens), np.asarray(scores)
    ours = [[_trim(t) for t in row] for row in tokens.tolist()]
    theirs = [[_trim(t) for t in row] for row in hf_seqs.tolist()]
    assert ours == theirs
    np.testing.assert_allclose(scores, hf_scores, rtol=1e-4, atol=1e-5)
    for row in tokens.tolist():
        for t in row:
            assert all(x == GPT_PAD for x in t[len(_trim(t)):])
    # The case mixes hypotheses finished by EOS and ones truncated at max_length.
    assert any(t[-1] == GPT_EOS for row in ours for t in row)
    assert any(GPT_EOS not in t for row in ours for t in row)


def test_beam_search_constants_are_passed_through_unreordered():
    # `emb` is the same for every beam of an item, so keeping it under "constants" (tiled,
    # never gathered) must give exactly what gathering it with the beams gives.
    state = toy_state(3, seed=4)

    def step_with_constants(tokens, st, step):
        logits, new = stateful_step(tokens, {"h": st["h"], "emb": st["constants"]["emb"]},
                                    step)
        return logits, {"h": new["h"], "constants": st["constants"]}

    kw = {"bos_id": BOS, "eos_id": EOS, "max_length": 6, "batch_size": 3, "beam_size": 3}
    want = decoding.beam_search(stateful_step, state, **kw)
    got = decoding.beam_search(
        step_with_constants, {"h": state["h"], "constants": {"emb": state["emb"]}}, **kw)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_cache_sizes_double_to_max_length_and_bad_sizes_are_refused():
    assert decoding.cache_sizes(20) == (20,)
    assert decoding.cache_sizes(96) == (32, 64, 96)
    assert decoding.cache_sizes(128, first=16) == (16, 32, 64, 128)
    step = lambda tokens, state, i: (jnp.zeros((tokens.shape[0], 5)), state)  # noqa: E731
    common = dict(bos_id=0, eos_id=1, max_length=8, batch_size=2)
    with pytest.raises(ValueError, match="need grow"):
        decoding.greedy(step, {}, cache_sizes=(4, 8), **common)
    with pytest.raises(ValueError, match="must rise strictly to max_length=8"):
        decoding.greedy(step, {}, cache_sizes=(4, 6), grow=lambda s, n: s, **common)

