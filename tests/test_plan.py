"""`python -m pretrain_lm.tools.plan` compiles the train step ahead of time and its numbers add up.

The plan of the demo model (BERT-tiny, vocab 7,433) on 8 simulated devices is checked
against a hand count of the parameters (test_gin_configs.hand_count), the bytes the
replicated params and Adam moments must take, the batch, and -- independently of our
own FLOP formula -- XLA's count of the FLOPs of the compiled step.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from launch import device_env
from test_gin_configs import hand_count

SEQ, PREDICTIONS, BATCH = 128, 20, 32


def plan(repo_root: str, tmp_path, *mesh_flags: str) -> dict:
    output = tmp_path / "plan.json"
    done = subprocess.run(
        [sys.executable, "-m", "pretrain_lm.tools.plan", "--gin_file=bert/demo_tiny_austen.gin",
         "--num_devices=8", f"--gin.BATCH_SIZE={BATCH}", *mesh_flags,
         f"--output_json={output}"],
        cwd=repo_root, env=device_env(1), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "XLA temporaries" in done.stdout and "FLOPs per step" in done.stdout
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def data_parallel(repo_root, tmp_path_factory) -> dict:
    return plan(repo_root, tmp_path_factory.mktemp("plan_8x1"))


def test_plan_counts_parameters_and_bytes_by_hand(data_parallel):
    p = data_parallel
    params = hand_count(layers=2, hidden=128, vocab=7433)
    assert p["mesh"] == {"data": 8, "model": 1} and p["num_devices"] == 8
    assert p["num_params"] == params
    assert p["params_bytes"] == 4 * params                       # replicated float32
    assert 0 <= p["optimizer_bytes"] - 2 * 4 * params <= 64      # Adam mu, nu (+ counters)
    batch_bytes = BATCH // 8 * (3 * SEQ * 4 + 3 * PREDICTIONS * 4 + 4)
    state = p["params_bytes"] + p["optimizer_bytes"]
    assert p["argument_bytes"] == pytest.approx(state + batch_bytes, abs=64)
    assert p["aliased_bytes"] == pytest.approx(state, abs=64)   # the donated state
    assert p["temp_bytes"] > 0
    assert p["peak_bytes"] == (p["argument_bytes"] + p["output_bytes"] - p["aliased_bytes"]
                               + p["temp_bytes"])


def test_xla_flops_agree_with_the_model_flop_count(data_parallel):
    p = data_parallel
    h, i, layers, vocab = 128, 512, 2, 7433
    forward = BATCH * (SEQ * layers * (8 * h * h + 4 * h * i + 4 * SEQ * h)
                       + PREDICTIONS * (2 * h * h + 2 * h * vocab) + 2 * h * h + 4 * h)
    assert p["model_flops"] == pytest.approx(3 * forward)
    xla_total = p["xla_flops"] * p["num_devices"]
    # XLA counts every op (softmax, LayerNorm, Adam ...) on top of the matmuls.
    assert 1.0 <= xla_total / p["model_flops"] <= 1.3


def test_model_axis_shards_the_parameters(repo_root, tmp_path, data_parallel):
    p = plan(repo_root, tmp_path, "--gin.partitioning.Partitioner.data=4",
             "--gin.partitioning.Partitioner.model=2")
    assert p["mesh"] == {"data": 4, "model": 2}
    assert p["num_params"] == data_parallel["num_params"]
    assert data_parallel["params_bytes"] / 2 < p["params_bytes"] < data_parallel["params_bytes"]
