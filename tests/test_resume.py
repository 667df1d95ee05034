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

COMMON = [
    f"--gin.TRAIN_STEPS={STEPS}",
    "--gin.BATCH_SIZE=8",
    "--gin.trainer.train.checkpoint_every=2",
    "--gin.trainer.train.keep_checkpoints=None",
    "--gin.trainer.train.eval_every=0",
    "--gin.trainer.train.log_every=1",
    "--gin.trainer.train.progress_bar=False",
]
CONFIGS = {
    "bert": ["--gin_file=bert/demo_tiny_austen.gin", "--gin.MAX_SEQ_LENGTH=64",
             "--gin.MAX_PREDICTIONS_PER_SEQ=10"],
    # A recurrent LM whose hidden state is carried across batches of BPTT streams: the
    # checkpoint must hold that state and the stream position, or the losses differ.
    "awd_lstm": ["--gin_file=ulmfit/demo_awd_lstm_tiny_austen.gin", "--gin.HIDDEN_SIZE=64",
                 "--gin.BPTT=20", "--gin.TARGETS_LENGTH=30"],
}


def run(repo_root: str, model_dir: str, launcher: list[str], config: str, **env: str):
    return subprocess.run(
        [sys.executable, *launcher, *CONFIGS[config], *COMMON, f"--gin.MODEL_DIR={model_dir}"],
        cwd=repo_root, env={**device_env(1), **env}, capture_output=True, text=True,
        timeout=600)


@pytest.fixture(scope="module")
def reference(request, repo_root, tmp_path_factory) -> tuple[str, dict[int, float]]:
    config = request.param
    model_dir = str(tmp_path_factory.mktemp(f"reference_{config}"))
    done = run(repo_root, model_dir, ["-m", "pretrain_lm.train"], config)
    assert done.returncode == 0, done.stderr[-3000:]
    return config, read_metrics(model_dir)


@pytest.mark.parametrize("reference, how, stop_at, returncode", [
    ("bert", "SIGKILL", 4, -signal.SIGKILL),  # right after the periodic checkpoint of step 4
    ("bert", "SIGTERM", 3, 0),      # no periodic checkpoint at 3: the trainer saves one
    ("awd_lstm", "SIGKILL", 4, -signal.SIGKILL),
], indirect=["reference"])
def test_stopped_run_resumes_exactly(repo_root, tmp_path, reference, how, stop_at,
                                     returncode):
    config, want = reference
    model_dir = str(tmp_path / "resumed")
    stopped = run(repo_root, model_dir, ["-c", STOPPING_LAUNCHER], config,
                  STOP_AT_STEP=str(stop_at), STOP_SIGNAL=how)
    assert stopped.returncode == returncode, stopped.stderr[-3000:]
    assert sorted(read_metrics(model_dir)) == list(range(1, stop_at + 1))
    if how == "SIGTERM":
        assert f"SIGTERM: saving a checkpoint at step {stop_at}" in stopped.stderr

    resumed = run(repo_root, model_dir, ["-m", "pretrain_lm.train"], config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from step {stop_at}" in resumed.stderr

    got = read_metrics(model_dir)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert got[step] == pytest.approx(want[step], rel=1e-6, abs=1e-6), step
    assert len({round(v, 6) for v in want.values()}) == STEPS  # the loss really moves
