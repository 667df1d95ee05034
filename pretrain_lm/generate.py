r"""Continue a prompt with a trained GPT checkpoint, or measure its held-out perplexity.

    python -m pretrain_lm.generate --gin_file=demo/gpt_tiny_austen.gin \
      --gin.MODEL_DIR=runs/demo_gpt_tiny --prompt="It is a truth" \
      [--num_samples=3 --max_new_tokens=60 --temperature=0.8 --top_k=40 --top_p=0.95]
      [--method=sample|greedy|beam] [--beam_size=4 --alpha=0.6] [--seed=0]
      [--checkpoint=latest|STEP]
    python -m pretrain_lm.generate (same gin flags) --perplexity [--split=validation]

Reads the model (``%MODEL``, a ``models.gpt.LanguageModel``) and the task from the run's
gin files and restores the parameters of the latest (or a given) checkpoint.

Generation runs the compiled decoders of ``pretrain_lm.decoding`` over the model's
key/value-cache step function. The prompt is teacher-forced: while the position is inside
the prompt, ``prompted_step_fn`` replaces the model's logits by a one-hot choice of the
prompt's next id (log-probability 0), so greedy, sampling and beam search all emit the
prompt first, writing its keys/values into the cache exactly as a prefill would, and then
continue from it. The outputs therefore start with the prompt's ids. A row stops at EOS
(the end of a chapter) or after ``max_new_tokens``; prompt + new ids must fit the model's
position table (``MAX_LENGTH``), and a warning says when they go past the trained length.

``--perplexity`` runs the model over every chunk of a split (``TARGETS_LENGTH`` ids; the
last batch padded with weight-0 rows) and prints ``exp(mean token NLL)``, the same number
as the trainer's ``eval/perplexity`` with ``EVAL_STEPS = None``.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from pretrain_lm import gin_utils, host

if TYPE_CHECKING:
    from pretrain_lm.partitioning import Partitioner

StepFn = Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, Any]]

_GIN_FILE = flags.DEFINE_multi_string("gin_file", [], "gin config files (in order).")
_GIN_BINDINGS = flags.DEFINE_multi_string(
    "gin_bindings", [], "Extra gin bindings; --gin.KEY=VALUE is rewritten to these.")
_GIN_SEARCH_PATHS = flags.DEFINE_list(
    "gin_search_paths", list(gin_utils.DEFAULT_SEARCH_PATHS), "Where gin files are looked up.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "latest", "latest or a step number.")
_PROMPT = flags.DEFINE_string("prompt", "", "Text to continue ('' = from the start id).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 3, "Samples (beam: best beams) to print.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 60, "Most ids generated after the prompt.")
_METHOD = flags.DEFINE_enum("method", "sample", ["sample", "greedy", "beam"], "Decoder.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature.")
_TOP_K = flags.DEFINE_integer("top_k", 40, "Sampling top-k (0: off).")
_TOP_P = flags.DEFINE_float("top_p", 0.95, "Sampling nucleus top-p (1: off).")
_BEAM = flags.DEFINE_integer("beam_size", 4, "Beam size (--method=beam).")
_ALPHA = flags.DEFINE_float("alpha", 0.6, "GNMT length-penalty alpha (--method=beam).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_PERPLEXITY = flags.DEFINE_bool("perplexity", False, "Print held-out perplexity instead.")
_SPLIT = flags.DEFINE_string("split", "validation", "Split for --perplexity.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Chunks per batch for --perplexity.")


# ----------------------------------------------------------------------------- params


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
    step = steps[-1] if checkpoint == "latest" else int(checkpoint)
    if step not in steps:
        raise FileNotFoundError(f"No checkpoint of step {step} in {source.directory} "
                                f"(it holds {steps}).")
    abstract = abstract_params(model, partitioner or Partitioner())
    vocabulary = tasks.vocabulary_record(task) if task else None
    return source.restore_params(step, abstract, vocabulary), step


# ----------------------------------------------------------------------------- generation


def prompted_step_fn(step_fn: StepFn, prompt: jax.Array, prompt_length: jax.Array) -> StepFn:
    """``step_fn`` whose logits at positions ``< prompt_length`` select ``prompt[position]``.

    Forced positions return 0 for the prompt id and ``-inf`` elsewhere: argmax, sampling
    (any temperature / top-k / top-p) and beam search all pick the prompt id with
    log-probability 0, and the model still runs, so the cache holds the prompt's keys and
    values when free generation starts at ``position == prompt_length``.
    """
    prompt = jnp.asarray(prompt, jnp.int32)

    def step(token_ids: jax.Array, state: Any, position: jax.Array) -> tuple[jax.Array, Any]:
        logits, state = step_fn(token_ids, state, position)
        forced_id = prompt[jnp.minimum(position, prompt.shape[0] - 1)]
        one_hot = jnp.where(jnp.arange(logits.shape[-1]) == forced_id, 0.0, -jnp.inf)
        logits = jnp.where(position < prompt_length, one_hot[None, :].astype(logits.dtype),
                           logits)
        return logits, state

    return step


@functools.lru_cache(maxsize=16)
def make_generate_fn(model: Any, *, method: str = "sample", num_samples: int = 1,
                     max_length: int = 64, eos_id: int = 1, bos_id: int = 0,
                     temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     beam_size: int = 4, alpha: float = 0.6) -> Callable[..., jax.Array]:
    """A jitted ``(params, prompt int32[max_length], prompt_length, rng) -> tokens``.

    ``tokens`` is ``int32[num_samples, max_length]`` (greedy: identical rows; beam: the
    best ``num_samples <= beam_size`` beams), the prompt's ids first, then the generated
    ones, EOS included, 0 after it. One compilation serves every prompt of that length
    budget (the prompt is padded to ``max_length`` and its length is traced); the
    functions are cached per model and options, so repeated calls do not recompile.
    """
    from pretrain_lm import decoding

    if method not in ("sample", "greedy", "beam"):
        raise ValueError(f"method must be 'sample', 'greedy' or 'beam', got {method!r}.")
    if method == "beam" and num_samples > beam_size:
        raise ValueError(f"num_samples={num_samples} > beam_size={beam_size}: beam search "
                         "returns at most beam_size sequences.")

    def generate(params: Any, prompt: jax.Array, prompt_length: jax.Array,
                 rng: jax.Array) -> jax.Array:
        rows = 1 if method == "beam" else num_samples
        state = model.decode_state(params, rows, max_length)
        step = prompted_step_fn(model.step_fn(params), prompt, prompt_length)
        common = dict(bos_id=bos_id, eos_id=eos_id, max_length=max_length, batch_size=rows)
        if method == "greedy":
            return decoding.greedy(step, state, **common)[0]
        if method == "sample":
            return decoding.sample(step, state, rng, temperature=temperature, top_k=top_k,
                                   top_p=top_p, **common)[0]
        tokens, _ = decoding.beam_search(step, state, beam_size=beam_size, alpha=alpha,
                                         **common)
        return tokens[0, :num_samples]

    return jax.jit(generate)


def cut_at_eos(ids: Any, eos_id: int) -> list[int]:
    """The ids before the first EOS (and without padding)."""
    ids = [int(t) for t in ids]
    ids = ids[:ids.index(eos_id)] if eos_id in ids else ids
    return [t for t in ids if t > 0]


def generate(model: Any, params: Any, vocab: Any, prompt: str, *, num_samples: int = 3,
             max_new_tokens: int = 60, method: str = "sample", seed: int = 0,
             **options: Any) -> tuple[list[list[int]], list[str]]:
    """Continuations of ``prompt``: the id sequences (prompt first, cut at EOS) and their
    detokenised texts. ``options``: temperature, top_k, top_p, beam_size, alpha."""
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
    tokens = np.asarray(fn(params, jnp.asarray(padded), jnp.int32(len(prompt_ids)),
                           jax.random.key(seed)))
    ids = [cut_at_eos(row, vocab.eos_id) for row in tokens]
    return ids, [vocab.decode(row) for row in ids]


# ----------------------------------------------------------------------------- perplexity


def perplexity(model: Any, params: Any, task: str, split: str = "validation", *,
               batch_size: int = 32, targets_length: int | None = None,
               partitioner: Partitioner | None = None) -> dict[str, float]:
    """``exp(mean NLL)`` of every target id of a split (one pass, nothing dropped); the
    batches are split over ``partitioner``'s ``data`` axis (default: every device)."""
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


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    host.keep_freed_memory()
    gin_utils.quiet_library_logs()
    try:
        gin_utils.parse(_GIN_FILE.value, _GIN_BINDINGS.value, _GIN_SEARCH_PATHS.value)
    except gin_utils.GinConfigError as e:
        sys.exit(f"error: {e}")
    import tasks

    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    if not hasattr(model, "decode_state"):
        sys.exit(f"error: {type(model).__name__} is not a decoder-only language model; use "
                 "a models/gpt/*.gin model.")
    task = gin_utils.macro("MIXTURE_OR_TASK_NAME")
    partitioner = run_partitioner()
    try:
        params, step = restore_params(model, gin_utils.macro("MODEL_DIR"), _CHECKPOINT.value,
                                      partitioner, task)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    start = time.perf_counter()
    if _PERPLEXITY.value:
        result = perplexity(model, params, task, _SPLIT.value, batch_size=_BATCH.value,
                            partitioner=partitioner)
        print(f"step {step}: {task}/{_SPLIT.value} perplexity {result['perplexity']:.2f} "
              f"(NLL {result['nll']:.4f} nats/id, token accuracy "
              f"{result['token_accuracy']:.4f}) over {result['tokens']:,} ids in "
              f"{time.perf_counter() - start:.0f} s")
        return
    vocab = tasks.get_vocabulary(task)
    try:
        _, texts = generate(model, params, vocab, _PROMPT.value, num_samples=_NUM_SAMPLES.value,
                            max_new_tokens=_MAX_NEW.value, method=_METHOD.value,
                            seed=_SEED.value, temperature=_TEMPERATURE.value,
                            top_k=_TOP_K.value, top_p=_TOP_P.value, beam_size=_BEAM.value,
                            alpha=_ALPHA.value)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(f"step {step}, {_METHOD.value}, {time.perf_counter() - start:.1f} s")
    for i, text in enumerate(texts):
        print(f"--- {i + 1}\n{text}")


if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
