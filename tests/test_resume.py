"""Resume after a kill continues exactly (checkpointed params, optimizer, data position).

Real `python -m pretrain_lm.train` processes from the demo gin file (shrunk): an
uninterrupted run of N steps; a run stopped at step k, either SIGKILLed right after step
k's periodic checkpoint is on disk or sent SIGTERM (preemption) at a step that has no
periodic checkpoint, so it must save one itself; and a relaunch in the same model dir. The
relaunch must start at k+1 and log, step for step, the losses of the uninterrupted run.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from launch import STOPPING_LAUNCHER, device_env, read_metrics

STEPS = 6

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
    return subprocess.run(
        [sys.executable, *launcher, *FLAGS, f"--gin.MODEL_DIR={model_dir}"],
        cwd=repo_root, env={**device_env(1), **env}, capture_output=True, text=True,
        timeout=600)


@pytest.fixture(scope="module")
def reference_losses(repo_root, tmp_path_factory) -> dict[int, float]:
    model_dir = str(tmp_path_factory.mktemp("reference"))
    done = run(repo_root, model_dir, ["-m", "pretrain_lm.train"])
    assert done.returncode == 0, done.stderr[-3000:]
    return read_metrics(model_dir)


@pytest.mark.parametrize("how, stop_at, returncode", [
    ("SIGKILL", 4, -signal.SIGKILL),  # right after the periodic checkpoint of step 4
    ("SIGTERM", 3, 0),                # no periodic checkpoint at 3: the trainer saves one
])
def test_stopped_run_resumes_exactly(repo_root, tmp_path, reference_losses, how, stop_at,
                                     returncode):
    model_dir = str(tmp_path / "resumed")
    stopped = run(repo_root, model_dir, ["-c", STOPPING_LAUNCHER],
                  STOP_AT_STEP=str(stop_at), STOP_SIGNAL=how)
    assert stopped.returncode == returncode, stopped.stderr[-3000:]
    assert sorted(read_metrics(model_dir)) == list(range(1, stop_at + 1))
    if how == "SIGTERM":
        assert f"SIGTERM: saving a checkpoint at step {stop_at}" in stopped.stderr

    resumed = run(repo_root, model_dir, ["-m", "pretrain_lm.train"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from step {stop_at}" in resumed.stderr

    want, got = reference_losses, read_metrics(model_dir)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert got[step] == pytest.approx(want[step], rel=1e-6, abs=1e-6), step
    assert len({round(v, 6) for v in want.values()}) == STEPS  # the loss really moves
