"""The one trainer: train state, jitted sharded train/eval steps and the training loop.

Every model plugs in through ``models.base.Model`` (an example batch, ``init``
and ``loss``); the trainer owns the optimizer, the mesh, the data, checkpoints,
evaluation and summaries. ``train`` is bound in gin by ``gin_configs/runs/*.gin``
and launched by ``python -m pretrain_lm.train``.

What it guarantees:

* params and optimizer state are laid out by logical-axis rules on the mesh and
  the step is ``jax.jit`` with explicit in/out shardings and a donated state;
* dropout randomness is ``fold_in(seed, step)``, and the data iterator position is
  checkpointed, so a resumed run continues exactly where it stopped;
* metrics are summed on device and fetched only when logged (no per-step sync);
* SIGTERM (pre-emption) triggers a checkpoint before exiting;
* the run's vocabulary and reading direction (``DataConfig.vocabulary_record``: forward,
  or backward with ``DataConfig.reverse``) are recorded beside the checkpoints; resuming,
  or starting from a pretrained run of ours, with another one is refused, and training
  and evaluation data must read in the same direction.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from clu import metric_writers
from tqdm import tqdm

from models.base import Metrics, Model
from pretrain_lm import checkpoints, nonfinite, optimizers
from pretrain_lm.checkpoints import Checkpointer
from pretrain_lm.data import DataConfig, DataIterator, to_global
from pretrain_lm.evaluators import Evaluator
from pretrain_lm.partitioning import Partitioner
from pretrain_lm.pretrained import PretrainedParams, overlay_params


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (and is checkpointed)."""

    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any = flax.struct.field(default_factory=dict)  # Model.init_state


class Trainer:
    """Builds the sharded train state and the jitted steps for one model + optimizer."""

    def __init__(self, model: Model, tx: optax.GradientTransformation,
                 partitioner: Partitioner, *, seed: int = 0,
                 num_microbatches: int = 1, batch_size: int | None = None,
                 skip_nonfinite: bool = False) -> None:
        self.model = model
        self.skip_nonfinite = skip_nonfinite
        self.tx = tx
        self.partitioner = partitioner
        self.seed = seed
        self.num_microbatches = num_microbatches
        self._init_batch = model.example_batch(partitioner.data_size)
        self.batch_size = batch_size or partitioner.data_size

        rng = jax.random.key(seed)
        with partitioner.context():
            boxed = jax.eval_shape(model.init, rng, self._init_batch)
            self.param_shardings = partitioner.shardings_of_boxed(boxed)
            abstract = jax.eval_shape(self._init_state, rng)
        replicated = partitioner.replicated()
        opt_shardings = optax.tree_map_params(
            tx, lambda _, sharding: sharding, abstract.opt_state, self.param_shardings,
            transform_non_params=lambda _: replicated)
        self.model_state_shardings = jax.tree.map(lambda _: replicated, abstract.model_state)
        self.state_shardings = TrainState(
            step=replicated, params=self.param_shardings, opt_state=opt_shardings,
            model_state=self.model_state_shardings)
        self.abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            abstract, self.state_shardings)
        batch_sharding = partitioner.batch_sharding()
        self._train_step = jax.jit(
            self._step, in_shardings=(self.state_shardings, batch_sharding),
            out_shardings=(self.state_shardings, replicated), donate_argnums=(0,))
        self._eval_step = jax.jit(
            self._eval,
            in_shardings=(self.param_shardings, self.model_state_shardings, batch_sharding),
            out_shardings=(replicated, self.model_state_shardings))

    # -- state ------------------------------------------------------------
    def _init_state(self, rng: jax.Array) -> TrainState:
        params = nn.meta.unbox(self.model.init(rng, self._init_batch))
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=self.tx.init(params),
                          model_state=self.model.init_state(self.batch_size))

    def init_state(self) -> TrainState:
        """Fresh, sharded train state (each device creates only its own shards)."""
        with self.partitioner.context():
            return jax.jit(self._init_state, out_shardings=self.state_shardings)(
                jax.random.key(self.seed))

    def num_params(self) -> int:
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.abstract_state.params))

    # -- steps ------------------------------------------------------------
    def _grads(self, params: Any, model_state: Any, batch: dict, rng: jax.Array
               ) -> tuple[Any, Metrics, Any, jax.Array]:
        def loss_fn(p: Any) -> tuple[jax.Array, tuple[Metrics, Any]]:
            loss, metrics, new_state = self.model.loss_with_state(
                p, model_state, batch, rng=rng, train=True)
            return loss, (metrics, new_state)

        (loss, (metrics, new_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params)
        return grads, metrics, new_state, loss

    def _step(self, state: TrainState, batch: dict) -> tuple[TrainState, Metrics]:
        rng = jax.random.fold_in(jax.random.key(self.seed + 1), state.step)
        k = self.num_microbatches
        model_state = state.model_state
        if k == 1:
            grads, metrics, model_state, loss = self._grads(state.params, model_state,
                                                            batch, rng)
        elif jax.tree.leaves(model_state):
            raise ValueError(f"{type(self.model).__name__} carries state from step to step; "
                             "train it with num_microbatches=1.")
        else:
            micro = jax.tree.map(
                lambda x: x.reshape((k, x.shape[0] // k, *x.shape[1:])), batch)

            def accumulate(carry: Any, inputs: tuple[int, dict]) -> tuple[Any, None]:
                i, mb = inputs
                g, m, _, loss = self._grads(state.params, model_state, mb,
                                            jax.random.fold_in(rng, i))
                return jax.tree.map(jnp.add, carry, (g, m, loss)), None

            zero = jax.eval_shape(self._grads, state.params, model_state,
                                  jax.tree.map(lambda x: x[0], micro), rng)
            zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                                (zero[0], zero[1], zero[3]))
            (grads, metrics, loss), _ = jax.lax.scan(accumulate, zero,
                                                     (jnp.arange(k), micro))
            grads = jax.tree.map(lambda g: g / k, grads)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(metrics)
        grad_norm = optax.tree.norm(grads)
        metrics["grad_norm"] = (grad_norm, jnp.ones(()))
        new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                               model_state=model_state)
        # The non-finite guard's code (pretrain_lm.nonfinite): fetched lazily by the loop.
        loss_bad, norm_bad = ~jnp.isfinite(loss), ~jnp.isfinite(grad_norm)
        metrics[nonfinite.NONFINITE] = (
            loss_bad.astype(jnp.int32) * nonfinite.LOSS_BIT
            + norm_bad.astype(jnp.int32) * nonfinite.GRAD_NORM_BIT, jnp.zeros((), jnp.int32))
        if self.skip_nonfinite:
            # Drop the update: params, optimizer and model state stay bit-identical (only
            # the step advances, with the data), and the step's metrics count for nothing.
            finite = ~(loss_bad | norm_bad)
            kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                (new_state.params, new_state.opt_state,
                                 new_state.model_state),
                                (state.params, state.opt_state, state.model_state))
            new_state = new_state.replace(params=kept[0], opt_state=kept[1],
                                          model_state=kept[2])
            metrics = {name: value if name == nonfinite.NONFINITE else
                       jax.tree.map(lambda x: jnp.where(finite, x, jnp.zeros_like(x)), value)
                       for name, value in metrics.items()}
        return new_state, metrics

    def _eval(self, params: Any, model_state: Any, batch: dict) -> tuple[Metrics, Any]:
        _, metrics, model_state = self.model.loss_with_state(
            params, model_state, batch, rng=None, train=False)
        return metrics, model_state

    def train_step(self, state: TrainState, batch: dict) -> tuple[TrainState, Metrics]:
        with self.partitioner.context():
            return self._train_step(state, batch)

    def eval_step(self, params: Any, batch: dict, model_state: Any = None
                  ) -> tuple[Metrics, Any]:
        """The summed metrics of one batch and the model state after it."""
        with self.partitioner.context():
            return self._eval_step(params, {} if model_state is None else model_state, batch)

    def evaluate(self, params: Any, batches: Iterable[dict], num_steps: int | None,
                 model_state: Any = None) -> dict[str, float]:
        """Averages the model's metrics over up to ``num_steps`` batches, starting from
        ``model.eval_state(model_state)`` and carrying it from batch to batch."""
        totals: Metrics | None = None
        model_state = self.model.eval_state(model_state or {}, self.batch_size)
        for i, batch in enumerate(batches):
            if num_steps is not None and i >= num_steps:
                break
            metrics, model_state = self.eval_step(params, batch, model_state)
            totals = accumulate_metrics(totals, metrics)
        return self.summarize(totals) if totals is not None else {}

    def summarize(self, totals: Metrics) -> dict[str, float]:
        averages = average_metrics(totals)
        averages.update(self.model.derived_metrics(averages))
        return averages


def accumulate_metrics(totals: Metrics | None, metrics: Metrics) -> Metrics:
    """Adds one step's summed metrics to the running totals (stays on device)."""
    if totals is None:
        return dict(metrics)
    return {k: (totals[k][0] + v[0], totals[k][1] + v[1]) for k, v in metrics.items()}


def average_metrics(totals: Metrics) -> dict[str, float]:
    """``{name: total / count}`` on the host (the one place metrics are synced)."""
    totals = {k: v for k, v in totals.items() if k != nonfinite.NONFINITE}
    fetched = jax.device_get(totals)
    return {k: float(t) / max(float(c), 1e-12) for k, (t, c) in fetched.items()}


class _PreemptionFlag:
    """Set by SIGTERM; the loop then checkpoints and exits cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _PreemptionFlag:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. some test runners)
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        del signum, frame
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train(
    *,
    model: Model,
    model_dir: str,
    train_steps: int | None = None,
    batch_size: int,
    train_data: DataConfig,
    train_epochs: float | None = None,
    eval_data: DataConfig | None = None,
    optimizer: Callable[..., optimizers.Optimizer] = optimizers.adamw,
    schedule_steps: int | None = None,
    init_from: str | None = None,
    pretrained: PretrainedParams | None = None,
    partitioner: Partitioner | None = None,
    num_microbatches: int = 1,
    checkpoint_every: int = 1000,
    keep_checkpoints: int | None = 3,
    eval_every: int = 1000,
    eval_steps: int | None = 20,
    log_every: int = 50,
    seed: int = 0,
    progress_bar: bool = True,
    on_nonfinite: str = "stop",
    max_consecutive_skips: int = 10,
    evaluators: Sequence[Evaluator] = (),
) -> dict[str, float]:
    """Trains ``model`` on ``train_data`` for ``train_steps`` steps of ``batch_size`` examples.

    Resumes automatically from the latest checkpoint in ``model_dir``. Returns the
    last evaluation metrics (``eval/...``) and the last logged training metrics.

    Args:
      model: objective wrapper (``models.base.Model``).
      model_dir: checkpoints, TensorBoard summaries and config.gin go here.
      train_steps: total number of optimizer steps (a resumed run counts from 0).
      train_epochs: instead of ``train_steps``: ``int(examples * epochs / batch_size)``
        steps, the examples counted in the train split (BERT fine-tuning's rule).
      batch_size: GLOBAL batch size (split over processes and the ``data`` axis).
      train_data, eval_data: seqio task and split to read (see ``DataConfig``).
      optimizer: called as ``optimizer(total_steps=schedule_steps)`` -> ``Optimizer``.
      schedule_steps: length of the learning-rate schedule (default ``train_steps``);
        a run in phases (BERT: seq 128 for 90% of the steps, then 512) gives every
        phase the whole run's length.
      init_from: a model dir or checkpoint step dir whose train state (step, params,
        optimizer) starts this run when ``model_dir`` has no checkpoint yet; the input
        pipeline starts afresh (e.g. the next phase with longer sequences).
      pretrained: parameters (e.g. a pretrained encoder: ours, HuggingFace or TF BERT)
        put over the fresh ones when neither ``model_dir`` nor ``init_from`` gives a
        state: the step starts at 0 and the optimizer state is fresh (fine-tuning).
      partitioner: device mesh and logical-axis rules (default: all devices on ``data``).
      num_microbatches: gradient accumulation; each step still sees ``batch_size``.
      checkpoint_every, keep_checkpoints: save interval and how many to keep.
      eval_every, eval_steps: evaluation interval and batches per evaluation.
      log_every: interval of console/TensorBoard training summaries.
      seed: parameter-init and dropout seed (the data seed is in ``DataConfig``).
      on_nonfinite: a step whose loss or gradient norm is NaN/inf: ``'stop'`` the run
        (``NonFiniteError`` naming the step, metric, learning rate and batch; the bad
        state is never checkpointed) or ``'skip'`` its update (``pretrain_lm.nonfinite``).
      max_consecutive_skips: ``'skip'`` mode stops after this many skipped steps in a row.
      evaluators: benchmark metrics scored with the loss at every evaluation
        (``pretrain_lm.evaluators``: a task's metric, BLEU), written beside it.

    Raises:
      NonFiniteError: see ``on_nonfinite``.
      checkpoints.CheckpointSaveError: a checkpoint could not be written (disk full,
        permissions); the message names the last complete checkpoint.
      checkpoints.CheckpointDamagedError: ``model_dir`` holds checkpoints but none of
        them can be read.
    """
    import tasks

    model.check_task(tasks.task_info(train_data.task))
    if eval_data is not None and eval_data.reverse != train_data.reverse:
        raise ValueError(
            f"train_data reads the documents {train_data.direction} but eval_data "
            f"{eval_data.direction}: a model is evaluated in the direction it is trained in. "
            "Set both DataConfig.reverse alike (ULMFiT gin files: one --gin.BACKWARD=...).")
    for data in (train_data, eval_data):
        if data is not None and data.pack and not model.supports_packing:
            raise ValueError(
                f"DataConfig.pack=True puts several examples in a row, and "
                f"{type(model).__name__} reads one example a row (it keeps no segment "
                "ids); set DataConfig.pack = False (the Transformer, GPT and BERT "
                "fine-tuning read packed rows).")
    train_steps = resolve_train_steps(train_steps, train_epochs, train_data, batch_size)
    if batch_size % num_microbatches:
        raise ValueError(f"batch_size={batch_size} is not divisible by "
                         f"num_microbatches={num_microbatches}.")
    checkpoints.check_writable(model_dir)
    partitioner = partitioner or Partitioner()
    opt = optimizer(total_steps=schedule_steps or train_steps)
    guard = nonfinite.NonFiniteGuard(on_nonfinite, max_consecutive_skips=max_consecutive_skips,
                                     learning_rate=opt.learning_rate)
    trainer = Trainer(model, opt.tx, partitioner, seed=seed, num_microbatches=num_microbatches,
                      batch_size=batch_size, skip_nonfinite=on_nonfinite == "skip")
    is_chief = jax.process_index() == 0
    train_writer = metric_writers.create_default_writer(
        os.path.join(model_dir, "train"), just_logging=not is_chief)
    eval_writer = metric_writers.create_default_writer(
        os.path.join(model_dir, "eval"), just_logging=not is_chief)
    logging.info("Model: %s with %s parameters; mesh %s", type(model).__name__,
                 f"{trainer.num_params():,}", dict(partitioner.mesh.shape))

    train_iter = DataIterator(train_data, batch_size, partitioner, model.input_format)
    check_vocab_size(model, train_iter.vocab_size, train_data.task)
    if is_chief:  # the vocabulary and the reading direction, checked on resume
        checkpoints.record_vocabulary(model_dir, train_data.vocabulary_record())
    checkpointer = Checkpointer(model_dir, save_every=checkpoint_every, keep=keep_checkpoints)
    state = checkpointer.restore_latest_intact(trainer.abstract_state, train_iter)
    if state is not None:
        logging.info("Resuming from step %d", int(jax.device_get(state.step)))
    elif init_from:
        state = checkpoints.restore_from(init_from, trainer.abstract_state)
        logging.info("Starting from %s at step %d", init_from, int(jax.device_get(state.step)))
    else:
        state = trainer.init_state()
        if pretrained is not None:
            if pretrained.check_vocabulary and pretrained.model_dir() is not None:
                # ours: same ids, same direction?
                checkpoints.check_vocabulary(pretrained.model_dir(),
                                             train_data.vocabulary_record())
            state = state.replace(params=overlay_params(state.params, pretrained.load()))
    start_step = int(jax.device_get(state.step))

    def run_eval(step: int) -> dict[str, float]:
        results: dict[str, float] = {}
        if eval_data is not None:
            eval_iter = DataIterator(eval_data, batch_size, partitioner, model.input_format)
            batches = _global_batches(eval_iter)
            results = trainer.evaluate(state.params, batches, eval_steps, state.model_state)
        for evaluator in evaluators:
            results.update(evaluator(model, state.params, state.model_state, partitioner))
        if not results:
            return {}
        eval_writer.write_scalars(step, results)
        eval_writer.flush()
        if is_chief:
            # The split is recorded: a finished run relaunched on another split
            # appends its result under the same step.
            _append_jsonl(os.path.join(model_dir, "eval", "metrics.jsonl"),
                          {"step": step, "split": eval_data.split if eval_data else None,
                           **results})
        logging.info("eval @ step %d: %s", step, _fmt(results))
        return {f"eval/{k}": v for k, v in results.items()}

    tokens_per_batch = batch_size * model.tokens_per_example(model.example_batch(1))
    final: dict[str, float] = {}
    totals: Metrics | None = None
    last_log_time, last_log_step = time.perf_counter(), start_step
    bar = tqdm(total=train_steps, initial=start_step, disable=not (progress_bar and is_chief),
               desc="train", unit="step", dynamic_ncols=True)
    if start_step == 0 and eval_every:
        final.update(run_eval(0))  # the untrained baseline, for learning curves
    if start_step >= train_steps and (eval_data is not None or evaluators):
        # A finished run relaunched (e.g. with eval_data on another split): evaluate it.
        logging.info("Step %d: nothing left to train; evaluating.", start_step)
        final.update(run_eval(start_step))
    step = start_step
    skipped_in_window = 0
    try:
        with _PreemptionFlag() as preemption:
            for step in range(start_step + 1, train_steps + 1):
                position = train_iter.position()
                state, metrics = trainer.train_step(state, train_iter.global_batch())
                guard.record(step, metrics.pop(nonfinite.NONFINITE)[0], position)
                totals = accumulate_metrics(totals, metrics)
                bar.update(1)
                if step % log_every == 0 or step == train_steps:
                    skipped_in_window += guard.check()
                    summary = trainer.summarize(totals)
                    if skipped_in_window == step - last_log_step:  # nothing trained
                        summary = {}
                    now = time.perf_counter()
                    steps_per_sec = (step - last_log_step) / max(now - last_log_time, 1e-9)
                    summary["steps_per_sec"] = steps_per_sec
                    summary["tokens_per_sec"] = steps_per_sec * tokens_per_batch
                    summary["learning_rate"] = float(opt.learning_rate(step - 1))
                    if on_nonfinite == "skip":
                        summary["skipped_nonfinite"] = float(skipped_in_window)
                    train_writer.write_scalars(step, summary)
                    if is_chief:
                        _append_jsonl(os.path.join(model_dir, "train", "metrics.jsonl"),
                                      {"step": step, **summary})
                    if "loss" in summary:
                        bar.set_postfix(loss=f"{summary['loss']:.3f}",
                                        tok_s=f"{summary['tokens_per_sec']:.0f}")
                    final.update({f"train/{k}": v for k, v in summary.items()})
                    totals, last_log_time, last_log_step = None, time.perf_counter(), step
                    skipped_in_window = 0
                if checkpointer.is_save_step(step):
                    skipped_in_window += guard.check()  # never checkpoint a bad state
                checkpointer.save(step, state, train_iter)
                if eval_every and (step % eval_every == 0 or step == train_steps):
                    skipped_in_window += guard.check()
                    final.update(run_eval(step))
                if preemption.requested:
                    logging.warning("SIGTERM: saving a checkpoint at step %d and exiting.",
                                    step)
                    skipped_in_window += guard.check()
                    checkpointer.save(step, state, train_iter, force=True)
                    break
        bar.close()
        if step == train_steps and checkpointer.latest_step() != train_steps:
            guard.check()
            checkpointer.save(train_steps, state, train_iter, force=True)
        checkpointer.close()
    except (nonfinite.NonFiniteError, checkpoints.CheckpointSaveError) as error:
        bar.close()
        last_good = checkpointer.close_after_error()
        where = (f"step {last_good} in {checkpointer.directory}" if last_good is not None
                 else f"none in {checkpointer.directory}")
        raise type(error)(f"{error}\nThe newest complete checkpoint: {where}.") from None
    except BaseException:  # anything else (Ctrl-C too): let pending saves finish first
        bar.close()
        checkpointer.close_after_error()
        raise
    finally:
        train_writer.flush()
        eval_writer.flush()
    return final


def resolve_train_steps(train_steps: int | None, train_epochs: float | None,
                        train_data: DataConfig, batch_size: int) -> int:
    """``train_steps``, or the steps of ``train_epochs`` passes over the train split."""
    if (train_steps is None) == (train_epochs is None):
        raise ValueError("Give exactly one of train_steps and train_epochs (e.g. "
                         "--gin.TRAIN_STEPS=1000 or --gin.EPOCHS=3).")
    if train_steps is not None:
        return int(train_steps)
    if train_data.pack:
        raise ValueError(
            "train_epochs counts examples, and a packed row (DataConfig.pack = True) holds "
            "a varying number of them: give train_steps instead (runs/finetune.gin: "
            "--gin.EPOCHS=None --gin.trainer.train.train_steps=N; packing_efficiency in the "
            "summaries says how full the rows are).")
    import tasks

    examples = tasks.num_examples(train_data.task, train_data.split)
    steps = int(examples * train_epochs / batch_size)
    logging.info("%s epochs of %d examples at batch %d: %d steps", train_epochs, examples,
                 batch_size, steps)
    return max(steps, 1)


def check_vocab_size(model: Model, task_vocab_size: int, task: str) -> None:
    """Refuses a model whose embedding table cannot hold every id of the task."""
    model_vocab_size = model.input_vocab_size
    if model_vocab_size is None:
        return
    if model_vocab_size < task_vocab_size:
        raise ValueError(
            f"The model embeds {model_vocab_size} token ids but task {task!r} has a "
            f"vocabulary of {task_vocab_size}; set --gin.VOCAB_SIZE={task_vocab_size} "
            "(or larger, e.g. a multiple of 128).")
    if model_vocab_size > task_vocab_size:
        logging.info("Model vocab %d > task vocab %d: %d embedding rows are padding.",
                     model_vocab_size, task_vocab_size, model_vocab_size - task_vocab_size)


def _global_batches(iterator: DataIterator) -> Iterable[dict]:
    """Global batches until the data ends on ANY process.

    With several processes each reads its own shards of a finite split, which may end
    one batch apart; all must stop at the same step (a collective waits for every
    process), so they agree on "one more batch?" first. A process's unused batches are
    logged, never silently dropped.
    """
    multi_process = jax.process_count() > 1
    while True:
        try:
            local = next(iterator)
        except StopIteration:
            local = None
        if multi_process:
            from jax.experimental import multihost_utils

            have = multihost_utils.process_allgather(np.asarray(local is not None))
            if not np.all(have):
                if local is not None:
                    logging.warning(
                        "Evaluation stops where another process's input shards ended; "
                        "this process's remaining batches (%d examples each) go unused.",
                        iterator.local_batch_size)
                return
        if local is None:
            return
        yield to_global(local, iterator.sharding, iterator.global_batch_size)


def _append_jsonl(path: str, record: dict[str, Any]) -> None:
    """Appends one JSON line (a plain-text copy of the TensorBoard scalars)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
