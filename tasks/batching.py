"""The last step of every input pipeline: fixed-shape batches, nothing lost silently.

* ``batch_padding_last``: a partial last batch is filled with all-zero rows (weight 0:
  they count for nothing), counted as ``examples_padding_last_batch``; evaluation sees
  every example exactly once.
* ``batch_dropping_last``: a partial last batch is dropped, logged and counted as
  ``examples_dropped_by_batching`` (BERT pretraining, whose rows carry no weight).
* ``length_bucketed_batches``: for evaluation and decoding over a whole split, batches of
  examples of similar length, each as wide as the narrowest of a few fixed widths that
  holds its longest example (so XLA compiles at most that many programs).
* ``hide_accelerators_from_tensorflow``: the pipelines run on the host; TF must not take
  accelerator memory from JAX.

The counters go to ``tasks.preprocessors.STATS`` under the task name
(``tasks.get_stats``).
"""

from __future__ import annotations

import contextlib
import typing

import numpy as np
from absl import logging

from tasks import preprocessors as pp

if typing.TYPE_CHECKING:
    import tensorflow as tf


def hide_accelerators_from_tensorflow() -> None:
    """The input pipeline runs on the host; TF must not take GPU memory from JAX."""
    import tensorflow as tf

    # RuntimeError: TF already initialised its devices; nothing can change now.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")


def _finish(ds: tf.data.Dataset) -> tf.data.Dataset:
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = True
    # The numpy functions are pure apart from counting; iterator checkpoints stay exact.
    options.experimental_external_state_policy = (
        tf.data.experimental.ExternalStatePolicy.IGNORE)
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def batch_padding_last(ds: tf.data.Dataset, batch_size: int, name: str, split: str
                       ) -> tf.data.Dataset:
    """Batches; a partial last batch is filled with all-zero rows (``example_weight``,
    ``token_weights`` or ``decoder_loss_weights`` 0: they count for nothing)."""
    import tensorflow as tf

    def report(n):
        pp.STATS.add(name, {"examples_padding_last_batch": int(n)})
        logging.info("%s/%s: last batch holds %d padding row(s) of weight 0.", name, split,
                     int(n))
        return n

    def fill(batch):
        n = tf.shape(next(iter(batch.values())))[0]
        missing = batch_size - n
        missing = tf.cond(missing > 0, lambda: tf.numpy_function(
            report, [missing], tf.int32, stateful=False), lambda: missing)
        return {k: tf.ensure_shape(
                    tf.pad(v, [[0, missing]] + [[0, 0]] * (len(v.shape) - 1)),
                    [batch_size, *v.shape[1:]])
                for k, v in batch.items()}

    return _finish(ds.batch(batch_size).map(fill))


def batch_dropping_last(ds: tf.data.Dataset, batch_size: int, name: str, split: str
                        ) -> tf.data.Dataset:
    """Batches; a partial last batch is dropped, logged and counted."""
    import tensorflow as tf

    def report_dropped(n):
        n = int(n)
        pp.STATS.add(name, {"examples_dropped_by_batching": n})
        logging.warning("%s/%s: dropped the last %d example(s) of the epoch (partial batch "
                        "of %d).", name, split, n, batch_size)
        return False

    def full_batch(batch):
        n = tf.shape(next(iter(batch.values())))[0]
        return tf.cond(n == batch_size, lambda: tf.constant(True),
                       lambda: tf.numpy_function(report_dropped, [n], tf.bool,
                                                 stateful=False))

    ds = ds.batch(batch_size, drop_remainder=False).filter(full_batch)
    ds = ds.map(lambda b: {k: tf.ensure_shape(v, [batch_size, *v.shape[1:]])
                           for k, v in b.items()})
    return _finish(ds)


def bucket_widths(max_length: int, num_buckets: int, multiple: int = 8) -> list[int]:
    """``num_buckets`` row widths up to ``max_length``: ``max_length * i / num_buckets``,
    rounded up to a multiple of ``multiple`` (and never past ``max_length``)."""
    widths = {min(max_length, -(-max_length * i // num_buckets // multiple) * multiple)
              for i in range(1, num_buckets + 1)}
    return sorted(w for w in widths if w > 0)


def length_bucketed_batches(lengths: typing.Sequence[int], batch_size: int, max_length: int,
                            num_buckets: int = 1) -> list[tuple[np.ndarray, int]]:
    """``(example indices, width)`` of each batch over a whole split.

    ``num_buckets=1``: the examples in order, every batch ``max_length`` wide. More: the
    examples sorted by length (stable, so equal lengths keep their order) and each batch
    as wide as the narrowest of ``bucket_widths`` that holds its longest example. A
    caller puts each output back at its example's index, so the results are the same
    as in order; examples longer than ``max_length`` get the full width (cut, as before).
    """
    lengths = np.asarray(lengths)
    if num_buckets <= 1:
        order = np.arange(len(lengths))
        widths = [max_length]
    else:
        order = np.argsort(lengths, kind="stable")
        widths = bucket_widths(max_length, num_buckets)
    batches = []
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        longest = int(lengths[indices].max()) if len(indices) else 0
        batches.append((indices, next((w for w in widths if w >= longest), max_length)))
    return batches
