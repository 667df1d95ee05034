"""Translation: data pipeline, checkpoint averaging, decoding a trained model, bad input."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

import tasks
from models import transformer
from pretrain_lm import checkpoints
from pretrain_lm.checkpoints import Checkpointer
from pretrain_lm.tools import average_checkpoints
from tasks import translation

TASK = "translate_en_de_debian_l10n"


def test_shipped_corpus_batches_cover_the_split_and_count_truncation():
    ds = tasks.get_dataset(TASK, split="validation", inputs_length=16, targets_length=16,
                           batch_size=100, seed=0, shuffle=False, num_epochs=1)
    batches = list(ds.as_numpy_iterator())
    real = sum(int((b["decoder_loss_weights"].sum(1) > 0).sum()) for b in batches)
    assert real == tasks.num_examples(TASK, "validation") == 988
    b = batches[0]
    np.testing.assert_array_equal(b["decoder_input_tokens"][:, 1:],
                                  b["decoder_target_tokens"][:, :-1])
    vocab = tasks.get_vocabulary(TASK)
    sources, targets = translation.read_parallel_tsv(
        os.path.join(os.path.dirname(__file__), "..", "data", "parallel", "en-de",
                     "validation.tsv"), "en", "de")
    assert vocab.decode([t for t in b["decoder_target_tokens"][0] if t > 1]) == targets[0] \
        or len(vocab.encode(targets[0])) >= 15
    stats = tasks.get_stats(TASK)
    long_sources = sum(len(vocab.encode(s)) > 16 for s in sources)
    assert stats["truncated_inputs"] >= long_sources > 0


def test_malformed_parallel_lines_are_reported(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("en\tde\nHello world\tHallo Welt\n\tleer\nno tab\n", encoding="utf-8")
    with pytest.raises(translation.MalformedCorpusError) as err:
        translation.read_parallel_tsv(str(path), "en", "de")
    assert "2 malformed" in str(err.value) and "line 3: empty en side" in str(err.value)


def _tiny_params(seed: int) -> dict:
    cfg = transformer.TransformerConfig(vocab_size=50, d_model=16, num_encoder_layers=1,
                                        num_decoder_layers=1, num_heads=2, d_ff=32)
    model = transformer.TranslationModel(cfg, 8, 8)
    boxed = model.init(jax.random.key(seed), model.example_batch(1))
    return jax.tree.map(np.asarray, jax.tree.map(
        lambda x: getattr(x, "value", x), boxed, is_leaf=lambda x: hasattr(x, "value")))


def test_length_bucketed_translation_puts_every_translation_back_in_order():
    """``translate_all`` over batches sorted by length at 3 widths puts every translation
    back at its source's index. The translator copies its source (so every output tells
    its source apart): the outputs equal the full-width, in-order ones, and the sources."""
    from pretrain_lm import mt

    vocab = tasks.get_vocabulary("translate_en_de_debian_l10n")
    sources, _ = mt.split_sources_and_references("translate_en_de_debian_l10n", "test")
    sources = sources[:40]
    widths = []

    def copy_source(params, inputs, rng):
        widths.append(inputs.shape[1])
        return np.asarray(inputs)

    common = dict(inputs_length=48, batch_size=16, progress=False, translate_fn=copy_source)
    in_order, _ = mt.translate_all(None, None, vocab, sources, **common)
    bucketed, _ = mt.translate_all(None, None, vocab, sources, length_buckets=3, **common)
    assert len(set(widths[3:])) > 1 and set(widths[:3]) == {48}  # 3 batches in order
    assert bucketed == in_order
    assert in_order[:5] == [vocab.decode(vocab.encode(s)[:48]) for s in sources[:5]]


def test_checkpoint_averaging(tmp_path):
    a, b = _tiny_params(0), _tiny_params(1)
    source = Checkpointer(str(tmp_path / "run"), async_save=False)
    for step, params in ((1, a), (2, a), (3, b)):
        source.save(step, {"step": np.int32(step), "params": params}, None, force=True)
    source.close()
    out = str(tmp_path / "avg")
    # The last two checkpoints (steps 2 and 3) hold a and b: their mean.
    step, chosen = average_checkpoints.average_checkpoints(str(tmp_path / "run"), 2, out)
    assert (step, chosen) == (3, [2, 3])

    got = checkpoints.read_params(out)
    jax.tree.map(lambda g, x, y: np.testing.assert_allclose(g, (x + y) / 2, rtol=1e-6),
                 got, a, b)
    same = average_checkpoints.average_params([a, a, a])
    jax.tree.map(np.testing.assert_array_equal, same, a)
    with pytest.raises(ValueError, match="cannot average the last 5"):
        average_checkpoints.average_checkpoints(str(tmp_path / "run"), 5, out + "_x")


def _unigram_perplexity(split_train: str, split_eval: str) -> float:
    """Perplexity of add-one unigram target-token frequencies (train) on the eval split."""
    vocab = tasks.get_vocabulary(TASK)
    root = os.path.join(os.path.dirname(__file__), "..", "data", "parallel", "en-de")
    counts = np.ones(vocab.vocab_size)
    _, train_targets = translation.read_parallel_tsv(os.path.join(root, split_train), "en", "de")
    for text in train_targets:
        np.add.at(counts, [*vocab.encode(text), vocab.eos_id], 1)
    log_p = np.log(counts / counts.sum())
    _, targets = translation.read_parallel_tsv(os.path.join(root, split_eval), "en", "de")
    ids = [i for text in targets for i in [*vocab.encode(text)[:47], vocab.eos_id]]
    return float(np.exp(-log_p[ids].mean()))


def _train_demo(model_dir: str, steps: int, extra: list[str]) -> dict:
    import gin

    from pretrain_lm import gin_utils, trainer

    gin.clear_config()  # nothing bound by an earlier test (e.g. a pretrained encoder)
    gin_utils.parse(["transformer/demo_tiny_en_de.gin"], [
        f"MODEL_DIR = '{model_dir}'", f"TRAIN_STEPS = {steps}",
        f"trainer.train.eval_every = {steps}", f"trainer.train.checkpoint_every = {steps}",
        "trainer.train.progress_bar = False", *extra])
    return gin.get_configurable(trainer.train)()


def test_in_loop_bleu_is_written_at_each_evaluation_and_the_vocabulary_recorded(tmp_path):
    """Two steps of the demo run (one device): the BLEU evaluator of the demo gin scores
    validation pairs at step 0 and at the end, beside the perplexity, and the run records
    its vocabulary, so decoding it with another task's is refused."""
    model_dir = str(tmp_path / "mt")
    results = _train_demo(model_dir, 2, [
        "EVAL_STEPS = 2", "evaluators.Bleu.max_examples = 16", "evaluators.Bleu.max_length = 8",
        "partitioning.Partitioner.num_devices = 1"])
    assert results["eval/perplexity"] > 1.0
    with open(os.path.join(model_dir, "eval", "metrics.jsonl")) as f:
        evals = [json.loads(line) for line in f]
    assert [e["step"] for e in evals] == [0, 2]
    assert all(0.0 <= e[f"{TASK}/bleu"] <= 100.0 and e["perplexity"] > 1.0 for e in evals)
    assert os.path.exists(os.path.join(model_dir, checkpoints.VOCABULARY_FILE))
    source = Checkpointer(model_dir, read_only=True, async_save=False)
    with pytest.raises(checkpoints.CheckpointMismatchError, match="lm_austen_spm8k"):
        source.restore_params(source.latest_step(), None,
                              tasks.vocabulary_record("lm_austen_spm8k"))


@pytest.mark.slow  # ~3 min on 2 cores
def test_tiny_transformer_learns_beyond_unigram_statistics(tmp_path):
    """300 steps of 64 pairs: held-out target perplexity far below the unigram model's."""
    results = _train_demo(str(tmp_path / "mt"), 300,
                          ["optimizers.transformer_adam.warmup_steps = 100",
                           "optimizers.transformer_adam.scale = 0.5"])
    unigram = _unigram_perplexity("train.tsv", "validation.tsv")
    print(f"validation perplexity {results['eval/perplexity']:.1f} vs unigram {unigram:.1f}")
    assert results["eval/perplexity"] < 0.4 * unigram
    # In-loop validation BLEU (evaluators.Bleu in the demo gin), at step 0 and at the end.
    with open(os.path.join(str(tmp_path / "mt"), "eval", "metrics.jsonl")) as f:
        bleu = [json.loads(line)[f"{TASK}/bleu"] for line in f]
    print("in-loop validation BLEU at steps 0 and 300:", bleu)
    # Measured 0.0 -> 2.6 on the 8 simulated devices of this run. BLEU is near its floor this
    # early (0.97 with the same run on one device, reductions in another order): the
    # perplexity above is the learning claim, this margin only shows the evaluator moves.
    assert len(bleu) == 2 and bleu[1] > bleu[0] + 1.0, bleu
    # The run recorded its vocabulary: decoding it with another task's is refused.
    model_dir = str(tmp_path / "mt")
    assert os.path.exists(os.path.join(model_dir, checkpoints.VOCABULARY_FILE))
    source = Checkpointer(model_dir, read_only=True, async_save=False)
    with pytest.raises(checkpoints.CheckpointMismatchError, match="lm_austen_spm8k"):
        source.restore_params(source.latest_step(), None,
                              tasks.vocabulary_record("lm_austen_spm8k"))


def test_a_checkpoint_refuses_another_vocabulary(tmp_path):
    model_dir = str(tmp_path / "run")
    ours = tasks.vocabulary_record(TASK)
    assert ours["vocab_size"] == tasks.get_vocabulary(TASK).vocab_size and ours["sha256"]
    checkpoints.record_vocabulary(model_dir, ours)
    checkpoints.record_vocabulary(model_dir, ours)  # resuming with the same one is fine
    checkpoints.check_vocabulary(model_dir, ours)
    other = tasks.vocabulary_record("lm_austen_spm8k")
    for check in (checkpoints.check_vocabulary, checkpoints.record_vocabulary):
        with pytest.raises(checkpoints.CheckpointMismatchError,
                           match="trained with the vocabulary of task"):
            check(model_dir, other)
    # Same size, other pieces: caught by the fingerprint.
    with pytest.raises(checkpoints.CheckpointMismatchError):
        checkpoints.check_vocabulary(model_dir, {**ours, "sha256": "0" * 64})
    checkpoints.check_vocabulary(str(tmp_path / "unrecorded"), other)  # nothing to check


@pytest.mark.slow
def test_tiny_transformer_beats_copying_the_source_in_bleu(tmp_path):
    """The demo run (3,000 steps): beam-search BLEU on held-out test pairs clearly above
    the BLEU of copying the English source (placeholders make that baseline ~17)."""
    from pretrain_lm import mt
    from pretrain_lm.checkpoints import Checkpointer

    model_dir = str(tmp_path / "mt")
    _train_demo(model_dir, 3000, [])
    import gin

    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    sources, references = translation_split("test")
    source = Checkpointer(model_dir, read_only=True, async_save=False)

    params = jax.tree.map(jax.numpy.asarray, checkpoints.read_params(model_dir))
    source.close()
    hypotheses, _ = mt.translate_all(model, params, tasks.get_vocabulary(TASK), sources,
                                     inputs_length=48, batch_size=64, progress=False,
                                     method="beam", max_length=98)
    scores = mt.bleu(hypotheses, references, sources)
    print(scores["bleu"], scores["copy_source_bleu"])
    assert scores["bleu"] > scores["copy_source_bleu"] + 3.0


def translation_split(split: str) -> tuple[list[str], list[str]]:
    root = os.path.join(os.path.dirname(__file__), "..", "data", "parallel", "en-de")
    return translation.read_parallel_tsv(os.path.join(root, f"{split}.tsv"), "en", "de")
