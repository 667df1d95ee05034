r"""The reference fine-tuning: HuggingFace ``transformers`` (PyTorch) on the same benchmark
rows, with the project's recipe, for the side-by-side tables of ``finetune_compare``.

    python -m benchmarks.finetune_reference --task=stsb --pooling=mean --seed=0 \
      --output=/tmp/hf_stsb_mean_0.json

It reads the same rows as the ``bench_*`` tasks (``tasks.benchmark_data``), the same
checkpoint (the pretrained MiniLM of ``pretrain_lm.pretrained.package_model_dir``) and
applies the recipe of ``gin_configs/runs/finetune.gin``: AdamW (b2 0.999, eps 1e-6, weight
decay 0.01 except biases and LayerNorm), 10% linear warm-up then linear decay to 0,
gradient clipping at 1.0, dropout 0.1, a head initialised N(0, 0.02), steps =
int(train examples x epochs / batch). Pairs are truncated longest-first to the maximum
length (BERT's ``_truncate_seq_pair``; counted), batches padded to their longest member
(the usual PyTorch recipe). The sentence-level head reads the same ``pooling`` choices as
``models.bert.POOLINGS``. CoNLL-2003 (``--task=conll2003``) tags each word at its first
wordpiece, words past the length limit predicted ``O`` (as ``bench_conll2003_ner``), and
is scored on dev and test. Metrics come from ``tasks.metrics``, as ours do.
``--device=cuda`` runs on a GPU; ``--model_dir`` takes another copy of the checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, flags

from benchmarks.reference_encoding import EVAL_SPLITS, encode, encode_tagged

# task: (reader and its arguments, text_a, text_b, head)
TASKS: dict[str, tuple[tuple[str, ...], str, str | None, str]] = {
    "stsb": (("stsb",), "sentence1", "sentence2", "regression"),
    "rte": (("glue", "RTE"), "sentence1", "sentence2", "classification"),
    "mrpc": (("glue", "MRPC"), "sentence1", "sentence2", "classification"),
    "cola": (("glue", "CoLA"), "sentence", None, "classification"),
    "sst2": (("glue", "SST-2"), "sentence", None, "classification"),
    "wnli": (("glue", "WNLI"), "sentence1", "sentence2", "classification"),
    "conll2003": (("conll2003",), "tokens", None, "token"),
}
METRICS = {"stsb": "pearson_spearman", "rte": "accuracy", "mrpc": "f1_and_accuracy",
           "cola": "matthews_corr", "sst2": "accuracy", "wnli": "accuracy",
           "conll2003": "ner_f1"}

_TASK = flags.DEFINE_enum("task", "stsb", list(TASKS), "Benchmark task.")
_POOLING = flags.DEFINE_enum("pooling", "pooler", ["pooler", "pooler_reinit", "cls", "mean"],
                             "What the sentence-level head reads.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the head init, dropout and the order.")
_LR = flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
_EPOCHS = flags.DEFINE_float("epochs", 3, "Epochs.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size.")
_MAX_LEN = flags.DEFINE_integer("max_seq_length", 128, "Maximum wordpieces of a pair.")
_THREADS = flags.DEFINE_integer("threads", 0, "torch threads (0: torch's default).")
_OUTPUT = flags.DEFINE_string("output", None, "Write the result here (JSON).")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "The checkpoint (HuggingFace layout); default: the shipped MiniLM "
    "(pretrain_lm.pretrained.package_model_dir()).")
_DEVICE = flags.DEFINE_string("device", "cpu", "torch device: cpu, cuda, ...")


def rows(task: str, split: str) -> list[dict[str, Any]]:
    """The benchmark rows of ``task`` / ``split`` (the ``bench_*`` tasks' reader)."""
    from tasks import benchmark_data as bd

    reader, *args = TASKS[task][0]
    return getattr(bd, reader)(*args, split)


def main(argv: Sequence[str]) -> None:
    del argv
    import torch
    import transformers

    from tasks import metrics

    if _THREADS.value:
        torch.set_num_threads(_THREADS.value)
    torch.manual_seed(_SEED.value)
    device = torch.device(_DEVICE.value)
    task, pooling = _TASK.value, _POOLING.value
    _, text_a, text_b, head = TASKS[task]
    if _MODEL_DIR.value:
        model_dir = _MODEL_DIR.value
    else:
        from pretrain_lm import pretrained

        model_dir = pretrained.package_model_dir()
    tokenizer = transformers.BertTokenizerFast.from_pretrained(model_dir)
    splits = ("train", *EVAL_SPLITS.get(task, ("validation",)))
    data = {split: rows(task, split) for split in splits}
    encoded, truncated = {}, {}
    for split, examples in data.items():
        if head == "token":
            ids, seg, positions, truncated[split] = encode_tagged(tokenizer, examples,
                                                                   _MAX_LEN.value)
            encoded[split] = (ids, seg, positions)
        else:
            *encoded[split], truncated[split] = encode(tokenizer, examples, text_a, text_b,
                                                       _MAX_LEN.value)
    train = data["train"]
    regression = head == "regression"
    if head == "token":
        labels = sorted({t for s in train for t in s.tags})
    else:
        labels = sorted({ex["label"] for ex in train}) if not regression else []
    label_of = {v: i for i, v in enumerate(labels)}
    num_outputs = 1 if regression else len(labels)

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = transformers.BertModel.from_pretrained(model_dir)
            hidden = self.bert.config.hidden_size
            self.head_pooler = torch.nn.Linear(hidden, hidden) if pooling == "pooler_reinit" \
                else None
            self.dropout = torch.nn.Dropout(self.bert.config.hidden_dropout_prob)
            self.classifier = torch.nn.Linear(hidden, num_outputs)
            for layer in (self.head_pooler, self.classifier):
                if layer is not None:
                    torch.nn.init.normal_(layer.weight, std=self.bert.config.initializer_range)
                    torch.nn.init.zeros_(layer.bias)

        def forward(self, input_ids, token_type_ids, attention_mask):
            out = self.bert(input_ids=input_ids, token_type_ids=token_type_ids,
                            attention_mask=attention_mask)
            sequence = out.last_hidden_state
            if head == "token":
                return self.classifier(self.dropout(sequence))
            if pooling == "pooler":
                features = out.pooler_output
            elif pooling == "pooler_reinit":
                features = torch.tanh(self.head_pooler(sequence[:, 0]))
            elif pooling == "cls":
                features = sequence[:, 0]
            else:
                mask = attention_mask[..., None].to(sequence.dtype)
                features = (sequence * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.classifier(self.dropout(features))
            return logits[..., 0] if regression else logits

    model = Classifier().to(device)
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    groups = [
        {"params": [p for n, p in model.named_parameters()
                    if not any(k in n for k in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters()
                    if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    steps = max(int(len(train) * _EPOCHS.value / _BATCH.value), 1)
    warmup = round(0.1 * steps)
    optimizer = torch.optim.AdamW(groups, lr=_LR.value, betas=(0.9, 0.999), eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / max(warmup, 1) if s < warmup
        else max(0.0, (steps - s) / max(steps - warmup, 1)))

    def pad(rows_: list[list[int]], index: Sequence[int], value: int = 0) -> torch.Tensor:
        width = max(len(rows_[i]) for i in index)
        return torch.tensor([rows_[i] + [value] * (width - len(rows_[i])) for i in index],
                            device=device)

    def batch(split: str, index: Sequence[int]) -> tuple[torch.Tensor, ...]:
        ids, seg = encoded[split][0], encoded[split][1]
        return pad(ids, index), pad(seg, index), pad([[1] * len(x) for x in ids], index)

    if head == "token":  # the tag at each word's first wordpiece; -100 elsewhere (ignored)
        token_targets = []
        for sentence, ids, where in zip(train, *encoded["train"][::2], strict=True):
            row = [-100] * len(ids)
            for tag, position in zip(sentence.tags, where, strict=True):
                if position is not None:
                    row[position] = label_of[tag]
            token_targets.append(row)
    else:
        targets = (torch.tensor([ex["label"] for ex in train], dtype=torch.float32)
                   if regression else torch.tensor([label_of[ex["label"]] for ex in train])
                   ).to(device)
    generator = np.random.default_rng(_SEED.value)
    order: list[int] = []
    model.train()
    start = time.perf_counter()
    tokens = 0
    for step in range(steps):
        if len(order) < _BATCH.value:  # the stream repeats, reshuffled each epoch
            order += generator.permutation(len(train)).tolist()
        index, order = order[:_BATCH.value], order[_BATCH.value:]
        input_ids, segment_ids, mask = batch("train", index)
        tokens += int(mask.sum())
        out = model(input_ids, segment_ids, mask)
        if head == "token":
            loss = torch.nn.functional.cross_entropy(
                out.flatten(0, 1), pad(token_targets, index, -100).flatten(), ignore_index=-100)
        elif regression:
            loss = torch.nn.functional.mse_loss(out, targets[index])
        else:
            loss = torch.nn.functional.cross_entropy(out, targets[index])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps} loss {loss.item():.4f}", flush=True)
    train_seconds = time.perf_counter() - start

    model.eval()
    scores: dict[str, dict[str, float]] = {}
    for split in splits[1:]:
        examples, predictions = data[split], []
        with torch.no_grad():
            for i in range(0, len(examples), 64):
                index = list(range(i, min(i + 64, len(examples))))
                out = model(*batch(split, index))
                if head == "token":
                    best = out.argmax(-1).tolist()
                    predictions += [[labels[best[k][p]] if p is not None else "O"
                                     for p in encoded[split][2][i + k]]
                                    for k in range(len(index))]
                elif regression:
                    predictions += out.tolist()
                else:
                    predictions += [labels[j] for j in out.argmax(-1).tolist()]
        gold = ([list(s.tags) for s in examples] if head == "token"
                else [ex["label"] for ex in examples])
        scores[split] = {k: float(v) for k, v in
                         getattr(metrics, METRICS[task])(gold, predictions).items()}
        if regression:
            scores[split]["prediction_std"] = float(np.std(predictions))
    result = {"implementation": "huggingface", "task": task, "pooling": pooling,
              "seed": _SEED.value, "learning_rate": _LR.value, "epochs": _EPOCHS.value,
              "batch_size": _BATCH.value, "max_seq_length": _MAX_LEN.value, "steps": steps,
              "train_seconds": train_seconds, "train_tokens": tokens,
              "truncated": truncated,
              "truncated_counts": "words" if head == "token" else "examples",
              **scores, "device": str(device),
              "torch": torch.__version__, "transformers": transformers.__version__}
    print(json.dumps(result, indent=1))
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as f:
            json.dump(result, f, indent=1)
    if any(math.isnan(v) for split in splits[1:] for v in result[split].values()):
        raise SystemExit("a metric is NaN (constant predictions?)")


if __name__ == "__main__":
    app.run(main)
