"""Input pipeline seam: a seqio task -> this process's shard -> global ``jax.Array``s.

Each process reads only its own shard of every global batch
(``shard_index=jax.process_index()``) and the shards are assembled into global
arrays with ``jax.make_array_from_process_local_data``, so the same code runs on
one host or many. The per-process iterator is checkpointable (tf.data iterator
state), which is what makes a resumed run continue exactly.

TensorFlow is imported only here and in ``tasks/``; the trainer sees numpy/jax.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging

from pretrain_lm.partitioning import Partitioner


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which seqio task/mixture to read and how.

    Args:
      task: a registered seqio task or mixture name (see ``tasks/``).
      split: dataset split (``train``, ``validation`` ...).
      feature_lengths: keyword arguments that fix the example shapes, forwarded to
        ``tasks.get_dataset`` (BERT: ``max_seq_length``, ``max_predictions_per_seq``).
      seed: data seed (shuffling, pair creation, masking).
      shuffle: shuffle the stream (off for evaluation).
      num_epochs: None repeats forever (training); 1 for a single pass (evaluation).
    """

    task: str
    split: str = "train"
    feature_lengths: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"max_seq_length": 128, "max_predictions_per_seq": 20})
    seed: int = 0
    shuffle: bool = True
    num_epochs: int | None = None


class DataIterator:
    """This process's checkpointable iterator of numpy batches.

    ``save(path)`` / ``restore(path)`` write and read the tf.data iterator state;
    ``global_batch()`` returns the next batch as global arrays sharded over ``data``.
    """

    def __init__(self, config: DataConfig, global_batch_size: int,
                 partitioner: Partitioner) -> None:
        from clu.data import dataset_iterator

        import tasks

        num_processes = jax.process_count()
        if global_batch_size % num_processes:
            raise ValueError(
                f"Global batch size {global_batch_size} is not divisible by the "
                f"{num_processes} processes; choose a multiple of {num_processes}.")
        if global_batch_size % partitioner.data_size:
            raise ValueError(
                f"Global batch size {global_batch_size} is not divisible by the 'data' mesh "
                f"axis ({partitioner.data_size}); choose a multiple of it.")
        self.config = config
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // num_processes
        self._sharding = partitioner.batch_sharding()
        dataset = tasks.get_dataset(
            config.task,
            split=config.split,
            batch_size=self.local_batch_size,
            seed=config.seed,
            shuffle=config.shuffle,
            shard_index=jax.process_index(),
            num_shards=num_processes,
            num_epochs=config.num_epochs,
            **dict(config.feature_lengths),
        )
        self._iterator = dataset_iterator.TfDatasetIterator(dataset, checkpoint=True)
        logging.info("Data: task=%s split=%s local batch=%d (process %d of %d)",
                     config.task, config.split, self.local_batch_size,
                     jax.process_index(), num_processes)

    @property
    def vocab_size(self) -> int:
        """Size of the task's input vocabulary."""
        import tasks

        return tasks.get_vocabulary(self.config.task).vocab_size

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in next(self._iterator).items()}

    def global_batch(self) -> dict[str, jax.Array]:
        """Next batch as global arrays (raises StopIteration at the end of the data)."""
        return to_global(next(self), self._sharding, self.global_batch_size)

    def save(self, path: str) -> None:
        self._iterator.save(path)

    def restore(self, path: str) -> None:
        self._iterator.restore(path)


def to_global(local_batch: Mapping[str, np.ndarray], sharding: Any,
              global_batch_size: int) -> dict[str, jax.Array]:
    """Assembles every process's ``local_batch`` into global arrays split over ``data``."""
    return {
        name: jax.make_array_from_process_local_data(
            sharding, value, (global_batch_size, *value.shape[1:]))
        for name, value in local_batch.items()
    }
