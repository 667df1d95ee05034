r"""BERT pretraining step: tokens/s and model-FLOPs utilisation, against a peer.

    python -m benchmarks.bert_step [--layers=4 --hidden=256 --heads=4 --batch=32 \
        --seq=128 --vocab=30522 --predictions=20 --steps=20 --peer=true]

In one run, on this machine:
1. the matmul peak: a large float32 matmul through JAX (FLOP/s), the MFU denominator;
2. our jitted, sharded train step (MLM + NSP loss, AdamW, clipping) on random batches;
3. the peer: HuggingFace `BertForPreTraining` (PyTorch CPU) with the same config, batch,
   masked positions and AdamW step (the peer computes MLM logits at every position and
   drops the unmasked ones in the loss, as its API does).

Model FLOPs are counted from the config (``BertPretrainingModel.flops_per_example``:
matmuls only, backward = 2x forward), the same count for both implementations;
MFU = achieved model FLOP/s / measured matmul peak. The process keeps freed host memory
mapped (``pretrain_lm.host``, as a training run does), for all three measurements.
Writes `results/bench_bert_step.json`.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import app, flags

from benchmarks.timing import matmul_peak, time_steps, write_results

_LAYERS = flags.DEFINE_integer("layers", 4, "Transformer layers.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Hidden size.")
_HEADS = flags.DEFINE_integer("heads", 4, "Attention heads.")
_BATCH = flags.DEFINE_integer("batch", 32, "Global batch size.")
_SEQ = flags.DEFINE_integer("seq", 128, "Sequence length.")
_VOCAB = flags.DEFINE_integer("vocab", 30522, "Vocabulary size.")
_PREDICTIONS = flags.DEFINE_integer("predictions", 20, "Masked positions per sequence.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after 3 warm-up steps).")
_PEER = flags.DEFINE_bool("peer", True, "Also time HuggingFace transformers (PyTorch).")
_OUTPUT = flags.DEFINE_string("output", "results/bench_bert_step.json", "JSON results.")


def random_batch(batch: int, seq: int, vocab: int, predictions: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq), predictions, replace=False)
                                  for _ in range(batch)]), axis=1)
    return {
        "input_ids": rng.integers(5, vocab, (batch, seq), dtype=np.int32),
        "input_mask": np.ones((batch, seq), np.int32),
        "segment_ids": (np.arange(seq)[None] >= seq // 2).astype(np.int32).repeat(batch, 0),
        "masked_lm_positions": positions.astype(np.int32),
        "masked_lm_ids": rng.integers(5, vocab, (batch, predictions), dtype=np.int32),
        "masked_lm_weights": np.ones((batch, predictions), np.float32),
        "next_sentence_labels": rng.integers(0, 2, (batch,), dtype=np.int32),
    }


def ours(batch_np: dict[str, np.ndarray], layers: int, hidden: int, heads: int, vocab: int,
         steps: int) -> float:
    from models import bert
    from pretrain_lm import optimizers
    from pretrain_lm.data import to_global
    from pretrain_lm.partitioning import Partitioner
    from pretrain_lm.trainer import Trainer

    batch_size, seq = batch_np["input_ids"].shape
    config = bert.BertConfig(vocab_size=vocab, num_layers=layers, hidden_size=hidden,
                             num_heads=heads, intermediate_size=4 * hidden)
    model = bert.BertPretrainingModel(config, max_seq_length=seq,
                                      max_predictions_per_seq=batch_np["masked_lm_ids"].shape[1])
    opt = optimizers.adamw(1e-4, warmup_steps=10, total_steps=10_000)
    partitioner = Partitioner()
    trainer = Trainer(model, opt.tx, partitioner)
    state = trainer.init_state()
    batch = to_global(batch_np, partitioner.batch_sharding(), batch_size)

    def step():
        nonlocal state
        state, metrics = trainer.train_step(state, batch)
        jax.block_until_ready(metrics)

    return time_steps(step, steps)


def peer(batch_np: dict[str, np.ndarray], layers: int, hidden: int, heads: int, vocab: int,
         steps: int) -> float:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * hidden, hidden_act="gelu",
        attn_implementation="sdpa")
    model = transformers.BertForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=0.01)
    labels = np.full(batch_np["input_ids"].shape, -100, np.int64)
    np.put_along_axis(labels, batch_np["masked_lm_positions"].astype(np.int64),
                      batch_np["masked_lm_ids"].astype(np.int64), axis=1)
    inputs = {
        "input_ids": torch.from_numpy(batch_np["input_ids"].astype(np.int64)),
        "attention_mask": torch.from_numpy(batch_np["input_mask"].astype(np.int64)),
        "token_type_ids": torch.from_numpy(batch_np["segment_ids"].astype(np.int64)),
        "labels": torch.from_numpy(labels),
        "next_sentence_label": torch.from_numpy(batch_np["next_sentence_labels"].astype(np.int64)),
    }

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return time_steps(step, steps)


def main(argv: list[str]) -> None:
    del argv
    layers, hidden, heads = _LAYERS.value, _HIDDEN.value, _HEADS.value
    batch, seq, vocab, preds = _BATCH.value, _SEQ.value, _VOCAB.value, _PREDICTIONS.value
    tokens = batch * seq
    from models import bert
    from pretrain_lm import host

    host.keep_freed_memory()  # as pretrain_lm.train does, before JAX starts (both impls gain)

    model = bert.BertPretrainingModel(
        bert.BertConfig(vocab_size=vocab, num_layers=layers, hidden_size=hidden,
                        num_heads=heads, intermediate_size=4 * hidden),
        max_seq_length=seq, max_predictions_per_seq=preds)
    flops = model.flops_per_example() * batch
    peak = matmul_peak()
    print(f"devices: {jax.devices()}  matmul peak (fp32, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"config: L{layers} H{hidden} A{heads} I{4 * hidden} vocab {vocab}, batch {batch} x "
          f"seq {seq}, {preds} masked positions; {flops / tokens / 1e6:.2f} MFLOP/token")
    batch_np = random_batch(batch, seq, vocab, preds)
    load_before = os.getloadavg()[0]
    results = {"config": dict(layers=layers, hidden=hidden, heads=heads, batch=batch, seq=seq,
                              vocab=vocab, predictions=preds),
               "matmul_peak_flops": peak, "model_flops_per_step": flops}
    rows = [("pretrain_lm (JAX)", ours(batch_np, layers, hidden, heads, vocab, _STEPS.value))]
    if _PEER.value:
        rows.append(("transformers BertForPreTraining (PyTorch)",
                     peer(batch_np, layers, hidden, heads, vocab, _STEPS.value)))
    print(f"{'implementation':45s} {'ms/step':>9s} {'tokens/s':>10s} {'MFU':>7s}")
    for name, seconds in rows:
        mfu = flops / seconds / peak
        print(f"{name:45s} {1e3 * seconds:9.1f} {tokens / seconds:10.0f} {100 * mfu:6.1f}%")
        results[name] = {"seconds_per_step": seconds, "tokens_per_sec": tokens / seconds,
                         "mfu": mfu}
    if len(rows) == 2:
        ratio = rows[1][1] / rows[0][1]
        results["speedup_vs_peer"] = ratio
        print(f"ours / peer tokens/s: {ratio:.2f}x")
    results["load_average"] = [load_before, os.getloadavg()[0]]
    write_results(_OUTPUT.value, results)


if __name__ == "__main__":
    app.run(main)
