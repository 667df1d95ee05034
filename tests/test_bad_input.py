"""Bad input gets one clear error that names the fix."""

import numpy as np
import pytest

from models import bert
from pretrain_lm import gin_utils, optimizers
from pretrain_lm.checkpoints import Checkpointer, CheckpointMismatchError
from pretrain_lm.partitioning import Partitioner
from pretrain_lm.trainer import Trainer


@pytest.fixture(autouse=True)
def _clear_gin():
    import gin

    gin.clear_config()
    yield
    gin.clear_config()


def test_unknown_gin_parameter_names_the_valid_ones():
    with pytest.raises(gin_utils.GinConfigError) as error:
        gin_utils.parse(["gin_configs/models/bert/tiny.gin"],
                        ["bert.BertConfig.num_layer = 3"])
    message = str(error.value)
    assert "Unknown gin binding" in message
    assert "'num_layer'" in message
    assert "num_layers" in message  # the valid spelling is listed


def test_unknown_configurable_is_named():
    with pytest.raises(gin_utils.GinConfigError, match=r"nothing called 'bert\.BertConfg'"):
        gin_utils.parse(["gin_configs/models/bert/tiny.gin"], ["bert.BertConfg.x = 1"])


def test_an_older_gin_path_names_its_successor():
    with pytest.raises(gin_utils.GinConfigError,
                       match=r"It moved: use --gin_file=bert/demo_tiny_austen\.gin"):
        gin_utils.parse(["demo/bert_tiny_austen.gin"], [])


def test_missing_gin_file_is_named():
    with pytest.raises(gin_utils.GinConfigError, match=r"gin file 'nope\.gin' not found"):
        gin_utils.parse(["nope.gin"], [])


def test_gin_flag_rewriting_quotes_bare_strings():
    argv = gin_utils.rewrite_gin_args(
        ["prog", "--gin.MODEL_DIR=/tmp/run", "--gin.TRAIN_STEPS=10",
         "--gin.X=@foo()", "--gin.Y='already'", "--other=1"])
    assert argv == ["prog", "--gin_bindings=MODEL_DIR = '/tmp/run'",
                    "--gin_bindings=TRAIN_STEPS = 10", "--gin_bindings=X = @foo()",
                    "--gin_bindings=Y = 'already'", "--other=1"]


def _tiny_trainer(hidden: int, layers: int) -> Trainer:
    config = bert.BertConfig(vocab_size=64, hidden_size=hidden, num_layers=layers,
                             num_heads=2, intermediate_size=2 * hidden,
                             max_position_embeddings=16)
    model = bert.BertPretrainingModel(config, max_seq_length=8, max_predictions_per_seq=2)
    opt = optimizers.adamw(1e-3, warmup_steps=1, total_steps=2)
    return Trainer(model, opt.tx, Partitioner(data=1, model=1, num_devices=1))


def test_checkpoint_of_another_model_size_names_the_parameters(tmp_path):
    small = _tiny_trainer(hidden=16, layers=1)
    checkpointer = Checkpointer(str(tmp_path), save_every=1, keep=1, async_save=False)
    checkpointer.save(1, small.init_state(), None, force=True)
    checkpointer.wait()

    bigger = _tiny_trainer(hidden=32, layers=2)
    with pytest.raises(CheckpointMismatchError) as error:
        checkpointer.restore(1, bigger.abstract_state, None)
    message = str(error.value)
    assert "does not fit this model" in message
    assert "bert/embeddings/word_embeddings/embedding: checkpoint (64, 16) vs model (64, 32)"\
        in message
    assert "bert/layer_1/attention/query/kernel: missing from the checkpoint" in message
    assert "--gin.MODEL_DIR" in message
    checkpointer.close()


def test_checkpoint_round_trip_restores_the_same_values(tmp_path, monkeypatch):
    trainer = _tiny_trainer(hidden=16, layers=1)
    state = trainer.init_state()
    monkeypatch.chdir(tmp_path)  # a relative model dir, as users type it
    checkpointer = Checkpointer("runs/relative", save_every=2, keep=1)
    assert not checkpointer.save(1, state, None)  # not a multiple of save_every
    assert checkpointer.save(2, state, None)
    checkpointer.wait()
    assert checkpointer.latest_step() == 2
    assert (tmp_path / "runs" / "relative" / "checkpoints" / "2").is_dir()
    restored = checkpointer.restore(2, trainer.abstract_state, None)
    for a, b in zip(np.asarray(state.params["bert"]["pooler"]["kernel"]),
                    np.asarray(restored.params["bert"]["pooler"]["kernel"]), strict=False):
        np.testing.assert_array_equal(a, b)
    checkpointer.close()


def test_init_from_restores_a_model_dir_or_a_step_and_names_bad_paths(tmp_path):
    from pretrain_lm.checkpoints import restore_from

    trainer = _tiny_trainer(hidden=16, layers=1)
    state = trainer.init_state()
    checkpointer = Checkpointer(str(tmp_path / "phase1"), async_save=False)
    for step in (3, 5):
        checkpointer.save(step, state.replace(step=state.step + step), None, force=True)
    checkpointer.close()
    latest = restore_from(str(tmp_path / "phase1"), trainer.abstract_state)
    chosen = restore_from(str(tmp_path / "phase1" / "checkpoints" / "3"),
                          trainer.abstract_state)
    assert (int(latest.step), int(chosen.step)) == (5, 3)
    np.testing.assert_array_equal(np.asarray(latest.params["bert"]["pooler"]["kernel"]),
                                  np.asarray(state.params["bert"]["pooler"]["kernel"]))
    with pytest.raises(FileNotFoundError, match="give a model dir"):
        restore_from(str(tmp_path / "nowhere"), trainer.abstract_state)
    with pytest.raises(FileNotFoundError, match=r"No checkpoint step 4 .* holds steps \[3, 5\]"):
        restore_from(str(tmp_path / "phase1" / "checkpoints" / "4"), trainer.abstract_state)


def test_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path):
    import tasks
    from tasks import registry
    from tasks.pretraining import DatasetNotPreparedError

    registry.register_all(tfds_data_dir=str(tmp_path))
    try:
        with pytest.raises(DatasetNotPreparedError) as error:
            tasks.get_dataset("bert_pretrain_lm1b_uncased", split="train", max_seq_length=32,
                              max_predictions_per_seq=4, batch_size=2, seed=0, shuffle=False)
    finally:
        registry.register_all()
    message = str(error.value)
    assert f"TFDS dataset 'lm1b' is not prepared under the TFDS data dir '{tmp_path}'" \
        in message
    assert f"tfds build lm1b --data_dir={tmp_path}" in message


def _register_corpus(name: str, path: str):
    import tasks
    from tasks import pretraining, registry

    vocab = pretraining.load_vocabulary(registry.AUSTEN_VOCAB)
    pretraining.register_text_corpus_task(name, path, vocab)
    return lambda: tasks.get_dataset(name, split="train", max_seq_length=32,
                                     max_predictions_per_seq=4, batch_size=2, seed=0,
                                     shuffle=False)


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty"),
    (b"\n\n  \n", "is empty"),
    (b"A fine sentence.\nAnother one.\n\nMore \xff\xfe text.\n", r"corpus.txt:4: line is not "
                                                                 r"valid UTF-8"),
])
def test_bad_corpus_file_names_the_file_and_line(tmp_path, content, expected):
    from tasks.corpus import CorpusError

    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    get = _register_corpus(f"bad_corpus_{abs(hash(content))}", str(path))
    with pytest.raises(CorpusError, match=expected):
        get()


def test_missing_corpus_file_is_named(tmp_path):
    from tasks.corpus import CorpusError

    get = _register_corpus("missing_corpus", str(tmp_path / "nowhere.txt"))
    with pytest.raises(CorpusError, match=r"nowhere\.txt' does not exist"):
        get()


def test_model_vocabulary_smaller_than_the_task_s_is_refused():
    config = bert.BertConfig(vocab_size=1000, num_layers=1, hidden_size=16, num_heads=2,
                             intermediate_size=32)
    model = bert.BertPretrainingModel(config)
    from pretrain_lm.trainer import check_vocab_size

    with pytest.raises(ValueError, match=r"set --gin.VOCAB_SIZE=7433"):
        check_vocab_size(model, 7433, "bert_pretrain_austen_uncased")
    check_vocab_size(model, 1000, "t")  # equal is fine


def test_packing_for_a_model_of_one_example_a_row_is_refused(tmp_path):
    """BERT pretraining keeps no segment ids of packed examples: ``pack=True`` is
    refused before anything is built, naming the fix."""
    from pretrain_lm import optimizers, trainer
    from pretrain_lm.data import DataConfig

    config = bert.BertConfig(vocab_size=7433, num_layers=1, hidden_size=16, num_heads=2,
                             intermediate_size=32)
    data = DataConfig("bert_pretrain_austen_uncased", pack=True,
                      feature_lengths={"max_seq_length": 32, "max_predictions_per_seq": 4})
    with pytest.raises(ValueError, match=r"BertPretrainingModel reads one example a row.*"
                                         r"set DataConfig.pack = False"):
        trainer.train(model=bert.BertPretrainingModel(config), train_data=data,
                      optimizer=optimizers.adamw, model_dir=str(tmp_path), batch_size=2,
                      train_steps=1)


def test_gin_includes_work_next_to_a_runs_folder(tmp_path, monkeypatch, repo_root):
    """A `runs/` output folder in the working directory must not break gin includes."""
    (tmp_path / "runs" / "old_run").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    gin_utils.parse(["bert/demo_tiny_austen.gin"], [])
    assert gin_utils.macro("MIXTURE_OR_TASK_NAME") == "bert_pretrain_austen_uncased"


def test_a_missing_earlier_stage_names_the_command_that_makes_it(tmp_path):
    """The TagLM demo before its biLM run: the error says how to make the biLM."""
    import gin

    from pretrain_lm import pretrained

    gin.clear_config()
    gin_utils.parse(["elmo/demo_taglm_austen_ner.gin"], [
        f"BILM_DIR = '{tmp_path / 'no_bilm'}'", f"MODEL_DIR = '{tmp_path / 'run'}'"])
    source = gin.get_configurable(pretrained.PretrainedParams)()
    gin.clear_config()
    with pytest.raises(FileNotFoundError, match=r"does not exist\. Make it first:\n  "
                       r"python -m pretrain_lm\.train --gin_file=elmo/demo_bilm_tiny_austen\.gin"):
        source.load()
