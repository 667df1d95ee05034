"""Launching real `python -m pretrain_lm.train` processes from tests (and, for the cheaper
cases, the same training in the test process: ``train_in_process``).

``STOPPING_LAUNCHER`` runs the real entry point with ``Checkpointer.save`` (called after
every step) patched to stop the process at step ``STOP_AT_STEP`` -- no test hooks live in
the production code. ``STOP_SIGNAL=SIGKILL`` waits until that step's checkpoint is on
disk (on every process) and kills the process; ``SIGTERM`` signals it at once (the
trainer must then save by itself).

``FAULT_LAUNCHER`` injects a fault into the save of step ``FAULT_AT_STEP``:
``FAULT=KILL_DURING_SAVE`` SIGKILLs the process half-way through writing that checkpoint
(after its data item, before the commit), ``FAULT=ENOSPC`` makes the write fail with
"No space left on device".
"""

from __future__ import annotations

import json
import os
import socket

STOPPING_LAUNCHER = """
import os, signal, sys
from absl import app
from pretrain_lm import checkpoints, gin_utils, train

stop_at, how = int(os.environ["STOP_AT_STEP"]), os.environ["STOP_SIGNAL"]
save = checkpoints.Checkpointer.save

def save_then_stop(self, step, *args, **kwargs):
    saved = save(self, step, *args, **kwargs)
    if step == stop_at and how == "SIGKILL":
        self.wait()
        os.kill(os.getpid(), signal.SIGKILL)
    if step == stop_at and how == "SIGTERM":
        os.kill(os.getpid(), signal.SIGTERM)
    return saved

checkpoints.Checkpointer.save = save_then_stop
app.run(train.main, argv=gin_utils.main_argv())
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def device_env(num_devices: int) -> dict[str, str]:
    """Environment for a child process with ``num_devices`` simulated CPU devices."""
    flags = f"--xla_force_host_platform_device_count={num_devices}" if num_devices > 1 else ""
    return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}


def read_metrics(model_dir: str, kind: str = "train", key: str = "loss") -> dict[int, float]:
    """``{step: value}`` from ``model_dir/<kind>/metrics.jsonl`` (each step logged once)."""
    with open(os.path.join(model_dir, kind, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)), f"a step was logged twice: {steps}"
    return {r["step"]: r[key] for r in records}


def train_in_process(gin_files: list[str], bindings: list[str]) -> dict:
    """``python -m pretrain_lm.train`` without the process: parses the gin files and
    bindings, writes ``MODEL_DIR/config.gin`` as the entry point does (what
    ``pretrain_lm.tools.ensemble`` rebuilds a run from) and trains; the gin config is cleared
    before and after."""
    import gin

    from pretrain_lm import gin_utils, trainer

    gin.clear_config()
    try:
        gin_utils.parse(gin_files, bindings)
        gin_utils.write_config(gin_utils.macro("MODEL_DIR"))
        return gin.get_configurable(trainer.train)()
    finally:
        gin.clear_config()


FAULT_LAUNCHER = """
import errno, os, signal
from absl import app
from pretrain_lm import checkpoints, gin_utils, train

fault, fault_at = os.environ["FAULT"], int(os.environ["FAULT_AT_STEP"])
save = checkpoints.DataIteratorHandler.save

def faulty_save(self, directory, args):
    step = int(directory.parent.name.split(".")[0])  # <step>[.orbax-checkpoint-tmp-...]
    if step == fault_at and fault == "ENOSPC":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(directory))
    saved = save(self, directory, args)
    if step == fault_at and fault == "KILL_DURING_SAVE":
        # The data item is written, the step is not committed yet: die in the window.
        os.kill(os.getpid(), signal.SIGKILL)
    return saved

checkpoints.DataIteratorHandler.save = faulty_save
app.run(train.main, argv=gin_utils.main_argv())
"""
