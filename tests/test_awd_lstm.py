"""AWD-LSTM (models/awd_lstm.py): its dropouts, AR/TAR and the carried hidden state."""

from __future__ import annotations

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import awd_lstm

TINY = awd_lstm.AWDLSTMConfig(vocab_size=50, embed_dim=8, hidden_size=12, num_layers=3)
NO_DROPOUT = dataclasses.replace(TINY, drop_mult=0.0)


def _batch(ids: np.ndarray) -> dict:
    ids = np.asarray(ids, np.int32)
    return {"decoder_input_tokens": ids[:, :-1], "decoder_target_tokens": ids[:, 1:],
            "decoder_loss_weights": np.ones_like(ids[:, 1:], np.float32)}


def _params(model: awd_lstm.AWDLSTMLanguageModel, batch: dict) -> dict:
    return flax.core.meta.unbox(model.init(jax.random.key(0), batch))


def test_locked_dropout_is_one_mask_per_sequence():
    x = jnp.ones((3, 7, 16))
    out = awd_lstm.LockedDropout(0.5).apply({}, x, deterministic=False,
                                            rngs={"dropout": jax.random.key(0)})
    out = np.asarray(out)
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1], out.shape))
    assert set(np.unique(out)) == {0.0, 2.0}
    assert not np.array_equal(out[0, 0], out[1, 0])
    np.testing.assert_array_equal(
        awd_lstm.LockedDropout(0.5).apply({}, x, deterministic=True), x)


def test_embedding_dropout_drops_whole_words():
    cfg = dataclasses.replace(TINY, embed_dropout=0.5)
    network = awd_lstm.AWDLSTM(cfg)
    ids = np.tile(np.arange(10), (2, 3))  # every word six times
    variables = network.init(jax.random.key(0), jnp.asarray(ids))
    table = np.asarray(flax.core.meta.unbox(variables)["params"]["embedding"])
    x = np.asarray(network.apply(variables, jnp.asarray(ids), deterministic=False,
                                 method=awd_lstm.AWDLSTM.embed,
                                 rngs={"dropout": jax.random.key(3)}))
    words, rows = ids.ravel(), x.reshape(-1, cfg.embed_dim)
    dropped = {int(w) for w, v in zip(words, rows, strict=True) if not v.any()}
    assert 0 < len(dropped) < 10
    for w, v in zip(words, rows, strict=True):
        want = 0.0 if int(w) in dropped else table[w] / 0.5
        np.testing.assert_allclose(v, want, rtol=1e-6)
    np.testing.assert_array_equal(
        network.apply(variables, jnp.asarray(ids), method=awd_lstm.AWDLSTM.embed), table[ids])


def test_evaluation_is_deterministic_and_ignores_dropout_settings():
    ids = np.random.default_rng(0).integers(1, 50, size=(2, 9))
    batch = _batch(ids)
    with_dropout = awd_lstm.AWDLSTMLanguageModel(TINY, max_length=8, carry_state=False)
    without = awd_lstm.AWDLSTMLanguageModel(NO_DROPOUT, max_length=8, carry_state=False)
    params = _params(with_dropout, batch)
    a = with_dropout.loss(params, batch, rng=None, train=False)[0]
    b = without.loss(params, batch, rng=None, train=False)[0]
    assert float(a) == float(b)
    t1 = with_dropout.loss(params, batch, rng=jax.random.key(1), train=True)[0]
    t2 = with_dropout.loss(params, batch, rng=jax.random.key(2), train=True)[0]
    assert float(t1) != float(t2)


def test_carried_state_continues_the_stream_exactly():
    """Two consecutive batches of a stream with the state carried = one long batch."""
    model = awd_lstm.AWDLSTMLanguageModel(NO_DROPOUT, max_length=6)
    ids = np.random.default_rng(1).integers(1, 50, size=(3, 13))
    whole = _batch(ids)
    params = _params(model, whole)
    state0 = model.init_state(3)
    _, m_whole, _ = model.loss_with_state(params, state0, whole, rng=None, train=False)
    first, second = _batch(ids[:, :7]), _batch(ids[:, 6:])
    _, m1, state1 = model.loss_with_state(params, state0, first, rng=None, train=False)
    _, m2, _ = model.loss_with_state(params, state1, second, rng=None, train=False)
    np.testing.assert_allclose(m1["nll"][0] + m2["nll"][0], m_whole["nll"][0], rtol=1e-5)
    # Without the carried state the second half is scored from a cold start: different.
    _, cold, _ = model.loss_with_state(params, state0, second, rng=None, train=False)
    assert abs(float(cold["nll"][0]) - float(m2["nll"][0])) > 1e-3


def test_padding_keeps_the_state_of_the_last_valid_token():
    model = awd_lstm.AWDLSTMLanguageModel(NO_DROPOUT, max_length=6)
    ids = np.random.default_rng(2).integers(1, 50, size=(2, 7))
    short = _batch(ids[:, :5])
    padded = {k: np.pad(v, ((0, 0), (0, 2))) for k, v in short.items()}
    params = _params(model, padded)
    state0 = model.init_state(2)
    _, m_short, s_short = model.loss_with_state(params, state0, short, rng=None, train=False)
    _, m_pad, s_pad = model.loss_with_state(params, state0, padded, rng=None, train=False)
    np.testing.assert_allclose(m_short["nll"][0], m_pad["nll"][0], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(s_short), jax.tree.leaves(s_pad), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_ar_and_tar_are_added_in_training_only():
    model = awd_lstm.AWDLSTMLanguageModel(NO_DROPOUT, max_length=8, carry_state=False)
    batch = _batch(np.random.default_rng(3).integers(1, 50, size=(2, 9)))
    params = _params(model, batch)
    loss, metrics = model.loss(params, batch, rng=jax.random.key(0), train=True)
    assert float(metrics["ar"][0]) > 0 and float(metrics["tar"][0]) > 0
    np.testing.assert_allclose(
        float(loss), float(metrics["nll"][0] / metrics["nll"][1] + metrics["ar"][0]
                           + metrics["tar"][0]), rtol=1e-5)
    plain = dataclasses.replace(model, alpha=0.0, beta=0.0)
    np.testing.assert_allclose(
        float(plain.loss(params, batch, rng=jax.random.key(0), train=True)[0]),
        float(metrics["nll"][0] / metrics["nll"][1]), rtol=1e-5)


def _stream_targets(split: str) -> np.ndarray:
    import tasks

    ds = tasks.get_dataset("lm_austen_spm8k", split=split, batch_size=32, targets_length=90,
                           bptt=70, seed=0, shuffle=False, num_epochs=1)
    return np.concatenate([b["decoder_target_tokens"][b["decoder_loss_weights"] > 0]
                           for b in ds.as_numpy_iterator()])


@pytest.mark.slow  # ~2.5 min; the ULMFiT chain of tests/test_ulmfit.py trains it too (slow)
def test_tiny_awd_lstm_learns_from_bptt_streams(tmp_path):
    """The demo gin file, 150 steps of 32 x ~70 ids with the state carried: held-out
    perplexity (the whole validation stream, state carried) well below the unigram
    model's (add-one unigram counts of the training stream)."""
    import gin

    from pretrain_lm import gin_utils, trainer

    gin.clear_config()
    try:
        gin_utils.parse(["ulmfit/demo_awd_lstm_tiny_austen.gin"], [
            f"MODEL_DIR = '{tmp_path}'", "TRAIN_STEPS = 150",
            "trainer.train.eval_every = 150", "trainer.train.checkpoint_every = 150",
            "trainer.train.log_every = 50", "trainer.train.progress_bar = False",
            "partitioning.Partitioner.num_devices = 1"])
        results = gin.get_configurable(trainer.train)()
    finally:
        gin.clear_config()
    train, held_out = _stream_targets("train"), _stream_targets("validation")
    counts = np.bincount(train, minlength=8000) + 1.0
    unigram = float(np.exp(-np.log(counts[held_out] / counts.sum()).mean()))
    print(f"\nheld-out perplexity: unigram {unigram:.1f}, tiny AWD-LSTM "
          f"{results['eval/perplexity']:.1f}")
    assert 500 < unigram < 800
    assert results["eval/perplexity"] < 0.8 * unigram


# ----------------------------------------------------------------------------- classifier


def _classifier(bptt: int, backprop_chunks: int = 20) -> awd_lstm.AWDLSTMClassifier:
    return awd_lstm.AWDLSTMClassifier(NO_DROPOUT, num_classes=3, max_seq_length=16,
                                      bptt=bptt, backprop_chunks=backprop_chunks)


def _documents(lengths: list[int], width: int = 16, seed: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    mask = (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int32)
    ids = rng.integers(3, 50, size=(len(lengths), width)) * mask
    return {"input_ids": ids.astype(np.int32), "input_mask": mask,
            "segment_ids": np.zeros_like(mask), "label": np.array([0, 1, 2][:len(lengths)]),
            "example_weight": np.ones(len(lengths), np.float32)}


def test_bpt3c_chunks_carry_the_state_exactly_and_padding_changes_nothing():
    batch = _documents([16, 11, 3])
    whole = _classifier(bptt=16)
    params = _params(whole, batch)
    state = whole.init_state(3)
    want, _ = whole.logits(params, state, batch, rng=None, train=False)
    for bptt in (4, 5):  # chunks of 4 / 5 ids, the state carried between them
        got, _ = _classifier(bptt).logits(params, state, batch, rng=None, train=False)
        np.testing.assert_allclose(got, want, atol=1e-5)
    shorter = {k: (v[:, :12] if v.ndim == 2 else v) for k, v in batch.items()}
    shorter["input_ids"][0], shorter["input_mask"][0] = 7, 1  # row 0 changes, 1 and 2 not
    got, _ = whole.logits(params, state, shorter, rng=None, train=False)
    np.testing.assert_allclose(got[1:], want[1:], atol=1e-5)


def test_bpt3c_backpropagates_through_the_last_chunks_only():
    batch = _documents([16, 16], seed=6)  # two rows: batch norm over one row is constant
    batch["input_ids"] = np.minimum(batch["input_ids"], 39)
    batch["input_ids"][0, :8] = 40   # word 40 only in the first two chunks of 4
    batch["input_ids"][0, 8:] = 41   # word 41 only in the last two
    model = _classifier(bptt=4, backprop_chunks=2)
    params = _params(model, batch)
    state = model.init_state(2)

    def loss(p):
        return model.loss_with_state(p, state, batch, rng=jax.random.key(0), train=True)[0]

    grad = np.asarray(jax.grad(loss)(params)["embedding"])
    assert not grad[40].any() and grad[41].any()
    full = _classifier(bptt=4, backprop_chunks=4)
    grad = np.asarray(jax.grad(lambda p: full.loss_with_state(
        p, state, batch, rng=jax.random.key(0), train=True)[0])(params)["embedding"])
    assert grad[40].any()


def test_classifier_loads_the_language_model_encoder():
    lm = awd_lstm.AWDLSTMLanguageModel(TINY, max_length=8)
    lm_params = _params(lm, _batch(np.ones((1, 9), np.int32)))
    classifier = awd_lstm.AWDLSTMClassifier(TINY, num_classes=3, max_seq_length=16)
    batch = _documents([16, 5])
    params = _params(classifier, batch)
    encoder = {k for k in lm_params if k != "output_bias"}
    assert encoder < set(params) and "output_bias" not in params
    for name in encoder:
        assert jax.tree.map(np.shape, params[name]) == jax.tree.map(np.shape, lm_params[name])
    # Training moves the batch statistics (the model state); evaluation leaves them.
    state = classifier.init_state(2)
    _, metrics, trained = classifier.loss_with_state(params, state, batch,
                                                     rng=jax.random.key(0), train=True)
    assert not np.allclose(jax.tree.leaves(trained)[0], jax.tree.leaves(state)[0])
    _, _, same = classifier.loss_with_state(params, trained, batch, rng=None, train=False)
    jax.tree.map(np.testing.assert_array_equal, same, trained)
    assert set(metrics) == {"loss", "accuracy"}


def test_language_model_equals_the_pytorch_reference_on_the_same_weights():
    """``benchmarks.awd_lstm_torch.peer_model`` (the network ``benchmarks.awd_lstm`` and the
    PTB reference train) computes the same evaluation NLL as ours, window after window
    with the state carried; ours reads the second window padded to ``max_length`` as the
    BPTT pipeline gives it, PyTorch reads it cut to its length."""
    torch = pytest.importorskip("torch")
    from benchmarks.awd_lstm_torch import peer_model

    model = awd_lstm.AWDLSTMLanguageModel(TINY, max_length=8)
    ids = np.random.default_rng(3).integers(1, 50, size=(2, 14))
    first, second = _batch(ids[:, :9]), _batch(ids[:, 8:])
    padded = {k: np.pad(v, ((0, 0), (0, 3))) for k, v in second.items()}
    params = _params(model, first)
    peer = peer_model(TINY).eval()
    with torch.no_grad():
        peer.embedding.weight.copy_(torch.from_numpy(np.array(params["embedding"])))
        peer.decoder_bias.copy_(torch.from_numpy(np.array(params["output_bias"])))
        for i, rnn in enumerate(peer.rnns):
            p = {k: torch.from_numpy(np.array(v)) for k, v in params[f"lstm_{i}"].items()}
            rnn.weight_ih_l0.copy_(p["input_kernel"].T)
            rnn.weight_hh_l0.copy_(p["recurrent_kernel"].T)
            rnn.bias_ih_l0.copy_(p["bias"])
            rnn.bias_hh_l0.zero_()
    state, peer_state = model.init_state(2), peer.initial_state(2)
    for batch, ours_batch in ((first, first), (second, padded)):
        _, metrics, state = model.loss_with_state(params, state, ours_batch, rng=None,
                                                  train=False)
        with torch.no_grad():
            logits, _, _, peer_state = peer(torch.from_numpy(
                batch["decoder_input_tokens"].astype(np.int64)), peer_state)
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, TINY.vocab_size),
                torch.from_numpy(batch["decoder_target_tokens"].astype(np.int64)).reshape(-1),
                reduction="sum")
        np.testing.assert_allclose(float(metrics["nll"][0]), float(nll), rtol=1e-5)
