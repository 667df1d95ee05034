"""Running a trained model: what ``python -m pretrain_lm.infer`` does, as functions.

* ``restore_params`` / ``run_partitioner``: a run's parameters from its checkpoints, on
  the mesh its gin files name;
* ``split_batches``, ``predict_split``, ``score_split``: ``Model.predict_batch`` /
  ``score_batch`` over every example of a split, in the model's input format;
* ``contextual_vectors`` / ``write_vectors``: each layer's vector for each word of the
  user's sentences (BERT, ELMo, CoVe);
* ``generate`` / ``perplexity``: a language model's continuations of a prompt and its
  held-out perplexity.

Translation (``pretrain_lm.mt``) and the fine-tuned heads' task metrics
(``pretrain_lm.evaluation``) have their own modules.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import tqdm

if TYPE_CHECKING:
    from pretrain_lm.partitioning import Partitioner

# ----------------------------------------------------------------------------- restoring


def run_partitioner() -> Partitioner:
    """The run's ``trainer.train.partitioner`` from gin (its mesh file), else all devices."""
    from pretrain_lm.partitioning import Partitioner

    try:
        return gin.query_parameter("trainer.train.partitioner").scoped_configurable_fn()
    except ValueError:
        return Partitioner()


def restore_params(model: Any, model_dir: str, checkpoint: str | int = "latest",
                   partitioner: Partitioner | None = None, task: str | None = None
                   ) -> tuple[Any, int]:
    """The parameters of the latest (or a given) checkpoint of ``model_dir`` and its step,
    laid out on ``partitioner``'s mesh (default: every device on ``data``); with ``task``,
    after checking that the checkpoint was trained on that task's vocabulary."""
    import tasks
    from pretrain_lm.checkpoints import Checkpointer, abstract_params
    from pretrain_lm.partitioning import Partitioner

    source = Checkpointer(model_dir, read_only=True, async_save=False)
    steps = sorted(source.manager.all_steps())
    if not steps:
        raise FileNotFoundError(f"No checkpoints in {source.directory}; train first.")
    step = steps[-1] if str(checkpoint) == "latest" else int(checkpoint)
    if step not in steps:
        raise FileNotFoundError(f"No checkpoint of step {step} in {source.directory} "
                                f"(it holds {steps}).")
    abstract = abstract_params(model, partitioner or Partitioner())
    vocabulary = tasks.vocabulary_record(task) if task else None
    return source.restore_params(step, abstract, vocabulary), step


# ----------------------------------------------------------------------------- any model


def eval_feature_lengths() -> dict[str, int]:
    """The feature lengths of the run's evaluation data (``trainer.train.eval_data``)."""
    try:
        config = gin.query_parameter("trainer.train.eval_data").scoped_configurable_fn()
    except ValueError:
        return {}
    return dict(config.feature_lengths)


def split_batches(model: Any, task: str, split: str, *, batch_size: int,
                  feature_lengths: Mapping[str, int], max_examples: int | None = None
                  ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Every example of ``split`` once, in the model's input format: ``(batch, real)``
    with ``real`` marking the rows that hold an example (the last batch is padded with
    all-zero rows)."""
    import tasks

    ds = tasks.get_dataset(task, split=split, batch_size=batch_size, seed=0, shuffle=False,
                           num_epochs=1, input_format=model.input_format, **feature_lengths)
    seen = 0
    for batch in ds.as_numpy_iterator():
        real = np.zeros((batch_size,), bool)
        for value in batch.values():
            real |= np.any(value.reshape(batch_size, -1) != 0, axis=1)
        if max_examples is not None:
            real &= np.cumsum(real) + seen <= max_examples
        seen += int(real.sum())
        yield batch, real
        if max_examples is not None and seen >= max_examples:
            return


def score_split(model: Any, params: Any, task: str, split: str, *, batch_size: int,
                feature_lengths: Mapping[str, int], max_examples: int | None = None,
                progress: bool = True) -> tuple[list[dict[str, float]], dict[str, float]]:
    """``score_batch`` of every example: ``([{"log_likelihood", "tokens"?}], summary)``;
    the summary holds the mean log-likelihood and, for token targets
    (``decoder_loss_weights``), ``exp(-sum / tokens)``: the perplexity."""
    score = jax.jit(model.score_batch)
    rows: list[dict[str, float]] = []
    for batch, real in tqdm(split_batches(model, task, split, batch_size=batch_size,
                                          feature_lengths=feature_lengths,
                                          max_examples=max_examples),
                            desc=f"score {task}/{split}", unit="batch", disable=not progress):
        values = np.asarray(score(params, batch))
        weights = batch.get("decoder_loss_weights")
        for row in np.flatnonzero(real):
            record = {"log_likelihood": float(values[row])}
            if weights is not None:
                record["tokens"] = float(weights[row].sum())
            rows.append(record)
    if not rows:
        raise ValueError(f"Split {split!r} of task {task!r} holds no examples.")
    total = sum(r["log_likelihood"] for r in rows)
    summary = {"examples": float(len(rows)), "mean_log_likelihood": total / len(rows)}
    tokens = sum(r.get("tokens", 0.0) for r in rows)
    if tokens:
        summary.update(tokens=tokens, nll=-total / tokens,
                       perplexity=float(np.exp(min(-total / tokens, 88.0))))
    return rows, summary


def predict_split(model: Any, params: Any, task: str, split: str, *, batch_size: int,
                  feature_lengths: Mapping[str, int], max_examples: int | None = None,
                  progress: bool = True, **decode_options: Any) -> list[dict[str, Any]]:
    """``predict_batch`` of every example, one record per example (tag ids named by the
    model's ``tag_names`` and cut to the sentence's words)."""
    predict = jax.jit(functools.partial(model.predict_batch, **decode_options))
    tag_names = getattr(model, "tag_names", None)
    records: list[dict[str, Any]] = []
    for batch, real in tqdm(split_batches(model, task, split, batch_size=batch_size,
                                          feature_lengths=feature_lengths,
                                          max_examples=max_examples),
                            desc=f"predict {task}/{split}", unit="batch",
                            disable=not progress):
        outputs = jax.device_get(predict(params, batch))
        for row in np.flatnonzero(real):
            record = {k: np.asarray(v[row]).tolist() for k, v in outputs.items()}
            if "tags" in outputs and tag_names and "token_ids" in batch:
                words = int((batch["token_ids"][row] > 0).sum())
                record["tags"] = [tag_names[t] for t in outputs["tags"][row][:words]]
            records.append(record)
    return records


# ----------------------------------------------------------------------------- vectors


@dataclasses.dataclass(frozen=True)
class _TextInput:
    """How words become a model's inputs: ``to_batch(rows)`` of ``width`` positions, each
    row ``prefix + pieces + suffix``; ``pieces_of`` None: the row is the words themselves,
    one position each."""

    to_batch: Callable[[list[Any]], dict[str, np.ndarray]]
    pieces_of: Callable[[str], list[int]] | None
    width: int
    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()


def _text_input(model: Any, task: str) -> _TextInput:
    import tasks

    if model.input_format in ("finetuning", "bert_pretraining"):  # BERT: [CLS] pieces [SEP]
        vocab = tasks.get_vocabulary(task)
        width = model.max_seq_length

        def bert_batch(rows: list[list[int]]) -> dict[str, np.ndarray]:
            ids = np.zeros((len(rows), width), np.int32)
            for i, row in enumerate(rows):
                ids[i, :len(row)] = row
            return {"input_ids": ids, "segment_ids": np.zeros_like(ids),
                    "input_mask": (ids > 0).astype(np.int32)}

        def pieces(word: str) -> list[int]:
            return [int(t) for t in vocab.encode(word)] or [vocab.unk_id]

        return _TextInput(bert_batch, pieces, width, (vocab.cls_id,), (vocab.sep_id,))
    if model.input_format == "word_level":  # ELMo: characters, one position per word
        from models.characters import CharVocabulary

        chars = CharVocabulary(model.config.max_characters_per_token)
        width = model.max_length

        def char_batch(rows: list[list[str]]) -> dict[str, np.ndarray]:
            out = np.zeros((len(rows), width, chars.max_word_length), np.int32)
            for i, words in enumerate(rows):
                if words:
                    out[i, :len(words)] = chars.encode_words(words)
            return {"char_ids": out}

        return _TextInput(char_batch, None, width)
    if model.input_format == "seq2seq":  # CoVe: source word ids
        vocab = tasks.get_provider(task).output_features["inputs"].vocabulary
        width = model.max_source_length

        def source_batch(rows: list[list[int]]) -> dict[str, np.ndarray]:
            ids = np.zeros((len(rows), width), np.int32)
            for i, row in enumerate(rows):
                ids[i, :len(row)] = row
            return {"encoder_input_tokens": ids}

        def word_id(word: str) -> list[int]:
            return [int(t) for t in vocab.encode(word)][:1] or [vocab.unk_id]

        return _TextInput(source_batch, word_id, width)
    raise ValueError(f"{type(model).__name__} reads {model.input_format!r} batches; "
                     "contextual vectors come from the BERT, ELMo and CoVe models.")


def contextual_vectors(model: Any, params: Any, task: str, sentences: list[list[str]], *,
                       pooling: str = "first", layers: list[str] | None = None,
                       batch_size: int = 32, progress: bool = True
                       ) -> tuple[list[dict[str, np.ndarray]], dict[str, int]]:
    """``model.contextual_vectors`` of each word of each sentence (whitespace-split words):
    per sentence ``{layer: float32[words, dim]}``, a word's vector taken from its first
    piece or the mean of its pieces (``pooling``); words past the model's input length
    are cut and counted (``words_truncated``)."""
    if pooling not in ("first", "mean"):
        raise ValueError(f"word pooling must be 'first' or 'mean', got {pooling!r}.")
    text = _text_input(model, task)
    width, reserved = text.width, len(text.prefix) + len(text.suffix)
    rows, spans, counts = [], [], {"sentences": len(sentences), "words": 0,
                                   "words_truncated": 0}
    for words in sentences:
        counts["words"] += len(words)
        if text.pieces_of is None:
            kept = words[:width]
            rows.append(kept)
            spans.append([(i, i + 1) for i in range(len(kept))])
        else:
            ids, row_spans = [], []
            for word in words:
                p = text.pieces_of(word)
                if len(ids) + len(p) + reserved > width:
                    break
                start = len(ids) + len(text.prefix)
                row_spans.append((start, start + len(p)))
                ids += p
            rows.append([*text.prefix, *ids, *text.suffix])
            spans.append(row_spans)
        counts["words_truncated"] += len(words) - len(spans[-1])
    if counts["words_truncated"]:
        logging.warning("%d of %d words were past the model's %d input positions and have "
                        "no vector.", counts["words_truncated"], counts["words"], width)
    encode = jax.jit(model.contextual_vectors)
    out: list[dict[str, np.ndarray]] = []
    for start in tqdm(range(0, len(rows), batch_size), desc="vectors", unit="batch",
                      disable=not progress):
        chunk = rows[start:start + batch_size]
        batch = text.to_batch(chunk + [[] for _ in range(batch_size - len(chunk))])
        hidden = jax.device_get(encode(params, batch))
        unknown = sorted(set(layers or ()) - set(hidden))
        if unknown:
            raise ValueError(f"--layers {unknown}: the model's layers are {sorted(hidden)}.")
        for row, row_spans in enumerate(spans[start:start + batch_size]):
            out.append({
                name: np.stack([value[row, a] if pooling == "first"
                                else value[row, a:b].mean(axis=0) for a, b in row_spans])
                if row_spans else np.zeros((0, value.shape[-1]), np.float32)
                for name, value in hidden.items() if not layers or name in layers})
    return out, counts


def write_vectors(path: str, vectors: list[dict[str, np.ndarray]]) -> None:
    """``.npz``: ``"<layer>/<sentence index>"`` -> float32 ``[words, dim]``, and
    ``layer_names``."""
    names = list(vectors[0]) if vectors else []
    arrays = {f"{name}/{i}": v[name].astype(np.float32) for i, v in enumerate(vectors)
              for name in names}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, layer_names=np.asarray(names), **arrays)


# ----------------------------------------------------------------------------- language model


@functools.lru_cache(maxsize=16)
def make_generate_fn(model: Any, *, method: str = "sample", num_samples: int = 1,
                     max_length: int = 64, eos_id: int = 1, temperature: float = 1.0,
                     top_k: int = 0, top_p: float = 1.0, beam_size: int = 4,
                     alpha: float = 0.6) -> Callable[..., jax.Array]:
    """A jitted ``(params, prompt int32[max_length], rng) -> tokens`` (``model.predict_batch``
    on the prompt, right-padded with 0).

    ``tokens`` is ``int32[num_samples, max_length]`` (greedy: identical rows; beam: the
    best ``num_samples <= beam_size`` beams), the prompt's ids first, then the generated
    ones, EOS included, 0 after it. One compilation serves every prompt of that length
    budget; the functions are cached per model and options.
    """
    if method not in ("sample", "greedy", "beam"):
        raise ValueError(f"method must be 'sample', 'greedy' or 'beam', got {method!r}.")
    if method == "beam" and num_samples > beam_size:
        raise ValueError(f"num_samples={num_samples} > beam_size={beam_size}: beam search "
                         "returns at most beam_size sequences.")
    rows = 1 if method == "beam" else num_samples

    def generate_fn(params: Any, prompt: jax.Array, rng: jax.Array) -> jax.Array:
        batch = {"prompt_tokens": jnp.tile(prompt[None, :], (rows, 1))}
        out = model.predict_batch(params, batch, method=method, max_length=max_length,
                                  eos_id=eos_id, temperature=temperature, top_k=top_k,
                                  top_p=top_p, beam_size=beam_size, alpha=alpha, rng=rng)
        return out["beams"][0, :num_samples] if method == "beam" else out["tokens"]

    return jax.jit(generate_fn)


def cut_at_eos(ids: Any, eos_id: int) -> list[int]:
    """The ids before the first EOS (and without padding)."""
    ids = [int(t) for t in ids]
    ids = ids[:ids.index(eos_id)] if eos_id in ids else ids
    return [t for t in ids if t > 0]


def generate(model: Any, params: Any, vocab: Any, prompt: str, *, num_samples: int = 3,
             max_new_tokens: int = 60, method: str = "sample", seed: int = 0,
             **options: Any) -> tuple[list[list[int]], list[str]]:
    """Continuations of ``prompt``: the id sequences (prompt first, cut at EOS) and their
    detokenised texts. ``options``: temperature, top_k, top_p, beam_size, alpha. The
    prompt + ``max_new_tokens`` must fit the model's positions (``MAX_LENGTH``)."""
    prompt_ids = [int(t) for t in vocab.encode(prompt)] if prompt else []
    max_length = len(prompt_ids) + max_new_tokens
    positions = model.config.max_length
    if max_length > positions:
        raise ValueError(
            f"The prompt ({len(prompt_ids)} ids) + max_new_tokens={max_new_tokens} = "
            f"{max_length} positions exceed the model's {positions} (MAX_LENGTH); give a "
            f"shorter prompt or at most {max(positions - len(prompt_ids), 0)} new tokens.")
    if max_length > model.max_length:
        logging.warning("Generating up to position %d: the model was trained on %d-id "
                        "chunks (TARGETS_LENGTH); positions past that are untrained.",
                        max_length, model.max_length)
    fn = make_generate_fn(model, method=method, num_samples=num_samples,
                          max_length=max_length, eos_id=vocab.eos_id, **options)
    padded = np.zeros((max_length,), np.int32)
    padded[:len(prompt_ids)] = prompt_ids
    tokens = np.asarray(fn(params, jnp.asarray(padded), jax.random.key(seed)))
    ids = [cut_at_eos(row, vocab.eos_id) for row in tokens]
    return ids, [vocab.decode(row) for row in ids]


def perplexity(model: Any, params: Any, task: str, split: str = "validation", *,
               batch_size: int = 32, targets_length: int | None = None,
               partitioner: Partitioner | None = None) -> dict[str, float]:
    """``exp(mean NLL)`` of every target id of a split (one pass, nothing dropped), from
    the model's loss metrics; the batches are split over ``partitioner``'s ``data`` axis
    (default: every device). The trainer's ``eval/perplexity`` with ``EVAL_STEPS = None``."""
    import tasks
    from pretrain_lm.partitioning import Partitioner

    partitioner = partitioner or Partitioner()
    batch_size += -batch_size % partitioner.data_size
    sharding = partitioner.batch_sharding()
    ds = tasks.get_dataset(task, split=split, targets_length=targets_length or model.max_length,
                           batch_size=batch_size, seed=0, shuffle=False, num_epochs=1)
    with partitioner.context():
        loss = jax.jit(lambda p, b: model.loss(p, b, rng=None, train=False)[1],
                       out_shardings=partitioner.replicated())
        totals = {"nll": 0.0, "count": 0.0, "correct": 0.0}
        for batch in ds.as_numpy_iterator():
            device_batch = {k: jax.make_array_from_callback(v.shape, sharding,
                                                            lambda i, v=v: v[i])
                            for k, v in batch.items()}
            metrics = jax.device_get(loss(params, device_batch))
            totals["nll"] += float(metrics["nll"][0])
            totals["count"] += float(metrics["nll"][1])
            totals["correct"] += float(metrics["token_accuracy"][0])
    count = totals["count"]
    if not count:
        raise ValueError(f"Split {split!r} of task {task!r} holds no tokens.")
    return {"perplexity": float(np.exp(totals["nll"] / count)), "nll": totals["nll"] / count,
            "token_accuracy": totals["correct"] / count, "tokens": int(count)}
