"""ULMFiT's backward models and the forward + backward ensemble (Howard & Ruder 2018).

The backward LM reads BPTT streams of reversed documents that still continue each other
from batch to batch; the backward classifier reads each document's ids reversed with the
padding at the end; the direction is recorded with the run, so a backward model refuses a
forward checkpoint; ``pretrain_lm.tools.ensemble`` averages the runs' probabilities (params and
batch-norm statistics restored), and one run alone scores as the trainer evaluated it.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from launch import read_metrics, train_in_process

import tasks
from pretrain_lm import checkpoints
from pretrain_lm.partitioning import Partitioner

LM_TASK = "lm_austen_novels_gcide8k"
CLASSIFIER_TASK = "austen_novels_gcide8k"
EOS = 1
# Tiny and short: a 3 x 64 AWD-LSTM, two LM steps, three classifier steps of 32 x 32 ids.
TINY = ["HIDDEN_SIZE = 64", "trainer.train.progress_bar = False",
        "partitioning.Partitioner.num_devices = 1"]
CLASSIFIER = ["EPOCHS = 0.04", "MAX_SEQ_LENGTH = 32", "trainer.train.eval_every = 3",
              "trainer.train.checkpoint_every = 3", "trainer.train.log_every = 3"]


# ----------------------------------------------------------------------------- data


def _stream(reverse: bool, batch_size: int = 4) -> list[dict]:
    return list(tasks.get_dataset(
        LM_TASK, split="validation", batch_size=batch_size, targets_length=90, bptt=70,
        seed=3, shuffle=True, num_epochs=1, reverse=reverse).as_numpy_iterator())


def _rows(batches: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's inputs and targets over all batches, the windows joined end to end; row
    r of batch k + 1 must continue row r of batch k (checked on the way)."""
    rows = len(batches[0]["decoder_input_tokens"])
    inputs, targets = [[] for _ in range(rows)], [[] for _ in range(rows)]
    for k, batch in enumerate(batches):
        for r in range(rows):
            n = int(batch["decoder_loss_weights"][r].sum())
            window_in = batch["decoder_input_tokens"][r, :n]
            window_out = batch["decoder_target_tokens"][r, :n]
            np.testing.assert_array_equal(window_out[:-1], window_in[1:])
            if k:  # continues the row: the last target before is this window's first input
                assert targets[r][-1][-1] == window_in[0], (k, r)
            inputs[r].append(window_in)
            targets[r].append(window_out)
    return (np.stack([np.concatenate(x) for x in inputs]),
            np.stack([np.concatenate(x) for x in targets]))


def _documents(stream: np.ndarray) -> list[np.ndarray]:
    """The stream cut after every EOS; the unfinished tail is left out."""
    ends = np.flatnonzero(stream == EOS) + 1
    return [stream[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def test_reverse_document_keeps_the_closing_eos_last():
    from tasks.language_modeling import reverse_document

    # lm1b's groups: every sentence ends in EOS; reversed, every one is again followed by one.
    np.testing.assert_array_equal(reverse_document(np.array([5, 6, EOS, 7, 8, EOS]), EOS),
                                  [8, 7, EOS, 6, 5, EOS])
    np.testing.assert_array_equal(reverse_document(np.array([5, 6, 7]), EOS), [7, 6, 5])


def test_backward_stream_is_each_document_reversed_and_rows_continue():
    forward, backward = _stream(reverse=False), _stream(reverse=True)
    assert len(forward) == len(backward) > 3
    for a, b in zip(forward, backward, strict=True):  # same windows, same padding
        np.testing.assert_array_equal(a["decoder_loss_weights"], b["decoder_loss_weights"])
    (fwd_in, fwd_out), (bwd_in, bwd_out) = _rows(forward), _rows(backward)
    # Row r holds the r-th stretch of one stream: rows joined = the stream (+ 1 target).
    fwd = np.concatenate([fwd_in.reshape(-1), fwd_out[-1, -1:]])
    bwd = np.concatenate([bwd_in.reshape(-1), bwd_out[-1, -1:]])
    np.testing.assert_array_equal(fwd_in[1:, 0], fwd_out[:-1, -1])  # rows follow each other
    np.testing.assert_array_equal(bwd_in[1:, 0], bwd_out[:-1, -1])
    fwd_docs, bwd_docs = _documents(fwd), _documents(bwd)
    assert len(fwd_docs) == len(bwd_docs) > 20
    for f, b in zip(fwd_docs, bwd_docs, strict=True):  # same order (same seed), reversed
        np.testing.assert_array_equal(b[:-1], f[:-1][::-1])
    assert not np.array_equal(fwd, bwd)


def test_backward_classifier_data_is_each_document_reversed():
    """Through the backward demo gin file's evaluation DataConfig and the trainer's
    DataIterator: the same examples and labels, each row's valid ids reversed, padding
    still at the end."""
    import gin

    from pretrain_lm import gin_utils, trainer
    from pretrain_lm.data import DataIterator

    gin.clear_config()
    try:
        gin_utils.parse(["ulmfit/demo_3_classifier_austen_novels_bwd.gin"],
                        ["MODEL_DIR = '/unused'", "MAX_SEQ_LENGTH = 48"])
        bound = gin.get_bindings(gin.get_configurable(trainer.train))
    finally:
        gin.clear_config()
    assert bound["train_data"].reverse and bound["eval_data"].reverse
    partitioner = Partitioner(num_devices=1)
    backward = next(DataIterator(bound["eval_data"], 32, partitioner))
    forward = next(DataIterator(dataclasses.replace(bound["eval_data"], reverse=False), 32,
                                partitioner))
    for key in ("label", "example_weight", "input_mask"):
        np.testing.assert_array_equal(backward[key], forward[key])
    lengths = forward["input_mask"].sum(axis=1)
    assert lengths.min() < 48 and lengths.max() == 48  # short rows padded, long ones cut
    for f, b, n in zip(forward["input_ids"], backward["input_ids"], lengths, strict=True):
        np.testing.assert_array_equal(b[:n], f[:n][::-1])
        assert not b[n:].any()


def test_reverse_is_refused_where_it_has_no_meaning():
    with pytest.raises(ValueError, match=r"DataConfig\.reverse = False"):
        tasks.get_dataset("lm_austen_spm8k", split="validation", batch_size=2,
                          targets_length=16, seed=0, shuffle=False, reverse=True)


def test_the_direction_is_part_of_the_runs_record(tmp_path):
    forward = {"task": LM_TASK, "vocab_size": 8000, "sha256": "ab", "direction": "forward"}
    backward = {**forward, "direction": "backward"}
    checkpoints.record_vocabulary(str(tmp_path), backward)
    checkpoints.record_vocabulary(str(tmp_path), backward)  # resuming alike is fine
    for check in (checkpoints.check_vocabulary, checkpoints.record_vocabulary):
        with pytest.raises(checkpoints.CheckpointMismatchError, match="read backward"):
            check(str(tmp_path), forward)
    old = tmp_path / "before_backward_models"  # a record without direction is forward
    checkpoints.record_vocabulary(str(old), {k: v for k, v in forward.items()
                                             if k != "direction"})
    checkpoints.check_vocabulary(str(old), forward)
    with pytest.raises(checkpoints.CheckpointMismatchError, match=r"--gin\.BACKWARD=False"):
        checkpoints.check_vocabulary(str(old), backward)


# ----------------------------------------------------------------------------- runs


def _bindings(gin_file: str, model_dir: str, extra: tuple[str, ...] = ()) -> dict:
    """``trainer.train``'s bindings of a tiny run, its config.gin written, nothing run."""
    import gin

    from pretrain_lm import gin_utils, trainer

    gin.clear_config()
    try:
        gin_utils.parse([gin_file], [*TINY, f"MODEL_DIR = '{model_dir}'", *extra])
        gin_utils.write_config(model_dir)
        return gin.get_bindings(gin.get_configurable(trainer.train))
    finally:
        gin.clear_config()


@pytest.mark.parametrize("gin_file, encoder_direction", [
    ("ulmfit/demo_3_classifier_austen_novels_bwd.gin", False),
    ("ulmfit/demo_3_classifier_austen_novels.gin", True),
])
def test_an_encoder_of_the_other_direction_is_refused(tmp_path, gin_file, encoder_direction):
    """The check runs before any parameter is read: an LM dir holding only its record."""
    from pretrain_lm.data import DataConfig

    encoder = str(tmp_path / "lm")
    checkpoints.record_vocabulary(
        encoder, DataConfig(LM_TASK, reverse=encoder_direction).vocabulary_record())
    with pytest.raises(checkpoints.CheckpointMismatchError, match="documents read"):
        train_in_process([gin_file], [*TINY, *CLASSIFIER, f"MODEL_DIR = '{tmp_path}/run'",
                                      f"ENCODER_DIR = '{encoder}'"])


def test_training_and_evaluating_in_two_directions_is_refused(tmp_path):
    with pytest.raises(ValueError, match="evaluated in the direction it is trained in"):
        train_in_process(["ulmfit/demo_3_classifier_austen_novels_bwd.gin"], [
            *TINY, *CLASSIFIER, f"MODEL_DIR = '{tmp_path}'",
            "eval/data.DataConfig.reverse = False"])


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory) -> dict[str, dict]:
    """A forward and a backward classifier run, untrained but checkpointed as a run is
    (config.gin, vocabulary record, one checkpoint), their batch-norm statistics moved
    away from the initial ones (a restore without the model state would show) and the
    output layer scaled up, so that the probabilities depend clearly on the input."""
    import jax
    import optax

    from pretrain_lm.trainer import Trainer

    root = tmp_path_factory.mktemp("checkpointed")
    runs = {}
    for seed, (direction, suffix) in enumerate((("fwd", ""), ("bwd", "_bwd"))):
        model_dir = str(root / direction)
        bound = _bindings(f"ulmfit/demo_3_classifier_austen_novels{suffix}.gin", model_dir,
                          (*CLASSIFIER, f"trainer.train.seed = {seed}"))
        model = bound["model"]
        trainer = Trainer(model, optax.identity(), Partitioner(num_devices=1), seed=seed,
                          batch_size=bound["batch_size"])
        state = trainer.init_state()
        moved = _moved(jax.device_get(state.model_state), seed)
        params = dict(state.params)
        params["classifier_output"] = jax.tree.map(lambda x: x * 30.0,
                                                   params["classifier_output"])
        state = state.replace(params=params, model_state=moved)
        checkpoints.record_vocabulary(model_dir, bound["eval_data"].vocabulary_record())
        saver = checkpoints.Checkpointer(model_dir, async_save=False)
        saver.save(1, state, None, force=True)
        saver.close()
        runs[direction] = {"dir": model_dir, "model": model, "state": moved,
                           "params": jax.device_get(state.params),
                           "predict": jax.jit(model.predict_with_state)}
    return runs


def _moved(tree: dict, seed: int) -> dict:
    """Every leaf scaled by U(0.5, 1.5) and shifted by U(0, 0.5) (variances stay > 0)."""
    import jax

    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: (x * rng.uniform(0.5, 1.5, x.shape)
                                   + rng.uniform(0.0, 0.5, x.shape)).astype(x.dtype), tree)


def _probabilities(run: dict, reverse: bool, state: dict | None = None) -> np.ndarray:
    """The run's class probabilities over the validation split computed directly: the
    task's batches (of another size than the run's) through ``predict_with_state``."""
    import jax

    predict, out = run["predict"], []
    for batch in tasks.get_dataset(CLASSIFIER_TASK, split="validation", batch_size=50,
                                   max_seq_length=32, seed=0, shuffle=False, num_epochs=1,
                                   reverse=reverse).as_numpy_iterator():
        logits = predict(run["params"], run["state"] if state is None else state, batch)
        out.append(np.asarray(jax.nn.softmax(logits["logits"]))[batch["example_weight"] > 0])
    return np.concatenate(out)


def test_ensemble_is_the_average_of_the_runs_probabilities(checkpointed, tmp_path):
    from pretrain_lm.tools import ensemble

    direct = {"fwd": _probabilities(checkpointed["fwd"], reverse=False),
              "bwd": _probabilities(checkpointed["bwd"], reverse=True)}
    assert len(direct["fwd"]) == tasks.num_examples(CLASSIFIER_TASK, "validation")
    partitioner = Partitioner(num_devices=1)
    both = ensemble.ensemble([checkpointed["fwd"]["dir"], checkpointed["bwd"]["dir"]],
                             "validation", output_dir=str(tmp_path), partitioner=partitioner)
    for got, want in zip(both.runs, (direct["fwd"], direct["bwd"]), strict=True):
        np.testing.assert_allclose(got.probabilities, want, atol=1e-5)
    np.testing.assert_allclose(both.ensemble.probabilities,
                               (direct["fwd"] + direct["bwd"]) / 2, atol=1e-5)
    assert [r.direction for r in both.runs] == ["forward", "backward"]

    one = ensemble.ensemble([checkpointed["bwd"]["dir"]], "validation", partitioner=partitioner)
    np.testing.assert_allclose(one.ensemble.probabilities, direct["bwd"], atol=1e-5)
    assert one.ensemble.scores() == pytest.approx(one.runs[0].scores())
    # What the restore guards against: the initial batch statistics, or forward reading.
    fresh = checkpointed["bwd"]["model"].init_state(1)
    assert not np.allclose(_probabilities(checkpointed["bwd"], True, fresh), direct["bwd"],
                           atol=1e-3)
    assert not np.allclose(_probabilities(checkpointed["bwd"], False), direct["bwd"],
                           atol=1e-3)
    with open(tmp_path / "ensemble_validation.json") as f:
        rows = json.load(f)["runs"]
    assert [r["direction"] for r in rows] == ["forward", "backward", "backward+forward"]
    assert rows[-1]["accuracy"] == pytest.approx(both.ensemble.scores()["accuracy"])
    assert rows[-1]["error_rate"] == pytest.approx(1 - rows[-1]["accuracy"])
    assert (tmp_path / "ensemble_validation.md").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, str]:
    """Tiny forward and backward chains: LM (2 steps) -> classifier (3 steps)."""
    root = tmp_path_factory.mktemp("bidirectional")
    dirs = {}
    for direction, suffix in (("fwd", ""), ("bwd", "_bwd")):
        lm, classifier = str(root / f"lm_{direction}"), str(root / f"classifier_{direction}")
        train_in_process([f"ulmfit/demo_1_lm_gcide{suffix}.gin"], [
            *TINY, f"MODEL_DIR = '{lm}'", f"MIXTURE_OR_TASK_NAME = '{LM_TASK}'",
            "TRAIN_STEPS = 2", "trainer.train.eval_every = 0"])
        train_in_process([f"ulmfit/demo_3_classifier_austen_novels{suffix}.gin"], [
            *TINY, *CLASSIFIER, f"MODEL_DIR = '{classifier}'", f"ENCODER_DIR = '{lm}'"])
        dirs.update({f"lm_{direction}": lm, direction: classifier})
    return dirs


@pytest.mark.slow  # ~1.5 min: four tiny runs (the compilations dominate)
def test_trained_backward_chain_scores_as_the_trainer_evaluated_it(trained):
    """The backward classifier starts from the backward LM (its encoder unchanged after
    three head-only steps of gradual unfreezing; both runs record their direction), and
    each run scored alone by the ensemble command's path (params, batch-norm statistics,
    its direction) has the accuracy the trainer measured at its last step."""
    from pretrain_lm import checkpoints
    from pretrain_lm.tools import ensemble

    lm = checkpoints.read_params(trained["lm_bwd"])["lstm_0"]
    classifier = checkpoints.read_params(trained["bwd"])["lstm_0"]
    np.testing.assert_array_equal(lm["recurrent_kernel"], classifier["recurrent_kernel"])
    for direction, name in (("fwd", "forward"), ("bwd", "backward")):
        with open(os.path.join(trained[direction], checkpoints.VOCABULARY_FILE)) as f:
            assert json.load(f)["direction"] == name
        result = ensemble.ensemble([trained[direction]], "validation",
                                   partitioner=Partitioner(num_devices=1))
        run = result.runs[0]
        assert (run.step, run.direction) == (3, name)
        trainer_accuracy = read_metrics(trained[direction], "eval", "accuracy")[3]
        assert run.scores()["accuracy"] == pytest.approx(trainer_accuracy,
                                                         abs=0.5 / len(run.labels))


def test_ensemble_needs_classifier_runs(tmp_path):
    from pretrain_lm.tools import ensemble

    with pytest.raises(FileNotFoundError, match=r"config\.gin"):
        ensemble.load_run(str(tmp_path))
    _bindings("ulmfit/demo_1_lm_gcide_bwd.gin", str(tmp_path / "lm"))
    with pytest.raises(ValueError, match="no classification task"):
        ensemble.predict_run(ensemble.load_run(str(tmp_path / "lm")), "validation")


def test_ensemble_refuses_runs_of_other_examples():
    from pretrain_lm.tools import ensemble

    a = ensemble.Predictions("a", CLASSIFIER_TASK, "forward", 1, np.full((4, 2), 0.5),
                             np.array([0, 1, 0, 1]))
    b = dataclasses.replace(a, name="b", labels=np.array([1, 1, 0, 1]))
    with pytest.raises(ValueError, match="did not read the same examples"):
        ensemble.average([a, b])
