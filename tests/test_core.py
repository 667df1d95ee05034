"""Fast unit tests of the core library on a toy model: trainer, checkpoints, partitioning.

The model is a linear regression with logically named axes, so every check runs in a
second or two: one training step equals optax applied by hand, evaluation averages are
weighted by each metric's count, the mesh rules shard what they name (and replicate a
dimension they do not divide), and a checkpoint round-trips exactly or is refused with
the mismatching shapes named.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec

from models.base import Model
from pretrain_lm import checkpoints, trainer
from pretrain_lm.partitioning import Partitioner

FEATURES, OUTPUTS = 8, 4


class _Linear(nn.Module):
    outputs: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.with_logical_partitioning(
            nn.initializers.normal(1.0), ("embed", "mlp")), (x.shape[-1], self.outputs))
        bias = self.param("bias", nn.with_logical_partitioning(
            nn.initializers.zeros, ("mlp",)), (self.outputs,))
        return x @ kernel + bias


class LinearRegression(Model):
    """Squared error of ``x @ W + b`` against ``y``; metrics summed with their counts."""

    def __init__(self, outputs: int = OUTPUTS) -> None:
        self.net = _Linear(outputs)
        self.outputs = outputs

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        return {"x": np.zeros((batch_size, FEATURES), np.float32),
                "y": np.zeros((batch_size, self.outputs), np.float32)}

    def init(self, rng: jax.Array, batch: dict) -> dict:
        return self.net.init(rng, batch["x"])

    def loss(self, params: dict, batch: dict, *, rng: jax.Array | None, train: bool):
        del rng, train
        error = jnp.sum((self.net.apply(params, batch["x"]) - batch["y"]) ** 2, axis=-1)
        n = jnp.asarray(error.shape[0], jnp.float32)
        return jnp.mean(error), {"loss": (jnp.sum(error), n),
                                 "first_row": (error[0], jnp.ones(()))}


def _batch(seed: int, size: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(size, FEATURES)).astype(np.float32),
            "y": rng.normal(size=(size, OUTPUTS)).astype(np.float32)}


def _trainer(num_devices: int = 1, tx: optax.GradientTransformation | None = None,
             **kwargs) -> trainer.Trainer:
    return trainer.Trainer(LinearRegression(), tx or optax.sgd(0.1),
                           Partitioner(num_devices=num_devices), **kwargs)


def test_one_train_step_is_the_optimizer_update_of_the_loss_gradient():
    t = _trainer(tx=optax.adam(1e-2))
    state = t.init_state()
    params = jax.device_get(state.params)
    batch = _batch(0)
    new_state, metrics = t.train_step(state, batch)

    model, tx = LinearRegression(), optax.adam(1e-2)
    loss, grads = jax.value_and_grad(
        lambda p: model.loss(p, batch, rng=None, train=True)[0])(params)
    updates, _ = tx.update(grads, tx.init(params), params)
    expected = optax.apply_updates(params, updates)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 jax.device_get(new_state.params), expected)
    assert int(new_state.step) == 1
    summed, count = jax.device_get(metrics["loss"])
    np.testing.assert_allclose(summed / count, loss, rtol=1e-5)
    np.testing.assert_allclose(jax.device_get(metrics["grad_norm"][0]),
                               optax.global_norm(grads), rtol=1e-5)


def test_evaluation_averages_are_weighted_by_each_metrics_count():
    t = _trainer()
    params = t.init_state().params
    batches = [_batch(1, 8), _batch(2, 8), _batch(3, 8)]
    averages = t.evaluate(params, iter(batches), num_steps=2)  # the third is not read
    model, host_params = LinearRegression(), jax.device_get(params)
    errors = [np.sum((model.net.apply(host_params, b["x"]) - b["y"]) ** 2, -1)
              for b in batches[:2]]
    np.testing.assert_allclose(averages["loss"], np.concatenate(errors).mean(), rtol=1e-5)
    np.testing.assert_allclose(averages["first_row"], np.mean([e[0] for e in errors]),
                               rtol=1e-5)
    assert t.evaluate(params, iter([]), num_steps=None) == {}


def test_eight_device_steps_equal_one_device_steps():
    batches = [_batch(s, 16) for s in range(3)]
    final = []
    for n in (1, 8):
        t = _trainer(num_devices=n, tx=optax.adam(1e-2))
        state = t.init_state()
        for b in batches:
            state, _ = t.train_step(state, b)
        final.append(jax.device_get(state.params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), *final)


def test_the_mesh_rules_shard_what_they_name_and_replicate_what_they_cannot_divide():
    p = Partitioner(data=2, model=4)
    assert p.data_size == 2 and dict(p.mesh.shape) == {"data": 2, "model": 4}
    boxed = jax.eval_shape(LinearRegression(outputs=4).init, jax.random.key(0),
                           LinearRegression(outputs=4).example_batch(2))
    shardings = p.shardings_of_boxed(boxed)["params"]
    assert shardings["kernel"].spec == PartitionSpec(None, "model")  # embed -> None
    assert shardings["bias"].spec == PartitionSpec("model")
    odd = jax.eval_shape(LinearRegression(outputs=6).init, jax.random.key(0),
                         LinearRegression(outputs=6).example_batch(2))
    shardings = p.shardings_of_boxed(odd)["params"]  # 6 outputs over 4 ways: replicated
    assert shardings["kernel"].spec == PartitionSpec(None, None)
    fsdp = Partitioner(data=2, model=4, rules="fsdp").shardings_of_boxed(boxed)["params"]
    assert fsdp["kernel"].spec == PartitionSpec("data", "model")
    assert p.batch_sharding().spec == PartitionSpec("data")
    with pytest.raises(ValueError, match="data\\*model == 8"):
        Partitioner(data=3, model=2)
    with pytest.raises(ValueError, match="Unknown partitioning rules 'zero'"):
        Partitioner(rules="zero")


def test_a_checkpoint_round_trips_exactly_and_a_model_of_other_shapes_is_refused(tmp_path):
    t = _trainer(num_devices=8, tx=optax.adam(1e-2))
    state, _ = t.train_step(t.init_state(), _batch(0, 16))
    saver = checkpoints.Checkpointer(str(tmp_path), save_every=1, async_save=False)
    assert saver.save(1, state, None)
    saver.close()

    reader = checkpoints.Checkpointer(str(tmp_path), async_save=False)
    assert reader.latest_step() == 1
    step_dir = reader.directory / "1"
    assert checkpoints.describe_damage(step_dir, ("state",)) is None  # no iterator saved
    assert checkpoints.describe_damage(step_dir) == "the item 'data' is missing"
    assert reader.intact_steps(("state",)) == [1] and reader.intact_steps() == []
    restored = reader.restore(1, t.abstract_state, None)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(jax.device_get(a),
                                                            jax.device_get(b)),
                 restored, state)
    assert restored.params["params"]["kernel"].sharding == state.params["params"][
        "kernel"].sharding
    params = checkpoints.read_params(str(tmp_path / "checkpoints" / "1"))
    np.testing.assert_array_equal(params["params"]["bias"],
                                  jax.device_get(state.params["params"]["bias"]))

    wider = trainer.Trainer(LinearRegression(outputs=OUTPUTS + 1), optax.adam(1e-2),
                            Partitioner(num_devices=1))
    with pytest.raises(checkpoints.CheckpointMismatchError, match=r"kernel.*\(8, 4\)"):
        reader.restore(1, wider.abstract_state, None)
    reader.close()
    with pytest.raises(FileNotFoundError, match="holds steps \\[1\\]"):
        checkpoints.read_params(str(tmp_path / "checkpoints" / "7"))


def test_train_steps_come_from_steps_or_epochs_never_both():
    assert trainer.resolve_train_steps(12, None, None, 32) == 12
    with pytest.raises(ValueError, match="exactly one of train_steps and train_epochs"):
        trainer.resolve_train_steps(12, 1.0, None, 32)
    with pytest.raises(ValueError, match="exactly one"):
        trainer.resolve_train_steps(None, None, None, 32)


def test_a_restored_data_iterator_continues_with_the_next_batch(tmp_path):
    """Two input shards in one process: the global batch joins both; the saved position
    restores into a fresh iterator, which yields exactly the batch that came next; a
    checkpoint of another shard count is refused with the fix named."""
    from pretrain_lm.data import DataConfig, DataIterator

    config = DataConfig("lm_austen_spm8k", "train", {"targets_length": 32}, seed=3,
                        num_shards=2)
    partitioner = Partitioner(num_devices=1)
    first = DataIterator(config, 4, partitioner, input_format="decoder")
    for _ in range(2):
        next(first)
    first.save(str(tmp_path))
    expected = next(first)
    assert expected["decoder_target_tokens"].shape == (4, 32) and first.batches_read == 3

    second = DataIterator(config, 4, partitioner, input_format="decoder")
    second.restore(str(tmp_path))
    assert second.batches_read == 2 and "batch index 2" in second.position()
    got = next(second)
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])

    other = DataIterator(DataConfig(**{**config.__dict__, "num_shards": 4}), 4, partitioner,
                         input_format="decoder")
    with pytest.raises(FileNotFoundError, match=r"same --gin\.train/DataConfig\.num_shards"):
        other.restore(str(tmp_path))
    with pytest.raises(ValueError, match="not divisible by the input shards"):
        DataIterator(config, 3, partitioner, input_format="decoder")


def test_length_bucketed_batches_cover_every_example_once_at_a_width_that_holds_it():
    from tasks import batching

    assert batching.bucket_widths(128, 4) == [32, 64, 96, 128]
    assert batching.bucket_widths(50, 3) == [24, 40, 50]
    lengths = [5, 40, 17, 33, 8, 128, 2, 64, 9]
    in_order = batching.length_bucketed_batches(lengths, 4, 128)
    assert [list(i) for i, _ in in_order] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert {w for _, w in in_order} == {128}
    bucketed = batching.length_bucketed_batches(lengths, 4, 128, num_buckets=4)
    seen = np.concatenate([i for i, _ in bucketed])
    assert sorted(seen) == list(range(len(lengths)))
    for indices, width in bucketed:
        assert max(lengths[i] for i in indices) <= width
    assert [w for _, w in bucketed] == [32, 64, 128]
