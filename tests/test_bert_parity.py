"""Numeric parity: our Flax BERT vs HuggingFace ``BertForPreTraining`` (PyTorch).

HF is the reference implementation nobody here wrote; its randomly initialised
weights are converted with ``pretrain_lm.tools.interop`` and both models must give the
same MLM and NSP logits.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from models import bert  # noqa: E402
from pretrain_lm.tools import interop  # noqa: E402

SIZES = dict(vocab_size=211, hidden_size=48, num_layers=3, num_heads=4,
             intermediate_size=96, max_position_embeddings=64)


def _hf_model(seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(
        vocab_size=SIZES["vocab_size"], hidden_size=SIZES["hidden_size"],
        num_hidden_layers=SIZES["num_layers"], num_attention_heads=SIZES["num_heads"],
        intermediate_size=SIZES["intermediate_size"],
        max_position_embeddings=SIZES["max_position_embeddings"], type_vocab_size=2,
        hidden_act="gelu", initializer_range=0.2)  # large init: non-trivial activations
    model = transformers.BertForPreTraining(cfg).eval()
    # HF initialises biases and LayerNorm to 0/1; perturb them so the test covers them.
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                tensor.add_(0.1 * torch.randn_like(tensor))
    return model


def _batch(rng: np.random.Generator, batch: int = 3, length: int = 24, preds: int = 5):
    ids = rng.integers(5, SIZES["vocab_size"], size=(batch, length)).astype(np.int32)
    lengths = np.array([length, length - 7, 9])[:batch]
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
    segments = (np.arange(length)[None] >= (lengths[:, None] // 2)).astype(np.int32) * mask
    positions = np.stack([rng.choice(n, size=preds, replace=False) for n in lengths])
    return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments,
            "masked_lm_positions": positions.astype(np.int32)}


def test_pretraining_logits_match_huggingface():
    hf = _hf_model()
    state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    config = bert.BertConfig(**SIZES)
    model = bert.BertPretrainingModel(config, max_seq_length=24, max_predictions_per_seq=5)
    params = interop.bert_params_from_hf(state, config)
    batch = _batch(np.random.default_rng(0))

    mlm, nsp = model.apply(params, batch)
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
                 attention_mask=torch.tensor(batch["input_mask"], dtype=torch.long),
                 token_type_ids=torch.tensor(batch["segment_ids"], dtype=torch.long))
    hf_mlm = np.take_along_axis(out.prediction_logits.numpy(),
                                batch["masked_lm_positions"][..., None], axis=1)
    np.testing.assert_allclose(np.asarray(mlm), hf_mlm, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(nsp), out.seq_relationship_logits.numpy(),
                               atol=1e-4, rtol=1e-4)
    # Sanity: the comparison is not between two near-constant outputs.
    assert np.std(hf_mlm) > 0.1


def test_conversion_rejects_a_checkpoint_of_another_depth():
    state = {k: v.detach().numpy() for k, v in _hf_model().state_dict().items()}
    deeper = bert.BertConfig(**{**SIZES, "num_layers": 4})
    with pytest.raises(interop.ConversionError, match=r"no tensor 'bert\.encoder\.layer\.3"):
        interop.bert_params_from_hf(state, deeper)
    shallower = bert.BertConfig(**{**SIZES, "num_layers": 2})
    with pytest.raises(interop.ConversionError, match="have no place in a 2-layer"):
        interop.bert_params_from_hf(state, shallower)
