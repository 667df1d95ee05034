"""Word-level taggers (models/taglm.py) and their tasks (tasks/tagging.py): conlleval's
entity counts against seqeval, sentence boundaries for the biLM, the frozen biLM, the
shipped NER set and its vocabularies, bad input, and a tagger that really learns."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from seqeval.metrics.sequence_labeling import get_entities

import tasks
from models import crf, elmo, taglm
from models.characters import CharVocabulary
from pretrain_lm import optimizers
from tasks import tagging

TAGS = tagging.AUSTEN_NER_TAGS


def _seqeval_counts(predicted: np.ndarray, gold: np.ndarray, lengths: np.ndarray
                    ) -> tuple[int, int, int]:
    correct = n_pred = n_gold = 0
    for p, g, n in zip(predicted, gold, lengths, strict=True):
        pe = set(get_entities([TAGS[t] for t in p[:n]]))
        ge = set(get_entities([TAGS[t] for t in g[:n]]))
        correct, n_pred, n_gold = correct + len(pe & ge), n_pred + len(pe), n_gold + len(ge)
    return correct, n_pred, n_gold


def test_entity_counts_equal_seqeval_on_random_tags():
    """Random (often invalid) BIO sequences, padded rows included: the jitted counts are
    seqeval's default-mode (conlleval) counts, so entity F1 from them is seqeval's."""
    rng = np.random.default_rng(0)
    batch, length = 64, 12
    counts = jax.jit(lambda p, g, m: crf.entity_counts(p, g, m, TAGS))
    for _ in range(5):
        gold = rng.integers(0, len(TAGS), (batch, length))
        # Mostly copies of gold with some tags changed, so that chunks often match.
        noise = rng.integers(0, len(TAGS), (batch, length))
        predicted = np.where(rng.random((batch, length)) < 0.25, noise, gold)
        lengths = rng.integers(0, length + 1, batch)
        mask = np.arange(length)[None, :] < lengths[:, None]
        got = tuple(int(x) for x in counts(predicted, gold, mask))
        assert got == _seqeval_counts(predicted, gold, lengths)


def test_sentence_boundaries_round_trip():
    chars = CharVocabulary()
    sentences = [["Emma", "smiled", "."], ["Mr", "Knightley"]]
    unwrapped = jnp.asarray(chars.encode_batch(sentences, add_bos_eos=False))
    mask = jnp.asarray([[True] * 3, [True, True, False]])
    wrapped = elmo.add_sentence_boundaries(unwrapped, mask)
    np.testing.assert_array_equal(wrapped, chars.encode_batch(sentences, add_bos_eos=True))
    (back,), back_mask = elmo.remove_sentence_boundaries([wrapped], elmo.token_mask(wrapped))
    np.testing.assert_array_equal(back, unwrapped)
    np.testing.assert_array_equal(back_mask, mask)


def _tiny(lm: str, **overrides) -> taglm.TaggerModel:
    bilm = elmo.elmo_tiny(vocab_size=50, filters=((1, 8), (2, 8), (3, 16)),
                          projection_dim=16, cell_size=32)
    cfg = taglm.TaggerConfig(vocab_size=40, num_tags=len(TAGS), word_embed_dim=8,
                             char_filters=((3, 8),), hidden=8, lm=lm,
                             bilm=None if lm == "none" else bilm, **overrides)
    return taglm.TaggerModel(cfg, TAGS, max_length=7)


def _batch(model: taglm.TaggerModel, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch = model.example_batch(3)
    batch["token_ids"] = rng.integers(1, 40, batch["token_ids"].shape).astype(np.int32)
    batch["char_ids"] = rng.integers(1, 200, batch["char_ids"].shape).astype(np.int32)
    batch["tag_ids"] = rng.integers(0, 2, batch["tag_ids"].shape).astype(np.int32)
    batch["token_ids"][0, 4:] = 0  # a shorter sentence
    batch["char_ids"][0, 4:] = 0
    return batch


def test_bilm_subtree_loads_from_an_elmo_run_and_stays_frozen():
    """The tagger's ``bilm`` parameters have exactly an ELMo LM's ``bilm`` names and
    shapes (so PretrainedParams(subtrees=("bilm",)) loads them), get no gradient, and
    ``adamw(frozen=("bilm",))`` leaves them bit-identical, weight decay included, while
    the rest trains."""
    model = _tiny("taglm")
    batch = _batch(model)
    params = model.init(jax.random.PRNGKey(0), batch)
    lm = elmo.ELMoLanguageModel(model.config.bilm, max_length=7)
    lm_params = jax.eval_shape(lambda: lm.init(jax.random.PRNGKey(1),
                                               lm.example_batch(2)))
    shapes = jax.tree.map(lambda x: x.shape, params["bilm"])
    assert shapes == jax.tree.map(lambda x: x.shape, lm_params["bilm"])

    tx = optimizers.adamw(1e-2, warmup_steps=0, total_steps=10, weight_decay=0.1,
                          frozen=("bilm",)).tx
    params = jax.tree.map(jnp.asarray, jax.tree.map(lambda x: getattr(x, "value", x), params,
                                                    is_leaf=lambda x: hasattr(x, "value")))
    grads = jax.jit(jax.grad(lambda p: model.loss(p, batch, rng=jax.random.PRNGKey(2),
                                                  train=True)[0]))(params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads["bilm"]))
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = jax.tree.map(lambda p, u: p + u, params, updates)
    for a, b in zip(jax.tree.leaves(params["bilm"]), jax.tree.leaves(new["bilm"]),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(params["emissions"]["kernel"], new["emissions"]["kernel"])
    with pytest.raises(ValueError, match="no top-level parameters named"):
        optimizers.adamw(1e-2, total_steps=10, frozen=("bilmm",)).tx.init(params)


def test_taglm_variants_use_the_lm_they_name():
    """Perturbing the frozen biLM's weights changes the emissions of TagLM and of the ELMo
    tagger, and changes nothing when LM = 'none' (the biLM is then carried, unused)."""
    batch = _batch(_tiny("none"))
    for lm, changes in (("none", False), ("taglm_forward", True), ("elmo", True)):
        model = _tiny(lm)
        if lm == "none":  # built with a biLM it does not use, as the ablation's baseline
            model = taglm.TaggerModel(
                taglm.TaggerConfig(**{**model.config.__dict__,
                                      "bilm": _tiny("taglm").config.bilm}), TAGS,
                max_length=7)
        params = model.init(jax.random.PRNGKey(0), batch)
        assert "bilm" in params
        perturbed = {**params, "bilm": jax.tree.map(lambda x: x * 1.5, params["bilm"])}
        emit = jax.jit(lambda p, model=model: model._emissions(p, batch, None, False))
        emissions = [emit(p) for p in (params, perturbed)]
        assert (not np.allclose(*emissions, atol=1e-6)) == changes, lm


def test_pretrained_word_embeddings_start_the_embedding():
    model = _tiny("none")
    table = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)
    params = taglm.TaggerModel(model.config, TAGS, max_length=7, word_embeddings=table).init(
        jax.random.PRNGKey(0), _batch(model))
    got = params["word_embed"]["embedding"]
    np.testing.assert_array_equal(getattr(got, "value", got), table)
    with pytest.raises(ValueError, match="do not fit the word embedding"):
        taglm.TaggerModel(model.config, TAGS, max_length=7, word_embeddings=table[:, :4]).init(
            jax.random.PRNGKey(0), _batch(model))


# --- tasks -------------------------------------------------------------------------------


def test_austen_ner_task_batches_match_the_files():
    import tasks

    data = tagging.tagging_data("ner_austen")
    sentences = data.sentences("validation")
    ds = tasks.get_dataset("ner_austen", split="validation", targets_length=64,
                           batch_size=8, seed=0, shuffle=False, num_epochs=1)
    batch = next(ds.as_numpy_iterator())
    assert batch["char_ids"].shape == (8, 64, 50)
    vocab = data.vocabulary
    for row in range(8):
        tokens, tags = sentences[row]
        n = len(tokens)
        assert batch["token_weights"][row].sum() == n
        assert [TAGS[t] for t in batch["tag_ids"][row, :n]] == tags
        assert list(batch["token_ids"][row, :n]) == vocab.encode(tokens)
        np.testing.assert_array_equal(batch["char_ids"][row, :n],
                                      CharVocabulary().encode_words(tokens))
        assert not batch["token_ids"][row, n:].any()


def test_unk_strategies_of_the_austen_tasks():
    plain = tagging.tagging_data("ner_austen").vocabulary
    classes = tagging.tagging_data("ner_austen_unk_classes").vocabulary
    assert plain.unk_classes is False and classes.unk_classes is True
    assert classes.token_to_id("Ravenshaw") != classes.unk_id  # -> <UNK-CAP>
    assert plain.token_to_id("Ravenshaw") == plain.unk_id

    filled = tagging.tagging_data("ner_austen_vectors")
    from tasks.word_vectors import load_vectors

    vectors = load_vectors(filled.vectors_path)
    held_out = {w for split in ("validation", "test")
                for tokens, _ in filled.sentences(split) for w in tokens}
    extension = filled.vocabulary.stats["test_time_extension"]
    assert extension["pretrained_types"] > 0
    # A held-out word outside the train vocabulary but with a (lower-cased) vector gets it.
    new = [w for w in filled.vocabulary.tokens[len(filled.vocabulary) -
                                               extension["pretrained_types"]:]]
    assert set(new) <= {filled.vocabulary._key(w) for w in held_out}
    word = new[0]
    row = vectors.index.get(word, vectors.index.get(word.lower()))
    np.testing.assert_allclose(filled.embeddings[filled.vocabulary.token_to_id(word)],
                               vectors.vectors[row])


def test_bad_tagging_input_gives_clear_errors(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("Emma B-PER\nsmiled\n")
    with pytest.raises(tagging.TaggingDataError, match=r"bad\.txt:2: expected 'token TAG'"):
        tagging.read_conll(str(path))
    path.write_text("Emma B-PERSON\n")
    with pytest.raises(tagging.TaggingDataError, match=r"B-PERSON.*not one of"):
        tagging.read_conll(str(path), TAGS)
    path.write_bytes("Emma B-PER\n\nCaf\u00e9 O\n".encode("latin-1"))
    with pytest.raises(tagging.TaggingDataError, match=r"bad\.txt:3: not UTF-8"):
        tagging.read_conll(str(path))
    path.write_text("\n\n")
    with pytest.raises(tagging.TaggingDataError, match="holds no tagged sentence"):
        tagging.read_conll(str(path))
    with pytest.raises(tagging.TaggingDataError, match="2 tokens but 1 tags"):
        tagging.check_sentences([(["Mr", "Elton"], ["B-PER"])], TAGS, "x")
    with pytest.raises(tagging.TaggingDataError, match="sentence 0 is empty"):
        tagging.check_sentences([([], [])], TAGS, "x")
    with pytest.raises(ValueError, match="has tags"):
        taglm.TaggerModel(_tiny("none").config, TAGS, max_length=7).check_task(
            tasks.task_info("conll2003_ner_words"))


def test_conll2003_words_says_how_to_prepare(tmp_path):
    from tasks.pretraining import DatasetNotPreparedError

    load = tagging.tfds_loader(tagging.CONLL_TFDS, "tokens", "ner", str(tmp_path))
    with pytest.raises(DatasetNotPreparedError, match="tfds build conll2003"):
        load("train")


def test_shipped_ner_files_are_documented():
    root = os.path.join(os.path.dirname(__file__), "..", "data", "ner", "austen")
    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    assert "public domain" in readme.lower() and "build.py" in readme


# --- learning ----------------------------------------------------------------------------


def _train(tmp_path, gin_file: str, bindings: list[str]) -> dict[str, float]:
    import gin

    from pretrain_lm import gin_utils, trainer

    gin.clear_config()
    try:
        gin_utils.parse([gin_file], [
            f"MODEL_DIR = '{tmp_path}'", "trainer.train.log_every = 50",
            "trainer.train.progress_bar = False", "partitioning.Partitioner.num_devices = 1",
            *bindings])
        return gin.get_configurable(trainer.train)()
    finally:
        gin.clear_config()


def test_tagger_learns_entities(tmp_path):
    """A small tagger (32 cells a direction), 150 steps of 32 sentences at a high learning
    rate: entity F1 on 320 validation sentences far above the untrained model's (~0.002;
    measured 0.64; the demo budget reaches 0.94, see the slow test)."""
    results = _train(tmp_path, "elmo/demo_tagger_austen_ner.gin", [
        "TRAIN_STEPS = 150", "HIDDEN = 32", "DROPOUT = 0.25", "LEARNING_RATE = 1e-2",
        "optimizers.adamw.warmup_steps = 10", "EVAL_STEPS = 10",
        "trainer.train.eval_every = 150", "trainer.train.checkpoint_every = 150"])
    print(f"\nvalidation entity F1 after 150 steps: {results['eval/entity_f1']:.3f}")
    assert results["eval/entity_f1"] > 0.5


@pytest.mark.slow  # ~25 min on 2 CPU cores: 2 x 2 demo runs of 800 steps
def test_demo_taggers_beat_the_baseline_and_the_bilm_does_not_hurt(tmp_path):
    """The demo budget (800 steps), seeds 0 and 1: the tagger's validation entity F1 beats
    the most-frequent-tag-per-word baseline, and TagLM's (the frozen demo biLM, trained
    first if absent) is not below the plain tagger's beyond the seed spread."""
    import statistics

    from tests.conftest import REPO_ROOT

    bilm_dir = os.path.join(REPO_ROOT, "runs", "demo_elmo_tiny")
    if not os.path.exists(os.path.join(bilm_dir, "checkpoints")):
        _train(bilm_dir, "elmo/demo_bilm_tiny_austen.gin", [])
    baseline = tagging.most_frequent_tag_baseline("ner_austen", "validation")["f1"] / 100
    f1 = {}
    for gin_file in ("elmo/demo_tagger_austen_ner.gin", "elmo/demo_taglm_austen_ner.gin"):
        f1[gin_file] = [
            _train(tmp_path / f"{os.path.basename(gin_file)}_{seed}", gin_file,
                   [f"SEED = {seed}", f"BILM_DIR = '{bilm_dir}'"] if "taglm" in gin_file
                   else [f"SEED = {seed}"])["eval/entity_f1"] for seed in (0, 1)]
    plain, lm = f1.values()
    print(f"\nbaseline {baseline:.4f}; tagger {plain}; TagLM {lm}")
    assert min(plain) > baseline + 0.01
    spread = max(statistics.stdev(plain), statistics.stdev(lm), 0.005)
    assert statistics.fmean(lm) > statistics.fmean(plain) - 2 * spread


def test_tagger_predict_and_score_batch_agree_with_its_loss():
    """``predict_batch`` gives the Viterbi tags the eval metrics count; ``score_batch``
    the CRF log-likelihood of each sentence, which the loss sums (negated)."""
    model = _tiny("none")
    batch = _batch(model)
    params = model.init(jax.random.key(0), batch)
    params = jax.tree.map(lambda x: x.value if hasattr(x, "value") else x, params,
                          is_leaf=lambda x: hasattr(x, "value"))
    scores = np.asarray(model.score_batch(params, batch))
    _, metrics = model.loss(params, batch, rng=None, train=False)
    assert scores.shape == (3,) and np.all(scores < 0)
    np.testing.assert_allclose(-scores.sum(), float(metrics["nll"][0]), rtol=1e-5)
    tags = np.asarray(model.predict_batch(params, batch)["tags"])
    mask = batch["token_ids"] > 0
    correct = float(((tags == batch["tag_ids"]) & mask).sum())
    assert correct == float(metrics["token_accuracy"][0])


@pytest.mark.slow  # ~45 s of PyTorch training alone, twice that beside the other worker
def test_pytorch_reference_tagger_learns_and_keeps_bio_valid(tmp_path):
    """``benchmarks.tagger_reference`` (the CoNLL-2003 table's PyTorch reference) on the
    shipped Austen set: a short run finds entities, and with the CRF's BIO-invalid
    transitions held at -1e4 through training no decoded test path breaks BIO."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.tagger_reference", "--task=ner_austen",
         "--steps=300", "--seeds=0", f"--output_dir={tmp_path}"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr[-2000:]
    with open(tmp_path / "ner_austen-cnn" / "seed_0.json") as f:
        result = json.load(f)
    assert result["steps"] == 300 and "--task=ner_austen" in result["command"]
    assert result["test_entity_f1"] > 0.3, result
    assert result["test_invalid_bio_paths"] == 0, result
