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


# ---------------------------------------------------------------------------------------
# BERT fine-tuning: several [CLS] A [SEP] B [SEP] examples a row, labels at each [CLS].


def _bert_examples(head: str, n: int) -> list[dict[str, np.ndarray]]:
    """``n`` pair examples of 5-20 wordpieces (101 = [CLS], 102 = [SEP]) with labels."""
    rng = np.random.default_rng(3)
    out = []
    for _ in range(n):
        a, b = rng.integers(2, 9, 2)
        ids = np.concatenate([[101], rng.integers(1000, 1100, a), [102],
                              rng.integers(1000, 1100, b), [102]]).astype(np.int32)
        ex = {"input_ids": ids,
              "segment_ids": np.array([0] * (a + 2) + [1] * (b + 1), np.int32)}
        if head == "classification":
            ex["label"] = np.int32(rng.integers(0, 3))
        elif head == "regression":
            ex["label"] = np.float32(rng.uniform(0, 5))
        else:
            ex["label_ids"] = rng.integers(0, 3, len(ids)).astype(np.int32)
            ex["label_weights"] = (rng.uniform(size=len(ids)) < 0.6).astype(np.float32)
        out.append(ex)
    return out


def _dataset(examples: list[dict[str, np.ndarray]]) -> tf.data.Dataset:
    signature = {k: tf.TensorSpec(np.shape(v), tf.as_dtype(np.asarray(v).dtype))
                 if np.ndim(v) == 0 else tf.TensorSpec([None], tf.as_dtype(v.dtype))
                 for k, v in examples[0].items()}
    return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=signature)


def _stack(ds: tf.data.Dataset) -> dict[str, np.ndarray]:
    rows = list(ds.as_numpy_iterator())
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


@pytest.mark.parametrize("head,pooling", [("classification", "pooler"),
                                          ("classification", "mean"),
                                          ("regression", "cls"),
                                          ("token", "pooler")])
def test_packed_bert_finetuning_examples_equal_unpacked(head, pooling):
    """Nine pairs, one a row (the converter) and packed (``pack_examples``): each
    example's outputs (read at its [CLS] for the sentence heads, at every labelled
    wordpiece for the token head) and the batch loss equal within 1e-5."""
    import jax

    from models import bert
    from tasks import finetuning as ft

    length = 48
    config = bert.BertConfig(vocab_size=1200, num_layers=2, hidden_size=32, num_heads=4,
                             intermediate_size=64, max_position_embeddings=64,
                             hidden_dropout_rate=0.0, attention_dropout_rate=0.0)
    num_labels = 1 if head == "regression" else 3
    model = bert.BertFineTuningModel(config, head=head, num_labels=num_labels,
                                     max_seq_length=length, pooling=pooling)
    params = model.init(jax.random.PRNGKey(0), model.example_batch(2))
    examples = _bert_examples(head, 9)
    converter = ft.FineTuningFeatureConverter(head)
    single = _stack(converter(_dataset(examples),
                              {k: length if s.rank else 0
                               for k, s in converter.TASK_FEATURES.items()}))
    packed = _stack(ft.pack_examples(_dataset(examples), head, length, name="test"))
    assert len(packed["input_ids"]) < len(examples) and packed["input_mask"].max() >= 3
    out_single = np.asarray(model.apply(params, single))
    out_packed = np.asarray(model.apply(params, packed))
    if head == "token":
        a = out_single[single["label_weights"] > 0]
        b = out_packed[packed["label_weights"] > 0]
    else:
        a = out_single
        b = out_packed[packed["example_weight"] > 0]  # each example's [CLS], in order
        labels = packed["label"][packed["example_weight"] > 0]
        np.testing.assert_allclose(labels, single["label"], rtol=0)  # bit-exact labels
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    loss_single, _ = model.loss(params, single, rng=None, train=False)
    loss_packed, metrics = model.loss(params, packed, rng=None, train=False)
    np.testing.assert_allclose(loss_single, loss_packed, rtol=1e-5)
    fill = metrics["packing_efficiency"]
    assert float(fill[0] / fill[1]) > 0.5


def test_packing_refuses_the_span_head():
    from tasks import finetuning as ft
    from tasks.formats import InputFormatError

    with pytest.raises(InputFormatError, match=r"'span' head: set DataConfig.pack = False"):
        ft.pack_examples(_dataset(_bert_examples("classification", 2)), "span", 32,
                         name="squad")


def test_scoring_a_packed_batch_is_refused(translation_model):
    """``score_batch`` gives one log-likelihood a row: a packed batch is refused, naming
    the fix, instead of summing its examples together."""
    model, params = translation_model
    packed = _convert(seqio.EncDecFeatureConverter(pack=True), _examples([(4, 4), (5, 3)]),
                      {"inputs": 24, "targets": 24})
    with pytest.raises(ValueError, match=r"packed.*DataConfig.pack = False"):
        model.score_batch(params, packed)
