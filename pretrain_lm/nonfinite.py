"""Non-finite loss / gradient guard of the training loop (``trainer.train.on_nonfinite``).

The jitted train step reports, per step, a small code saying whether its loss or
gradient norm was not finite (``NONFINITE`` in the step's metrics, see
``Trainer._step``). Reading it every step would sync the host with the device, so
:class:`NonFiniteGuard` keeps the codes (device scalars) of the steps since the last
check, with the data position each step read, and fetches them only where the loop
syncs anyway: before a checkpoint is written, at a log or evaluation step, and at the
end. A bad state therefore never reaches a checkpoint.

* ``'stop'`` (default): the first non-finite step ends the run with
  :class:`NonFiniteError`, which names the step, the metric, the learning rate and the
  data position of the batch;
* ``'skip'``: the step's update was dropped on device (parameters, optimizer and model
  state unchanged, see ``Trainer(skip_nonfinite=True)``); the guard counts skipped steps
  for the summaries (``train/skipped_nonfinite``) and stops as ``'stop'`` does after
  ``max_consecutive_skips`` skipped steps in a row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

NONFINITE = "nonfinite"  # key of the per-step code in the step's metrics
LOSS_BIT, GRAD_NORM_BIT = 1, 2
MODES = ("stop", "skip")


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or gradient norm (the run stops)."""


def describe(code: int) -> str:
    """``'loss'``, ``'grad_norm'`` or both, from a step's code."""
    names = [name for bit, name in ((LOSS_BIT, "loss"), (GRAD_NORM_BIT, "grad_norm"))
             if code & bit]
    return " and ".join(names) or "nothing"


class NonFiniteGuard:
    """Host side of the guard: records each step's device code, checks them lazily.

    Args:
      mode: ``'stop'`` or ``'skip'``.
      max_consecutive_skips: in ``'skip'`` mode, this many skipped steps in a row stop
        the run.
      learning_rate: the schedule, to name the rate of the bad step (``lr(step - 1)``, as
        the summaries log it).
    """

    def __init__(self, mode: str, *, max_consecutive_skips: int = 10,
                 learning_rate: Callable[[int], Any] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"on_nonfinite={mode!r}: use one of {MODES} "
                             "(--gin.trainer.train.on_nonfinite='skip').")
        if max_consecutive_skips < 1:
            raise ValueError(f"max_consecutive_skips={max_consecutive_skips} must be >= 1.")
        self.mode = mode
        self.max_consecutive_skips = max_consecutive_skips
        self.learning_rate = learning_rate
        self.consecutive = 0
        self.skipped_total = 0
        self._pending: list[tuple[int, jax.Array, str]] = []

    def record(self, step: int, code: jax.Array, position: str) -> None:
        """Keeps step ``step``'s code (not fetched) and where its batch came from."""
        self._pending.append((step, code, position))

    def check(self) -> int:
        """Fetches the codes recorded since the last check (one sync); returns how many
        of those steps were skipped, or raises :class:`NonFiniteError`."""
        if not self._pending:
            return 0
        codes = np.asarray(jax.device_get([code for _, code, _ in self._pending]))
        pending, self._pending = self._pending, []
        skipped = 0
        for (step, _, position), code in zip(pending, codes.astype(int).tolist(),
                                             strict=True):
            if not code:
                self.consecutive = 0
                continue
            skipped += 1
            self.skipped_total += 1
            self.consecutive += 1
            if self.mode == "stop":
                raise NonFiniteError(self._message(step, code, position))
            if self.consecutive >= self.max_consecutive_skips:
                raise NonFiniteError(self._message(step, code, position) + (
                    f" It is the last of {self.consecutive} steps in a row whose updates "
                    f"were skipped (max_consecutive_skips={self.max_consecutive_skips})."))
        return skipped

    def _message(self, step: int, code: int, position: str) -> str:
        lr = ""
        if self.learning_rate is not None:
            lr = f" at learning rate {float(self.learning_rate(step - 1)):.6g}"
        return (f"Step {step}: {describe(code)} is not finite (NaN or inf){lr}; "
                f"the batch: {position}. The run stops; this state is not checkpointed. "
                "Lower the learning rate, add warm-up or gradient clipping"
                + (", or train on with --gin.trainer.train.on_nonfinite='skip'."
                   if self.mode == "stop" else "."))
