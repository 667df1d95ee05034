r"""MT Transformer: training step and beam-search decoding, against HuggingFace Marian.

    PRETRAIN_LM_DATA_DIR=../shared/data python -m benchmarks.transformer_mt [--steps=10 \
        --decode_batches=3 --batch=64 --decode_batch=32 --length=48 --beam=4 --alpha=0.6 \
        --real_steps=10 --real_rows=24 --real_length=128 --peer=true]

One small Transformer (d_model 256, 3+3 layers, 4 heads, d_ff 1024, vocab 8000, post-LN,
sinusoidal positions, scaled and shared embeddings, ReLU), source and target length 48,
in one run on this machine:

1. the matmul peak: a 2048^3 float32 matmul through JAX (FLOP/s), the MFU denominator;
2. training, batch 64, dropout 0.1, label smoothing 0.1, Adam (0.9, 0.98, eps 1e-9) with
   the rsqrt schedule: ours is the real ``pretrain_lm.trainer.Trainer`` step (jitted,
   donated, sharded by ``Partitioner()``) on ``TranslationModel``; the peer is
   HuggingFace ``MarianMTModel`` (PyTorch CPU, train mode) with the same config, the same
   batch (random ids, random lengths, padded), ``CrossEntropyLoss(ignore_index=-100,
   label_smoothing=0.1)`` and ``torch.optim.Adam`` with the same betas and schedule.
   Model FLOPs: ``TranslationModel.flops_per_example`` (padded lengths, matmuls only,
   backward = 2x forward), the same count for both; MFU = model FLOP/s / matmul peak;
   tokens/s counts the real (non-pad) target tokens;
   Then, on real data (``--real_steps``, skipped when the data directory lacks
   Multi30k): the first training batches of Multi30k en-de (``spm_en_de_4k`` pieces),
   ours packed into ``--real_rows`` x ``--real_length`` rows (``DataConfig.pack``), the
   peer on the same pairs at every step, one a row, padded to the longest of the batch
   (``DataCollatorForSeq2Seq``'s padding): the same real target tokens per step for both,
   so their ratio of real target tokens per second is the ratio of step times;
3. beam search, beam 4, HF length penalty (``alpha``), early stopping, up to ``length``
   new tokens, batches of 32 padded random source sentences: ours is the jitted
   ``encode + decoding.beam_search(..., length_penalty="hf")`` with the weights converted
   from the peer's randomly initialised ``MarianMTModel``, the peer its
   ``generate(num_beams=4, ...)`` under ``torch.no_grad``. Both are warmed up once
   (compilation excluded). The best hypotheses of the two are compared token by token
   (a sanity check: random weights give near-uniform next-token distributions, where
   float rounding can flip near-ties). With random weights no hypothesis ends early (the
   next-token distribution is near-uniform, EOS is never among the best), so every call
   runs all ``length`` steps -- as a batch of real sentences of up to 48 tokens does, since
   a batch stops with its longest item. ``--eos_bias`` (added to EOS's
   ``final_logits_bias``) changes that, but near-uniform distributions then make
   ``[EOS]`` alone the best hypothesis (any longer one has a much lower score).

Ours and the peer take turns, step by step and batch by batch, so that a busy shared machine
slows both alike; the matmul peak is measured before and after, and the larger one is used.
Beside the median step (and the total decoding time) the best step (batch) is reported: on a
busy machine it is the better estimate of the uncontended speed (PyTorch's OpenMP threads
slow down far more than XLA's when the cores are shared).
The process keeps freed host memory mapped (``pretrain_lm.host``, as a training run does)
for all measurements. Writes `results/bench_transformer_mt.json`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.timing import (
    matmul_peak,
    report_real_tokens,
    time_interleaved,
    trainer_steps,
    write_results,
)

_STEPS = flags.DEFINE_integer("steps", 10, "Timed training steps (after 3 warm-up steps).")
_DECODE_BATCHES = flags.DEFINE_integer("decode_batches", 3,
                                       "Timed decoding batches (after one warm-up batch).")
_BATCH = flags.DEFINE_integer("batch", 64, "Training batch size.")
_DECODE_BATCH = flags.DEFINE_integer("decode_batch", 32, "Source sentences per decode call.")
_LENGTH = flags.DEFINE_integer("length", 48, "Source / target length and max new tokens.")
_BEAM = flags.DEFINE_integer("beam", 4, "Beam size.")
_ALPHA = flags.DEFINE_float("alpha", 0.6, "Length penalty exponent (HF convention).")
_EOS_BIAS = flags.DEFINE_float("eos_bias", 0.0, "final_logits_bias of EOS for decoding.")
_REAL_STEPS = flags.DEFINE_integer(
    "real_steps", 10, "Timed training steps on real Multi30k batches (0: skip).")
_REAL_ROWS = flags.DEFINE_integer("real_rows", 24, "Packed rows per real-data batch.")
_REAL_LENGTH = flags.DEFINE_integer(
    "real_length", 128, "Length of the packed real-data rows (the longest pair it keeps).")
_TRAINED_DIR = flags.DEFINE_string(
    "trained_dir", None, "A trained run of --trained_gin (e.g. runs/multi30k): decode its "
    "test split with its own weights, ours against HF generate on the same weights "
    "converted to MarianMTModel (None: skip).")
_TRAINED_GIN = flags.DEFINE_string("trained_gin", "transformer/benchmark_multi30k.gin",
                                   "The gin file of --trained_dir.")
_TRAINED_SENTENCES = flags.DEFINE_integer("trained_sentences", 256,
                                          "Test sentences decoded by each (0: all).")
_PEER = flags.DEFINE_bool("peer", True, "Also time HuggingFace transformers (PyTorch).")
_OUTPUT = flags.DEFINE_string("output", "results/bench_transformer_mt.json", "JSON results.")

VOCAB, D_MODEL, LAYERS, HEADS, D_FF = 8000, 256, 3, 4, 1024
PAD, EOS, START = 0, 1, 0  # Marian's convention here: decoder start = pad = 0
MAX_POSITIONS = 128  # sinusoidal in both: no parameters, so no cost


def our_config(dropout: float) -> Any:
    from models import transformer

    return transformer.TransformerConfig(
        vocab_size=VOCAB, d_model=D_MODEL, num_encoder_layers=LAYERS,
        num_decoder_layers=LAYERS, num_heads=HEADS, d_ff=D_FF, dropout_rate=dropout,
        attention_dropout_rate=0.0, activation="relu", max_length=MAX_POSITIONS,
        output_bias=True, layer_norm_epsilon=1e-5)


def marian(dropout: float) -> Any:
    """A randomly initialised ``MarianMTModel`` with the same architecture as ours."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    config = transformers.MarianConfig(
        vocab_size=VOCAB, d_model=D_MODEL, encoder_layers=LAYERS, decoder_layers=LAYERS,
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=D_FF,
        decoder_ffn_dim=D_FF, activation_function="relu",
        max_position_embeddings=MAX_POSITIONS, scale_embedding=True, pad_token_id=PAD,
        eos_token_id=EOS, decoder_start_token_id=START, forced_eos_token_id=None,
        dropout=dropout, attention_dropout=0.0, activation_dropout=0.0,
        attn_implementation="sdpa")
    torch.manual_seed(0)
    return transformers.MarianMTModel(config)


def random_ids(rng: np.random.Generator, lengths: np.ndarray, width: int) -> np.ndarray:
    """Rows of random ids ``[2, VOCAB)`` ending in EOS at ``lengths``, then padding."""
    ids = rng.integers(2, VOCAB, (len(lengths), width)).astype(np.int32)
    positions = np.arange(width)[None]
    ids[positions == lengths[:, None] - 1] = EOS
    return np.where(positions < lengths[:, None], ids, PAD).astype(np.int32)


def translation_batch(batch: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Source lengths uniform in [length / 4, length], targets within +-20% of them."""
    from models import transformer

    rng = np.random.default_rng(seed)
    source_len = rng.integers(length // 4, length + 1, batch)
    target_len = np.clip(np.round(source_len * rng.uniform(0.8, 1.2, batch)), 2, length)
    return transformer.seq2seq_batch(random_ids(rng, source_len, length),
                                     random_ids(rng, target_len.astype(int), length), START)


# ----------------------------------------------------------------------------- training


# ----------------------------------------------------------------------------- real data


MULTI30K_TASK = "bench_multi30k_translate_en_de"


def multi30k_packed_batches(count: int, rows: int, length: int
                            ) -> list[dict[str, np.ndarray]] | None:
    """The first ``count`` training batches of Multi30k en-de (shuffled, seed 0, the shipped
    ``spm_en_de_4k`` pieces), ``rows`` rows of ``length`` packed with pairs (seqio); None
    when the data directory lacks Multi30k (the reason is printed)."""
    import tasks

    try:
        ds = tasks.get_dataset(MULTI30K_TASK, split="train", batch_size=rows, seed=0,
                               shuffle=True, pack=True, inputs_length=length,
                               targets_length=length)
        batches = list(ds.take(count).as_numpy_iterator())
    except (FileNotFoundError, ValueError) as e:
        print(f"real-data training skipped: {e}")
        return None
    return batches


def unpack(batch: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (source, target) id sequences a packed batch holds, in row and segment order."""
    pairs = []
    for r in range(batch["encoder_input_tokens"].shape[0]):
        source_seg, target_seg = batch["encoder_segment_ids"][r], batch["decoder_segment_ids"][r]
        for s in range(1, int(target_seg.max()) + 1):
            pairs.append((batch["encoder_input_tokens"][r][source_seg == s],
                          batch["decoder_target_tokens"][r][target_seg == s]))
    return pairs


def padded_to_longest(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """One pair a row, source and target each padded to the longest in the batch (what
    ``transformers.DataCollatorForSeq2Seq`` gives, with ``padding=True``)."""
    from models import transformer

    def pad(seqs: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(seqs), max(len(x) for x in seqs)), np.int32)
        for i, x in enumerate(seqs):
            out[i, :len(x)] = x
        return out

    return transformer.seq2seq_batch(pad([a for a, _ in pairs]), pad([b for _, b in pairs]),
                                     START)


def ours_train(batches: list[dict[str, np.ndarray]]) -> Callable[[], None]:
    """One blocking step of the real ``Trainer`` per call, on each batch in turn (all of
    one shape: one compiled step)."""
    from models import transformer
    from pretrain_lm import optimizers

    length = batches[0]["decoder_target_tokens"].shape[1]
    model = transformer.TranslationModel(our_config(0.1), max_source_length=length,
                                         max_target_length=length, label_smoothing=0.1)
    opt = optimizers.transformer_adam(d_model=D_MODEL, warmup_steps=4000)
    return trainer_steps(model, opt.tx, batches)


def peer_train(batches: list[dict[str, np.ndarray]]) -> Callable[[], None]:
    """One ``MarianMTModel`` training step per call, on each batch in turn (each with its
    own padded shape, as PyTorch training loops run)."""
    import torch

    model = marian(0.1).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    warmup = 4000
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: D_MODEL ** -0.5 * min((s + 1) ** -0.5, (s + 1) * warmup ** -1.5))
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=0.1)
    prepared = []
    for b in batches:
        source = torch.from_numpy(b["encoder_input_tokens"].astype(np.int64))
        targets = b["decoder_target_tokens"].astype(np.int64)
        prepared.append((
            {"input_ids": source, "attention_mask": (source > 0).long(),
             "decoder_input_ids": torch.from_numpy(b["decoder_input_tokens"].astype(np.int64))},
            torch.from_numpy(np.where(targets > 0, targets, -100))))
    position = 0

    def step():
        nonlocal position
        inputs, labels = prepared[position % len(prepared)]
        position += 1
        optimizer.zero_grad(set_to_none=True)
        logits = model(**inputs).logits
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        optimizer.step()
        schedule.step()

    return step


def train_on_multi30k(results: dict[str, Any], steps: int, rows: int, length: int,
                      peak: float) -> dict[str, Any] | None:
    """Real target tokens per second on Multi30k: ours packed (``rows`` x ``length``) and
    the peer on the same pairs, padded to the longest of each batch; prints and records
    the comparison in ``results["train_multi30k"]``."""
    if steps <= 0:
        return None
    warmup = 3
    packed = multi30k_packed_batches(steps + warmup, rows, length)
    if packed is None:
        return None
    padded = [padded_to_longest(unpack(b)) for b in packed]
    tokens = [int(b["decoder_loss_weights"].sum()) for b in packed]
    assert tokens == [int(b["decoder_loss_weights"].sum()) for b in padded]
    pairs = [len(unpack(b)) for b in packed]
    fill_ours = sum(tokens) / (len(packed) * rows * length)
    fill_peer = sum(tokens) / sum(b["decoder_target_tokens"].size for b in padded)
    runners = [ours_train(packed)] + ([peer_train(padded)] if _PEER.value else [])
    times = time_interleaved(runners, steps, warmup=warmup)
    timed_tokens = sum(tokens[warmup:warmup + steps])
    from models import transformer

    flops = transformer.TranslationModel(
        our_config(0.1), max_source_length=length,
        max_target_length=length).flops_per_example() * rows
    names = ["pretrain_lm Trainer, packed (JAX)",
             "transformers MarianMTModel, padded to longest (PyTorch)"]
    real: dict[str, Any] = {
        "task": MULTI30K_TASK, "rows": rows, "length": length,
        "pairs_per_step": float(np.mean(pairs)),
        "real_target_tokens_per_step": float(np.mean(tokens)),
        "target_fill": {"ours_packed": fill_ours, "peer_padded_to_longest": fill_peer}}
    print(f"\ntraining on real Multi30k pairs ({np.mean(pairs):.0f} pairs, "
          f"{np.mean(tokens):.0f} real target tokens a step): ours packs them into {rows} x "
          f"{length} rows ({100 * fill_ours:.0f}% of target positions real), the peer pads "
          f"each batch to its longest ({100 * fill_peer:.0f}%); {steps} steps after {warmup} "
          "warm-up steps:")
    report_real_tokens(real, names, times, timed_tokens=timed_tokens, flops=flops,
                       peak=peak, counted="real target tokens/s", goal=1.5)
    results["train_multi30k"] = real
    return real


# ----------------------------------------------------------------------------- decoding


def source_batches(count: int, batch: int, length: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [random_ids(rng, rng.integers(length // 4, length + 1, batch), length)
            for _ in range(count)]


def trim(ids: list[int]) -> list[int]:
    """Generated tokens up to and including EOS (or all of them)."""
    return ids[: ids.index(EOS) + 1] if EOS in ids else ids


def ours_translator(hf_model: Any, source_length: int, max_new: int, beam: int,
                    alpha: float) -> Callable[[np.ndarray], list[list[int]]]:
    """Source ids -> best hypotheses, through jitted encode + ``decoding.beam_search`` with
    the weights converted from ``hf_model``."""
    from models import transformer
    from pretrain_lm.tools import interop_transformer

    config = our_config(0.0)
    state = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
    params = jax.device_put(interop_transformer.transformer_params_from_marian(state, config))
    model = transformer.TranslationModel(config, max_source_length=source_length,
                                         max_target_length=max_new)
    return beam_translator(model, params, max_new, beam, alpha)


def beam_translator(model: Any, params: Any, max_new: int, beam: int, alpha: float
                    ) -> Callable[[np.ndarray], list[list[int]]]:
    """Source ids -> best hypotheses of ``model`` with ``params``: jitted encode +
    ``decoding.beam_search`` (HF's length penalty, early stopping)."""
    from models import decoding

    sizes = decoding.cache_sizes(max_new)  # the cache grows as model.predict_batch's does

    @jax.jit
    def translate(params: dict, inputs: jax.Array) -> jax.Array:
        tokens, _ = decoding.beam_search(
            model.step_fn(params),
            model.decode_state(params, {"encoder_input_tokens": inputs}, sizes[0]),
            bos_id=START, eos_id=EOS, max_length=max_new, batch_size=inputs.shape[0],
            beam_size=beam, alpha=alpha, length_penalty="hf", early_stopping=True,
            cache_sizes=sizes, grow=model.grow_decode_state)
        return tokens[:, 0]

    return lambda source: [trim(row) for row in
                           np.asarray(translate(params, jnp.asarray(source))).tolist()]


def peer_translator(hf_model: Any, max_new: int, beam: int, alpha: float
                    ) -> Callable[[np.ndarray], list[list[int]]]:
    import torch

    def translate(source: np.ndarray) -> list[list[int]]:
        ids = torch.from_numpy(source.astype(np.int64))
        with torch.no_grad():
            out = hf_model.generate(
                input_ids=ids, attention_mask=(ids > 0).long(), num_beams=beam,
                max_new_tokens=max_new, length_penalty=alpha, early_stopping=True,
                do_sample=False, eos_token_id=EOS, pad_token_id=PAD,
                decoder_start_token_id=START)
        return [trim(row) for row in out[:, 1:].tolist()]

    return translate


def time_decoding(translators: list[Callable[[np.ndarray], list[list[int]]]],
                  sources: list[np.ndarray]) -> list[tuple[list[float], list[list[int]]]]:
    """Seconds for each of ``sources[1:]`` (``sources[0]`` warms up, i.e. compiles) and the
    outputs for all of them, per translator; the translators take turns on each batch."""
    seconds: list[list[float]] = [[] for _ in translators]
    outputs: list[list[list[int]]] = [[] for _ in translators]
    for i, source in enumerate(sources):
        for j, translate in enumerate(translators):
            start = time.perf_counter()
            outputs[j] += translate(source)
            if i:
                seconds[j].append(time.perf_counter() - start)
    return list(zip(seconds, outputs, strict=True))


def decode_trained(results: dict[str, Any], model_dir: str, gin_file: str, count: int,
                   batch: int, beam: int, alpha: float) -> None:
    """Beam search on the real test split with a trained model of ours, and HF
    ``generate`` on the same weights (``marian_state_from_transformer_params``): the
    same batches (sorted by length, 4 widths), every width warmed up (compiled) first,
    then timed batch by batch in turn; sacrebleu BLEU of both and the identical share."""
    import gin
    import torch
    import transformers

    import tasks
    from pretrain_lm import gin_utils
    from pretrain_lm.inference import restore_params
    from pretrain_lm.mt import bleu, split_sources_and_references
    from pretrain_lm.tools import interop_transformer
    from tasks import batching

    gin_utils.parse([gin_file], [f"MODEL_DIR = '{model_dir}'"])
    try:
        model = gin.query_parameter("%MODEL").scoped_configurable_fn()
        task = gin_utils.macro("MIXTURE_OR_TASK_NAME")
        params, step = restore_params(model, model_dir, "latest", task=task)
    finally:
        gin.clear_config()
    cfg = model.config
    transformers.logging.set_verbosity_error()
    hf = transformers.MarianMTModel(transformers.MarianConfig(
        vocab_size=cfg.vocab_size, d_model=cfg.d_model, encoder_layers=cfg.num_encoder_layers,
        decoder_layers=cfg.num_decoder_layers, encoder_attention_heads=cfg.num_heads,
        decoder_attention_heads=cfg.num_heads, encoder_ffn_dim=cfg.d_ff,
        decoder_ffn_dim=cfg.d_ff, activation_function=cfg.activation,
        max_position_embeddings=cfg.max_length, scale_embedding=cfg.scale_embeddings,
        pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=START,
        forced_eos_token_id=None, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, attn_implementation="sdpa")).eval()
    template = {k: v.numpy() for k, v in hf.state_dict().items()}
    state = interop_transformer.marian_state_from_transformer_params(
        jax.device_get(params), cfg, template)
    hf.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    sources, references = split_sources_and_references(task, "test")
    if count:
        sources, references = sources[:count], references[:count]
    vocab = tasks.get_vocabulary(task)
    ids = [vocab.encode(x)[:model.max_source_length] for x in sources]
    groups = batching.length_bucketed_batches([len(x) for x in ids], batch,
                                              model.max_source_length, 4)
    arrays = []
    for indices, width in groups:
        rows = np.zeros((batch, width), np.int32)
        for r, i in enumerate(indices):
            rows[r, :len(ids[i])] = ids[i]
        arrays.append(rows)
    max_new = 96
    translators = [beam_translator(model, params, max_new, beam, alpha),
                   peer_translator(hf, max_new, beam, alpha)]
    for width in sorted({a.shape[1] for a in arrays}):  # compile / warm up every width
        for translate in translators:
            translate(next(a for a in arrays if a.shape[1] == width))
    seconds: list[list[float]] = [[], []]
    outputs: list[list[list[int]]] = [[None] * len(ids), [None] * len(ids)]
    for (indices, _), rows in zip(groups, arrays, strict=True):
        for j, translate in enumerate(translators):
            start = time.perf_counter()
            out = translate(rows)
            seconds[j].append(time.perf_counter() - start)
            for r, i in enumerate(indices):
                outputs[j][i] = out[r]
    texts = [[vocab.decode([t for t in o if t not in (PAD, EOS)]) for o in outs]
             for outs in outputs]
    same = sum(a == b for a, b in zip(outputs[0], outputs[1], strict=True))
    names = ["pretrain_lm beam_search (JAX)", "transformers generate (PyTorch)"]
    record: dict[str, Any] = {"model_dir": model_dir, "step": int(step), "task": task,
                              "sentences": len(ids), "batch": batch,
                              "identical_outputs": same}
    print(f"\nbeam search with the trained weights of {model_dir} (step {step}) on "
          f"{len(ids)} {task} test sentences, batches of {batch} sorted by length, beam "
          f"{beam}, HF length penalty {alpha}, early stopping, <= {max_new} new tokens:")
    print(f"{'implementation':40s} {'seconds':>8s} {'sent/s':>8s} {'BLEU':>6s}")
    for name, secs, hyp in zip(names, seconds, texts, strict=True):
        score = bleu(hyp, references, sources)["bleu"]
        record[name] = {"seconds": sum(secs), "sentences_per_sec": len(ids) / sum(secs),
                        "bleu": score, "batch_seconds": secs}
        print(f"{name:40s} {sum(secs):8.1f} {len(ids) / sum(secs):8.1f} {score:6.2f}")
    ratio = sum(seconds[1]) / sum(seconds[0])
    record["speedup_vs_peer"] = ratio
    print(f"ours / peer sentences/s: {ratio:.2f}x (goal >= 1.2x); identical best "
          f"hypotheses: {same}/{len(ids)}")
    results["decode_trained"] = record


# ----------------------------------------------------------------------------- main


def main(argv: list[str]) -> None:
    del argv
    import torch

    from models import transformer
    from pretrain_lm import host

    host.keep_freed_memory()  # as pretrain_lm.train does, before JAX starts (both impls gain)

    batch, length, beam, alpha = _BATCH.value, _LENGTH.value, _BEAM.value, _ALPHA.value
    model = transformer.TranslationModel(our_config(0.1), max_source_length=length,
                                         max_target_length=length)
    flops = model.flops_per_example() * batch
    peak = matmul_peak()
    batch_np = translation_batch(batch, length)
    target_tokens = int(batch_np["decoder_loss_weights"].sum())
    load_before = os.getloadavg()[0]
    print(f"devices: {jax.devices()}  torch threads: {torch.get_num_threads()}  "
          f"cpus: {os.cpu_count()}  load average: {load_before:.1f}  "
          f"matmul peak (fp32, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"config: d_model {D_MODEL}, {LAYERS}+{LAYERS} layers, {HEADS} heads, d_ff {D_FF}, "
          f"vocab {VOCAB}; train batch {batch} x {length}+{length} ({target_tokens} real "
          f"target tokens), {flops / 1e9:.1f} GFLOP/step")
    results: dict[str, Any] = {
        "config": dict(d_model=D_MODEL, layers=LAYERS, heads=HEADS, d_ff=D_FF, vocab=VOCAB,
                       batch=batch, length=length, decode_batch=_DECODE_BATCH.value,
                       beam=beam, alpha=alpha, eos_bias=_EOS_BIAS.value),
        "matmul_peak_flops": peak, "model_flops_per_step": flops,
        "target_tokens_per_step": target_tokens, "train": {}, "decode": {}}

    names = ["pretrain_lm Trainer (JAX)", "transformers MarianMTModel (PyTorch)"]
    steps = [ours_train([batch_np])] + ([peer_train([batch_np])] if _PEER.value else [])
    train_rows = list(zip(names[:len(steps)], time_interleaved(steps, _STEPS.value),
                           strict=True))
    del steps

    train_on_multi30k(results, _REAL_STEPS.value, _REAL_ROWS.value, _REAL_LENGTH.value, peak)

    sources = source_batches(_DECODE_BATCHES.value + 1, _DECODE_BATCH.value, length)
    sentences = _DECODE_BATCHES.value * _DECODE_BATCH.value
    hf_model = marian(0.0).eval()
    with torch.no_grad():
        hf_model.final_logits_bias[0, EOS] = _EOS_BIAS.value
    translators = [ours_translator(hf_model, length, length, beam, alpha)]
    if _PEER.value:
        translators.append(peer_translator(hf_model, length, beam, alpha))
    names = ["pretrain_lm beam_search (JAX)", "transformers generate (PyTorch)"]
    decode_rows = [(name, seconds, out) for name, (seconds, out)
                   in zip(names[:len(translators)], time_decoding(translators, sources),
                          strict=True)]
    peak_after = matmul_peak()
    load_after = os.getloadavg()[0]
    print(f"matmul peak at the start {peak / 1e9:.1f}, at the end {peak_after / 1e9:.1f} "
          f"GFLOP/s (MFU uses the larger); load average at the end {load_after:.1f}"
          + ("  -- the machine is busy: timings are noisy" if max(load_before, load_after)
             > 1.5 * (os.cpu_count() or 1) else ""))
    peak = max(peak, peak_after)
    results.update(matmul_peak_flops=peak, load_average=[load_before, load_after])

    print(f"\ntraining step (batch {batch}, dropout 0.1, label smoothing 0.1, Adam); median of "
          f"{_STEPS.value} steps (best step in brackets):")
    print(f"{'implementation':40s} {'ms/step':>16s} {'tokens/s':>16s} {'MFU':>15s}")
    for name, times in train_rows:
        seconds, best = float(np.median(times)), min(times)
        mfu = flops / seconds / peak
        print(f"{name:40s} {1e3 * seconds:7.0f} ({1e3 * best:6.0f}) "
              f"{target_tokens / seconds:7.0f} ({target_tokens / best:6.0f}) "
              f"{100 * mfu:5.1f}% ({100 * flops / best / peak:5.1f}%)")
        results["train"][name] = {"seconds_per_step": seconds, "best_seconds_per_step": best,
                                  "target_tokens_per_sec": target_tokens / seconds,
                                  "mfu": mfu, "step_seconds": times}
    if len(train_rows) == 2:
        ratio = float(np.median(train_rows[1][1]) / np.median(train_rows[0][1]))
        best_ratio = min(train_rows[1][1]) / min(train_rows[0][1])
        results["train"].update(speedup_vs_peer=ratio, best_step_speedup_vs_peer=best_ratio)
        print(f"ours / peer tokens/s: {ratio:.2f}x, best steps {best_ratio:.2f}x "
              "(goal >= 1.0x)")

    print(f"\nbeam search (beam {beam}, hf length penalty {alpha}, early stopping, "
          f"<= {length} new tokens, {sentences} sentences in batches of "
          f"{_DECODE_BATCH.value}, after one warm-up batch; best batch in brackets):")
    print(f"{'implementation':40s} {'s/batch':>16s} {'sent/s':>16s} {'mean len':>9s}")
    for name, times, out in decode_rows:
        seconds, best = sum(times), min(times)
        mean_len = float(np.mean([len(t) for t in out[_DECODE_BATCH.value:]]))
        print(f"{name:40s} {seconds / len(times):7.2f} ({best:6.2f}) "
              f"{sentences / seconds:7.1f} ({_DECODE_BATCH.value / best:6.1f}) {mean_len:9.1f}")
        results["decode"][name] = {"seconds": seconds, "sentences_per_sec": sentences / seconds,
                                   "best_batch_sentences_per_sec": _DECODE_BATCH.value / best,
                                   "batch_seconds": times, "mean_output_length": mean_len}
    if len(decode_rows) == 2:
        ratio = sum(decode_rows[1][1]) / sum(decode_rows[0][1])
        best_ratio = min(decode_rows[1][1]) / min(decode_rows[0][1])
        same = sum(a == b for a, b in zip(decode_rows[0][2], decode_rows[1][2], strict=True))
        total = len(decode_rows[0][2])
        results["decode"].update(speedup_vs_peer=ratio, best_batch_speedup_vs_peer=best_ratio,
                                 identical_outputs=same, compared_outputs=total)
        print(f"ours / peer sentences/s: {ratio:.2f}x, best batches {best_ratio:.2f}x "
              f"(goal >= 1.2x); identical best hypotheses: {same}/{total} (warm-up batch "
              "included)")
    if _TRAINED_DIR.value and _PEER.value:
        decode_trained(results, _TRAINED_DIR.value, _TRAINED_GIN.value,
                       _TRAINED_SENTENCES.value, _DECODE_BATCH.value, beam, alpha)
    write_results(_OUTPUT.value, results)


if __name__ == "__main__":
    app.run(main)
