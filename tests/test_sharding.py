"""Sharded equals unsharded: BERT-tiny steps on 1 device and on a 4x2 mesh agree."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from models import bert
from pretrain_lm import optimizers
from pretrain_lm.data import to_global
from pretrain_lm.partitioning import Partitioner
from pretrain_lm.trainer import Trainer

CONFIG = bert.BertConfig(vocab_size=96, hidden_size=32, num_layers=2, num_heads=2,
                         intermediate_size=64, max_position_embeddings=32)


def _batches(model: bert.BertPretrainingModel, n: int, batch_size: int = 8):
    """The same random batch ``n`` times (so the loss must fall)."""
    for _ in range(n):
        rng = np.random.default_rng(0)
        b = model.example_batch(batch_size)
        b["input_ids"] = rng.integers(5, CONFIG.vocab_size, b["input_ids"].shape, np.int32)
        b["segment_ids"][:, 8:] = 1
        b["input_mask"][:2, 12:] = 0
        b["masked_lm_positions"] = rng.integers(1, 12, b["masked_lm_positions"].shape, np.int32)
        b["masked_lm_ids"] = rng.integers(5, CONFIG.vocab_size, b["masked_lm_ids"].shape,
                                          np.int32)
        b["masked_lm_weights"][:] = 1.0
        b["next_sentence_labels"] = rng.integers(0, 2, (batch_size,), np.int32)
        yield b


def _run(partitioner: Partitioner, steps: int = 3, config: bert.BertConfig = CONFIG,
         num_microbatches: int = 1):
    model = bert.BertPretrainingModel(config, max_seq_length=16, max_predictions_per_seq=4)
    opt = optimizers.adamw(1e-3, warmup_steps=1, total_steps=steps)
    trainer = Trainer(model, opt.tx, partitioner, seed=0, num_microbatches=num_microbatches)
    state = trainer.init_state()
    losses = []
    for batch in _batches(model, steps):
        state, metrics = trainer.train_step(
            state, to_global(batch, partitioner.batch_sharding(), 8))
        total, count = metrics["loss"]
        losses.append(float(total) / float(count))
    return losses, state


def test_sharded_training_matches_single_device():
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices; see tests/conftest.py")
    single_losses, single_state = _run(Partitioner(data=1, model=1, num_devices=1))
    mesh_losses, mesh_state = _run(Partitioner(data=4, model=2))
    np.testing.assert_allclose(mesh_losses, single_losses, rtol=1e-5, atol=1e-5)
    assert single_losses[-1] < single_losses[0]  # the steps really trained

    params = mesh_state.params
    q = params["bert"]["layer_0"]["attention"]["query"]["kernel"]
    assert q.sharding.spec == P(None, "model", None)  # heads over `model`
    ffn = params["bert"]["layer_0"]["mlp"]["intermediate"]["kernel"]
    assert ffn.sharding.spec == P(None, "model")
    assert {s.data.shape for s in ffn.addressable_shards} == {(32, 32)}  # half of 64 each
    emb = params["bert"]["embeddings"]["word_embeddings"]["embedding"]
    assert emb.sharding.spec == P("model", None)
    # Adam moments follow their parameters' layout.
    mu = mesh_state.opt_state[1][0].mu["bert"]["layer_0"]["mlp"]["intermediate"]["kernel"]
    assert mu.sharding.spec == P(None, "model")
    for a, b in zip(jax.tree.leaves(single_state.params), jax.tree.leaves(params), strict=False):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("data, model, rules", [(8, 1, "default"), (2, 4, "fsdp")])
def test_other_meshes_match_single_device(data, model, rules):
    """Pure data parallelism, and FSDP (params over `data`) with 4-way tensor parallelism."""
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices; see tests/conftest.py")
    single_losses, _ = _run(Partitioner(data=1, model=1, num_devices=1))
    mesh_losses, mesh_state = _run(Partitioner(data=data, model=model, rules=rules))
    np.testing.assert_allclose(mesh_losses, single_losses, rtol=1e-5, atol=1e-5)
    ffn = mesh_state.params["bert"]["layer_0"]["mlp"]["intermediate"]["kernel"]
    assert len({s.device for s in ffn.addressable_shards}) == 8
    if rules == "fsdp":
        assert "data" in jax.tree.leaves(tuple(ffn.sharding.spec))


def test_gradient_accumulation_matches_the_full_batch():
    """Two microbatches of 4 = one batch of 8 (no dropout; equal masked counts)."""
    import dataclasses

    config = dataclasses.replace(CONFIG, hidden_dropout_rate=0.0, attention_dropout_rate=0.0)
    one = Partitioner(data=1, model=1, num_devices=1)
    full, _ = _run(one, config=config)
    accumulated, _ = _run(one, config=config, num_microbatches=2)
    np.testing.assert_allclose(accumulated, full, rtol=1e-5, atol=1e-6)
