"""BERT pretraining data: the statistics of create_pretraining_data.py, on the shipped corpus.

Checked over a few thousand real examples of `bert_pretrain_austen_uncased`:
15% of tokens predicted, 80/10/10 corruption, special tokens never selected,
`[CLS] A [SEP] B [SEP]` with segment ids, next-sentence labels half random, whole-word
masking keeps words together; same seed -> same data; an iterator checkpoint resumes
exactly.
"""

from __future__ import annotations

import collections
import random

import numpy as np
import pytest

import tasks
from tasks import preprocessors as pp

TASK = "bert_pretrain_austen_uncased"
SEQ, PRED, BATCH = 128, 20, 64


def batches(task: str = TASK, n: int = 40, seed: int = 0, split: str = "train",
            **kwargs) -> list[dict[str, np.ndarray]]:
    ds = tasks.get_dataset(task, split=split, max_seq_length=SEQ, max_predictions_per_seq=PRED,
                           batch_size=BATCH, seed=seed, shuffle=True, **kwargs)
    return list(ds.take(n).as_numpy_iterator())


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    """40 x 64 = 2,560 training examples, concatenated."""
    bs = batches()
    return {k: np.concatenate([b[k] for b in bs]) for k in bs[0]}


@pytest.fixture(scope="module")
def vocab():
    return tasks.get_vocabulary(TASK)


def original_ids(ex: dict[str, np.ndarray]) -> np.ndarray:
    """input_ids with the masked positions restored."""
    ids = ex["input_ids"].copy()
    rows, cols = np.nonzero(ex["masked_lm_weights"])
    ids[rows, ex["masked_lm_positions"][rows, cols]] = ex["masked_lm_ids"][rows, cols]
    return ids


def test_pair_layout(sample, vocab):
    ids = original_ids(sample)
    for row in range(len(ids)):
        length = int(sample["input_mask"][row].sum())
        assert np.all(sample["input_mask"][row, :length] == 1)
        assert np.all(ids[row, length:] == vocab.pad_id)
        assert ids[row, 0] == vocab.cls_id
        seps = np.flatnonzero(ids[row, :length] == vocab.sep_id)
        assert len(seps) == 2 and seps[1] == length - 1, ids[row, :length]
        assert seps[0] >= 2 and seps[1] - seps[0] >= 2  # non-empty A and B
        segments = sample["segment_ids"][row]
        assert np.all(segments[: seps[0] + 1] == 0)
        assert np.all(segments[seps[0] + 1 : length] == 1)
        assert np.all(segments[length:] == 0)
    # Most pairs fill the sequence; short_seq_prob=0.1 makes some shorter on purpose.
    full = np.mean(sample["input_mask"].sum(1) == SEQ)
    assert 0.5 < full < 0.97


def test_masking_statistics(sample, vocab):
    weights = sample["masked_lm_weights"]
    lengths = sample["input_mask"].sum(1)
    num_masked = weights.sum(1)
    # num_to_predict = min(max_predictions, max(1, round(0.15 * length))), per example.
    expected = np.minimum(PRED, np.maximum(1, np.round(0.15 * lengths)))
    np.testing.assert_array_equal(num_masked, expected)
    assert abs(num_masked.sum() / lengths.sum() - 0.15) < 0.005

    rows, cols = np.nonzero(weights)
    positions = sample["masked_lm_positions"][rows, cols]
    targets = sample["masked_lm_ids"][rows, cols]
    shown = sample["input_ids"][rows, positions]
    # Positions are distinct, in range, and never a special token.
    assert np.all(positions < lengths[rows])
    assert len(set(zip(rows.tolist(), positions.tolist(), strict=True))) == len(rows)
    assert not np.isin(targets, [vocab.cls_id, vocab.sep_id, vocab.pad_id]).any()
    # Unused prediction slots are zero-padded.
    assert np.all(sample["masked_lm_positions"][weights == 0] == 0)
    assert np.all(sample["masked_lm_ids"][weights == 0] == 0)

    n = len(targets)  # ~48k predictions: 3 sigma of a 10% rate is ~0.4%
    frac_mask = np.mean(shown == vocab.mask_id)
    frac_same = np.mean(shown == targets)
    frac_random = 1.0 - frac_mask - frac_same
    assert n > 40_000
    assert abs(frac_mask - 0.8) < 0.01, frac_mask
    assert abs(frac_same - 0.1) < 0.01, frac_same
    assert abs(frac_random - 0.1) < 0.01, frac_random
    # Random replacements are spread over the vocabulary, not a few ids.
    random_ids = shown[(shown != vocab.mask_id) & (shown != targets)]
    assert len(np.unique(random_ids)) > 0.5 * len(random_ids)
    # Outside the selected positions the input is untouched: no [MASK] anywhere else.
    unselected = sample["input_ids"].copy()
    unselected[rows, positions] = -1
    assert not np.any(unselected == vocab.mask_id)


def test_next_sentence_labels(sample):
    stats = tasks.get_stats(TASK)
    assert stats["instances"] >= len(sample["next_sentence_labels"])
    # BERT forces a random B when a chunk holds one segment (Austen's long sentences make
    # that common), so the overall rate sits a little above one half.
    rate = sample["next_sentence_labels"].mean()
    assert 0.47 < rate < 0.62, rate


def test_pair_creation_is_half_random_for_multi_sentence_chunks():
    """With short sentences every chunk has >= 2 segments: NSP is a fair coin."""
    rng = random.Random(0)
    counts: collections.Counter = collections.Counter()
    docs = [[[rng.randrange(10, 100) for _ in range(5)] for _ in range(60)] for _ in range(400)]
    labels = []
    for i, doc in enumerate(docs):
        others = docs[:i] + docs[i + 1 :]
        for ids, segment_ids, is_random in pp.create_instances_from_document(
                doc, others, 64, 0.0, rng, cls_id=2, sep_id=3, counts=counts):
            assert len(ids) <= 64 and len(ids) == len(segment_ids)
            labels.append(is_random)
    assert len(labels) > 2_500
    assert abs(np.mean(labels) - 0.5) < 0.04
    assert counts["nsp_random_from_same_document"] == 0


def test_whole_word_masking(vocab):
    bs = batches("bert_pretrain_austen_wwm_uncased", n=10)
    continuation = vocab.continuation_mask
    checked = 0
    for b in bs:
        ids = original_ids(b)
        for row in range(len(ids)):
            selected = np.zeros(SEQ, bool)
            selected[b["masked_lm_positions"][row][b["masked_lm_weights"][row] > 0]] = True
            length = int(b["input_mask"][row].sum())
            for pos in range(1, length):
                # A '##' piece is selected exactly when the piece before it is.
                previous = ids[row, pos - 1]
                if continuation[ids[row, pos]] and previous not in (vocab.cls_id, vocab.sep_id):
                    assert selected[pos] == selected[pos - 1], (row, pos)
                    checked += 1
    assert checked > 100


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (batches(n=3, seed=s) for s in (7, 7, 8))
    for x, y in zip(a, b, strict=True):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert not np.array_equal(a[0]["input_ids"], c[0]["input_ids"])


def test_iterator_checkpoint_resumes_exactly(tmp_path):
    from clu.data import dataset_iterator

    def make():
        ds = tasks.get_dataset(TASK, split="train", max_seq_length=64, max_predictions_per_seq=10,
                               batch_size=8, seed=3, shuffle=True)
        return dataset_iterator.TfDatasetIterator(ds, checkpoint=True)

    it = make()
    for _ in range(5):
        next(it)
    it.save(tmp_path / "iterator")
    expected = [next(it) for _ in range(3)]
    resumed = make()
    resumed.restore(tmp_path / "iterator")
    for want in expected:
        got = next(resumed)
        for k in want:
            np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]))


def test_validation_split_holds_other_chapters():
    from tasks import registry
    from tasks.pretraining import corpus_split_documents

    train = set(corpus_split_documents(registry.AUSTEN_CORPUS, "train", 0.05))
    validation = set(corpus_split_documents(registry.AUSTEN_CORPUS, "validation", 0.05))
    assert train and validation and not train & validation
    assert 5 <= len(validation) <= 30
