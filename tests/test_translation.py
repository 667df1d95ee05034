"""Translation: data pipeline, checkpoint averaging, decoding a trained model, bad input."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

import tasks
from models import transformer
from pretrain_lm import average_checkpoints
from pretrain_lm.checkpoints import Checkpointer
from tasks import translation

TASK = "translate_en_de_debian_l10n"


def test_shipped_corpus_batches_cover_the_split_and_count_truncation():
    ds = tasks.get_dataset(TASK, split="validation", inputs_length=16, targets_length=16,
                           batch_size=100, seed=0, shuffle=False, num_epochs=1)
    batches = list(ds.as_numpy_iterator())
    real = sum(int((b["decoder_loss_weights"].sum(1) > 0).sum()) for b in batches)
    assert real == tasks.num_examples(TASK, "validation") == 988
    b = batches[0]
    np.testing.assert_array_equal(b["decoder_input_tokens"][:, 1:],
                                  b["decoder_target_tokens"][:, :-1])
    vocab = tasks.get_vocabulary(TASK)
    sources, targets = translation.read_parallel_tsv(
        os.path.join(os.path.dirname(__file__), "..", "data", "parallel", "en-de",
                     "validation.tsv"), "en", "de")
    assert vocab.decode([t for t in b["decoder_target_tokens"][0] if t > 1]) == targets[0] \
        or len(vocab.encode(targets[0])) >= 15
    stats = tasks.get_stats(TASK)
    long_sources = sum(len(vocab.encode(s)) > 16 for s in sources)
    assert stats["truncated_inputs"] >= long_sources > 0


def test_malformed_parallel_lines_are_reported(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("en\tde\nHello world\tHallo Welt\n\tleer\nno tab\n", encoding="utf-8")
    with pytest.raises(translation.MalformedCorpusError) as err:
        translation.read_parallel_tsv(str(path), "en", "de")
    assert "2 malformed" in str(err.value) and "line 3: empty en side" in str(err.value)


def _tiny_params(seed: int) -> dict:
    cfg = transformer.TransformerConfig(vocab_size=50, d_model=16, num_encoder_layers=1,
                                        num_decoder_layers=1, num_heads=2, d_ff=32)
    model = transformer.TranslationModel(cfg, 8, 8)
    boxed = model.init(jax.random.key(seed), model.example_batch(1))
    return jax.tree.map(np.asarray, jax.tree.map(
        lambda x: getattr(x, "value", x), boxed, is_leaf=lambda x: hasattr(x, "value")))


def test_checkpoint_averaging(tmp_path):
    a, b = _tiny_params(0), _tiny_params(1)
    source = Checkpointer(str(tmp_path / "run"), async_save=False)
    for step, params in ((1, a), (2, a), (3, b)):
        source.save(step, {"step": np.int32(step), "params": params}, None, force=True)
    source.close()
    out = str(tmp_path / "avg")
    # The last two checkpoints (steps 2 and 3) hold a and b: their mean.
    step, chosen = average_checkpoints.average_checkpoints(str(tmp_path / "run"), 2, out)
    assert (step, chosen) == (3, [2, 3])
    from pretrain_lm import interop

    got = interop.load_pretrain_lm_params(out)
    jax.tree.map(lambda g, x, y: np.testing.assert_allclose(g, (x + y) / 2, rtol=1e-6),
                 got, a, b)
    same = average_checkpoints.average_params([a, a, a])
    jax.tree.map(np.testing.assert_array_equal, same, a)
    with pytest.raises(ValueError, match="cannot average the last 5"):
        average_checkpoints.average_checkpoints(str(tmp_path / "run"), 5, out + "_x")
