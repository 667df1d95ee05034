"""Resume after a hard kill continues exactly (checkpointed params, optimizer, data position).

Three real `python -m pretrain_lm.train` processes from the demo gin file (shrunk):
an uninterrupted run of N steps; a run SIGKILLed right after step k's checkpoint is on
disk; and a relaunch in the same model dir. The relaunch must start at k+1 and log, step
for step, the losses of the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

STEPS, KILL_AFTER = 6, 4

# Runs the real entry point with Checkpointer.save patched to SIGKILL the process once
# step KILL_AFTER_STEP is safely on disk (no test hooks in the production code).
KILLING_LAUNCHER = """
import os, signal, sys
from absl import app
from pretrain_lm import checkpoints, gin_utils, train

kill_after = int(os.environ["KILL_AFTER_STEP"])
save = checkpoints.Checkpointer.save

def save_then_die(self, step, *args, **kwargs):
    saved = save(self, step, *args, **kwargs)
    if step == kill_after:
        self.wait()
        os.kill(os.getpid(), signal.SIGKILL)
    return saved

checkpoints.Checkpointer.save = save_then_die
app.run(train.main, argv=gin_utils.main_argv())
"""

FLAGS = [
    "--gin_file=demo/bert_tiny_austen.gin",
    f"--gin.TRAIN_STEPS={STEPS}",
    "--gin.BATCH_SIZE=8",
    "--gin.MAX_SEQ_LENGTH=64",
    "--gin.MAX_PREDICTIONS_PER_SEQ=10",
    "--gin.trainer.train.checkpoint_every=2",
    "--gin.trainer.train.keep_checkpoints=None",
    "--gin.trainer.train.eval_every=0",
    "--gin.trainer.train.log_every=1",
    "--gin.trainer.train.progress_bar=False",
]


def run(repo_root: str, model_dir: str, launcher: list[str], **env: str):
    environment = {**os.environ, "XLA_FLAGS": "", **env}  # one CPU device per process
    return subprocess.run(
        [sys.executable, *launcher, *FLAGS, f"--gin.MODEL_DIR={model_dir}"],
        cwd=repo_root, env=environment, capture_output=True, text=True, timeout=600)


def losses(model_dir: str) -> dict[int, float]:
    with open(os.path.join(model_dir, "train", "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)), f"a step was logged twice: {steps}"
    return {r["step"]: r["loss"] for r in records}


def test_sigkill_then_resume_matches_uninterrupted_run(repo_root, tmp_path):
    reference_dir, resumed_dir = str(tmp_path / "reference"), str(tmp_path / "resumed")
    train = ["-m", "pretrain_lm.train"]

    done = run(repo_root, reference_dir, train)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = run(repo_root, resumed_dir, ["-c", KILLING_LAUNCHER],
                 KILL_AFTER_STEP=str(KILL_AFTER))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(losses(resumed_dir)) == list(range(1, KILL_AFTER + 1))

    resumed = run(repo_root, resumed_dir, train)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from step {KILL_AFTER}" in resumed.stderr

    want, got = losses(reference_dir), losses(resumed_dir)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(KILL_AFTER + 1, STEPS + 1):
        assert got[step] == pytest.approx(want[step], rel=1e-6, abs=1e-6), step
    # The steps before the kill match too (same seeds), and the loss really moves.
    assert got[1] == pytest.approx(want[1], rel=1e-6)
    assert len({round(v, 6) for v in want.values()}) == STEPS
