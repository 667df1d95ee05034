"""BERT fine-tuning: task pipelines, heads, pretrained starts, evaluation, learning."""

from __future__ import annotations

import functools
import json
import os

import jax
import numpy as np
import pytest
import seqio
import tensorflow as tf

import tasks
from models import bert
from pretrain_lm import evaluation, evaluators, pretrained
from pretrain_lm.checkpoints import CheckpointMismatchError
from tasks import finetuning as ft
from tasks import glue, metrics, squad

AUSTEN = "austen_novels_bert_uncased"
TINY = bert.BertConfig(vocab_size=30522, hidden_size=32, num_layers=2, num_heads=2,
                       intermediate_size=64)


def _austen_sentences(n: int, start: int = 200) -> list[str]:
    path = os.path.join(os.path.dirname(__file__), "..", "data", "corpus", "austen.txt")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    return [s for s in lines[start:] if len(s.split()) > 5][:n]


def _bert_truncate_seq_pair(a: int, b: int, budget: int) -> tuple[int, int]:
    """google-research/bert run_classifier.py ``_truncate_seq_pair`` on lengths."""
    while a + b > budget:
        if a > b:
            a -= 1
        else:
            b -= 1
    return a, b


def test_pair_truncation_is_bert_s():
    rng = np.random.default_rng(0)
    for a, b, budget in rng.integers(0, 80, size=(500, 3)):
        got = ft.truncate_pair_lengths(tf.constant(a), tf.constant(b), int(budget))
        assert tuple(int(x) for x in got) == _bert_truncate_seq_pair(a, b, budget)


def test_shipped_classification_set_covers_every_example_once():
    """600 validation sentences: 19 batches of 32, the last padded by 8 weight-0 rows."""
    sentences, labels = glue.read_labelled_tsv(
        os.path.join(os.path.dirname(__file__), "..", "data", "classification", "austen_novels",
                     "validation.tsv"), glue.AUSTEN_NOVELS)
    ds = tasks.get_dataset(AUSTEN, split="validation", max_seq_length=64, batch_size=32,
                           seed=0, shuffle=False, num_epochs=1)
    batches = list(ds.as_numpy_iterator())
    weights = np.concatenate([b["example_weight"] for b in batches])
    got = np.concatenate([b["label"] for b in batches])[weights > 0]
    assert len(batches) == 19 and weights.sum() == 600 == len(labels)
    assert list(got) == [glue.AUSTEN_NOVELS.index(x) for x in labels]
    first = batches[0]
    vocab = tasks.get_vocabulary(AUSTEN)
    n = int(first["input_mask"][0].sum())
    assert first["input_ids"][0, 0] == vocab.cls_id and first["input_ids"][0, n - 1] == vocab.sep_id
    assert list(first["input_ids"][0, 1:n - 1]) == vocab.encode(sentences[0])[:n - 2]
    assert not first["segment_ids"].any()
    assert tasks.get_stats(AUSTEN)["examples_padding_last_batch"] >= 8


def _register(name: str, head: str, rows: list[dict], signature: dict, preprocessor,
              label_names=(), metric_fn=metrics.accuracy):
    vocab = tasks.get_vocabulary(AUSTEN)

    def dataset_fn(split, shuffle_files, seed=None):
        return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=signature)

    ft.add_task(name, ft.TaskSpec(head, tuple(label_names), metric_fn, "f1"),
                source=seqio.FunctionDataSource(dataset_fn, splits=("validation",)),
                preprocessors=[functools.partial(preprocessor, stats_name=name)],
                output_features=ft.output_features(vocab, head))
    return vocab


def test_sentence_pairs_are_cls_a_sep_b_sep_and_truncation_is_counted():
    a, b = _austen_sentences(2)
    rows = [{"sentence1": a, "sentence2": b, "label": 1}]
    sig = {"sentence1": tf.TensorSpec([], tf.string), "sentence2": tf.TensorSpec([], tf.string),
           "label": tf.TensorSpec([], tf.int64)}
    vocab = _register("pair_test", "classification", rows, sig, functools.partial(
        ft.encode_text_pair, text_a="sentence1", text_b="sentence2"))
    ex = next(ft.eval_examples("pair_test", "validation", 24))
    ids_a, ids_b = vocab.encode(a), vocab.encode(b)
    keep_a, keep_b = _bert_truncate_seq_pair(len(ids_a), len(ids_b), 21)
    expected = [vocab.cls_id, *ids_a[:keep_a], vocab.sep_id, *ids_b[:keep_b], vocab.sep_id]
    assert list(ex["input_ids"]) == expected
    assert list(ex["segment_ids"]) == [0] * (keep_a + 2) + [1] * (keep_b + 1)
    assert ex["num_truncated"] == len(ids_a) + len(ids_b) - keep_a - keep_b > 0


def test_ner_tags_sit_on_first_wordpieces_and_cut_words_score_as_o():
    words = ["Emma", "Woodhouse", ",", "handsome", ",", "clever", ",", "and", "rich", "lived",
             "at", "Hartfield", "in", "Surrey", "."]
    tags = [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 5, 0]
    sig = {"tokens": tf.TensorSpec([None], tf.string), "ner": tf.TensorSpec([None], tf.int64)}
    vocab = _register("ner_test", "token", [{"tokens": words, "ner": tags}], sig,
                      ft.encode_tagged_words, label_names=tasks.conll.CONLL_TAGS,
                      metric_fn=metrics.ner_f1)
    ex = next(ft.eval_examples("ner_test", "validation", 12))  # room for 10 wordpieces
    pieces = [vocab.encode(w) for w in words]
    first = np.flatnonzero(ex["label_weights"])
    kept = int(np.searchsorted(np.cumsum([len(p) for p in pieces]), 10, side="right"))
    assert len(first) == kept and ex["num_truncated"] == len(words) - kept
    assert list(ex["label_ids"][first]) == tags[:kept]
    assert list(ex["input_ids"][1:-1]) == [i for p in pieces[:kept] for i in p]
    # An oracle that predicts every kept word right still misses the cut "Surrey" (B-LOC).
    oracle = np.zeros((1, 12), np.int32)
    oracle[0, first] = tags[:kept]
    scores, predicted = evaluators.score("ner_test", [ex], {"token_predictions": oracle})
    assert predicted[0][kept:] == ["O"] * (len(words) - kept)
    assert scores["recall"] < 100.0 and scores["precision"] == 100.0


@pytest.mark.parametrize("head", ["classification", "token"])
def test_length_bucketed_evaluation_gives_the_same_outputs_and_metrics(head):
    """``predict_split`` with batches of similar length at 3 widths (and the examples
    put back in order) gives the outputs and metrics of full-width batches in order:
    the classification logits within 1e-5, the tag predictions at every example's
    positions equal (the outputs are padded back to the full length)."""
    import jax

    from models import bert
    from pretrain_lm.partitioning import Partitioner

    if head == "classification":
        task, labels = AUSTEN, glue.AUSTEN_NOVELS
    else:
        sentences = _austen_sentences(40, start=300)
        words = [s.split() for s in sentences]
        rows = [{"tokens": w, "ner": [i % 3 for i in range(len(w))]} for w in words]
        sig = {"tokens": tf.TensorSpec([None], tf.string),
               "ner": tf.TensorSpec([None], tf.int64)}
        task, labels = "ner_bucket_test", tasks.conll.CONLL_TAGS
        _register(task, "token", rows, sig, ft.encode_tagged_words, label_names=labels,
                  metric_fn=metrics.ner_f1)
    config = bert.BertConfig(vocab_size=30522, num_layers=1, hidden_size=32, num_heads=2,
                             intermediate_size=64)
    model = bert.BertFineTuningModel(config, head=head, num_labels=len(labels),
                                     max_seq_length=64)
    params = model.init(jax.random.PRNGKey(0), model.example_batch(2))
    predictor = evaluators.Predictor(model, Partitioner(num_devices=1))
    common = dict(batch_size=16, max_seq_length=64, progress=False)
    examples, full = evaluators.predict_split(predictor, params, task, "validation",
                                              **common)
    _, bucketed = evaluators.predict_split(predictor, params, task, "validation",
                                           length_buckets=3, **common)
    lengths = [len(ex["input_ids"]) for ex in examples]
    assert min(lengths) <= 16 < max(lengths)  # more than one width is used
    assert full.keys() == bucketed.keys()
    for key in full:
        assert full[key].shape == bucketed[key].shape
        for i, n in enumerate(lengths):  # per-position outputs: the example's positions
            a, b = (full[key][i], bucketed[key][i]) if head != "token" else (
                full[key][i, :n], bucketed[key][i, :n])
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    assert (evaluators.score(task, examples, full)[0]
            == evaluators.score(task, examples, bucketed)[0])


@pytest.mark.parametrize("version_2", [False, True])
def test_squad_windows_and_answers_round_trip_through_the_task(version_2):
    """Oracle logits at the labelled positions recover every answer (and the null answer)."""
    context = " ".join(_austen_sentences(30, start=0))
    at = context.index("Miss Taylor")
    rows = [
        {"id": "q1", "question": "Who was the governess?", "context": context,
         "answers": {"text": ["Miss Taylor"], "answer_start": [at]}, "is_impossible": False},
        {"id": "q2", "question": "Who is handsome?", "context": context[:400],
         "answers": {"text": ["Emma Woodhouse"], "answer_start": [0]}, "is_impossible": False},
    ]
    if version_2:
        rows.append({"id": "q3", "question": "Who owned Pemberley?", "context": context[:400],
                     "answers": {"text": [], "answer_start": []}, "is_impossible": True})
    sig = {"id": tf.TensorSpec([], tf.string), "question": tf.TensorSpec([], tf.string),
           "context": tf.TensorSpec([], tf.string), "is_impossible": tf.TensorSpec([], tf.bool),
           "answers": {"text": tf.TensorSpec([None], tf.string),
                       "answer_start": tf.TensorSpec([None], tf.int32)}}
    name = f"squad_test_{int(version_2)}"
    _register(name, "span", rows, sig, squad.squad_windows,
              metric_fn=metrics.squad_v2 if version_2 else metrics.squad_v1)
    windows = list(ft.eval_examples(name, "validation", 128))
    assert len({w["id"] for w in windows}) == len(rows) and len(windows) > len(rows)
    start = np.full((len(windows), 128), -10.0)
    end = np.full((len(windows), 128), -10.0)
    for i, w in enumerate(windows):
        start[i, w["start_position"]] = end[i, w["end_position"]] = 10.0
    scores, answers = evaluators.score(name, windows, {"start_logits": start,
                                                       "end_logits": end})
    assert answers[:2] == ["Miss Taylor", "Emma Woodhouse"]
    if version_2:
        assert answers[2] == "" and scores["best_f1"] == 100.0
    else:
        assert scores == {"exact_match": 100.0, "f1": 100.0}


@pytest.mark.parametrize("head, num_labels", [("classification", 3), ("regression", 1),
                                              ("span", 2), ("token", 5)])
def test_heads_ignore_padding_rows(head, num_labels):
    model = bert.BertFineTuningModel(TINY, head=head, num_labels=num_labels, max_seq_length=16)
    batch = model.example_batch(4)
    rng = np.random.default_rng(0)
    batch["input_ids"] = rng.integers(1000, 2000, size=(4, 16)).astype(np.int32)
    batch["input_mask"][:, 12:] = 0
    for key in ("label", "start_position", "end_position", "label_ids"):
        if key in batch:
            batch[key] = rng.integers(0, num_labels, size=batch[key].shape).astype(
                batch[key].dtype)
    if head == "token":
        batch["label_weights"][:, 1:10] = 1.0
    params = model.init(jax.random.key(0), batch)
    params = jax.tree.map(lambda x: x.value if hasattr(x, "value") else x, params,
                          is_leaf=lambda x: hasattr(x, "value"))
    loss, _ = model.loss(params, batch, rng=None, train=False)
    padded = {k: np.concatenate([v, np.zeros_like(v)]) for k, v in batch.items()}
    padded_loss, _ = model.loss(params, padded, rng=None, train=False)
    assert np.isfinite(loss) and abs(float(loss) - float(padded_loss)) < 1e-5
    shapes = {k: v.shape for k, v in model.predict_batch(params, batch).items()}
    assert shapes == {"classification": {"logits": (4, 3), "class_ids": (4,)},
                      "regression": {"prediction": (4,)},
                      "span": {"start_logits": (4, 16), "end_logits": (4, 16)},
                      "token": {"token_predictions": (4, 16)}}[head]


def test_sentence_poolings_read_what_they_say():
    """pooler: the encoder's tanh pooler; cls: the [CLS] state; mean: the masked mean of the
    states; pooler_reinit: a separate fresh pooler (the encoder's own left unused)."""
    rng = np.random.default_rng(0)
    batch = bert.BertFineTuningModel(TINY, head="regression").example_batch(3)
    batch = {k: v[:, :16] if v.ndim == 2 else v for k, v in batch.items()}
    batch["input_ids"] = rng.integers(1000, 2000, size=(3, 16)).astype(np.int32)
    batch["input_mask"][:, 10:] = 0
    batch["input_mask"][0, 5:] = 0

    def unboxed(tree):
        return jax.tree.map(lambda x: x.value if hasattr(x, "value") else x, tree,
                            is_leaf=lambda x: hasattr(x, "value"))

    base = bert.BertFineTuningModel(TINY, head="regression", max_seq_length=16)
    params = unboxed(base.init(jax.random.key(0), batch))
    sequence, pooled = bert.BertEncoder(TINY).apply(
        {"params": params["bert"]}, batch["input_ids"], batch["segment_ids"],
        batch["input_mask"], deterministic=True)
    mask = batch["input_mask"][..., None]
    want = {"pooler": pooled, "cls": sequence[:, 0],
            "mean": (sequence * mask).sum(1) / mask.sum(1)}
    kernel = params["classifier"]["kernel"][:, 0]
    bias = params["classifier"]["bias"][0]
    for pooling, features in want.items():
        model = bert.BertFineTuningModel(TINY, head="regression", max_seq_length=16,
                                         pooling=pooling)
        got = model.predict_batch(params, batch)["prediction"]
        np.testing.assert_allclose(got, features @ kernel + bias, rtol=1e-5, atol=1e-5)

    reinit = bert.BertFineTuningModel(TINY, head="regression", max_seq_length=16,
                                      pooling="pooler_reinit")
    reinit_params = unboxed(reinit.init(jax.random.key(0), batch))
    assert "head_pooler" in reinit_params and "pooler" in reinit_params["bert"]
    with pytest.raises(ValueError, match="Unknown pooling 'max'"):
        bert.BertFineTuningModel(TINY, pooling="max").init(jax.random.key(0), batch)


def test_pretrained_encoder_overlays_fresh_params_and_mismatches_are_named():
    from pretrain_lm.partitioning import Partitioner
    from pretrain_lm.trainer import Trainer

    pre = bert.BertPretrainingModel(TINY, max_seq_length=16, max_predictions_per_seq=2)
    encoder = jax.tree.map(np.asarray, jax.tree.map(
        lambda x: x.value if hasattr(x, "value") else x,
        pre.init(jax.random.key(1), pre.example_batch(1)), is_leaf=lambda x: hasattr(x, "value"))
    )["bert"]
    model = bert.BertFineTuningModel(TINY, num_labels=3, max_seq_length=16)
    import optax

    trainer = Trainer(model, optax.sgd(0.1), Partitioner())
    params = pretrained.overlay_params(trainer.init_state().params, {"bert": encoder})
    np.testing.assert_array_equal(params["bert"]["layer_1"]["mlp"]["output"]["kernel"],
                                  encoder["layer_1"]["mlp"]["output"]["kernel"])
    wrong = jax.tree.map(lambda x: x, encoder)
    wrong["embeddings"]["word_embeddings"]["embedding"] = np.zeros((100, 32), np.float32)
    del wrong["layer_1"]
    with pytest.raises(CheckpointMismatchError) as err:
        pretrained.overlay_params(params, {"bert": wrong})
    text = str(err.value)
    assert "bert/embeddings/word_embeddings/embedding: pretrained (100, 32) vs model" in text
    assert "bert/layer_1/attention/query/kernel: missing" in text and "vocab.txt" in text


def test_model_and_task_must_agree_and_unknown_tasks_are_listed():
    with pytest.raises(ValueError, match=r"--gin.NUM_LABELS=6"):
        bert.BertFineTuningModel(TINY, num_labels=2).check_task(tasks.task_info(AUSTEN))
    with pytest.raises(ValueError, match=r"glue_cola_bert_uncased"):
        ft.get_spec("glue_cola")


def test_malformed_labelled_lines_are_all_reported(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\nA fine sentence.\temma\nno tab here\n"
                    "Another one.\tbleak_house\n", encoding="utf-8")
    with pytest.raises(glue.MalformedDataError) as err:
        glue.read_labelled_tsv(str(path), glue.AUSTEN_NOVELS)
    assert "2 malformed" in str(err.value) and "line 3" in str(err.value)
    assert "unknown label 'bleak_house'" in str(err.value)


def test_unprepared_glue_says_how_to_prepare(tmp_path):
    from tasks.pretraining import DatasetNotPreparedError

    glue.register_glue(tasks.get_vocabulary(AUSTEN), suffix="nodata",
                       tfds_data_dir=str(tmp_path))
    with pytest.raises(DatasetNotPreparedError, match=r"tfds build glue/mrpc"):
        next(ft.eval_examples("glue_mrpc_nodata", "validation", 32))


def test_in_loop_task_metric_equals_evaluate_and_every_checkpoint_gets_a_table(tmp_path):
    """A randomly initialised BERT-Tiny on the real austen_novels task, 4 steps through
    runs/finetune.gin: the in-loop evaluator (the task's own metric, every example) gives
    the accuracy of the trainer's evaluation, and ``evaluate --checkpoint=all`` scores both
    checkpoints with the same figure at the last one, writing its tables."""
    import gin

    from pretrain_lm import gin_utils, trainer

    model_dir = str(tmp_path / "run")
    gin_utils.parse(["models/bert/tiny.gin", "runs/finetune.gin"], [
        "MIXTURE_OR_TASK_NAME = 'austen_novels_bert_uncased'", "VOCAB_SIZE = 30522",
        f"MODEL_DIR = '{model_dir}'", "PRETRAINED = None", "trainer.train.pretrained = None",
        "EPOCHS = None", "BATCH_SIZE = 32", "MAX_SEQ_LENGTH = 32",
        "trainer.train.train_steps = 4", "trainer.train.checkpoint_every = 2",
        "trainer.train.eval_every = 4", "trainer.train.progress_bar = False",
        "partitioning.Partitioner.num_devices = 1"])
    try:
        results = gin.get_configurable(trainer.train)()
        in_loop = results["eval/austen_novels_bert_uncased/accuracy"]
        assert abs(in_loop - 100 * results["eval/accuracy"]) < 1e-6, results
        rows = gin.get_configurable(evaluation.evaluate_checkpoints)(checkpoint="all",
                                                                     progress=False)
    finally:
        gin.clear_config()
    assert [r.step for r in rows] == [2, 4]
    assert abs(rows[-1].metrics["accuracy"] - in_loop) < 1e-6
    out = os.path.join(model_dir, "eval_validation")
    with open(os.path.join(out, "results.md")) as f:
        assert "austen_novels_bert_uncased | 4 | 600 | accuracy" in f.read()
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)) == 2


@pytest.mark.slow  # ~2.5 min on 2 cores; the real-checkpoint fine-tune of the fast tier is
# test_benchmark_data's STS-B run (CI), the in-loop metric's check the tiny one below
def test_finetuning_a_real_checkpoint_beats_the_majority_class(tmp_path, repo_root):
    """all-MiniLM-L6-v2 (real pretrained weights) + a fresh 6-way head, 40 steps of 32:
    held-out accuracy clearly above the majority class (28.5%); then evaluate writes
    its tables for every checkpoint."""
    import gin

    from pretrain_lm import gin_utils, trainer

    model_dir = str(tmp_path / "run")
    gin_utils.parse(["bert/demo_finetune_minilm_austen_novels.gin"], [
        f"MODEL_DIR = '{model_dir}'", "EPOCHS = None", "BATCH_SIZE = 32", "LEARNING_RATE = 2e-4",
        "MAX_SEQ_LENGTH = 64", "trainer.train.train_steps = 40",
        "trainer.train.checkpoint_every = 20", "trainer.train.eval_every = 40",
        "trainer.train.progress_bar = False", "partitioning.Partitioner.num_devices = 1"])
    results = gin.get_configurable(trainer.train)()
    print("held-out accuracy after 40 steps:", results["eval/accuracy"])
    assert results["eval/accuracy"] > 0.37, results
    # The in-loop evaluator (runs/finetune.gin) scores every example with the task's metric.
    in_loop = results["eval/austen_novels_bert_uncased/accuracy"]
    assert abs(in_loop - 100 * results["eval/accuracy"]) < 1e-6, results
    run = gin.get_configurable(evaluation.evaluate_checkpoints)
    rows = run(checkpoint="all", progress=False)
    assert [r.step for r in rows] == [20, 40]
    assert abs(rows[-1].metrics["accuracy"] - 100 * results["eval/accuracy"]) < 1e-6
    out = os.path.join(model_dir, "eval_validation")
    with open(os.path.join(out, "results.md")) as f:
        table = f.read()
    assert "austen_novels_bert_uncased | 40 | 600 | accuracy" in table
    with open(os.path.join(out, "results.json")) as f:
        saved = json.load(f)
    assert len(saved) == 2


def test_sweep_grid_and_best_cell_table(tmp_path):
    from pretrain_lm.tools import sweep

    grid = sweep.parse_grid(["LEARNING_RATE=5e-5,2e-5", "EPOCHS=2,3"])
    assert grid[1] == {"LEARNING_RATE": "5e-5", "EPOCHS": "3"} and len(grid) == 4
    with pytest.raises(ValueError, match="MACRO=v1,v2"):
        sweep.parse_grid(["LEARNING_RATE"])
    rows = [{"cell": sweep.cell_name(c), "task": "t", "step": 9, "main_metric": "f1",
             "value": v} for c, v in zip(grid, [80.0, 85.5, 85.0, None], strict=True)]
    sweep.write_table(str(tmp_path), rows)
    table = (tmp_path / "sweep.md").read_text()
    assert "| learning_rate_5e-5-epochs_3 | t | 9 | f1 | 85.50 * |" in table
    assert table.count("*") == 1


def test_a_question_without_context_is_a_clear_error():
    rows = [{"id": "q9", "question": "Who?", "context": "  ",
             "answers": {"text": ["Emma"], "answer_start": [0]}, "is_impossible": False}]
    sig = {"id": tf.TensorSpec([], tf.string), "question": tf.TensorSpec([], tf.string),
           "context": tf.TensorSpec([], tf.string), "is_impossible": tf.TensorSpec([], tf.bool),
           "answers": {"text": tf.TensorSpec([None], tf.string),
                       "answer_start": tf.TensorSpec([None], tf.int32)}}
    _register("squad_empty", "span", rows, sig, squad.squad_windows,
              metric_fn=metrics.squad_v1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"'q9' has an empty context"):
        next(ft.eval_examples("squad_empty", "validation", 64))
