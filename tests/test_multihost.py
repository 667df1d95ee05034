"""Two processes on 127.0.0.1 train exactly like one process on the same global batch.

JAX's multi-controller runtime on CPU (gloo collectives): two `python -m
pretrain_lm.train` processes with 2 simulated CPU devices each form a 2 (data) x 2
(model) mesh; each reads its own input shard. They train BERT-tiny from the demo gin
file, are killed right after the checkpoint of step STOP_AT (written by both), and are
relaunched to finish. A single process with 4 devices on the same 2x2 mesh, reading
the same two input shards (`num_shards=2`), is the reference: every training loss and
the evaluation over the whole validation split (whose two shards end one batch apart)
must match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from launch import STOPPING_LAUNCHER, device_env, free_port, read_metrics

STEPS, STOP_AT = 6, 4

FLAGS = [
    "--gin_file=bert/demo_tiny_austen.gin",
    f"--gin.TRAIN_STEPS={STEPS}",
    "--gin.BATCH_SIZE=8",
    "--gin.MAX_SEQ_LENGTH=128",
    "--gin.MAX_PREDICTIONS_PER_SEQ=10",
    "--gin.EVAL_STEPS=None",  # the whole validation split
    "--gin.partitioning.Partitioner.data=2",
    "--gin.partitioning.Partitioner.model=2",
    "--gin.train/data.DataConfig.num_shards=2",
    "--gin.eval/data.DataConfig.num_shards=2",
    "--gin.trainer.train.checkpoint_every=2",
    "--gin.trainer.train.keep_checkpoints=None",
    f"--gin.trainer.train.eval_every={STEPS}",
    "--gin.trainer.train.log_every=1",
    "--gin.trainer.train.progress_bar=False",
]


def launch(repo_root: str, model_dir: str, num_processes: int, devices_per_process: int,
           launcher: list[str], **env: str) -> list[subprocess.CompletedProcess]:
    """Runs ``num_processes`` trainer processes to completion; kills leftovers."""
    port = free_port()
    procs = []
    try:
        for process_id in range(num_processes):
            distributed = [f"--coordinator_address=127.0.0.1:{port}",
                           f"--num_processes={num_processes}",
                           f"--process_id={process_id}"] if num_processes > 1 else []
            procs.append(subprocess.Popen(
                [sys.executable, *launcher, *FLAGS, *distributed,
                 f"--gin.MODEL_DIR={model_dir}"],
                cwd=repo_root, env={**device_env(devices_per_process), **env},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        done = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return done
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def eval_results(model_dir: str) -> dict[int, dict[str, float]]:
    keys = ("mlm_loss", "mlm_accuracy", "nsp_accuracy")
    return {k: read_metrics(model_dir, "eval", k) for k in keys}


@pytest.fixture(scope="module")
def single_process(repo_root, tmp_path_factory) -> str:
    model_dir = str(tmp_path_factory.mktemp("one_process"))
    (done,) = launch(repo_root, model_dir, 1, 4, ["-m", "pretrain_lm.train"])
    assert done.returncode == 0, done.stderr[-3000:]
    return model_dir


def test_two_processes_with_resume_match_one_process(repo_root, tmp_path, single_process):
    model_dir = str(tmp_path / "two_processes")
    stopped = launch(repo_root, model_dir, 2, 2, ["-c", STOPPING_LAUNCHER],
                     STOP_AT_STEP=str(STOP_AT), STOP_SIGNAL="SIGKILL")
    assert stopped[0].returncode == -signal.SIGKILL, stopped[0].stderr[-3000:]
    assert "process 0 of 2, 2 local / 4 global devices" in stopped[0].stderr
    assert "input shards [1] of 2 (process 1 of 2)" in stopped[1].stderr
    assert sorted(read_metrics(model_dir)) == list(range(1, STOP_AT + 1))
    assert os.path.isdir(os.path.join(model_dir, "checkpoints", str(STOP_AT)))

    resumed = launch(repo_root, model_dir, 2, 2, ["-m", "pretrain_lm.train"])
    for process_id, done in enumerate(resumed):
        assert done.returncode == 0, f"process {process_id}: {done.stderr[-3000:]}"
        assert f"Resuming from step {STOP_AT}" in done.stderr
    # The validation shards hold 93 and 51 batches of 4: both processes stop at 51.
    assert "this process's remaining batches (4 examples each) go unused" in resumed[0].stderr

    want, got = read_metrics(single_process), read_metrics(model_dir)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), step
    assert len({round(v, 5) for v in want.values()}) == STEPS  # the loss really moves
    # Evaluation before training and at the end: the same examples, the same numbers.
    want_eval, got_eval = eval_results(single_process), eval_results(model_dir)
    for key, values in want_eval.items():
        assert sorted(values) == [0, STEPS]
        for step, value in values.items():
            assert got_eval[key][step] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, step)
