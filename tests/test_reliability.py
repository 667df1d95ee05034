"""Fault injection: non-finite losses, damaged checkpoints, interrupted and failed saves,
an unwritable model dir, and a quiet start on a machine without a GPU.

The faults are those of the README's "Reliability" table. Real training runs of the demo
BERT-Tiny gin file (shrunk): in this process (``train_in_process``) where a fault can be
laid on disk between two runs, as ``python -m pretrain_lm.train`` processes where the
process itself must die or exit. Both run on the test process's 8 simulated devices, so
their losses are comparable step for step with one uninterrupted reference run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from launch import FAULT_LAUNCHER, device_env, read_metrics, train_in_process

from pretrain_lm import checkpoints, nonfinite

STEPS = 6
BINDINGS = [
    "MAX_SEQ_LENGTH=64",
    "MAX_PREDICTIONS_PER_SEQ=10",
    "BATCH_SIZE=8",
    "trainer.train.checkpoint_every=2",
    "trainer.train.keep_checkpoints=None",
    "trainer.train.eval_every=0",
    "trainer.train.log_every=1",
    "trainer.train.progress_bar=False",
]
GIN_FILES = ["bert/demo_tiny_austen.gin"]


def train_here(model_dir: str, steps: int = STEPS, *extra: str) -> dict:
    return train_in_process(GIN_FILES, [*BINDINGS, f"TRAIN_STEPS={steps}",
                                        f"MODEL_DIR='{model_dir}'", *extra])


def launch(repo_root: str, model_dir: str, *extra: str, steps: int = STEPS,
           launcher: tuple[str, ...] = ("-m", "pretrain_lm.train"), env: dict | None = None,
           **extra_env: str) -> subprocess.CompletedProcess:
    flags = [f"--gin_file={f}" for f in GIN_FILES] + [f"--gin.{b}" for b in BINDINGS]
    base = device_env(8) if env is None else env
    return subprocess.run(
        [sys.executable, *launcher, *flags, f"--gin.TRAIN_STEPS={steps}",
         f"--gin.MODEL_DIR={model_dir}", *extra],
        cwd=repo_root, env={**base, **extra_env}, capture_output=True, text=True,
        timeout=600)


def step_dirs(model_dir: str) -> list[str]:
    return sorted(os.listdir(os.path.join(model_dir, "checkpoints")))


def keep_metrics_up_to(model_dir: str, step: int) -> None:
    """Drops the logged steps after ``step`` (a copy of a run, rewound to ``step``)."""
    path = os.path.join(model_dir, "train", "metrics.jsonl")
    with open(path) as f:
        records = [json.loads(line) for line in f]
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records if r["step"] <= step)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[str, dict[int, float]]:
    """One uninterrupted run: checkpoints at steps 2, 4, 6 and the loss of every step."""
    model_dir = str(tmp_path_factory.mktemp("reference"))
    train_here(model_dir)
    losses = read_metrics(model_dir)
    assert len({round(v, 6) for v in losses.values()}) == STEPS  # the loss really moves
    return model_dir, losses


def assert_continues_exactly(model_dir: str, want: dict[int, float]) -> None:
    got = read_metrics(model_dir)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert got[step] == pytest.approx(want[step], rel=1e-6, abs=1e-6), step


# -- non-finite losses ----------------------------------------------------------------


def test_nonfinite_loss_stops_the_run_before_checkpointing_it(repo_root, tmp_path):
    # Also the quiet start: without the test environment's TF_CPP_MIN_LOG_LEVEL and
    # CUDA_VISIBLE_DEVICES, a CPU machine's log has no CUDA noise.
    env = {k: v for k, v in device_env(8).items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    model_dir = str(tmp_path / "lr1e6")
    done = launch(repo_root, model_dir, "--gin.optimizers.adamw.learning_rate=1e6", steps=20,
                  env=env)
    assert done.returncode != 0, done.stderr[-3000:]
    match = re.search(
        r"error: Step (\d+): (loss|grad_norm|loss and grad_norm) is not finite \(NaN or inf\) "
        r"at learning rate ([0-9.e+-]+); the batch: task 'bert_pretrain_austen_uncased' "
        r"split 'train' \(data seed \d+\), batch index (\d+) of input shards \[0\] of 1",
        done.stderr)
    assert match, done.stderr[-3000:]
    bad, lr, batch_index = int(match.group(1)), float(match.group(3)), int(match.group(4))
    assert batch_index == bad - 1  # a fresh run reads batch i at step i + 1
    # The rate of that step: warm-up to 1e6 over the demo's 300 warm-up steps.
    assert lr == pytest.approx(1e6 * (bad - 1) / 300, rel=1e-3)
    logged = read_metrics(model_dir)
    assert logged and max(logged) < bad and all(np.isfinite(list(logged.values())))
    saved = [int(d) for d in step_dirs(model_dir) if d.isdigit()]
    last_good = max(s for s in range(2, bad, 2)) if bad > 2 else None
    assert saved == list(range(2, bad, 2)), (saved, bad)  # nothing at or after the bad step
    assert f"The newest complete checkpoint: step {last_good} in" in done.stderr
    assert "Traceback" not in done.stderr
    for noise in ("cuInit", "Could not find cuda drivers", "absl::InitializeLog"):
        assert noise not in done.stderr, noise


def test_guard_stops_on_first_bad_step_and_counts_skips():
    stop = nonfinite.NonFiniteGuard("stop", learning_rate=lambda step: 0.5 * step)
    for step, code in ((1, 0), (2, 0), (3, nonfinite.GRAD_NORM_BIT), (4, 3)):
        stop.record(step, jax.numpy.asarray(code), f"batch {step - 1}")
    with pytest.raises(nonfinite.NonFiniteError,
                       match=r"Step 3: grad_norm is not finite .* learning rate 1; the "
                             r"batch: batch 2\."):
        stop.check()

    skip = nonfinite.NonFiniteGuard("skip", max_consecutive_skips=3)
    codes = [0, 1, 1, 0, 1, 1]  # two short streaks: skipped, never 3 in a row
    for step, code in enumerate(codes, start=1):
        skip.record(step, jax.numpy.asarray(code), "")
    assert skip.check() == 4 and skip.consecutive == 2
    skip.record(7, jax.numpy.asarray(nonfinite.LOSS_BIT), "batch 6")
    with pytest.raises(nonfinite.NonFiniteError, match=r"Step 7: loss .* last of 3 steps in a row"):
        skip.check()
    with pytest.raises(ValueError, match=r"on_nonfinite='sometimes': use one of"):
        nonfinite.NonFiniteGuard("sometimes")


def test_skip_mode_leaves_the_state_bit_identical_then_trains_on():
    from test_sharding import CONFIG, _batches

    from models import bert
    from pretrain_lm import optimizers
    from pretrain_lm.data import to_global
    from pretrain_lm.partitioning import Partitioner
    from pretrain_lm.trainer import Trainer

    partitioner = Partitioner(data=1, model=1, num_devices=1)
    model = bert.BertPretrainingModel(CONFIG, max_seq_length=16, max_predictions_per_seq=4)

    def host(state):
        return jax.tree.map(np.asarray, jax.device_get((state.params, state.opt_state)))

    def run(skip: bool):
        opt = optimizers.adamw(1e-3, warmup_steps=1, total_steps=3)
        trainer = Trainer(model, opt.tx, partitioner, seed=0, skip_nonfinite=skip)
        good, poisoned, later = (to_global(b, partitioner.batch_sharding(), 8)
                                 for b in _poison_second(_batches(model, 3)))
        state, _ = trainer.train_step(trainer.init_state(), good)
        before = host(state)
        state, metrics = trainer.train_step(state, poisoned)
        after_bad = host(state), int(state.step), metrics
        state, metrics = trainer.train_step(state, later)
        return before, after_bad, host(state), metrics

    before, (after, step, metrics), trained_on, later = run(skip=True)
    assert step == 2  # the step (and the data) advance
    assert int(metrics[nonfinite.NONFINITE][0]) == nonfinite.LOSS_BIT | nonfinite.GRAD_NORM_BIT
    assert float(metrics["loss"][1]) == 0.0  # a skipped step counts for no metric
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical: params and optimizer state
    assert int(later[nonfinite.NONFINITE][0]) == 0
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(after), jax.tree.leaves(trained_on), strict=True))
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(trained_on[0]))

    # Without the skip the same batch poisons the parameters: the guard is what saves them.
    _, (unguarded, _, _), _, _ = run(skip=False)
    assert not all(np.isfinite(x).all() for x in jax.tree.leaves(unguarded[0]))


def _poison_second(batches):
    for i, batch in enumerate(batches):
        if i == 1:
            batch["masked_lm_weights"][:] = np.nan  # a NaN loss and NaN gradients
        yield batch


# -- damaged checkpoints --------------------------------------------------------------


def _truncate_data_files(step_dir: str) -> None:
    for root, _, names in os.walk(os.path.join(step_dir, "state")):
        for name in names:
            if os.path.basename(root) == "d" or name == "manifest.ocdbt":
                open(os.path.join(root, name), "w").close()  # 0 bytes, as a full disk


def _delete_commit_marker(step_dir: str) -> None:
    os.remove(os.path.join(step_dir, checkpoints.COMMIT_MARKER))


def _delete_item(step_dir: str) -> None:
    shutil.rmtree(os.path.join(step_dir, "data"))


@pytest.mark.parametrize("damage", [_truncate_data_files, _delete_commit_marker, _delete_item],
                         ids=["truncated", "no_commit_marker", "missing_item"])
def test_damaged_newest_step_is_set_aside_and_the_previous_one_resumes(
        reference, tmp_path, damage, caplog):
    source, want = reference
    model_dir = str(tmp_path / "run")
    shutil.copytree(source, model_dir)
    damage(os.path.join(model_dir, "checkpoints", "6"))
    keep_metrics_up_to(model_dir, 4)

    train_here(model_dir)
    assert_continues_exactly(model_dir, want)
    aside = os.path.join(model_dir, "checkpoints", f"{checkpoints.DAMAGED_PREFIX}6")
    assert os.path.isfile(os.path.join(aside, checkpoints.DAMAGED_REASON_FILE))  # kept
    assert step_dirs(model_dir) == ["2", "4", "6", f"{checkpoints.DAMAGED_PREFIX}6"]
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warnings) == 1 and "Checkpoint step 6 cannot be read" in warnings[0]


def test_no_intact_step_left_names_the_directory(reference, tmp_path):
    source, _ = reference
    model_dir = str(tmp_path / "run")
    shutil.copytree(source, model_dir)
    for step in ("2", "4", "6"):
        _delete_commit_marker(os.path.join(model_dir, "checkpoints", step))
    with pytest.raises(checkpoints.CheckpointDamagedError,
                       match=r"No intact checkpoint in .*/checkpoints: it holds "
                             r"\['damaged-step-2', 'damaged-step-4', 'damaged-step-6'\]"):
        train_here(model_dir)
    with pytest.raises(checkpoints.CheckpointDamagedError):  # and never starts afresh
        train_here(model_dir)


def test_evaluate_all_skips_a_damaged_step(reference, tmp_path, caplog):
    source, _ = reference
    model_dir = str(tmp_path / "run")
    shutil.copytree(source, model_dir)
    _truncate_data_files(os.path.join(model_dir, "checkpoints", "4"))
    import orbax.checkpoint as ocp

    metadata = ocp.CheckpointManager(
        os.path.join(model_dir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(read_only=True, create=False),
        item_handlers={"state": ocp.PyTreeCheckpointHandler()})
    stored = metadata.item_metadata(6)["state"]
    metadata.close()
    reader = checkpoints.Checkpointer(model_dir, read_only=True, async_save=False)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            getattr(stored, "tree", stored)["params"])
    try:
        assert reader.try_restore_params_and_state(4, abstract, None) is None
        params, _ = reader.try_restore_params_and_state(6, abstract, None)
    finally:
        reader.close()
    assert params["bert"]["embeddings"]["word_embeddings"]["embedding"].shape == (7433, 128)
    assert any("Checkpoint step 4 in" in r.getMessage() and "skipped" in r.getMessage()
               for r in caplog.records)
    assert os.path.isdir(os.path.join(model_dir, "checkpoints", "4"))  # left where it is


# -- interrupted and failed saves, unwritable model dirs --------------------------------


def test_kill_during_a_save_resumes_from_the_previous_step_exactly(repo_root, reference,
                                                                    tmp_path):
    _, want = reference
    model_dir = str(tmp_path / "killed")
    killed = launch(repo_root, model_dir, launcher=("-c", FAULT_LAUNCHER),
                    FAULT="KILL_DURING_SAVE", FAULT_AT_STEP="4")
    assert killed.returncode == -9, killed.stderr[-3000:]
    left = step_dirs(model_dir)
    assert "2" in left and "4" not in left  # step 4 never committed
    assert any(".orbax-checkpoint-tmp" in d for d in left), left
    keep_metrics_up_to(model_dir, 2)

    resumed = launch(repo_root, model_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Found an interrupted save (4.orbax-checkpoint-tmp" in resumed.stderr
    assert "Resuming from step 2" in resumed.stderr
    assert_continues_exactly(model_dir, want)


def test_a_failed_save_stops_the_run_with_the_last_good_step_named(repo_root, tmp_path):
    model_dir = str(tmp_path / "full_disk")
    done = launch(repo_root, model_dir, launcher=("-c", FAULT_LAUNCHER), FAULT="ENOSPC",
                  FAULT_AT_STEP="4")
    assert done.returncode == 1, done.stderr[-3000:]
    error = done.stderr[done.stderr.index("error: "):]
    assert "No space left on device" in error
    assert f"The newest complete checkpoint: step 2 in {model_dir}/checkpoints" in error
    assert [d for d in step_dirs(model_dir) if d.isdigit()] == ["2"]  # never a half "4"
    assert "Traceback" not in done.stderr


def test_unwritable_model_dir_is_refused_at_start(repo_root, tmp_path):
    model_dir = tmp_path / "read_only"
    model_dir.mkdir()
    with _read_only(model_dir):
        done = subprocess.run(
            [sys.executable, "-m", "pretrain_lm.train",
             *[f"--gin_file={f}" for f in GIN_FILES], f"--gin.MODEL_DIR={model_dir}"],
            cwd=repo_root, env=device_env(8), capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: The model dir {model_dir} cannot be written ("), last
    assert "Choose a writable --gin.MODEL_DIR" in last
    assert "Traceback" not in done.stderr
    assert os.listdir(model_dir) == []


@contextlib.contextmanager
def _read_only(path):
    """``path`` made unwritable: by its mode, or, for root (whom modes do not stop), by
    the immutable attribute."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: no way to make a dir unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
