"""Example packing: several examples a row, kept apart by segment ids and positions.

seqio's ``EncDecFeatureConverter(pack=True)`` / ``DecoderFeatureConverter(pack=True)``
pack real examples; the Transformer and GPT read them (``layers.segment_mask``). Each
packed example must give the logits and the loss it gives alone in its own padded row,
and no attention may cross from one example to its neighbours.
"""

from __future__ import annotations

import numpy as np
import pytest
import seqio
import tensorflow as tf

from models import gpt, layers, transformer

VOCAB = 50
RNG = np.random.default_rng(0)


def _examples(lengths: list[tuple[int, int]]) -> list[dict[str, np.ndarray]]:
    """Random (inputs, targets) id sequences of the given lengths, each ending in EOS 1."""
    def ids(n):
        return np.concatenate([RNG.integers(2, VOCAB, n - 1), [1]]).astype(np.int32)
    return [{"inputs": ids(a), "targets": ids(b)} for a, b in lengths]


def _convert(converter: seqio.FeatureConverter, examples: list[dict[str, np.ndarray]],
             lengths: dict[str, int]) -> dict[str, np.ndarray]:
    """All rows seqio's converter makes of ``examples``, stacked."""
    features = list(examples[0])
    ds = tf.data.Dataset.from_generator(
        lambda: iter(examples),
        output_signature={k: tf.TensorSpec([None], tf.int32) for k in features})
    rows = list(converter(ds, lengths).as_numpy_iterator())
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def _per_example(batch: dict[str, np.ndarray], values: np.ndarray, prefix: str
                 ) -> list[np.ndarray]:
    """``values`` ``[rows, length, ...]`` cut into each example's real positions, in the
    order the examples were packed (by row, then segment id)."""
    segments = batch.get(f"{prefix}_segment_ids")
    weights = batch["decoder_loss_weights"] if prefix == "decoder" else (
        batch["encoder_input_tokens"] > 0)
    out = []
    for r in range(values.shape[0]):
        if segments is None:
            out.append(values[r][weights[r] > 0])
            continue
        for s in range(1, int(segments[r].max()) + 1):
            out.append(values[r][(segments[r] == s) & (weights[r] > 0)])
    return out


def _token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, targets[..., None], -1)[..., 0]


@pytest.fixture(scope="module")
def translation_model():
    import jax

    cfg = transformer.TransformerConfig(vocab_size=VOCAB, d_model=32, num_encoder_layers=2,
                                        num_decoder_layers=2, num_heads=4, d_ff=64,
                                        dropout_rate=0.0, max_length=32)
    model = transformer.TranslationModel(cfg, 24, 24)
    params = model.init(jax.random.PRNGKey(0), model.example_batch(2))
    return model, params


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_packed_translation_pairs_equal_unpacked(positions):
    """Seven real-length pairs, one a row and packed (2-3 a row): every target token's
    logits equal within 1e-5, so do the per-example losses."""
    import jax

    cfg = transformer.TransformerConfig(vocab_size=VOCAB, d_model=32, num_encoder_layers=2,
                                        num_decoder_layers=2, num_heads=4, d_ff=64,
                                        dropout_rate=0.0, max_length=32, positions=positions)
    model = transformer.TranslationModel(cfg, 24, 24)
    params = model.init(jax.random.PRNGKey(0), model.example_batch(2))
    examples = _examples([(5, 7), (9, 4), (3, 3), (11, 9), (6, 12), (2, 5), (8, 8)])
    lengths = {"inputs": 24, "targets": 24}
    single = _convert(seqio.EncDecFeatureConverter(pack=False), examples, lengths)
    packed = _convert(seqio.EncDecFeatureConverter(pack=True), examples, lengths)
    assert len(packed["encoder_input_tokens"]) < len(examples)  # several a row
    assert packed["decoder_segment_ids"].max() >= 2
    logits_single = np.asarray(model.apply(params, single))
    logits_packed = np.asarray(model.apply(params, packed))
    a = _per_example(single, logits_single, "decoder")
    b = _per_example(packed, logits_packed, "decoder")
    assert [len(x) for x in a] == [len(x) for x in b] == [len(e["targets"]) for e in examples]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5, rtol=1e-5)
    nll_single = _per_example(single, _token_nll(logits_single, single["decoder_target_tokens"]),
                              "decoder")
    nll_packed = _per_example(packed, _token_nll(logits_packed, packed["decoder_target_tokens"]),
                              "decoder")
    np.testing.assert_allclose([x.sum() for x in nll_single], [x.sum() for x in nll_packed],
                               atol=1e-5, rtol=1e-5)
    # The batch loss over the same tokens: the same token-weighted mean.
    loss_single, m_single = model.loss(params, single, rng=None, train=False)
    loss_packed, m_packed = model.loss(params, packed, rng=None, train=False)
    np.testing.assert_allclose(loss_single, loss_packed, rtol=1e-5)
    fill_single = float(m_single["packing_efficiency"][0] / m_single["packing_efficiency"][1])
    fill_packed = float(m_packed["packing_efficiency"][0] / m_packed["packing_efficiency"][1])
    assert fill_packed > 2 * fill_single


def test_packed_language_model_examples_equal_unpacked():
    """GPT (learned positions, pre-LN): the same equality on decoder-only examples."""
    import jax

    cfg = gpt.gpt_config(vocab_size=VOCAB, d_model=32, num_layers=2, num_heads=4,
                         max_length=32, dropout_rate=0.0)
    model = gpt.LanguageModel(cfg, max_length=24)
    params = model.init(jax.random.PRNGKey(1), model.example_batch(2))
    examples = [{"targets": e["targets"]}
                for e in _examples([(1, 7), (1, 4), (1, 10), (1, 3), (1, 15), (1, 6)])]
    lengths = {"targets": 24}
    single = _convert(seqio.DecoderFeatureConverter(pack=False), examples, lengths)
    packed = _convert(seqio.DecoderFeatureConverter(pack=True), examples, lengths)
    assert len(packed["decoder_target_tokens"]) < len(examples)
    a = _per_example(single, np.asarray(model.apply(params, single)), "decoder")
    b = _per_example(packed, np.asarray(model.apply(params, packed)), "decoder")
    assert [len(x) for x in a] == [len(e["targets"]) for e in examples]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5, rtol=1e-5)


def test_no_attention_crosses_a_segment_boundary(translation_model):
    """Changing every token of one packed example (source and target) leaves its row
    neighbours' logits unchanged; the changed example's own logits do change."""
    model, params = translation_model
    examples = _examples([(6, 6), (7, 5), (5, 8)])
    packed = _convert(seqio.EncDecFeatureConverter(pack=True), examples,
                      {"inputs": 24, "targets": 24})
    assert packed["decoder_segment_ids"][0].max() == 3  # all three in one row
    changed = {k: v.copy() for k, v in packed.items()}
    for key, prefix in (("encoder_input_tokens", "encoder"), ("decoder_target_tokens",
                                                              "decoder"),
                        ("decoder_input_tokens", "decoder")):
        middle = changed[f"{prefix}_segment_ids"] == 2
        tokens = changed[key]
        tokens[middle & (tokens > 1)] = (tokens[middle & (tokens > 1)] + 7) % (VOCAB - 2) + 2
    before = np.asarray(model.apply(params, packed))[0]
    after = np.asarray(model.apply(params, changed))[0]
    segments = packed["decoder_segment_ids"][0]
    for s in (1, 3):
        np.testing.assert_allclose(before[segments == s], after[segments == s], atol=1e-6)
    assert np.abs(before[segments == 2] - after[segments == 2]).max() > 1e-3


def test_segment_mask_reads_padding_and_segments():
    q = np.array([[1, 1, 2, 0]])
    mask = np.asarray(layers.segment_mask(q, q))[0, 0]
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0],
                                         [0, 0, 0, 0]])
