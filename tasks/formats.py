"""Input formats: how a task's examples become a model's fixed-shape batches.

A model names the format it reads (``Model.input_format``); ``tasks.get_dataset`` reads
the task, converts its examples and batches them in that format, or refuses a task whose
examples are of another kind, naming both. Each family module defines its format beside
its tasks; ``tasks.input_formats()`` lists them:

==================  =======================================  ============================
format              examples                                 lengths (``feature_lengths``)
==================  =======================================  ============================
bptt_stream         decoder-only LM text as BPTT streams     ``targets_length``, ``bptt``
word_level          word-level biLM / tagging sentences      ``targets_length``
seq2seq             translation pairs (seqio EncDec)         ``inputs_length``,
                                                             ``targets_length``
decoder             decoder-only LM examples (seqio)         ``targets_length``
finetuning          a fine-tuning head's examples            ``max_seq_length``
bert_pretraining    masked-LM + next-sentence pairs          ``max_seq_length``,
                                                             ``max_predictions_per_seq``
==================  =======================================  ============================

A format is one class with three parts: ``accepts`` (whether a task's examples are of
its kind), ``required_lengths`` and ``dataset`` (read, convert, batch). What every
pipeline shares is here: the read with sharding and seeds (``Request.read``) and the
last-batch accounting (``tasks.batching``).
"""

from __future__ import annotations

import abc
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

if typing.TYPE_CHECKING:
    import tensorflow as tf


class InputFormatError(ValueError):
    """A task and an input format (or its lengths) that do not fit; names the fix."""


@dataclasses.dataclass(frozen=True)
class Request:
    """One ``tasks.get_dataset`` call: which task, split, shard and shapes.

    ``lengths`` holds the format's ``feature_lengths`` (``max_seq_length``,
    ``targets_length`` ...). ``batch_size`` is per process.
    """

    task: str
    provider: Any
    split: str
    lengths: Mapping[str, int]
    batch_size: int
    seed: int
    shuffle: bool
    shard_index: int = 0
    num_shards: int = 1
    num_epochs: int | None = None
    reverse: bool = False
    pack: bool = False

    def read(self, sequence_length: Mapping[str, int] | None) -> tf.data.Dataset:
        """The task's preprocessed examples of this shard (seqio ``get_dataset``)."""
        import seqio

        kwargs = dict(
            sequence_length=sequence_length, split=self.split, use_cached=False,
            shuffle=self.shuffle, seed=self.seed, num_epochs=self.num_epochs,
            shard_info=(seqio.ShardInfo(self.shard_index, self.num_shards)
                        if self.num_shards > 1 else None),
            try_in_mem_cache=False)
        if isinstance(self.provider, seqio.Mixture):
            kwargs["log_mixing_proportions"] = False
        return self.provider.get_dataset(**kwargs)


class InputFormat(abc.ABC):
    """How examples of one kind of task become batches (see the module docstring)."""

    name: str
    required_lengths: tuple[str, ...]
    example_kind: str  # what ``accepts`` looks for, for error messages
    reads_backward: bool = False  # supports ``reverse=True``
    packs: bool = False  # supports ``pack=True`` (several examples a row)

    @abc.abstractmethod
    def accepts(self, provider: Any) -> bool:
        """Whether the task's (or mixture's) examples are of this format's kind."""

    @abc.abstractmethod
    def dataset(self, request: Request) -> tf.data.Dataset:
        """Fixed-shape batches of ``request.batch_size`` rows."""

    def check(self, request: Request) -> None:
        """Raises ``InputFormatError`` naming the fix if the request does not fit."""
        if not self.accepts(request.provider):
            raise InputFormatError(
                f"Task {request.task!r} does not give {self.example_kind}, which the "
                f"{self.name!r} input format needs; choose a task of that kind or a model "
                "that reads this task's examples.")
        missing = [k for k in self.required_lengths if request.lengths.get(k) is None]
        if missing:
            wanted = ", ".join(f"'{k}': ..." for k in self.required_lengths)
            raise InputFormatError(
                f"Task {request.task!r} read as {self.name!r} needs the lengths {missing} "
                f"(DataConfig.feature_lengths = {{{wanted}}}).")
        unused = sorted(k for k, v in request.lengths.items()
                        if v is not None and k not in self.required_lengths)
        if unused:
            raise InputFormatError(
                f"Task {request.task!r} read as {self.name!r} takes the lengths "
                f"{list(self.required_lengths)}, not {unused}: remove them from "
                "DataConfig.feature_lengths (or choose the format that reads them).")
        if request.pack and not self.packs:
            raise InputFormatError(
                f"pack=True (several examples a row) is offered by the 'seq2seq', "
                f"'decoder' and 'finetuning' input formats; {request.task!r} read as "
                f"{self.name!r} is one example a row: set DataConfig.pack = False.")
        if request.reverse and not self.reads_backward:
            raise InputFormatError(
                f"reverse=True (backward reading) needs BPTT streams (bptt=...) or a "
                f"classification fine-tuning task; {request.task!r} read as {self.name!r} "
                "is neither: set DataConfig.reverse = False.")
