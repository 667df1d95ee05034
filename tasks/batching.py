"""The last step of every input pipeline: fixed-shape batches, nothing lost silently.

* ``batch_padding_last``: a partial last batch is filled with all-zero rows (weight 0:
  they count for nothing), counted as ``examples_padding_last_batch``; evaluation sees
  every example exactly once.
* ``batch_dropping_last``: a partial last batch is dropped, logged and counted as
  ``examples_dropped_by_batching`` (BERT pretraining, whose rows carry no weight).
* ``hide_accelerators_from_tensorflow``: the pipelines run on the host; TF must not take
  accelerator memory from JAX.

The counters go to ``tasks.preprocessors.STATS`` under the task name
(``tasks.get_stats``).
"""

from __future__ import annotations

import contextlib
import typing

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
