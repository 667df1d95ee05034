"""Orbax checkpoints: periodic saves, keep-last-N, automatic resume, and shape checks.

A checkpoint step directory holds two items:

* ``state`` -- the train state (step, params, optimizer state), sharded arrays
  written by every process as orbax requires;
* ``data`` -- the input-iterator position of every input shard, so
  that a resumed run reads exactly the batches the interrupted one would have.

Before restoring, the stored shapes are compared with the model's; a checkpoint
of another model size fails with an error that names the mismatched parameters.
``vocabulary.json`` beside the checkpoints records the task's vocabulary and the
direction the documents were read in (``forward``, or ``backward`` for ULMFiT's backward
models); runs resumed, started or evaluated from the checkpoints must match both.
``restore_params`` reads the parameters, ``restore_params_and_state`` also the model state
(batch-norm statistics) that an evaluation of a stateful model needs.

Faults it survives (the README's "Reliability" table):

* a step that cannot be read -- truncated or missing files, a missing item, no commit
  marker (orbax's ``commit_success.txt``, written last) -- is moved aside to
  ``checkpoints/damaged-step-N`` with the reason in ``DAMAGED.txt`` and a one-line
  warning, and the newest intact step is restored instead (``restore_latest_intact``;
  ``pretrain_lm.evaluate --checkpoint=all`` skips such steps); nothing is deleted;
* a save interrupted by a kill leaves only orbax's temporary directory, which the next
  run reports and discards: the newest complete step is what resumes;
* a save that fails (disk full, permissions) stops the run with
  :class:`CheckpointSaveError` naming the last complete step, and a model dir that
  cannot be written is refused before training starts (``check_writable``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
import uuid
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath


class CheckpointMismatchError(ValueError):
    """A checkpoint's parameters do not fit the model being trained."""


class CheckpointDamagedError(RuntimeError):
    """A model dir holds checkpoints, but none of them can be read."""


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions, ...)."""


COMMIT_MARKER = "commit_success.txt"  # orbax writes it last, then renames the step dir
DAMAGED_PREFIX = "damaged-step-"
DAMAGED_REASON_FILE = "DAMAGED.txt"
ITEMS = ("state", "data")


def check_writable(model_dir: str) -> None:
    """Refuses a model dir that cannot be created or written, before any training.

    Writes and removes a probe file, so permissions, read-only mounts and full disks
    all show up here, as one error, rather than as a traceback at the first save.
    """
    if "://" in model_dir:  # object stores: permissions are checked by the first save
        return
    probe = os.path.join(model_dir, f".write-probe-{uuid.uuid4().hex}")
    try:
        os.makedirs(model_dir, exist_ok=True)
        with open(probe, "w") as f:
            f.write("probe\n")
        os.remove(probe)
    except OSError as e:
        raise PermissionError(
            f"The model dir {model_dir} cannot be written ({e.strerror or e}): checkpoints, "
            "summaries and config.gin go there. Choose a writable --gin.MODEL_DIR (or fix "
            "its permissions / free disk space).") from None


def describe_damage(step_dir: epath.Path, items: tuple[str, ...] = ITEMS) -> str | None:
    """Why ``step_dir`` is not a complete checkpoint (None if it looks intact).

    Looks for the commit marker, each item's directory and marker, and empty files (no
    file orbax writes is empty: a 0-byte file is what a full disk or an interrupted copy
    leaves). Other damage to the array data shows when the step is read.
    """
    if not (step_dir / COMMIT_MARKER).exists():
        return f"no commit marker ({COMMIT_MARKER})"
    for item in items:
        if not (step_dir / item).exists():
            return f"the item {item!r} is missing"
        if not (step_dir / item / COMMIT_MARKER).exists():
            return f"the item {item!r} has no commit marker"
    if "://" not in os.fspath(step_dir):  # local files: cheap to list
        empty = [os.path.relpath(os.path.join(root, name), os.fspath(step_dir))
                 for root, _, names in os.walk(os.fspath(step_dir)) for name in names
                 if os.path.getsize(os.path.join(root, name)) == 0]
        if empty:
            more = f" and {len(empty) - 1} more" if len(empty) > 1 else ""
            return f"the file {sorted(empty)[0]} is empty (truncated){more}"
    return None


def _first_line(error: BaseException) -> str:
    """The gist of a (possibly several-kB tensorstore) error, on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


class DataIteratorHandler(ocp.CheckpointHandler):
    """Saves/restores the input position (anything with ``save``/``restore(directory)``).

    Every process writes the files of its own input shards into the same directory.
    """

    def save(self, directory: epath.Path, args: DataIteratorSave) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        args.iterator.save(os.fspath(directory))

    def restore(self, directory: epath.Path, args: DataIteratorRestore) -> Any:
        args.iterator.restore(os.fspath(directory))
        return args.iterator


@ocp.args.register_with_handler(DataIteratorHandler, for_save=True)
@dataclasses.dataclass
class DataIteratorSave(ocp.args.CheckpointArgs):
    iterator: Any


@ocp.args.register_with_handler(DataIteratorHandler, for_restore=True)
@dataclasses.dataclass
class DataIteratorRestore(ocp.args.CheckpointArgs):
    iterator: Any


def _path_str(path: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                    for k in path)


def flatten_params(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a/b/kernel": leaf}`` for a nested mapping of parameters."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if hasattr(value, "items"):
            flat.update(flatten_params(value, name + "/"))
        else:
            flat[name] = value
    return flat


def abstract_params(model: Any, partitioner: Any) -> Any:
    """ShapeDtypeStructs of ``model``'s parameters with their shardings on
    ``partitioner``'s mesh (nothing allocated): the target of ``restore_params``."""
    import flax.linen as nn

    with partitioner.context():
        boxed = jax.eval_shape(model.init, jax.random.key(0),
                               model.example_batch(partitioner.data_size))
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        nn.meta.unbox(boxed), partitioner.shardings_of_boxed(boxed))


def shape_mismatches(stored: Any, expected: Any, limit: int = 8) -> list[str]:
    """Human-readable differences between two trees of arrays / shape metadata.

    Returns at most ``limit`` lines of each kind: shape differences, parameters the
    checkpoint lacks, and parameters the model lacks (with a count of the rest).
    """
    def shapes(tree: Any) -> dict[str, tuple[int, ...]]:
        return {_path_str(p): tuple(getattr(v, "shape", np.shape(v)))
                for p, v in jax.tree_util.tree_leaves_with_path(tree)}

    have, want = shapes(stored), shapes(expected)
    groups = [
        [f"{n}: checkpoint {have[n]} vs model {want[n]}"
         for n in sorted(set(have) & set(want)) if have[n] != want[n]],
        [f"{n}: missing from the checkpoint" for n in sorted(set(want) - set(have))],
        [f"{n}: in the checkpoint but not in the model" for n in sorted(set(have) - set(want))],
    ]
    problems = []
    for group in groups:
        problems += group[:limit]
        if len(group) > limit:
            problems.append(f"... and {len(group) - limit} more like the above")
    return problems


class Checkpointer:
    """Thin wrapper over ``ocp.CheckpointManager`` for train state + data iterator."""

    def __init__(self, model_dir: str, *, save_every: int = 1, keep: int | None = None,
                 async_save: bool = True, read_only: bool = False) -> None:
        if "://" not in model_dir:  # orbax needs absolute local paths (gs:// etc. as given)
            model_dir = os.path.abspath(model_dir)
        self.directory = epath.Path(model_dir) / "checkpoints"
        self.save_every = save_every
        self.read_only = read_only
        if not read_only:
            self._report_interrupted_saves()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                save_interval_steps=1,  # the interval is applied in `save`
                max_to_keep=keep,
                create=not read_only,
                read_only=read_only,
                enable_async_checkpointing=async_save,
                # interrupted saves (reported above) are orbax temporary dirs, not steps
                cleanup_tmp_directories=not read_only,
            ),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def is_save_step(self, step: int) -> bool:
        """Whether ``save(step, ...)`` writes a periodic checkpoint."""
        return step % self.save_every == 0

    def save(self, step: int, state: Any, data_iterator: Any | None, *,
             force: bool = False) -> bool:
        """Saves at multiples of ``save_every`` (any step with ``force``); True if saved.

        Saves are asynchronous: the arrays are copied off the devices before this
        returns, and the files are written in the background. A failure -- of this save
        or of an earlier one still being written -- raises :class:`CheckpointSaveError`.
        """
        if not force and not self.is_save_step(step):
            return False
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = DataIteratorSave(data_iterator)
        try:
            return self.manager.save(step, args=ocp.args.Composite(**items), force=force)
        except Exception as e:  # any failure to write is reported alike
            raise CheckpointSaveError(
                f"Saving the checkpoint of step {step} (or finishing an earlier save) in "
                f"{self.directory} failed: {_first_line(e)}") from e

    def intact_steps(self, items: tuple[str, ...] = ITEMS) -> list[int]:
        """Steps on disk whose layout is complete (``describe_damage``), ascending; a run
        saved without its data iterator (``average_checkpoints``) has only ``("state",)``."""
        return sorted(s for s in self._step_dirs()
                      if describe_damage(self.directory / str(s), items) is None)

    def restore_latest_intact(self, abstract_state: Any, data_iterator: Any | None
                              ) -> Any | None:
        """The newest step that can be read (None when the model dir has no checkpoint).

        Each newer step that cannot be read is moved aside (``quarantine``) with a
        one-line warning; a checkpoint of another model (``CheckpointMismatchError``) is
        not damage and stops the run. Raises :class:`CheckpointDamagedError` when
        checkpoints were found but none could be read.
        """
        found = self._step_dirs()
        if not found:
            if self._damaged_dirs():
                raise CheckpointDamagedError(self._nothing_intact_message([]))
            return None
        moved = []
        _ignore_late_read_callbacks()
        for step in sorted(found, reverse=True):
            reason = describe_damage(self.directory / str(step),
                                     ITEMS if data_iterator is not None else ITEMS[:1])
            if reason is None:
                try:
                    return self.restore(step, abstract_state, data_iterator)
                except CheckpointMismatchError:
                    raise
                except Exception as e:  # unreadable: set aside, go on
                    reason = _first_line(e)
                    detail = traceback.format_exc()
            else:
                detail = reason
            moved.append(self.quarantine(step, reason, detail))
        raise CheckpointDamagedError(self._nothing_intact_message(moved))

    def quarantine(self, step: int, reason: str, detail: str = "") -> str:
        """Moves step ``step`` aside to ``damaged-step-N`` (never deletes it), writes the
        reason and ``detail`` (the full traceback) into it, and warns in one line."""
        source = self.directory / str(step)
        target = self.directory / f"{DAMAGED_PREFIX}{step}"
        n = 1
        while target.exists():
            target = self.directory / f"{DAMAGED_PREFIX}{step}.{n}"
            n += 1
        if jax.process_index() == 0:
            source.rename(target)
            (target / DAMAGED_REASON_FILE).write_text(
                f"Checkpoint step {step} could not be read: {reason}\n\n{detail}\n")
        _sync_processes(f"quarantine_{step}")
        logging.warning("Checkpoint step %d cannot be read (%s); moved aside to %s (details "
                        "in its %s). Falling back to the previous step.", step, reason,
                        target, DAMAGED_REASON_FILE)
        self.manager.reload()
        return target.name

    def _step_dirs(self) -> list[int]:
        if not self.directory.exists():
            return []
        return [int(p.name) for p in self.directory.iterdir() if p.name.isdigit()]

    def _damaged_dirs(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.name for p in self.directory.iterdir()
                      if p.name.startswith(DAMAGED_PREFIX))

    def _nothing_intact_message(self, moved: list[str]) -> str:
        found = sorted(set(moved) | set(self._damaged_dirs()))
        return (f"No intact checkpoint in {self.directory}: it holds {found} (set aside "
                f"as damaged; each has a {DAMAGED_REASON_FILE} saying why). Nothing was "
                "deleted. Restore a good copy of a step there, or move these away (or use "
                "a fresh --gin.MODEL_DIR) to start from scratch.")

    def _report_interrupted_saves(self) -> None:
        if not self.directory.exists() or jax.process_index() != 0:
            return
        for path in sorted(self.directory.iterdir()):
            if ".orbax-checkpoint-tmp" in path.name:
                logging.warning("Found an interrupted save (%s): it never completed and is "
                                "discarded; training resumes from the newest complete step.",
                                path.name)

    def close_after_error(self) -> int | None:
        """Closes after a failed save or a stopped run; returns the newest complete step
        on disk (what a relaunch resumes from)."""
        for finish in (self.manager.wait_until_finished, self.manager.close):
            try:
                finish()
            except Exception as e:  # the first error is being reported
                logging.warning("While closing the checkpoint manager: %s", _first_line(e))
        steps = self.intact_steps()
        return steps[-1] if steps else None

    def restore(self, step: int, abstract_state: Any, data_iterator: Any | None) -> Any:
        """Restores ``step`` into shardings of ``abstract_state`` (and the iterator)."""
        self.check_compatible(step, abstract_state)
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = DataIteratorRestore(data_iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        logging.info("Restored checkpoint step %d from %s", step, self.directory)
        return restored["state"]

    def restore_state(self, step: int, abstract_state: Any) -> Any:
        """Restores only the train state of ``step`` (the data iterator starts afresh)."""
        self.check_compatible(step, abstract_state)
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
        logging.info("Initialised from checkpoint step %d in %s", step, self.directory)
        return restored["state"]

    def restore_params(self, step: int, abstract_params: Any,
                       vocabulary: dict[str, Any] | None = None) -> Any:
        """Reads only the parameters of ``step`` (not the optimizer state) into the
        shardings of ``abstract_params`` (e.g. for evaluation), after checking that
        ``vocabulary`` (``tasks.vocabulary_record``), if given, is the one trained on."""
        return self.restore_params_and_state(step, abstract_params, None, vocabulary)[0]

    def restore_params_and_state(self, step: int, abstract_params: Any,
                                 abstract_model_state: Any,
                                 vocabulary: dict[str, Any] | None = None
                                 ) -> tuple[Any, Any]:
        """``(params, model_state)`` of ``step``, without the optimizer state: what an
        evaluation of a model that keeps state (``Model.init_state``: batch-norm
        statistics) needs. ``abstract_model_state`` gives the shapes and shardings (None
        or empty: params only, and ``{}`` back); ``vocabulary`` as ``restore_params``."""
        if vocabulary is not None:
            check_vocabulary(os.fspath(self.directory.parent), vocabulary)
        item = {"params": abstract_params}
        if abstract_model_state is not None and jax.tree.leaves(abstract_model_state):
            item["model_state"] = abstract_model_state
        reader = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(read_only=True, create=False),
            item_handlers={"state": ocp.PyTreeCheckpointHandler()})
        try:
            stored = reader.item_metadata(step)["state"]
            stored = getattr(stored, "tree", stored)  # orbax TreeMetadata -> plain tree
            problems = []
            for name, expected in item.items():
                if name not in stored:
                    problems.append(f"{name}: missing from the checkpoint")
                else:
                    problems += [f"{name}/{p}" for p in shape_mismatches(stored[name],
                                                                       expected)]
            if problems:
                raise CheckpointMismatchError(
                    f"The checkpoint at {self.directory / str(step)} does not fit this "
                    "model:\n  " + "\n  ".join(problems) + "\nUse the model gin files "
                    "the checkpoint was trained with (config.gin in the model dir).")
            restored = reader.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
                item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                partial_restore=True)))
            return restored["state"]["params"], restored["state"].get("model_state", {})
        finally:
            reader.close()

    def try_restore_params_and_state(self, step: int, abstract_params: Any,
                                     abstract_model_state: Any) -> tuple[Any, Any] | None:
        """``restore_params_and_state``, or None with a one-line warning when ``step``
        cannot be read (what a read-only tool such as ``pretrain_lm.evaluate
        --checkpoint=all`` does with a damaged step: skip it, leave it where it is)."""
        reason = describe_damage(self.directory / str(step), ITEMS[:1])
        if reason is None:
            _ignore_late_read_callbacks()
            try:
                return self.restore_params_and_state(step, abstract_params,
                                                     abstract_model_state)
            except CheckpointMismatchError:
                raise
            except Exception as e:  # unreadable: skip it
                reason = _first_line(e)
        logging.warning("Checkpoint step %d in %s cannot be read (%s); skipped.", step,
                        self.directory, reason)
        return None

    def check_compatible(self, step: int, abstract_state: Any) -> None:
        metadata = self.manager.item_metadata(step)
        stored = metadata["state"] if metadata is not None else None
        if stored is None:
            return
        stored = getattr(stored, "tree", stored)  # orbax TreeMetadata -> plain tree
        stored_params = _get(stored, "params")
        expected_params = _get(abstract_state, "params")
        problems = shape_mismatches(stored_params, expected_params)
        if problems:
            shown = "\n  ".join(problems)
            raise CheckpointMismatchError(
                f"The checkpoint at {self.directory / str(step)} does not fit this model:"
                f"\n  {shown}\n"
                "It was written by a model of another size or architecture. Use a fresh "
                "--gin.MODEL_DIR, or the model gin file the checkpoint was trained with "
                "(see config.gin in the model dir).")

    def wait(self) -> None:
        """Blocks until the pending (asynchronous) save is on disk; raises
        :class:`CheckpointSaveError` if it failed."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise CheckpointSaveError(f"Finishing a checkpoint save in {self.directory} "
                                      f"failed: {_first_line(e)}") from e

    def close(self) -> None:
        self.wait()
        self.manager.close()


VOCABULARY_FILE = "vocabulary.json"


def read_params(checkpoint: str | os.PathLike) -> dict:
    """The params of a ``pretrain_lm.train`` checkpoint as numpy arrays (no optimizer).

    ``checkpoint`` is a model dir (its latest step) or a step dir
    (``MODEL_DIR/checkpoints/STEP``). Only the params are read, so neither the optimizer
    nor the device mesh of the run needs to be known.
    """
    path = epath.Path(os.path.abspath(os.fspath(checkpoint)))
    step = None
    if path.name.isdigit() and path.parent.name == "checkpoints":
        step, path = int(path.name), path.parent.parent
    if not (path / "checkpoints").exists():
        raise FileNotFoundError(
            f"No checkpoints under {os.fspath(checkpoint)!r}: give a model dir (holding "
            "checkpoints/) or a step dir (MODEL_DIR/checkpoints/STEP).")
    manager = ocp.CheckpointManager(
        path / "checkpoints", options=ocp.CheckpointManagerOptions(read_only=True, create=False),
        item_handlers={"state": ocp.PyTreeCheckpointHandler()})
    try:
        steps = sorted(manager.all_steps())
        step = manager.latest_step() if step is None else step
        if step is None or step not in steps:
            raise FileNotFoundError(
                f"No checkpoint step {step} in {path / 'checkpoints'}; it holds steps {steps}.")
        stored = manager.item_metadata(step)["state"]
        stored = getattr(stored, "tree", stored)["params"]
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), stored)
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                    abstract)
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(item={"params": abstract},
                                         restore_args={"params": restore_args},
                                         partial_restore=True)))
    finally:
        manager.close()
    return jax.tree.map(np.ascontiguousarray, restored["state"]["params"])


def record_vocabulary(model_dir: str, record: dict[str, Any]) -> None:
    """Writes the run's vocabulary record (``tasks.vocabulary_record``) beside its
    checkpoints, or, when resuming, refuses a vocabulary other than the recorded one."""
    path = epath.Path(model_dir) / VOCABULARY_FILE
    if path.exists():
        check_vocabulary(model_dir, record)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def check_vocabulary(model_dir: str, record: dict[str, Any]) -> None:
    """Raises :class:`CheckpointMismatchError` when the checkpoints in ``model_dir`` were
    trained on another vocabulary than ``record``'s: the same ids would mean other pieces,
    so translations, samples and scores would be garbage without any shape error. Also
    when they read the documents in another ``direction`` (``forward`` / ``backward``,
    ``DataConfig.vocabulary_record``; a record without one is ``forward``, as every run
    before backward models was): a backward LM's weights are no forward model's."""
    path = epath.Path(model_dir) / VOCABULARY_FILE
    if not path.exists():
        logging.info("%s has no %s; the vocabulary cannot be checked.", model_dir,
                     VOCABULARY_FILE)
        return
    stored = json.loads(path.read_text())
    differs = [k for k in ("vocab_size", "sha256")
               if stored.get(k) is not None and record.get(k) is not None
               and stored[k] != record[k]]
    if differs:
        raise CheckpointMismatchError(
            f"The checkpoints in {model_dir} were trained with the vocabulary of task "
            f"{stored.get('task')!r} (size {stored.get('vocab_size')}, sha256 "
            f"{str(stored.get('sha256'))[:12]}...), but task {record.get('task')!r} "
            f"uses another one (size {record.get('vocab_size')}, sha256 "
            f"{str(record.get('sha256'))[:12]}...). Use the task the model was trained on "
            f"(MIXTURE_OR_TASK_NAME in {model_dir}/config.gin) or one with the same "
            "vocabulary.")
    have, want = (r.get("direction", "forward") for r in (stored, record))
    if have != want:
        raise CheckpointMismatchError(
            f"The checkpoints in {model_dir} were trained on documents read {have} (task "
            f"{stored.get('task')!r}), but this run reads them {want}: a {want} model must "
            f"start from (or be evaluated as) a {want} run. Point at a {want} run's model dir, "
            f"or read {have}: DataConfig.reverse = {have == 'backward'} (ULMFiT gin files: "
            f"--gin.BACKWARD={have == 'backward'}; a backward run is evaluated with "
            "python -m pretrain_lm.tools.ensemble, which reads each run's own direction).")


def _ignore_late_read_callbacks() -> None:
    """When a read of a damaged step fails, tensorstore still completes the step's other
    reads and hands each result to orbax's event loop, which the failure has closed:
    each prints a ``RuntimeError: Event loop is closed`` traceback as an unraisable
    exception (hundreds for one checkpoint). Those reads belong to a step being set
    aside, so only that error, raised by asyncio's closed-loop check, is kept out of the
    log; every other unraisable exception prints as before."""
    previous = sys.unraisablehook
    if getattr(previous, "_ignores_closed_loop", False):
        return

    def hook(unraisable: Any) -> None:
        value = unraisable.exc_value
        frames = traceback.extract_tb(unraisable.exc_traceback)
        if (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"
                and frames and frames[-1].name == "_check_closed"):
            return
        previous(unraisable)

    hook._ignores_closed_loop = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _sync_processes(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _get(tree: Any, name: str) -> Any:
    if isinstance(tree, dict):
        return tree[name]
    return getattr(tree, name)


def restore_from(checkpoint: str, abstract_state: Any) -> Any:
    """The train state of ``checkpoint``: a model dir (its latest step) or a step dir.

    E.g. ``gs://bucket/bert_base`` or ``/runs/bert_base/checkpoints/900000``.
    """
    path = epath.Path(checkpoint)
    step = None
    if path.name.isdigit() and path.parent.name == "checkpoints":
        step, path = int(path.name), path.parent.parent
    if not (path / "checkpoints").exists():
        raise FileNotFoundError(
            f"No checkpoints under {checkpoint!r}: give a model dir (holding checkpoints/) "
            "or a step dir (model_dir/checkpoints/STEP).")
    source = Checkpointer(os.fspath(path), read_only=True, async_save=False)
    step = source.latest_step() if step is None else step
    if step is None or step not in source.manager.all_steps():
        raise FileNotFoundError(f"No checkpoint step {step} in {source.directory}; it holds "
                                f"steps {sorted(source.manager.all_steps())}.")
    try:
        return source.restore_state(step, abstract_state)
    finally:
        source.close()
