"""Finding a registered seqio task or mixture by name, and what a model may know of it.

This is the bottom of ``tasks/``: the family modules (``finetuning``, ``tagging``,
``translation`` ...) look their tasks up here and never import the registry of named
tasks (``tasks/registry.py``), which imports them. The named tasks are registered on the
first lookup that misses, by the hook the ``tasks`` package installs
(``on_first_miss``), so a gin file only names a task.

``task_info(name)`` is the plain description a model's ``check_task`` receives (the
models do not import ``tasks/``): the feature vocabularies' sizes and, where the task has
them, its fine-tuning head and labels or its tag names.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

_MISS_HOOKS: list[Callable[[], None]] = []


def on_first_miss(hook: Callable[[], None]) -> None:
    """Runs ``hook`` (once) the first time a lookup misses, then looks again."""
    _MISS_HOOKS.append(hook)


def _lookup(name: str) -> Any:
    import seqio

    return seqio.get_mixture_or_task(name)


def get_provider(task_or_mixture: str) -> Any:
    """The registered ``seqio.Task`` or ``seqio.Mixture`` (one clear error otherwise)."""
    import seqio

    try:
        return _lookup(task_or_mixture)
    except ValueError:
        pass
    while _MISS_HOOKS:
        _run_first_hook()
        try:
            return _lookup(task_or_mixture)
        except ValueError:
            continue
    known = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
    raise ValueError(
        f"No seqio task or mixture named {task_or_mixture!r} is registered. Register it "
        "first, e.g. tasks.pretraining.register_text_corpus_task(name, corpus_path, "
        "vocab) or tasks.pretraining.register_bert_tasks(vocab_file, ...). Registered: "
        f"{[k for k in known if k.startswith('bert')] or known[:20]}") from None


def get_vocabulary(task_or_mixture: str) -> Any:
    """The input vocabulary of a registered task or mixture (the model needs vocab_size):
    that of ``token_ids`` (word-level tasks), else ``input_ids`` (BERT), else
    ``targets``."""
    features = get_provider(task_or_mixture).output_features
    for key in ("token_ids", "input_ids", "targets"):
        if key in features and not (key == "token_ids" and "targets" in features):
            return features[key].vocabulary
    raise ValueError(f"Task {task_or_mixture!r} has none of the features token_ids, "
                     f"input_ids, targets: {sorted(features)}.")


def _run_first_hook() -> None:
    _MISS_HOOKS[0]()  # a hook that raises stays, and runs again on the next miss
    _MISS_HOOKS.pop(0)


def ensure_registered() -> None:
    """Registers the named tasks now (what a lookup that misses would do)."""
    while _MISS_HOOKS:
        _run_first_hook()


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a model may check about a task's examples (``Model.check_task``).

    Attributes:
      name: the task or mixture name.
      features: the task's seqio output features; ``vocab_sizes`` reads their
        vocabularies on first use (a word vocabulary may need the task's data).
      head: the fine-tuning head (``classification``, ``regression``, ``span``,
        ``token``) or None for other tasks.
      label_names: the fine-tuning labels (or a tagging task's tags, for ``token``).
      tag_names: a word-level tagging task's tags (tag id i is ``tag_names[i]``), else None.
    """

    name: str
    features: Mapping[str, Any] = dataclasses.field(repr=False)
    head: str | None = None
    label_names: tuple[str, ...] = ()
    tag_names: tuple[str, ...] | None = None

    @functools.cached_property
    def vocab_sizes(self) -> Mapping[str, int]:
        """Size of each output feature's vocabulary (``inputs``, ``targets``,
        ``input_ids``, ``token_ids`` ...)."""
        return {k: int(f.vocabulary.vocab_size) for k, f in self.features.items()
                if f.vocabulary is not None and f.vocabulary.vocab_size is not None}

    @property
    def num_labels(self) -> int:
        """Outputs of the head: the labels, or 1 (regression, span)."""
        return max(len(self.label_names), 1)
