r"""The reference for the CoNLL-2003 NER table: a PyTorch biLSTM-CRF with our tagger's
architecture and recipe, trained and scored on the same rows.

    python -m benchmarks.tagger_reference --task=bench_conll2003_ner_words_vectors \
      --char_encoder=cnn --seeds=0,1,2 [--steps=3500]

What it shares with ``elmo/benchmark_tagger_conll2003.gin`` (``models/taglm.py``):

* the data: the task's word ids, its embedding matrix (GloVe 6B 50d filled, for the
  ``vectors`` task), its 50 ELMo character ids a word, sentences cut to 64 words for
  training (none is cut in evaluation), the test split scored whole;
* the network: ``[word embedding 50; char CNN (16-d characters, 30 filters of width 3,
  max over positions, then tanh)]`` -> dropout 0.5 -> 2 biLSTM layers of 100 a direction,
  each followed by dropout 0.5 -> a linear layer -> a CRF (``torchcrf``, the pytorch-crf
  package) whose BIO-invalid transitions score -1e4 and never change;
* the recipe: batches of 32 sentences, Adam (3e-3, betas 0.9 / 0.999, eps 1e-8, no
  weight decay), 50 warm-up steps then linear decay to 0, gradients clipped at norm 5,
  the mean negative log-likelihood per sentence;
* the metric: entity F1 as conlleval counts it (seqeval, default mode).

What differs, as each library does it: PyTorch's LSTM and initialisers, batches padded
to their longest sentence (ours: to 64 words), the data order of its own seeded shuffle.

Each seed writes ``results/benchmark/tagger_reference/<task>-<char_encoder>/seed_<s>.json``
(validation and test entity F1, minutes, the command); a seed whose file exists is not
run again.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import sys
import time
from typing import Any

import numpy as np
from absl import app, flags

# Before torch loads: libgomp's spinning threads crawl on a machine with other jobs
# running (benchmarks/elmo.py measured 12x); passive waiting costs nothing when idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_TASK = flags.DEFINE_string("task", "bench_conll2003_ner_words_vectors", "A word-level "
                            "tagging task (tasks/tagging.py).")
_CHAR = flags.DEFINE_enum("char_encoder", "cnn", ["cnn", "none"], "Character CNN or none.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds, one run each.")
_STEPS = flags.DEFINE_integer("steps", 3500, "Optimizer steps.")
_BATCH = flags.DEFINE_integer("batch", 32, "Sentences a step.")
_LENGTH = flags.DEFINE_integer("train_length", 64, "Training sentences are cut to this.")
_LR = flags.DEFINE_float("learning_rate", 3e-3, "Adam's peak learning rate.")
_OUTPUT = flags.DEFINE_string("output_dir", "results/benchmark/tagger_reference",
                              "Where <task>-<char_encoder>/seed_<s>.json go.")

WORD_DIM, CHAR_DIM, FILTERS, WIDTH, HIDDEN, DROPOUT = 50, 16, 30, 3, 100, 0.5
WARMUP, CLIP, DISALLOWED = 50, 5.0, -1e4


def split_arrays(task: str, split: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(word ids, char ids [n, 50], tag ids)`` of every sentence of ``split``."""
    from tasks import tagging

    flat, splits, char_rows, type_ids, tags = tagging.tagging_data(task).encoded(split)
    return [(type_ids[flat[a:b]], char_rows[flat[a:b]], tags[a:b])
            for a, b in itertools.pairwise(splits)]


def build_model(vocab_size: int, num_tags: int, char_encoder: str,
                embeddings: np.ndarray | None, allowed: tuple[np.ndarray, ...]) -> Any:
    import torch
    from torch import nn
    from torchcrf import CRF

    from models import characters

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words = nn.Embedding(vocab_size, WORD_DIM, padding_idx=0)
            if embeddings is not None:
                self.words.weight.data.copy_(torch.from_numpy(embeddings))
            width = WORD_DIM
            if char_encoder == "cnn":
                self.chars = nn.Embedding(characters.NUM_CHAR_IDS, CHAR_DIM)
                nn.init.uniform_(self.chars.weight, -1.0, 1.0)
                self.conv = nn.Conv1d(CHAR_DIM, FILTERS, WIDTH)
                width += FILTERS
            self.lstms = nn.ModuleList([
                nn.LSTM(width if i == 0 else 2 * HIDDEN, HIDDEN, batch_first=True,
                        bidirectional=True) for i in range(2)])
            self.dropout = nn.Dropout(DROPOUT)
            self.emissions = nn.Linear(2 * HIDDEN, num_tags)
            self.crf = CRF(num_tags, batch_first=True)
            transitions, start, end = (torch.from_numpy(~a) for a in allowed)
            self.register_buffer("bad_transitions", transitions)
            self.register_buffer("bad_start", start)
            self.register_buffer("bad_end", end)
            self.constrain()

        @torch.no_grad()
        def constrain(self) -> None:
            """BIO-invalid transitions score ``DISALLOWED`` (reset after every step)."""
            self.crf.transitions.masked_fill_(self.bad_transitions, DISALLOWED)
            self.crf.start_transitions.masked_fill_(self.bad_start, DISALLOWED)
            self.crf.end_transitions.masked_fill_(self.bad_end, DISALLOWED)

        def forward(self, words: torch.Tensor, chars: torch.Tensor,
                    lengths: torch.Tensor) -> torch.Tensor:
            features = [self.words(words)]
            if char_encoder == "cnn":
                b, t, c = chars.shape
                x = self.chars(chars.reshape(b * t, c)).transpose(1, 2)
                h = torch.tanh(self.conv(x).max(dim=2).values).reshape(b, t, FILTERS)
                features.append(h * (words > 0).unsqueeze(-1))
            x = self.dropout(torch.cat(features, dim=-1))
            for lstm in self.lstms:
                packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                           enforce_sorted=False)
                out, _ = lstm(packed)
                x, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                        total_length=words.shape[1])
                x = self.dropout(x)
            return self.emissions(x)

    return Tagger()


def batch_tensors(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  max_length: int | None = None) -> tuple[Any, ...]:
    """Rows padded to the longest (cut to ``max_length``): words, chars, tags, mask,
    lengths."""
    import torch

    cut = [(w[:max_length], c[:max_length], t[:max_length]) for w, c, t in rows]
    width = max(len(w) for w, _, _ in cut)
    words = np.zeros((len(cut), width), np.int64)
    chars = np.zeros((len(cut), width, cut[0][1].shape[1]), np.int64)
    tags = np.zeros((len(cut), width), np.int64)
    for i, (w, c, t) in enumerate(cut):
        words[i, :len(w)], chars[i, :len(w)], tags[i, :len(w)] = w, c, t
    lengths = torch.tensor([len(w) for w, _, _ in cut])
    return (torch.from_numpy(words), torch.from_numpy(chars), torch.from_numpy(tags),
            torch.from_numpy(words > 0), lengths)


def entity_f1(model: Any, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
              tag_names: tuple[str, ...]) -> tuple[float, int]:
    """Entity F1 of the Viterbi paths, and how many paths break BIO (an ``I-X`` that
    follows neither ``B-X`` nor ``I-X``): 0 while the constraints hold."""
    import seqeval.metrics
    import torch

    model.eval()
    gold, predicted = [], []
    invalid = 0
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            words, chars, _, mask, lengths = batch_tensors(chunk)
            paths = model.crf.decode(model(words, chars, lengths), mask=mask)
            for (_, _, tags), path in zip(chunk, paths, strict=True):
                gold.append([tag_names[t] for t in tags])
                predicted.append([tag_names[t] for t in path])
                names = ["O", *predicted[-1]]
                invalid += any(b.startswith("I-") and a[2:] != b[2:]  # "O"[2:] is ""
                               for a, b in itertools.pairwise(names))
    model.train()
    return float(seqeval.metrics.f1_score(gold, predicted)), invalid


def train_seed(task: str, char_encoder: str, seed: int, steps: int) -> dict[str, Any]:
    import torch

    from models import crf
    from tasks import tagging

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tag_names = tagging.tag_names(task)
    train = split_arrays(task, "train")
    model = build_model(tagging.vocabulary_size(task), len(tag_names), char_encoder,
                        tagging.pretrained_embeddings(task, required=False),
                        crf.allowed_transitions(tag_names))
    optimizer = torch.optim.Adam(model.parameters(), lr=_LR.value, betas=(0.9, 0.999),
                                 eps=1e-8)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / WARMUP, max(0.0, (steps - s) / (steps - WARMUP))))
    order, position = rng.permutation(len(train)), 0
    start = time.perf_counter()
    for step in range(steps):
        if position + _BATCH.value > len(order):
            order, position = rng.permutation(len(train)), 0
        rows = [train[i] for i in order[position:position + _BATCH.value]]
        position += _BATCH.value
        words, chars, tags, mask, lengths = batch_tensors(rows, _LENGTH.value)
        loss = -model.crf(model(words, chars, lengths), tags, mask=mask, reduction="mean")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        schedule.step()
        model.constrain()
        if (step + 1) % 500 == 0:
            print(f"seed {seed} step {step + 1}: loss {loss.item():.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    minutes = (time.perf_counter() - start) / 60
    validation, _ = entity_f1(model, split_arrays(task, "validation"), tag_names)
    test, invalid = entity_f1(model, split_arrays(task, "test"), tag_names)
    return {"task": task, "char_encoder": char_encoder, "seed": seed, "steps": steps,
            "validation_entity_f1": validation, "test_entity_f1": test,
            "test_invalid_bio_paths": invalid, "train_minutes": minutes,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main(argv: list[str]) -> None:
    del argv
    import tasks

    tasks.get_provider(_TASK.value)  # registers the benchmark tasks
    out_dir = os.path.join(_OUTPUT.value, f"{_TASK.value}-{_CHAR.value}")
    os.makedirs(out_dir, exist_ok=True)
    command = " ".join(["python -m benchmarks.tagger_reference",
                        *(shlex.quote(a) for a in sys.argv[1:])])
    for seed in (int(s) for s in _SEEDS.value):
        path = os.path.join(out_dir, f"seed_{seed}.json")
        if os.path.exists(path):
            print(f"{path} exists; not run again")
            continue
        result = {**train_seed(_TASK.value, _CHAR.value, seed, _STEPS.value),
                  "command": command}
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main)
