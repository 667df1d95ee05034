"""Input pipeline seam: a seqio task -> this process's shard -> global ``jax.Array``s.

The stream is split into ``num_shards`` disjoint input shards (default: one per
process); each process reads only its own shards (``shard_index`` of seqio), and
the per-process rows are assembled into global arrays with
``jax.make_array_from_process_local_data``, so the same code runs on one host or
many. Row block ``i`` of every global batch comes from shard ``i``, whichever process
reads it: with ``num_shards`` fixed, one process and N processes see identical global
batches. Every shard's iterator is checkpointable (tf.data iterator state), which is
what makes a resumed run continue exactly.

``DataConfig.reverse`` reads every document right to left (ULMFiT's backward language
model and classifier, ``tasks.get_dataset(reverse=True)``); the direction is part of the
run's vocabulary record (``DataConfig.vocabulary_record``), so a backward run refuses a
forward checkpoint and vice versa (``pretrain_lm.checkpoints.check_vocabulary``).

TensorFlow is imported only here and in ``tasks/``; the trainer sees numpy/jax.
"""

from __future__ import annotations

import dataclasses
import json
import os
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
      num_shards: disjoint input shards the stream is split into; a multiple of the
        process count, each process reading ``num_shards / process_count`` of them.
        None: one per process. Fix it to make the global batches (and the iterator
        checkpoints) independent of the number of hosts.
      reverse: read every document right to left (a backward LM's BPTT streams, or a
        backward classifier's ids with the padding at the end); see
        ``tasks.get_dataset``.
      pack: several examples a row (seqio's packing, with segment ids and positions)
        instead of one example padded to the full length: the ``seq2seq``, ``decoder``
        and ``finetuning`` formats, for models with ``supports_packing`` (the
        Transformer, GPT, BERT fine-tuning).
    """

    task: str
    split: str = "train"
    feature_lengths: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"max_seq_length": 128, "max_predictions_per_seq": 20})
    seed: int = 0
    shuffle: bool = True
    num_epochs: int | None = None
    num_shards: int | None = None
    reverse: bool = False
    pack: bool = False

    @property
    def direction(self) -> str:
        """``forward`` or ``backward`` (``reverse``): how the documents are read."""
        return "backward" if self.reverse else "forward"

    def vocabulary_record(self) -> dict[str, Any]:
        """``tasks.vocabulary_record`` of the task plus the reading ``direction``: the
        same ids read the other way are another model's input (checked by
        ``pretrain_lm.checkpoints.check_vocabulary``)."""
        import tasks

        return {**tasks.vocabulary_record(self.task), "direction": self.direction}


class DataIterator:
    """This process's checkpointable iterator of numpy batches.

    ``save(directory)`` / ``restore(directory)`` write and read the tf.data iterator
    state of each shard this process reads; ``global_batch()`` returns the next batch
    as global arrays sharded over ``data``. ``input_format`` is the model's
    (``Model.input_format``, ``tasks.formats``); None infers it from the task.
    """

    def __init__(self, config: DataConfig, global_batch_size: int,
                 partitioner: Partitioner, input_format: str | None = None) -> None:
        from clu.data import dataset_iterator

        import tasks

        num_processes, process = jax.process_count(), jax.process_index()
        num_shards = config.num_shards or num_processes
        if num_shards % num_processes:
            raise ValueError(
                f"DataConfig.num_shards={num_shards} is not a multiple of the "
                f"{num_processes} processes; choose a multiple of {num_processes}.")
        for what, size in (("input shards", num_shards),
                           ("'data' mesh axis", partitioner.data_size)):
            if global_batch_size % size:
                raise ValueError(
                    f"Global batch size {global_batch_size} is not divisible by the {what} "
                    f"({size}); choose a multiple of {size}.")
        self.config = config
        self.global_batch_size = global_batch_size
        self.num_shards = num_shards
        self.local_batch_size = global_batch_size // num_processes
        per_process = num_shards // num_processes
        self.shards = list(range(process * per_process, (process + 1) * per_process))
        self.sharding = partitioner.batch_sharding()
        self.batches_read = 0  # since the stream's start (checkpointed with it)
        self._iterators = [
            dataset_iterator.TfDatasetIterator(tasks.get_dataset(
                config.task,
                split=config.split,
                batch_size=global_batch_size // num_shards,
                seed=config.seed,
                shuffle=config.shuffle,
                shard_index=shard,
                num_shards=num_shards,
                num_epochs=config.num_epochs,
                reverse=config.reverse,
                pack=config.pack,
                input_format=input_format,
                **dict(config.feature_lengths),
            ), checkpoint=True)
            for shard in self.shards
        ]
        logging.info("Data: task=%s split=%s (%s) local batch=%d from input shards %s of %d "
                     "(process %d of %d)", config.task, config.split, config.direction,
                     self.local_batch_size, self.shards, num_shards, process, num_processes)

    @property
    def vocab_size(self) -> int:
        """Size of the task's input vocabulary."""
        import tasks

        return tasks.get_vocabulary(self.config.task).vocab_size

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        parts = []
        for shard, iterator in zip(self.shards, self._iterators, strict=True):
            try:
                parts.append(next(iterator))
            except StopIteration:
                if len(self._iterators) > 1:
                    logging.warning("Input shard %d of %d of %s/%s ended: the split ends "
                                    "here, other shards' remaining batches go unused.",
                                    shard, self.num_shards, self.config.task,
                                    self.config.split)
                raise
        self.batches_read += 1
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    def position(self) -> str:
        """Where the next batch comes from, to find it again (e.g. a batch that gave a
        non-finite loss): task, split, seed, input shards and batch index."""
        return (f"task {self.config.task!r} split {self.config.split!r} (data seed "
                f"{self.config.seed}), batch index {self.batches_read} of input shards "
                f"{self.shards} of {self.num_shards}")

    def global_batch(self) -> dict[str, jax.Array]:
        """Next batch as global arrays (raises StopIteration at the end of the data)."""
        return to_global(next(self), self.sharding, self.global_batch_size)

    def _shard_path(self, directory: str, shard: int) -> str:
        return os.path.join(directory, f"shard_{shard}-of-{self.num_shards}")

    def save(self, directory: str) -> None:
        """Writes the position of each of this process's shards under ``directory``."""
        for shard, iterator in zip(self.shards, self._iterators, strict=True):
            iterator.save(self._shard_path(directory, shard))
            with open(self._position_path(directory, shard), "w") as f:
                json.dump({"batches_read": self.batches_read}, f)

    def _position_path(self, directory: str, shard: int) -> str:
        return os.path.join(directory, f"position_{shard}-of-{self.num_shards}.json")

    def restore(self, directory: str) -> None:
        """Restores the positions written by ``save`` (by any number of processes)."""
        for shard, iterator in zip(self.shards, self._iterators, strict=True):
            path = self._shard_path(directory, shard)
            if not any(name.startswith(os.path.basename(path))
                       for name in os.listdir(directory)):
                stored = sorted({n.split(".")[0] for n in os.listdir(directory)})
                raise FileNotFoundError(
                    f"No data-iterator state for input shard {shard} of {self.num_shards} "
                    f"in {directory} (it holds {stored}). The checkpoint was written with "
                    "another number of input shards: resume with the same "
                    "--gin.train/DataConfig.num_shards (default: the process count).")
            iterator.restore(path)
            position = self._position_path(directory, shard)
            if os.path.exists(position):  # older checkpoints have none
                with open(position) as f:
                    self.batches_read = int(json.load(f)["batches_read"])


def to_global(local_batch: Mapping[str, np.ndarray], sharding: Any,
              global_batch_size: int) -> dict[str, jax.Array]:
    """Assembles every process's ``local_batch`` into global arrays split over ``data``."""
    return {
        name: jax.make_array_from_process_local_data(
            sharding, value, (global_batch_size, *value.shape[1:]))
        for name, value in local_batch.items()
    }
