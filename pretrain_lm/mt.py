"""Translation with a trained model: batched compiled decoding, BLEU, references.

Used by ``python -m pretrain_lm.decode`` (files and seqio splits), the attention plots
and the tests: ``make_translate_fn`` jits a greedy / beam / sampling translator over the
model's ``predict_batch`` (``models.decoding``), ``translate_all`` runs it over
sentences (counting the sources cut to fit), ``bleu`` scores with sacrebleu.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import tqdm


def make_translate_fn(model: Any, *, method: str = "beam", beam_size: int = 4,
                      alpha: float = 0.6, max_length: int = 64, eos_id: int = 1,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
                      ) -> Any:
    """A jitted ``(params, inputs [b, l], rng) -> tokens [b, max_length]`` translator
    (``model.predict_batch`` on the source ids)."""

    def translate(params: Any, inputs: jax.Array, rng: jax.Array) -> jax.Array:
        return model.predict_batch(
            params, {"encoder_input_tokens": inputs}, method=method, max_length=max_length,
            beam_size=beam_size, alpha=alpha, temperature=temperature, top_k=top_k,
            top_p=top_p, rng=rng, eos_id=eos_id)["tokens"]

    return jax.jit(translate)


def translate_all(model: Any, params: Any, vocab: Any, sources: list[str], *,
                  inputs_length: int, batch_size: int = 64, progress: bool = True,
                  translate_fn: Any = None, length_buckets: int = 1,
                  extra_length: int | None = None, **options: Any
                  ) -> tuple[list[str], dict[str, int]]:
    """Detokenised translations of ``sources``; counts the sources cut to fit.
    ``translate_fn``: a ``make_translate_fn`` result to reuse (else one is made from
    ``options``). ``length_buckets`` > 1: batches of sources of similar length, each as
    wide as the narrowest of that many widths that holds it
    (``tasks.batching.length_bucketed_batches``), so short sentences are not encoded at
    the full width and a batch stops early with its longest item; the translations come
    back in the sources' order. ``extra_length``: each batch writes at most its width +
    this many pieces (capped by ``options["max_length"]``; the paper's "input length +
    50"), so a batch of short sources decodes with a short key/value cache (one compiled
    translator per width)."""
    from tasks import batching

    ids = [vocab.encode(s) for s in sources]
    empty = [i for i, x in enumerate(ids) if not x]
    if empty:
        raise ValueError(f"{len(empty)} empty source line(s) (first at line {empty[0] + 1}); "
                         "remove them or give them text.")
    counts = {"sources": len(ids), "sources_truncated": sum(len(x) > inputs_length
                                                            for x in ids)}
    if counts["sources_truncated"]:
        logging.warning("%d of %d sources are longer than %d pieces and were cut.",
                        counts["sources_truncated"], len(ids), inputs_length)
    cap = options.get("max_length", 64)
    fns: dict[int, Any] = {}

    def translator(width: int) -> Any:
        """The jitted translator of a batch ``width`` wide: at most ``cap`` pieces, or
        ``width + extra_length`` if fewer (one compiled translator per length)."""
        length = cap if extra_length is None else min(cap, width + extra_length)
        if length not in fns:
            fns[length] = (translate_fn if translate_fn is not None and length == cap
                           else make_translate_fn(model, **{**options, "max_length": length}))
        return fns[length]

    eos = options.get("eos_id", 1)
    out: list[str] = [""] * len(ids)
    rng = jax.random.key(0)
    batches = batching.length_bucketed_batches([len(x) for x in ids], batch_size,
                                               inputs_length, length_buckets)
    for number, (indices, width) in enumerate(tqdm(batches, desc="decode", unit="batch",
                                                   disable=not progress)):
        batch = np.zeros((batch_size, width), np.int32)
        for row, i in enumerate(indices):
            batch[row, :min(len(ids[i]), width)] = ids[i][:width]
        tokens = np.asarray(translator(width)(params, jnp.asarray(batch),
                               jax.random.fold_in(rng, number * batch_size)))
        for row, i in enumerate(indices):
            seq = [int(t) for t in tokens[row]]
            seq = seq[:seq.index(eos)] if eos in seq else seq
            out[i] = vocab.decode([t for t in seq if t > 0])
    return out, counts


def bleu(hypotheses: list[str], references: list[str], sources: list[str]) -> dict[str, Any]:
    """sacrebleu corpus BLEU (with its signature) and chrF, and the copy-the-source BLEU."""
    import sacrebleu

    metric = sacrebleu.metrics.BLEU()
    score = metric.corpus_score(hypotheses, [references])
    copy = sacrebleu.metrics.BLEU().corpus_score(sources, [references])
    chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, [references])
    return {"bleu": score.score, "signature": str(metric.get_signature()),
            "chrf": chrf.score, "copy_source_bleu": copy.score, "detail": str(score),
            "sentences": len(hypotheses)}


def split_sources_and_references(task: str, split: str) -> tuple[list[str], list[str]]:
    """The raw source and reference strings of a seqio translation split, in order."""
    import tasks

    provider = tasks.get_provider(task)
    source = provider.source
    ds = source.get_dataset(split=split, shuffle=False)
    for pre in provider.preprocessors:  # source-specific steps before tokenisation
        if getattr(pre, "__name__", "") == "tokenize":
            break
        ds = pre(ds)
    sources, references = [], []
    for ex in ds.as_numpy_iterator():
        sources.append(ex["inputs"].decode("utf-8"))
        references.append(ex["targets"].decode("utf-8"))
    return sources, references
