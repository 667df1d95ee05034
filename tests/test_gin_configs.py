"""Every shipped gin file parses, and the BERT sizes have the parameters the papers state.

Parameter counts are taken from the abstract shapes (`jax.eval_shape`, nothing allocated)
and compared with a count by hand from the architecture, and with the published sizes
(BERT-Base 110M, BERT-Large 340M; the small models of Turc et al. 2019 with BERT's
30,522-token vocabulary).
"""

from __future__ import annotations

import glob
import math
import os

import gin
import jax
import pytest

from pretrain_lm import gin_utils

# Task settings included after a run mode by several files (their own first line says so).
EXTENDS = {"elmo/conll2003.gin": "runs/tagger.gin"}
REQUIRED = ["MIXTURE_OR_TASK_NAME = 'bert_pretrain_austen_uncased'", "MODEL_DIR = '/tmp/x'",
            "TRAIN_STEPS = 10"]
# Concrete experiments, one folder per paper (demo_*, reproduce_*, pod_*, paper_* runs).
EXPERIMENT_FOLDERS = ("bert", "transformer", "gpt", "elmo", "ulmfit", "cove")
# name: (L, H, published parameter count in millions)
SIZES = {"tiny": (2, 128, 4.4), "mini": (4, 256, 11.3), "small": (4, 512, 29.1),
         "medium": (8, 512, 41.7), "base": (12, 768, 110.0), "large": (24, 1024, 340.0)}


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def gin_files(repo_root: str, folder: str) -> list[str]:
    paths = sorted(glob.glob(os.path.join(repo_root, "gin_configs", folder, "*.gin")))
    assert paths, folder
    return [os.path.relpath(p, os.path.join(repo_root, "gin_configs")) for p in paths]


def demo_files(repo_root: str) -> list[str]:
    """The demo runs of every paper's folder (``gin_configs/<paper>/demo_*.gin``)."""
    return [path for folder in EXPERIMENT_FOLDERS for path in gin_files(repo_root, folder)
            if os.path.basename(path).startswith("demo_")]


def hand_count(layers: int, hidden: int, vocab: int = 30522, positions: int = 512) -> int:
    ffn = 4 * hidden
    embeddings = (vocab + positions + 2) * hidden + 2 * hidden
    attention = 4 * (hidden * hidden + hidden) + 2 * hidden
    feed_forward = hidden * ffn + ffn + ffn * hidden + hidden + 2 * hidden
    pooler = hidden * hidden + hidden
    mlm_head = hidden * hidden + hidden + 2 * hidden + vocab  # transform, LN, output bias
    nsp_head = 2 * hidden + 2
    return embeddings + layers * (attention + feed_forward) + pooler + mlm_head + nsp_head


@pytest.mark.parametrize("size", sorted(SIZES))
def test_bert_size_has_the_published_parameter_count(size):
    from models import bert

    gin_utils.parse(["runs/pretrain.gin", f"models/bert/{size}.gin", "mesh/cpu.gin"], REQUIRED)
    model = gin.get_configurable(bert.BertPretrainingModel)()
    layers, hidden, published_millions = SIZES[size]
    assert (model.config.num_layers, model.config.hidden_size) == (layers, hidden)
    assert model.config.intermediate_size == 4 * hidden
    assert model.config.hidden_size % model.config.num_heads == 0

    shapes = jax.eval_shape(model.init, jax.random.key(0), model.example_batch(2))
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
    assert count == hand_count(layers, hidden)
    assert count / 1e6 == pytest.approx(published_millions, rel=0.03)


@pytest.mark.parametrize("mesh", ["mesh/cpu.gin", "mesh/cpu_4x2.gin", "mesh/tpu_v3_4x4.gin",
                                  "mesh/tpu_v4_4x4.gin", "mesh/tpu_v3_8x8.gin",
                                  "mesh/tpu_v4_8x8.gin"])
def test_mesh_files_parse(mesh, repo_root):
    assert mesh in gin_files(repo_root, "mesh")
    from pretrain_lm import partitioning

    gin_utils.parse(["runs/pretrain.gin", "models/bert/tiny.gin", mesh], REQUIRED)
    data = gin.query_parameter("partitioning.Partitioner.data")
    model = gin.query_parameter("partitioning.Partitioner.model")
    assert data == -1 or data > 0
    assert model >= 1
    assert gin.query_parameter("partitioning.Partitioner.rules") in partitioning.RULE_PRESETS


def test_every_demo_and_run_file_configures_a_complete_training_job(repo_root):
    """The demo files bind every REQUIRED macro themselves; runs need only the three."""
    import tasks
    from pretrain_lm import trainer

    for path in demo_files(repo_root):
        gin.clear_config()
        gin_utils.parse([path], [])
        for name in ("MIXTURE_OR_TASK_NAME", "VOCAB_SIZE"):
            assert gin_utils.macro(name) is not None, (path, name)
        train = gin.get_configurable(trainer.train)
        bound = gin.get_bindings(train)
        assert {"model", "train_data", "eval_data", "optimizer", "partitioner"} <= set(bound)
        assert ("train_steps" in bound) != ("train_epochs" in bound), path
        task_vocab = tasks.get_vocabulary(gin_utils.macro("MIXTURE_OR_TASK_NAME")).vocab_size
        vocab_size = gin_utils.macro("VOCAB_SIZE")
        if isinstance(vocab_size, gin.config.ConfigurableReference):  # read from the task
            vocab_size = vocab_size.scoped_configurable_fn()
        assert vocab_size == task_vocab, path


@pytest.mark.parametrize("size, slice_, devices", [("base", "4x4", 16), ("large", "8x8", 64)])
def test_pod_runs_follow_the_paper_schedule(repo_root, size, slice_, devices):
    """Batch 256; seq 128 for 900k of 1M steps, then 512 from phase 1's train state."""
    phase1 = f"bert/pod_{size}_tpu_v4_{slice_}_seq128.gin"
    phase2 = f"bert/pod_{size}_tpu_v4_{slice_}_seq512.gin"
    assert {phase1, phase2} <= set(gin_files(repo_root, "bert"))
    gin_utils.parse([phase1], ["MODEL_DIR = '/m'"])
    assert (gin_utils.macro("BATCH_SIZE"), gin_utils.macro("MAX_SEQ_LENGTH")) == (256, 128)
    assert gin_utils.macro("TRAIN_STEPS") == 900_000
    assert gin.query_parameter("trainer.train.schedule_steps") == 1_000_000
    data = gin.query_parameter("partitioning.Partitioner.data")
    assert data * gin.query_parameter("partitioning.Partitioner.model") == devices
    gin.clear_config()
    gin_utils.parse([phase2], ["MODEL_DIR = '/m2'", "PHASE1_MODEL_DIR = '/m'"])
    assert (gin_utils.macro("MAX_SEQ_LENGTH"), gin_utils.macro("MAX_PREDICTIONS_PER_SEQ")) \
        == (512, 80)
    assert gin_utils.macro("TRAIN_STEPS") == 1_000_000
    assert gin.query_parameter("trainer.train.schedule_steps") == 1_000_000
    assert gin_utils.macro("PHASE1_MODEL_DIR") == "/m"


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("stage, bindings", [
    ("1_lm_lm1b", []),
    ("2_lm_imdb", ["GENERAL_LM_DIR = '/general'"]),
    ("3_classifier", ["ENCODER_DIR = '/encoder'"]),
])
def test_ulmfit_imdb_runs_hold_the_paper_setting(stage, bindings, backward):
    """The paper's AWD-LSTM (400 / 3 x 1150), BPTT 70, Adam (0.7, 0.99), the slanted
    triangular LR (cut_frac 0.1, ratio 32) and, after stage 1, discriminative LRs (2.6);
    the model embeds exactly the task's vocabulary. The ``_bwd`` files are the same runs
    reading every document backward (training and evaluation)."""
    import tasks

    suffix = "_bwd" if backward else ""
    gin_utils.parse([f"ulmfit/paper_imdb_{stage}{suffix}.gin"],
                    ["MODEL_DIR = '/m'", *bindings])
    from pretrain_lm import trainer

    bound = gin.get_bindings(gin.get_configurable(trainer.train))
    assert bound["train_data"].reverse is bound["eval_data"].reverse is backward
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    cfg = model.config
    assert (cfg.embed_dim, cfg.hidden_size, cfg.num_layers) == (400, 1150, 3)
    assert gin_utils.macro("BPTT") == 70
    task = gin_utils.macro("MIXTURE_OR_TASK_NAME")
    assert cfg.vocab_size == tasks.get_vocabulary(task).vocab_size
    def bound(name: str) -> object:
        value = gin.query_parameter(f"optimizers.ulmfit_adam.{name}")
        return value.scoped_configurable_fn() if hasattr(value, "scoped_configurable_fn") \
            else value  # a %MACRO

    options = {k: bound(k) for k in ("b1", "b2", "cut_frac", "ratio", "discriminative_decay")}
    decay = 1.0 if stage.startswith("1") else 2.6
    assert options == {"b1": 0.7, "b2": 0.99, "cut_frac": 0.1, "ratio": 32.0,
                       "discriminative_decay": decay}
    if stage.startswith("3"):
        assert model.num_classes == 2 and model.max_seq_length == 1400
        assert bound("unfreeze_every_steps") == 469


def _moved(repo_root: str) -> dict[str, str]:
    """The old -> new table of ``gin_configs/README.md`` (what a missing path is told)."""
    return gin_utils.moved_gin_files([os.path.join(repo_root, "gin_configs")])


def test_every_gin_file_parses_and_every_older_file_has_a_successor(repo_root):
    """Each file under gin_configs/ parses, alone or after what it needs: a fine-tuning
    task after a BERT size and runs/finetune.gin, a size or a mesh after a run mode, a
    shared task setting (``EXTENDS``) after the run mode it extends.
    Every file of the older layout (demo/, reproduce/, pod/, runs/ulmfit_imdb_*) names an
    existing successor, so an old command finds its new file in one look-up."""
    moved = _moved(repo_root)
    assert len(moved) == 32, len(moved)
    every = {os.path.relpath(p, os.path.join(repo_root, "gin_configs"))
             for p in glob.glob(os.path.join(repo_root, "gin_configs", "*", "**", "*.gin"),
                                recursive=True)}
    assert set(moved.values()) <= every, set(moved.values()) - every
    assert not set(moved) & every  # the old names are gone, not duplicated
    required = [*REQUIRED, "GENERAL_LM_DIR = '/g'", "ENCODER_DIR = '/e'", "BILM_DIR = '/b'",
                "PHASE1_MODEL_DIR = '/p'", "PRETRAINED = '/p'", "EPOCHS = 1",
                "UNFREEZE_EVERY_STEPS = 10"]
    for path in sorted(every):
        if path.startswith("finetune/"):
            files = ["models/bert/base.gin", "runs/finetune.gin", path]
        elif path.startswith(("models/", "mesh/")):
            files = ["runs/pretrain.gin", "models/bert/tiny.gin", path]
        elif path in EXTENDS:  # a task setting shared by several run modes
            files = [EXTENDS[path], path]
        else:
            files = [path]
        try:  # a demo binds everything itself; a run mode needs the required macros
            gin.clear_config()
            gin_utils.parse(files, [])
        except Exception:  # any failure: retry with the required macros
            gin.clear_config()
            gin_utils.parse(files, required)
        assert gin.query_parameter("trainer.train.model") is not None, path
