"""The MT Transformer and the GPT decoder against HuggingFace, and their invariants."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from models import gpt, transformer
from pretrain_lm.tools import interop_transformer

VOCAB = 64


def _marian(init_std: float = 0.02, bias_std: float = 0.5):
    config = transformers.MarianConfig(
        init_std=init_std,
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, activation_function="relu", max_position_embeddings=64,
        scale_embedding=True, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    torch.manual_seed(0)
    model = transformers.MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_(0, bias_std)
    model.generation_config.forced_eos_token_id = None  # Marian's default forces pad last
    ours = transformer.TransformerConfig(
        vocab_size=VOCAB, d_model=32, num_encoder_layers=2, num_decoder_layers=2,
        num_heads=4, d_ff=64, dropout_rate=0.0, max_length=64, output_bias=True,
        layer_norm_epsilon=1e-5)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    params = interop_transformer.transformer_params_from_marian(state, ours)
    return model, transformer.TranslationModel(ours, 12, 10), params


def _gpt2():
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2,
                                     n_head=4, activation_function="gelu_new",
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(1)
    model = transformers.GPT2LMHeadModel(config).eval()
    ours = gpt.gpt_config(vocab_size=VOCAB, d_model=32, num_layers=2, num_heads=4,
                          max_length=32, dropout_rate=0.0)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    return model, gpt.LanguageModel(ours, max_length=12), interop_transformer.gpt_params_from_hf(
        state, ours)


def _batch(rng: np.random.Generator, b: int, length: int, pad_from: int | None = None):
    ids = rng.integers(2, VOCAB, size=(b, length)).astype(np.int32)
    if pad_from is not None:
        ids[0, pad_from:] = 0
    return ids


def test_marian_logits_match_huggingface():
    hf, model, params = _marian()
    rng = np.random.default_rng(0)
    inputs, targets = _batch(rng, 3, 12, pad_from=7), _batch(rng, 3, 10)
    decoder_inputs = np.asarray(transformer.shift_right(jnp.asarray(targets)))
    with torch.no_grad():
        expected = hf(input_ids=torch.tensor(inputs, dtype=torch.long),
                      attention_mask=torch.tensor(inputs > 0, dtype=torch.long),
                      decoder_input_ids=torch.tensor(decoder_inputs, dtype=torch.long)
                      ).logits.numpy()
    got = model.apply(params, transformer.seq2seq_batch(inputs, targets))
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4, rtol=1e-4)


def test_our_params_convert_back_to_the_same_marian_state():
    """ours -> Marian is the exact inverse of Marian -> ours: a trained model of ours can
    be decoded by HF ``generate`` on the same weights (the tied embedding copies too)."""
    hf, model, params = _marian()
    state = {k: v.numpy() for k, v in hf.state_dict().items()}
    blank = {k: np.zeros_like(v) for k, v in state.items()}
    blank.update({k: state[k] for k in state if k.endswith("embed_positions.weight")})
    back = interop_transformer.marian_state_from_transformer_params(params, model.config,
                                                                    blank)
    assert back.keys() == state.keys()
    for name, value in state.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)


def test_gpt2_logits_match_huggingface():
    hf, model, params = _gpt2()
    ids = _batch(np.random.default_rng(1), 3, 12)
    with torch.no_grad():
        expected = hf(input_ids=torch.tensor(ids, dtype=torch.long)).logits.numpy()
    got = model.network.apply({"params": params}, ids, deterministic=True)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4, rtol=1e-4)


def test_kv_cache_steps_equal_the_full_forward():
    for build in (_marian, _gpt2):
        _, model, params = build()
        rng = np.random.default_rng(2)
        targets = _batch(rng, 2, 8)
        prefix = np.asarray(transformer.shift_right(jnp.asarray(targets)))
        if isinstance(model, transformer.TranslationModel):
            inputs = _batch(rng, 2, 12, pad_from=9)
            full = model.apply(params, transformer.seq2seq_batch(inputs, targets))
            state = model.decode_state(params, {"encoder_input_tokens": inputs}, 8)
        else:
            full = model.apply(params, {"decoder_input_tokens": prefix})
            state = model.decode_state(params, {"prompt_tokens": np.zeros((2, 1))}, 8)
        step = jax.jit(model.step_fn(params))
        for t in range(8):
            logits, state = step(jnp.asarray(prefix[:, t]), state, jnp.int32(t))
            np.testing.assert_allclose(np.asarray(logits), np.asarray(full[:, t]), atol=1e-4)


def test_future_targets_and_source_padding_never_leak():
    _, model, params = _marian()
    rng = np.random.default_rng(3)
    inputs, targets = _batch(rng, 2, 12, pad_from=6), _batch(rng, 2, 10)
    base = np.asarray(model.apply(params, transformer.seq2seq_batch(inputs, targets)))
    for t in (3, 7):
        changed = targets.copy()
        changed[:, t] = (changed[:, t] + 5) % (VOCAB - 2) + 2
        out = np.asarray(model.apply(params, transformer.seq2seq_batch(inputs, changed)))
        np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-6)
        assert np.abs(out[:, t + 1:] - base[:, t + 1:]).max() > 1e-3
    # More source padding (row 0 is already padded from position 6) changes nothing.
    longer = np.concatenate([inputs, np.zeros((2, 4), np.int32)], axis=1)
    out = np.asarray(model.apply(params, transformer.seq2seq_batch(longer, targets)))
    np.testing.assert_allclose(out, base, atol=1e-5)


def test_label_smoothing_is_the_mixture_with_a_uniform_target():
    from models import layers

    logits = jnp.asarray(np.random.default_rng(4).normal(size=(2, 3, 7)), jnp.float32)
    labels = jnp.asarray([[1, 2, 3], [4, 5, 6]])
    weights = jnp.asarray([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    smoothed, nll, _, count = layers.label_smoothed_cross_entropy(logits, labels, weights, 0.1)
    log_p = jax.nn.log_softmax(logits)
    target = 0.9 * jax.nn.one_hot(labels, 7) + 0.1 / 7
    expected = -jnp.sum(jnp.sum(target * log_p, -1) * weights)
    np.testing.assert_allclose(smoothed, expected, rtol=1e-6)
    assert float(count) == 5 and float(nll) < float(smoothed)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_pre_ln_and_learned_positions_build(positions):
    cfg = transformer.TransformerConfig(vocab_size=VOCAB, d_model=16, num_encoder_layers=1,
                                        num_decoder_layers=1, num_heads=2, d_ff=32,
                                        pre_layer_norm=True, positions=positions,
                                        max_length=16)
    model = transformer.TranslationModel(cfg, 8, 8)
    params = model.init(jax.random.key(0), model.example_batch(2))
    assert "final_layer_norm" in params["decoder"]
    loss, _ = model.loss(jax.tree.map(lambda x: getattr(x, "value", x), params,
                                      is_leaf=lambda x: hasattr(x, "value")),
                         model.example_batch(2), rng=jax.random.key(1), train=True)
    assert np.isfinite(loss)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cached_decoding_equals_huggingface_generate(num_beams):
    """Our KV-cache greedy / beam search ('hf' length penalty) on converted Marian weights
    produce HF generate's exact token sequences, with a cache of all 9 positions and with
    one that starts at 3 and grows to 6 and 9 (``decoding.cache_sizes``)."""
    from models import decoding

    # Random tied-embedding models tend to repeat a token; these settings give rows that
    # differ and beams that branch (tests/test_decoding.py checks varied GPT-2 outputs).
    hf, model, params = _marian(init_std=1.0, bias_std=0.0)
    with torch.no_grad():
        hf.final_logits_bias[0, 1] = 1.5  # EOS within reach
    params["embed"]["output_bias"] = hf.final_logits_bias.numpy().reshape(-1)
    inputs = _batch(np.random.default_rng(5), 4, 12, pad_from=5)
    with torch.no_grad():
        expected = hf.generate(
            input_ids=torch.tensor(inputs, dtype=torch.long),
            attention_mask=torch.tensor(inputs > 0, dtype=torch.long), num_beams=num_beams,
            do_sample=False, max_new_tokens=9, length_penalty=1.0, early_stopping=True,
            decoder_start_token_id=0, eos_token_id=1, pad_token_id=0).numpy()[:, 1:]
    for sizes in [(9,), (3, 6, 9)]:
        state = model.decode_state(params, {"encoder_input_tokens": inputs}, sizes[0])
        common = dict(bos_id=0, eos_id=1, max_length=9, batch_size=4, cache_sizes=sizes,
                      grow=model.grow_decode_state)
        if num_beams == 1:
            got = decoding.greedy(model.step_fn(params), state, **common)[0]
        else:
            got = decoding.beam_search(model.step_fn(params), state, beam_size=num_beams,
                                       alpha=1.0, length_penalty="hf", early_stopping=True,
                                       **common)[0][:, 0]
        got = np.asarray(got)[:, :expected.shape[1]]
        np.testing.assert_array_equal(got, expected, err_msg=f"cache sizes {sizes}")


def test_score_batch_is_each_examples_log_likelihood_under_huggingface():
    """``score_batch``: sum over a row's weighted targets of log p, equal to the same sum
    from the HF model's logits; and the rows add up to the loss's NLL."""
    rng = np.random.default_rng(7)
    targets = _batch(rng, 3, 10)
    targets[1, 6:] = 0
    weights = (targets > 0).astype(np.float32)
    decoder_inputs = np.asarray(transformer.shift_right(jnp.asarray(targets)))
    for build in (_marian, _gpt2):
        hf, model, params = build()
        if isinstance(model, transformer.TranslationModel):
            inputs = _batch(rng, 3, 12, pad_from=7)
            batch = transformer.seq2seq_batch(inputs, targets)
            with torch.no_grad():
                logits = hf(input_ids=torch.tensor(inputs, dtype=torch.long),
                            attention_mask=torch.tensor(inputs > 0, dtype=torch.long),
                            decoder_input_ids=torch.tensor(decoder_inputs, dtype=torch.long)
                            ).logits
        else:
            batch = {"decoder_input_tokens": decoder_inputs,
                     "decoder_target_tokens": targets, "decoder_loss_weights": weights}
            with torch.no_grad():
                logits = hf(input_ids=torch.tensor(decoder_inputs, dtype=torch.long)).logits
        log_probs = torch.log_softmax(logits.double(), -1).numpy()
        expected = (np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
                    * weights).sum(-1)
        got = np.asarray(model.score_batch(params, batch))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
        _, metrics = model.loss(params, batch, rng=None, train=False)
        np.testing.assert_allclose(-got.sum(), float(metrics["nll"][0]), rtol=1e-5)


def test_gpt_decodes_each_rows_own_prompt_as_huggingface_greedy():
    """One batch, prompts of different lengths: each row's greedy continuation is HF
    ``generate``'s from that prompt (after the start id 0), and the same as decoding the
    row alone."""
    hf, model, params = _gpt2()
    prompts = [[5, 9, 13], [7, 3, 22, 40, 11]]
    new = 6
    batch = np.zeros((2, 5), np.int32)
    for row, prompt in enumerate(prompts):
        batch[row, :len(prompt)] = prompt
    max_length = 5 + new
    got = np.asarray(model.predict_batch(params, {"prompt_tokens": batch}, method="greedy",
                                         max_length=max_length)["tokens"])
    for row, prompt in enumerate(prompts):
        alone = np.asarray(model.predict_batch(
            params, {"prompt_tokens": batch[row:row + 1]}, method="greedy",
            max_length=max_length)["tokens"])[0]
        np.testing.assert_array_equal(got[row], alone)
        with torch.no_grad():
            expected = hf.generate(torch.tensor([[0, *prompt]]),
                                   attention_mask=torch.ones((1, len(prompt) + 1),
                                                             dtype=torch.long),
                                   do_sample=False,
                                   max_new_tokens=max_length - len(prompt), eos_token_id=1,
                                   pad_token_id=0).numpy()[0, 1:]
        np.testing.assert_array_equal(got[row][:len(expected)], expected)
        assert list(got[row][:len(prompt)]) == prompt


@pytest.mark.parametrize("num_beams", [1, 3])
def test_gpt_decoding_with_a_growing_cache_equals_the_full_cache(num_beams):
    """The GPT's cache starting at 4 positions and grown to 8 and 11 mid-decoding
    (``grow_decode_state``, as ``predict_batch`` grows past 32) gives the tokens and scores
    of one cache of all 11 positions; greedy is also HF ``generate``'s continuation."""
    from models import decoding

    hf, model, params = _gpt2()
    prompts = np.array([[5, 9, 13, 0, 0], [7, 3, 22, 40, 11]], np.int32)
    results = {}
    for sizes in [(11,), (4, 8, 11)]:
        state = model.decode_state(params, {"prompt_tokens": prompts}, sizes[0])
        common = dict(bos_id=0, eos_id=1, max_length=11, batch_size=2, cache_sizes=sizes,
                      grow=model.grow_decode_state)
        if num_beams == 1:
            results[sizes] = decoding.greedy(model.step_fn(params), state, **common)
        else:
            results[sizes] = decoding.beam_search(model.step_fn(params), state,
                                                  beam_size=num_beams, alpha=0.6, **common)
    for full, grown in zip(results[(11,)], results[(4, 8, 11)], strict=True):
        np.testing.assert_allclose(np.asarray(grown), np.asarray(full), rtol=1e-5)
    if num_beams == 1:
        tokens = np.asarray(results[(4, 8, 11)][0])
        with torch.no_grad():
            expected = hf.generate(torch.tensor([[0, 7, 3, 22, 40, 11]]),
                                   attention_mask=torch.ones((1, 6), dtype=torch.long),
                                   do_sample=False, max_new_tokens=6, eos_token_id=1,
                                   pad_token_id=0).numpy()[0, 1:]
        np.testing.assert_array_equal(tokens[1][:len(expected)], expected)
