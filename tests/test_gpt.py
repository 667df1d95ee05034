"""GPT language modelling: the chunked LM task, the gin sizes, learning, generation.

* the Austen LM task's chunks reassemble exactly into the tokenized chapters (nothing is
  lost; with ``drop_remainder`` exactly the counted remainders are), train and validation
  hold disjoint chapters, and the sentence-stream (lm1b) pipeline puts EOS after every
  sentence;
* ``models/gpt/gpt2_124m.gin`` has GPT-2 small's 124,439,808 parameters;
* a tiny GPT trained in-process from ``gpt/demo_tiny_austen.gin`` beats the unigram model
  (add-one smoothed train-split counts) on the held-out chapters by a wide margin;
* generation from a prompt: greedy is deterministic, emits the prompt first and agrees
  with an uncached forward pass; sampling is reproducible per seed; beam keeps the prompt.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio

from pretrain_lm import gin_utils, inference
from tasks import language_modeling as lm
from tasks import preprocessors as pp
from tasks.pretraining import DatasetNotPreparedError, corpus_split_documents

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(REPO, "data")
CORPUS = os.path.join(DATA_DIR, "corpus", "austen.txt")
SPM = os.path.join(DATA_DIR, "vocab", "spm_austen_8k", "spm.model")
TASK = "lm_austen_spm8k"
PROMPT = "It is a truth universally acknowledged"


@pytest.fixture(scope="module")
def vocab() -> seqio.SentencePieceVocabulary:
    return seqio.SentencePieceVocabulary(SPM)


def _chapter_ids(vocab: seqio.Vocabulary, split: str) -> list[list[int]]:
    """Each chapter of a split as running text, tokenized in Python, EOS at its end."""
    docs = corpus_split_documents(CORPUS, split, lm.DEFAULT_VALIDATION_FRACTION)
    return [[*vocab.encode(" ".join(d.split("\n"))), vocab.eos_id] for d in docs]


def _chunks(name: str, split: str, length: int) -> list[np.ndarray]:
    task = seqio.get_mixture_or_task(name)
    ds = task.get_dataset({"targets": length}, split=split, shuffle=False, use_cached=False)
    return [ex["targets"] for ex in ds.as_numpy_iterator()]


def test_vocabulary_layout(vocab):
    assert vocab.vocab_size == 8000
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
    text = "It is a truth universally acknowledged, that a single man must be in want."
    assert vocab.decode(vocab.encode(text)) == text


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_chunks_reassemble_the_tokenized_chapters(vocab, drop_remainder):
    name = f"test_lm_austen_chunks_{drop_remainder}"
    lm.register_corpus_lm_task(name, CORPUS, vocab, drop_remainder=drop_remainder)
    pp.STATS.reset(name)
    length = 100
    chunks = _chunks(name, "validation", length)
    chapters = _chapter_ids(vocab, "validation")
    assert len(chapters) == 15 and all(len(c) > length for c in chapters)

    expected_lengths = [n for c in chapters
                        for n in lm.chunk_lengths(len(c), length, drop_remainder)]
    assert [len(c) for c in chunks] == expected_lengths
    kept = [c[:len(c) - (len(c) % length if drop_remainder else 0)] for c in chapters]
    np.testing.assert_array_equal(np.concatenate(chunks), np.concatenate(kept))
    # Each chapter ends in exactly one EOS (kept unless it fell in a dropped remainder).
    assert int((np.concatenate(chunks) == vocab.eos_id).sum()) == sum(
        c[-1] == vocab.eos_id for c in kept)

    stats = pp.get_stats(name)
    total = sum(len(c) for c in chapters)
    rests = [len(c) % length for c in chapters]
    assert stats["documents"] == 15 and stats["tokens"] == total
    assert stats["chunks"] == len(chunks)
    if drop_remainder:
        assert stats["remainder_tokens_dropped"] == sum(rests) == total - sum(map(len, chunks))
        assert stats["remainder_chunks_dropped"] == sum(r > 0 for r in rests)
        assert "partial_chunks" not in stats
    else:
        assert stats["partial_chunks"] == sum(r > 0 for r in rests)
        assert "remainder_tokens_dropped" not in stats


def test_splits_hold_disjoint_chapters():
    train = corpus_split_documents(CORPUS, "train", lm.DEFAULT_VALIDATION_FRACTION)
    validation = corpus_split_documents(CORPUS, "validation", lm.DEFAULT_VALIDATION_FRACTION)
    assert len(train) == 254 and len(validation) == 15
    assert not set(train) & set(validation)
    from tasks import corpus

    everything = ["\n".join(d) for d in corpus.read_documents(CORPUS)]
    assert sorted(everything) == sorted(train + validation)


def test_sentence_stream_puts_eos_after_every_sentence(vocab):
    sentences = [f"Sentence number {i} of the stream." for i in range(7)]

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices({"text": sentences})

    name = "test_lm_sentence_stream"
    lm._add(name, source=seqio.FunctionDataSource(dataset_fn, splits=("train",)),
            preprocessors=lm.sentence_stream_preprocessors(name, sentences_per_group=3),
            output_features=lm.output_features(vocab))
    pp.STATS.reset(name)
    chunks = _chunks(name, "train", 16)
    stream = [t for s in sentences for t in [*vocab.encode(s), vocab.eos_id]]
    np.testing.assert_array_equal(np.concatenate(chunks), stream)
    groups = [sentences[i:i + 3] for i in range(0, 7, 3)]
    lengths = [sum(len(vocab.encode(s)) + 1 for s in g) for g in groups]
    assert [len(c) for c in chunks] == [n for g in lengths for n in lm.chunk_lengths(g, 16)]
    assert pp.get_stats(name)["documents"] == 3


def test_lm1b_without_data_says_how_to_prepare_it(vocab, tmp_path):
    task = lm.register_lm1b_lm_task("test_lm1b_lm", vocab, tfds_data_dir=str(tmp_path))
    with pytest.raises(DatasetNotPreparedError, match="tfds build lm1b"):
        task.get_dataset({"targets": 64}, split="train")


def _count(model) -> int:
    shapes = jax.eval_shape(model.init, jax.random.key(0), model.example_batch(1))
    return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))


@pytest.mark.parametrize("size, layers, d_model, expected", [
    ("gpt2_124m", 12, 768, 124_439_808),           # GPT-2 small, tied softmax
    ("small", 4, 256, 4 * 12 * 256**2 + 4 * 13 * 256 + 2 * 256 + (8000 + 512) * 256),
    ("tiny", 2, 128, 2 * 12 * 128**2 + 2 * 13 * 128 + 2 * 128 + (8000 + 256) * 128),
])
def test_gpt_sizes(size, layers, d_model, expected):
    gin.clear_config()
    try:
        bindings = ["MIXTURE_OR_TASK_NAME = 'x'", "MODEL_DIR = '/tmp/x'", "TRAIN_STEPS = 1"]
        if size != "gpt2_124m":
            bindings.append("VOCAB_SIZE = 8000")
        gin_utils.parse(["runs/lm.gin", f"models/gpt/{size}.gin", "mesh/cpu.gin"], bindings)
        model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    finally:
        gin.clear_config()
    cfg = model.config
    assert (cfg.num_decoder_layers, cfg.d_model, cfg.d_ff) == (layers, d_model, 4 * d_model)
    assert model.max_length == cfg.max_length
    assert _count(model) == expected


# ----------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def trained(tmp_path_factory, vocab):
    """A tiny GPT trained from the demo gin file: 200 steps of 16 x 64 ids, the learning
    rate decaying over 2,000 (it stays near its peak)."""
    from pretrain_lm import trainer

    lm.register_all_lm_tasks(DATA_DIR)
    model_dir = str(tmp_path_factory.mktemp("gpt_tiny"))
    gin.clear_config()
    try:
        gin_utils.parse(["gpt/demo_tiny_austen.gin"], [
            f"MODEL_DIR = '{model_dir}'", "TRAIN_STEPS = 200", "BATCH_SIZE = 16",
            "TARGETS_LENGTH = 64", "optimizers.adamw.warmup_steps = 20",
            "trainer.train.schedule_steps = 2000", "trainer.train.eval_every = 0",
            "trainer.train.checkpoint_every = 200",
            "trainer.train.log_every = 100", "trainer.train.progress_bar = False",
            # One device: the 8 simulated ones would split 2 CPU cores eight ways.
            "partitioning.Partitioner.num_devices = 1"])
        model = gin.query_parameter("%MODEL").scoped_configurable_fn()
        partitioner = inference.run_partitioner()
        results = gin.get_configurable(trainer.train)()
    finally:
        gin.clear_config()
    assert partitioner.mesh.size == 1
    params, step = inference.restore_params(model, model_dir, partitioner=partitioner)
    assert step == 200
    return model, params, partitioner, results, model_dir


def test_tiny_gpt_beats_the_unigram_model(trained, vocab):
    model, params, partitioner, results, _ = trained
    counts = np.bincount(np.concatenate(_chapter_ids(vocab, "train")),
                         minlength=vocab.vocab_size).astype(np.float64)
    probs = (counts + 1.0) / (counts.sum() + vocab.vocab_size)
    held_out = np.concatenate(_chapter_ids(vocab, "validation"))
    unigram = float(np.exp(-np.log(probs[held_out]).mean()))

    ours = inference.perplexity(model, params, TASK, "validation", batch_size=16,
                               partitioner=partitioner)
    assert ours["tokens"] == len(held_out) == 62_715  # the same ids, each scored once
    print(f"\nheld-out perplexity: unigram {unigram:.1f}, tiny GPT {ours['perplexity']:.1f} "
          f"(train loss {results['train/loss']:.3f})")
    assert 500 < unigram < 800
    assert ours["perplexity"] < 0.6 * unigram


def test_generation_continues_the_prompt(trained, vocab):
    model, params, _, _, _ = trained
    prompt_ids = list(vocab.encode(PROMPT))
    p = len(prompt_ids)
    ids, texts = inference.generate(model, params, vocab, PROMPT, num_samples=2,
                                   max_new_tokens=24, method="greedy")
    again, _ = inference.generate(model, params, vocab, PROMPT, num_samples=2,
                                 max_new_tokens=24, method="greedy")
    assert ids == again and ids[0] == ids[1]
    assert ids[0][:p] == prompt_ids and len(ids[0]) > p
    assert texts[0].startswith(PROMPT)
    print(f"greedy: {texts[0]!r}")

    # Cached, prompt-forced decoding == argmax of one uncached forward pass.
    seq = ids[0]
    inputs = jnp.asarray([[0, *seq[:-1]]], jnp.int32)
    logits = model.apply(params, {"decoder_input_tokens": inputs})
    np.testing.assert_array_equal(np.argmax(np.asarray(logits[0]), -1)[p:], seq[p:])

    sampled, _ = inference.generate(model, params, vocab, PROMPT, num_samples=3,
                                   max_new_tokens=24, method="sample", seed=1,
                                   temperature=0.8, top_k=40, top_p=0.95)
    resampled, _ = inference.generate(model, params, vocab, PROMPT, num_samples=3,
                                     max_new_tokens=24, method="sample", seed=1,
                                     temperature=0.8, top_k=40, top_p=0.95)
    assert sampled == resampled and all(s[:p] == prompt_ids for s in sampled)
    assert len({tuple(s) for s in sampled}) > 1  # rows draw independently

    beams, _ = inference.generate(model, params, vocab, PROMPT, num_samples=2,
                                 max_new_tokens=12, method="beam", beam_size=4)
    assert all(b[:p] == prompt_ids and len(b) > p for b in beams)
    with pytest.raises(ValueError, match="MAX_LENGTH"):
        inference.generate(model, params, vocab, PROMPT, max_new_tokens=1000)


def test_infer_cli_scores_and_continues_from_the_run_gin_files(trained, vocab):
    """``python -m pretrain_lm.infer`` with the run's gin files: ``--mode=score`` gives,
    through ``score_batch``, the perplexity the loss gives in-process; ``--prompt``
    continues the prompt."""
    model, params, partitioner, _, model_dir = trained
    expected = inference.perplexity(model, params, TASK, "validation", batch_size=16,
                                partitioner=partitioner)
    common = [sys.executable, "-m", "pretrain_lm.infer", "--gin_file=gpt/demo_tiny_austen.gin",
              f"--gin.MODEL_DIR={model_dir}", "--gin.TARGETS_LENGTH=64",
              "--gin.partitioning.Partitioner.num_devices=1", "--batch_size=16"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([*common, "--mode=score"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(model_dir, "infer_validation", "metrics.json")) as f:
        scored = json.load(f)
    assert scored["tokens"] == expected["tokens"] == 62_715
    assert math.isclose(scored["perplexity"], expected["perplexity"], rel_tol=1e-4)
    with open(os.path.join(model_dir, "infer_validation", "score.jsonl")) as f:
        assert sum(1 for _ in f) == scored["examples"]
    done = subprocess.run([*common, f"--prompt={PROMPT}", "--method=greedy",
                           "--num_samples=1", "--max_new_tokens=8"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"--- 1\n{PROMPT}" in done.stdout
