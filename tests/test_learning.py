"""A tiny BERT really learns from the shipped corpus.

A few hundred steps of a small BERT on `bert_pretrain_austen_uncased`, through the one
trainer. On held-out chapters, the masked-LM loss must fall and the MLM accuracy must beat
the strongest context-free guess, always predicting the most frequent masked token
(counted on training data), by a clear margin.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np

import tasks
from models import bert
from pretrain_lm import optimizers, trainer
from pretrain_lm.data import DataConfig
from pretrain_lm.partitioning import Partitioner

TASK = "bert_pretrain_austen_uncased"
LENGTHS = {"max_seq_length": 64, "max_predictions_per_seq": 10}
STEPS, BATCH = 300, 32


def most_frequent_token_accuracy() -> float:
    """Accuracy on held-out masked positions of always guessing the train-set mode."""
    def masked_targets(split: str, num_batches: int | None) -> np.ndarray:
        ds = tasks.get_dataset(TASK, split=split, batch_size=BATCH, seed=1,
                               shuffle=split == "train", num_epochs=1, **LENGTHS)
        ds = ds.take(num_batches) if num_batches else ds
        return np.concatenate([b["masked_lm_ids"][b["masked_lm_weights"] > 0]
                               for b in ds.as_numpy_iterator()])

    mode = collections.Counter(masked_targets("train", 100).tolist()).most_common(1)[0][0]
    return float(np.mean(masked_targets("validation", None) == mode))


def test_tiny_bert_beats_the_most_frequent_token(tmp_path):
    vocab_size = tasks.get_vocabulary(TASK).vocab_size
    config = bert.BertConfig(vocab_size=vocab_size, num_layers=2, hidden_size=128, num_heads=2,
                             intermediate_size=512, max_position_embeddings=64)
    model = bert.BertPretrainingModel(config, **LENGTHS)
    results = trainer.train(
        model=model,
        model_dir=str(tmp_path),
        train_steps=STEPS,
        batch_size=BATCH,
        train_data=DataConfig(TASK, "train", LENGTHS, seed=0),
        eval_data=DataConfig(TASK, "validation", LENGTHS, seed=0, shuffle=False, num_epochs=1),
        optimizer=lambda total_steps: optimizers.adamw(
            learning_rate=2e-3, warmup_steps=30, total_steps=total_steps),
        partitioner=Partitioner(num_devices=1),
        checkpoint_every=STEPS,
        eval_every=STEPS,
        eval_steps=None,  # the whole held-out split
        log_every=50,
        progress_bar=False,
    )
    with open(os.path.join(tmp_path, "eval", "metrics.jsonl")) as f:
        evals = [json.loads(line) for line in f]
    assert [e["step"] for e in evals] == [0, STEPS]
    before, after = evals
    assert after["mlm_loss"] < before["mlm_loss"] - 2.0, (before, after)

    baseline = most_frequent_token_accuracy()
    accuracy = results["eval/mlm_accuracy"]
    print(f"held-out MLM accuracy {accuracy:.3f} vs most-frequent-token {baseline:.3f}")
    assert 0.02 < baseline < 0.15
    assert accuracy > baseline + 0.03, (accuracy, baseline)
