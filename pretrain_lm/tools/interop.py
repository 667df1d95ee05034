r"""BERT weights in and out: HuggingFace, original TensorFlow (google-research/bert), ours.

Three formats of the same network (see ``models/bert.py``):

* **HuggingFace**: ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``) +
  ``vocab.txt`` + ``tokenizer_config.json``; tensor names of ``BertForPreTraining``
  (``bert.*``, ``cls.*``) or of ``BertModel`` (no prefix); weights ``[out, in]``.
* **TensorFlow 1** (google-research/bert ``modeling.py``): ``bert_config.json`` +
  ``bert_model.ckpt.{index,data-*}`` + ``vocab.txt``; variables
  ``bert/encoder/layer_0/attention/self/query/kernel`` ... with kernels ``[in, out]``.
* **ours**: the Flax params tree ``{"bert": ..., "mlm_head": ..., "nsp_head": ...}`` of
  ``BertForPreTraining`` (or ``{"bert": ...}`` alone), attention kernels
  ``[embed, heads, head_dim]``; on disk an orbax train state (``pretrain_lm/checkpoints.py``).

Everything converts through HF state-dict names (``{name: numpy array}``). Every tensor of
the source must be used and every parameter of the target filled, with the shapes the
config implies: anything left over or missing is reported in one error, never ignored.
This module imports neither torch nor transformers (torch only, lazily, to read a
``pytorch_model.bin``; TensorFlow and orbax only inside the functions that need them).

Command line::

    python -m pretrain_lm.tools.interop --from=hf --to=tf --input=DIR --output=DIR
    python -m pretrain_lm.tools.interop --from=tf --to=hf --input=DIR --output=DIR
    python -m pretrain_lm.tools.interop --from=ours --to=hf --input=MODEL_DIR --output=DIR \
        [--gin_file=...]   # default: MODEL_DIR/config.gin (written by pretrain_lm.train)

Activation names: HF ``"gelu"`` is the exact (erf) GELU, ours ``"gelu"`` as well; the TF
reference ``modeling.py`` computes ``"gelu"`` with the tanh approximation, which is ours
``"gelu_tanh"`` and HF ``"gelu_new"``. A TF export records our exact activation in the extra
``bert_config.json`` key ``pretrain_lm_hidden_act`` (TF code ignores unknown keys), so
ours -> TF -> ours is exact; a genuine Google checkpoint (no such key) loads as
``gelu_tanh``, as ``modeling.py`` ran it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
import sys
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from models.bert import BertConfig
from models.layers import ACTIVATIONS
from pretrain_lm import checkpoints
from pretrain_lm.checkpoints import flatten_params

PathLike = str | os.PathLike

# HF names that carry no information of their own (tied copies, buffers).
_IGNORED_HF_KEYS = (
    "cls.predictions.decoder.weight",  # tied to the word embeddings
    "cls.predictions.decoder.bias",  # tied to cls.predictions.bias
    "bert.embeddings.position_ids",
    "bert.embeddings.token_type_ids",
)
# Our top-level param subtrees and the HF name prefix of each head.
_HEAD_PREFIXES = {"mlm_head": "cls.predictions.", "nsp_head": "cls.seq_relationship."}
_HEADS = tuple(_HEAD_PREFIXES)

# Activation names: HF -> ours and ours -> HF (only exact equivalents).
_HF_TO_OUR_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                  "gelu_fast": "gelu_tanh", "relu": "relu"}
_OUR_TO_HF_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
# google-research/bert modeling.py: "gelu" is the tanh approximation.
_TF_TO_OUR_ACT = {"gelu": "gelu_tanh", "relu": "relu"}
_OUR_TO_TF_ACT = {"gelu_tanh": "gelu", "gelu": "gelu", "relu": "relu"}
_TF_EXACT_ACT_KEY = "pretrain_lm_hidden_act"
# modeling.py's layer_norm (tf.contrib.layers.layer_norm) has a fixed epsilon.
_TF_LAYER_NORM_EPS = 1e-12

HF_CONFIG, HF_SAFETENSORS, HF_SAFETENSORS_INDEX, HF_TORCH_BIN = (
    "config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TF_CONFIG, TF_CHECKPOINT = "bert_config.json", "bert_model.ckpt"
VOCAB_FILE, TOKENIZER_CONFIG = "vocab.txt", "tokenizer_config.json"
# Optimizer state in google-research/bert pre-training checkpoints (not weights).
_TF_OPTIMIZER_SUFFIXES = ("/adam_m", "/adam_v")
_TF_OPTIMIZER_NAMES = ("global_step",)


class ConversionError(ValueError):
    """Raised when a foreign checkpoint does not fit the model config."""


@dataclasses.dataclass(frozen=True, eq=False)
class PretrainedBert:
    """A loaded checkpoint: config, params tree, and the vocabulary that goes with it.

    ``params`` always has ``"bert"`` (``BertEncoder``'s params) and has ``"mlm_head"`` /
    ``"nsp_head"`` when the checkpoint holds those heads (``BertForPreTraining``'s tree).
    ``vocab_file`` is None when the checkpoint directory has no ``vocab.txt``;
    ``lower_case`` is None when the checkpoint does not say.
    """

    config: BertConfig
    params: dict
    vocab_file: str | None = None
    lower_case: bool | None = None

    def vocabulary(self, lower_case: bool | None = None) -> Any:
        """The checkpoint's ``tasks.vocab.WordPieceVocabulary`` (imports TensorFlow)."""
        from tasks.vocab import WordPieceVocabulary

        if self.vocab_file is None:
            raise FileNotFoundError("This checkpoint came without a vocab.txt.")
        case = lower_case if lower_case is not None else self.lower_case
        if case is None:
            raise ValueError("The checkpoint does not say whether its vocabulary is lower-cased;"
                             " pass lower_case=True (uncased) or False (cased).")
        return WordPieceVocabulary(self.vocab_file, lower_case=case)


# ---------------------------------------------------------------------------------------
# Configs.


def _require(config: Mapping[str, Any], key: str, source: str) -> Any:
    if key not in config:
        raise ConversionError(f"{source} has no {key!r}; a BERT config needs it.")
    return config[key]


def bert_config_from_hf(config: Mapping[str, Any], *, source: str = "config.json"
                        ) -> BertConfig:
    """Our ``BertConfig`` from a HuggingFace ``config.json`` (as a dict).

    The size fields (vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
    intermediate_size) are required; the others take HF's ``BertConfig`` defaults.
    Raises ``ConversionError`` naming the field for what our BERT cannot represent:
    another ``model_type``, relative position embeddings, an activation we lack, a decoder
    with cross-attention.
    """
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise ConversionError(
            f"{source}: model_type={model_type!r}; only 'bert' checkpoints convert (other "
            "architectures name and shape their weights differently).")
    position = config.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise ConversionError(
            f"{source}: position_embedding_type={position!r} is not supported; our BERT has "
            "only learned absolute position embeddings ('absolute').")
    for flag in ("is_decoder", "add_cross_attention"):
        if config.get(flag):
            raise ConversionError(f"{source}: {flag}={config[flag]!r} is not supported; our "
                                  "BERT is an encoder without cross-attention.")
    hf_act = config.get("hidden_act", "gelu")
    if not isinstance(hf_act, str) or hf_act not in _HF_TO_OUR_ACT:
        raise ConversionError(
            f"{source}: hidden_act={hf_act!r} has no exact equivalent in models/layers.py "
            f"ACTIVATIONS {sorted(ACTIVATIONS)}; convertible: {sorted(_HF_TO_OUR_ACT)}.")
    hidden = int(_require(config, "hidden_size", source))
    heads = int(_require(config, "num_attention_heads", source))
    if hidden % heads:
        raise ConversionError(f"{source}: hidden_size={hidden} is not divisible by "
                              f"num_attention_heads={heads}.")
    return BertConfig(
        vocab_size=int(_require(config, "vocab_size", source)),
        hidden_size=hidden,
        num_layers=int(_require(config, "num_hidden_layers", source)),
        num_heads=heads,
        intermediate_size=int(_require(config, "intermediate_size", source)),
        hidden_act=_HF_TO_OUR_ACT[hf_act],
        hidden_dropout_rate=float(config.get("hidden_dropout_prob", 0.1)),
        attention_dropout_rate=float(config.get("attention_probs_dropout_prob", 0.1)),
        max_position_embeddings=int(config.get("max_position_embeddings", 512)),
        type_vocab_size=int(config.get("type_vocab_size", 2)),
        initializer_range=float(config.get("initializer_range", 0.02)),
        layer_norm_epsilon=float(config.get("layer_norm_eps", 1e-12)),
    )


def bert_config_to_hf(config: BertConfig) -> dict[str, Any]:
    """A HuggingFace ``config.json`` dict (``model_type`` "bert") for our ``BertConfig``."""
    if config.hidden_act not in _OUR_TO_HF_ACT:
        raise ConversionError(f"hidden_act={config.hidden_act!r} has no HuggingFace equivalent; "
                              f"convertible: {sorted(_OUR_TO_HF_ACT)}.")
    return {
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": _OUR_TO_HF_ACT[config.hidden_act],
        "hidden_dropout_prob": config.hidden_dropout_rate,
        "attention_probs_dropout_prob": config.attention_dropout_rate,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_epsilon,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
    }


def _bert_config_from_tf(config: Mapping[str, Any], source: str) -> BertConfig:
    """``bert_config.json`` of google-research/bert (HF's field names, TF's activations)."""
    exact = config.get(_TF_EXACT_ACT_KEY)
    if exact is not None:
        if exact not in ACTIVATIONS:
            raise ConversionError(f"{source}: {_TF_EXACT_ACT_KEY}={exact!r} is not one of "
                                  f"{sorted(ACTIVATIONS)}.")
        act = exact
    else:
        tf_act = config.get("hidden_act", "gelu")
        if tf_act not in _TF_TO_OUR_ACT:
            raise ConversionError(f"{source}: hidden_act={tf_act!r} is not supported; "
                                  f"convertible: {sorted(_TF_TO_OUR_ACT)}.")
        act = _TF_TO_OUR_ACT[tf_act]
    hf_like = {k: v for k, v in config.items() if k not in ("hidden_act", _TF_EXACT_ACT_KEY)}
    return dataclasses.replace(bert_config_from_hf(hf_like, source=source), hidden_act=act)


def _bert_config_to_tf(config: BertConfig) -> dict[str, Any]:
    if config.hidden_act not in _OUR_TO_TF_ACT:
        raise ConversionError(f"hidden_act={config.hidden_act!r} has no equivalent in "
                              f"google-research/bert; convertible: {sorted(_OUR_TO_TF_ACT)}.")
    if config.hidden_act == "gelu":
        warnings.warn(
            "TF export: the model uses the exact (erf) GELU; google-research/bert's "
            "modeling.py computes hidden_act='gelu' with the tanh approximation (outputs "
            "differ slightly). Our loader reads the exact activation back from "
            f"{_TF_EXACT_ACT_KEY!r}.", stacklevel=3)
    if config.layer_norm_epsilon != _TF_LAYER_NORM_EPS:
        warnings.warn(
            f"TF export: layer_norm_epsilon={config.layer_norm_epsilon} but modeling.py always "
            f"uses {_TF_LAYER_NORM_EPS}; recorded as 'layer_norm_eps' for our loader.",
            stacklevel=3)
    hf = bert_config_to_hf(config)
    out = {k: hf[k] for k in (
        "attention_probs_dropout_prob", "hidden_dropout_prob", "hidden_size",
        "initializer_range", "intermediate_size", "max_position_embeddings",
        "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size",
        "layer_norm_eps")}
    out["hidden_act"] = _OUR_TO_TF_ACT[config.hidden_act]
    out[_TF_EXACT_ACT_KEY] = config.hidden_act
    return out


# ---------------------------------------------------------------------------------------
# Params <-> HF state dict.


@functools.lru_cache(maxsize=8)
def _expected_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """``{"bert/layer_0/attention/query/kernel": shape, ...}`` of BertForPreTraining."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from models.bert import BertForPreTraining

    ids = jnp.zeros((1, 1), jnp.int32)
    abstract = jax.eval_shape(
        lambda: BertForPreTraining(config).init(jax.random.key(0), ids, ids, ids, ids,
                                                deterministic=True))
    return {k: tuple(v.shape) for k, v in flatten_params(nn.meta.unbox(abstract["params"])).items()}


def _check_params(params: Mapping[str, Any], config: BertConfig, what: str) -> None:
    """ConversionError unless ``params`` is BertForPreTraining's tree (or part) for ``config``."""
    unknown = sorted(set(params) - {"bert", *_HEADS})
    if "bert" not in params or unknown:
        raise ConversionError(
            f"{what}: expected a params tree with 'bert' (and optionally {list(_HEADS)}), got "
            f"top-level keys {sorted(params)}.")
    want = {k: v for k, v in _expected_shapes(config).items() if k.split("/")[0] in params}
    have = {k: tuple(np.shape(v)) for k, v in flatten_params(params).items()}
    problems = [f"{k}: {have[k]} but the config implies {want[k]}"
                for k in sorted(set(have) & set(want)) if have[k] != want[k]]
    problems += [f"{k}: missing" for k in sorted(set(want) - set(have))]
    problems += [f"{k}: not a parameter of this BERT" for k in sorted(set(have) - set(want))]
    if problems:
        shown = "\n  ".join(problems[:12]) + ("\n  ..." if len(problems) > 12 else "")
        raise ConversionError(
            f"{what} do not fit the config (vocab_size={config.vocab_size}, hidden_size="
            f"{config.hidden_size}, num_layers={config.num_layers}, intermediate_size="
            f"{config.intermediate_size}, max_position_embeddings="
            f"{config.max_position_embeddings}, type_vocab_size={config.type_vocab_size}):"
            f"\n  {shown}\nCheck that the config belongs to these weights.")


def _heads(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """HF ``[out, in]`` q/k/v weight -> our ``[embed, heads, head_dim]`` kernel."""
    hidden = weight.shape[1]
    return weight.T.reshape(hidden, num_heads, hidden // num_heads)


def _ln(state: Mapping[str, np.ndarray], prefix: str) -> dict:
    return {"scale": state[f"{prefix}.weight"], "bias": state[f"{prefix}.bias"]}


def _dense(state: Mapping[str, np.ndarray], prefix: str) -> dict:
    return {"kernel": state[f"{prefix}.weight"].T, "bias": state[f"{prefix}.bias"]}


def _as_float32(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind == "f" or x.dtype.name == "bfloat16":
        return x.astype(np.float32, copy=False)
    return x


def _normalize_hf_names(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``bert.``-prefixed names; old ``LayerNorm.gamma/beta`` spelled ``weight/bias``."""
    out = {}
    for key, value in state.items():
        name = key if key.startswith(("bert.", "cls.")) else f"bert.{key}"
        name = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))
        out[name] = _as_float32(value)
    return out


def _params_from_hf(state: Mapping[str, np.ndarray], config: BertConfig,
                    heads: Collection[str]) -> tuple[dict, list[str]]:
    """Params tree with ``"bert"`` and the ``heads`` asked for; and the unused HF names."""
    state = _normalize_hf_names(state)
    used: set[str] = set()

    class Tracking(dict):
        def __getitem__(self, key: str) -> np.ndarray:
            if key not in state:
                if key.startswith("bert.pooler.") and not any(
                        k.startswith("bert.pooler.") for k in state):
                    raise ConversionError(
                        f"The checkpoint has no pooler (no tensor {key!r}): it was saved from "
                        "a model built without one (add_pooling_layer=False, e.g. "
                        "BertForMaskedLM). Our BertEncoder always has the [CLS] pooler and "
                        "this converter fills no parameter with made-up values; add one in "
                        "transformers (BertModel.from_pretrained(dir) initialises it) and "
                        "save_pretrained again.")
                raise ConversionError(
                    f"HuggingFace checkpoint has no tensor {key!r}; is it a BERT checkpoint "
                    f"with {config.num_layers} layers?")
            used.add(key)
            return state[key]

    s = Tracking()
    heads_n = config.num_heads
    encoder: dict = {
        "embeddings": {
            "word_embeddings": {"embedding": s["bert.embeddings.word_embeddings.weight"]},
            "position_embeddings": {
                "embedding": s["bert.embeddings.position_embeddings.weight"]},
            "token_type_embeddings": {
                "embedding": s["bert.embeddings.token_type_embeddings.weight"]},
            "layer_norm": _ln(s, "bert.embeddings.LayerNorm"),
        },
        "pooler": _dense(s, "bert.pooler.dense"),
    }
    for i in range(config.num_layers):
        p = f"bert.encoder.layer.{i}"
        attention = {
            name: {"kernel": _heads(s[f"{p}.attention.self.{name}.weight"], heads_n),
                   "bias": s[f"{p}.attention.self.{name}.bias"].reshape(heads_n, -1)}
            for name in ("query", "key", "value")
        }
        out_w = s[f"{p}.attention.output.dense.weight"]  # [hidden_out, hidden_in]
        attention["out"] = {
            "kernel": out_w.T.reshape(heads_n, -1, out_w.shape[0]),
            "bias": s[f"{p}.attention.output.dense.bias"],
        }
        encoder[f"layer_{i}"] = {
            "attention": attention,
            "attention_sublayer": {"layer_norm": _ln(s, f"{p}.attention.output.LayerNorm")},
            "mlp": {"intermediate": _dense(s, f"{p}.intermediate.dense"),
                    "output": _dense(s, f"{p}.output.dense")},
            "mlp_sublayer": {"layer_norm": _ln(s, f"{p}.output.LayerNorm")},
        }
    params: dict = {"bert": encoder}
    if "mlm_head" in heads:
        params["mlm_head"] = {
            "transform": _dense(s, "cls.predictions.transform.dense"),
            "layer_norm": _ln(s, "cls.predictions.transform.LayerNorm"),
            "output_bias": s["cls.predictions.bias"],
        }
    if "nsp_head" in heads:
        params["nsp_head"] = _dense(s, "cls.seq_relationship")
    skipped = tuple(_HEAD_PREFIXES[h] for h in _HEADS if h not in heads)
    unused = sorted(k for k in state if k not in used and k not in _IGNORED_HF_KEYS
                    and not (skipped and k.startswith(skipped)))
    params = _to_numpy_tree(params)
    return params, unused


def _to_numpy_tree(tree: Mapping[str, Any]) -> dict:
    return {k: _to_numpy_tree(v) if isinstance(v, Mapping) else np.ascontiguousarray(v)
            for k, v in tree.items()}


def _unused_error(unused: Sequence[str], config: BertConfig, what: str, fix: str
                  ) -> ConversionError:
    return ConversionError(
        f"{len(unused)} {what} tensors have no place in a {config.num_layers}-layer "
        f"BERT: {list(unused[:10])}{' ...' if len(unused) > 10 else ''}. {fix}")


def bert_params_from_hf(state: Mapping[str, np.ndarray], config: BertConfig,
                        *, with_pretraining_heads: bool = True) -> dict:
    """Converts a HuggingFace ``BertForPreTraining``/``BertModel`` state dict to our params.

    Keys may carry the ``bert.`` prefix (``BertForPreTraining``) or not (``BertModel``).
    Returns the params tree of ``BertForPreTraining`` (or of ``BertEncoder`` under
    ``"bert"`` when ``with_pretraining_heads`` is False; ``cls.*`` tensors are then
    skipped). Every other tensor must be used, and every shape must fit ``config``.
    """
    heads = _HEADS if with_pretraining_heads else ()
    params, unused = _params_from_hf(state, config, heads)
    if unused:
        raise _unused_error(unused, config, "HuggingFace",
                            "Check that the model config (num_layers, heads) matches the "
                            "checkpoint's config.json.")
    _check_params(params, config, "The converted HuggingFace weights")
    return params


def _unbox(params: Mapping[str, Any]) -> dict:
    """Plain arrays from a params tree that may hold flax partitioning boxes."""
    import flax.linen as nn

    return nn.meta.unbox(dict(params))


def hf_state_from_bert_params(params: Mapping[str, Any], config: BertConfig
                              ) -> dict[str, np.ndarray]:
    """The exact inverse of ``bert_params_from_hf``: our params -> HF state dict (numpy).

    A tree with heads gives ``BertForPreTraining`` names (``bert.*``, ``cls.*``, including
    the tied ``cls.predictions.decoder.weight``/``.bias`` that HF loads); ``{"bert": ...}``
    alone gives ``BertModel`` names (no prefix).
    """
    params = _unbox(params)
    _check_params(params, config, "The params")
    flat = {k: np.asarray(v) for k, v in flatten_params(params).items()}
    enc = "bert/"
    hidden = config.hidden_size
    state: dict[str, np.ndarray] = {}

    def dense(ours: str, hf: str) -> None:
        state[f"{hf}.weight"] = flat[f"{ours}/kernel"].T
        state[f"{hf}.bias"] = flat[f"{ours}/bias"]

    def ln(ours: str, hf: str) -> None:
        state[f"{hf}.weight"] = flat[f"{ours}/scale"]
        state[f"{hf}.bias"] = flat[f"{ours}/bias"]

    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        state[f"bert.embeddings.{name}.weight"] = flat[f"{enc}embeddings/{name}/embedding"]
    ln(f"{enc}embeddings/layer_norm", "bert.embeddings.LayerNorm")
    for i in range(config.num_layers):
        ours, hf = f"{enc}layer_{i}", f"bert.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            kernel = flat[f"{ours}/attention/{name}/kernel"]  # [embed, heads, head_dim]
            state[f"{hf}.attention.self.{name}.weight"] = kernel.reshape(hidden, -1).T
            state[f"{hf}.attention.self.{name}.bias"] = \
                flat[f"{ours}/attention/{name}/bias"].reshape(-1)
        out = flat[f"{ours}/attention/out/kernel"]  # [heads, head_dim, embed]
        state[f"{hf}.attention.output.dense.weight"] = out.reshape(-1, hidden).T
        state[f"{hf}.attention.output.dense.bias"] = flat[f"{ours}/attention/out/bias"]
        ln(f"{ours}/attention_sublayer/layer_norm", f"{hf}.attention.output.LayerNorm")
        dense(f"{ours}/mlp/intermediate", f"{hf}.intermediate.dense")
        dense(f"{ours}/mlp/output", f"{hf}.output.dense")
        ln(f"{ours}/mlp_sublayer/layer_norm", f"{hf}.output.LayerNorm")
    dense(f"{enc}pooler", "bert.pooler.dense")
    if "mlm_head" in params:
        dense("mlm_head/transform", "cls.predictions.transform.dense")
        ln("mlm_head/layer_norm", "cls.predictions.transform.LayerNorm")
        state["cls.predictions.bias"] = flat["mlm_head/output_bias"]
        state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
        state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    if "nsp_head" in params:
        dense("nsp_head", "cls.seq_relationship")
    if not any(h in params for h in _HEADS):  # BertModel names
        state = {k.removeprefix("bert."): v for k, v in state.items()}
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


def _heads_in_hf_state(names: Collection[str]) -> tuple[str, ...]:
    return tuple(h for h in _HEADS if any(n.startswith(_HEAD_PREFIXES[h]) for n in names))


# ---------------------------------------------------------------------------------------
# Files.


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ConversionError(f"{path}: not valid JSON ({e}).") from e


def _missing(directory: str, kind: str, looked_for: Sequence[str]) -> FileNotFoundError:
    present = sorted(os.listdir(directory)) if os.path.isdir(directory) else None
    where = (f"it holds {present}" if present is not None else "it is not a directory")
    return FileNotFoundError(
        f"{directory!r} is not a {kind} checkpoint: looked for {list(looked_for)}; {where}.")


def _vocab_size_of(vocab_file: str) -> int:
    with open(vocab_file, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # trailing newline
    return len(lines)


def _check_vocab(vocab_file: str, config: BertConfig, config_file: str) -> None:
    n = _vocab_size_of(vocab_file)
    if n != config.vocab_size:
        raise ConversionError(
            f"{vocab_file} has {n} tokens (lines) but {config_file} says vocab_size="
            f"{config.vocab_size}: token ids would not match the embedding rows. Use the "
            f"vocab.txt this checkpoint was trained with (one token per line, {config.vocab_size}"
            f" lines), or correct vocab_size in {config_file} if the embedding matrix really "
            f"has {n} rows.")


def _lower_case_from(directory: str) -> bool | None:
    path = os.path.join(directory, TOKENIZER_CONFIG)
    if os.path.exists(path):
        value = _read_json(path).get("do_lower_case")
        return None if value is None else bool(value)
    return None


def _read_hf_weights(directory: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    single = os.path.join(directory, HF_SAFETENSORS)
    index = os.path.join(directory, HF_SAFETENSORS_INDEX)
    torch_bin = os.path.join(directory, HF_TORCH_BIN)
    if os.path.exists(single):
        return dict(load_file(single))
    if os.path.exists(index):
        state: dict[str, np.ndarray] = {}
        for shard in sorted(set(_read_json(index)["weight_map"].values())):
            state.update(load_file(os.path.join(directory, shard)))
        return state
    if os.path.exists(torch_bin):
        try:
            import torch
        except ImportError as e:
            raise ImportError(
                f"{torch_bin} is a PyTorch pickle and reading it needs torch (pip install "
                "torch); or convert the checkpoint to model.safetensors.") from e
        loaded = torch.load(torch_bin, map_location="cpu", weights_only=True)
        return {k: (v.float() if v.is_floating_point() else v).numpy()
                for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    raise _missing(directory, "HuggingFace",
                   [HF_SAFETENSORS, HF_SAFETENSORS_INDEX, HF_TORCH_BIN])


def load_hf_checkpoint(directory: PathLike) -> PretrainedBert:
    """Loads a HuggingFace BERT directory (``save_pretrained`` output) into our params.

    Reads ``config.json`` and ``model.safetensors`` (or its sharded index, or
    ``pytorch_model.bin``), ``vocab.txt`` if present (its line count must equal
    ``vocab_size``) and ``do_lower_case`` from ``tokenizer_config.json`` if present. The
    params have ``"mlm_head"``/``"nsp_head"`` when the checkpoint has ``cls.*`` tensors.
    """
    directory = os.fspath(directory)
    config_path = os.path.join(directory, HF_CONFIG)
    if not os.path.exists(config_path):
        raise _missing(directory, "HuggingFace", [HF_CONFIG])
    config = bert_config_from_hf(_read_json(config_path), source=config_path)
    state = _read_hf_weights(directory)
    vocab_file = os.path.join(directory, VOCAB_FILE)
    vocab_file = vocab_file if os.path.exists(vocab_file) else None
    if vocab_file is not None:
        _check_vocab(vocab_file, config, config_path)
    heads = _heads_in_hf_state(state)
    params, unused = _params_from_hf(state, config, heads)
    if unused:
        raise _unused_error(unused, config, "HuggingFace",
                            f"Check num_hidden_layers (and the other sizes) in {config_path}.")
    _check_params(params, config, f"The weights in {directory}")
    return PretrainedBert(config, params, vocab_file, _lower_case_from(directory))


def _architecture(params: Mapping[str, Any]) -> str:
    heads = {h for h in _HEADS if h in params}
    return {frozenset(_HEADS): "BertForPreTraining", frozenset(["mlm_head"]): "BertForMaskedLM",
            frozenset(["nsp_head"]): "BertForNextSentencePrediction",
            frozenset(): "BertModel"}[frozenset(heads)]


def _prepare_output(directory: PathLike, vocab_file: PathLike | None, config: BertConfig
                    ) -> tuple[str, str | None]:
    directory = os.fspath(directory)
    if vocab_file is not None:
        vocab_file = os.fspath(vocab_file)
        if not os.path.exists(vocab_file):
            raise FileNotFoundError(f"vocab_file {vocab_file!r} does not exist.")
        _check_vocab(vocab_file, config, "the model config")
    os.makedirs(directory, exist_ok=True)
    return directory, vocab_file


def _copy_vocab(vocab_file: str | None, directory: str) -> None:
    if vocab_file is None:
        return
    target = os.path.join(directory, VOCAB_FILE)
    if not (os.path.exists(target) and os.path.samefile(vocab_file, target)):
        shutil.copyfile(vocab_file, target)


def export_hf_checkpoint(params: Mapping[str, Any], config: BertConfig, directory: PathLike,
                         vocab_file: PathLike | None = None, lower_case: bool = True) -> None:
    """Writes a HuggingFace directory that ``transformers`` loads with ``from_pretrained``.

    ``config.json`` (architectures ``BertForPreTraining`` for a tree with both heads,
    ``BertModel`` for ``{"bert": ...}``), ``model.safetensors``, and with a ``vocab_file``
    also ``vocab.txt`` (copied; its size must equal ``vocab_size``) and
    ``tokenizer_config.json`` (``do_lower_case``).
    """
    from safetensors.numpy import save_file

    directory, vocab = _prepare_output(directory, vocab_file, config)
    params = _unbox(params)
    state = hf_state_from_bert_params(params, config)
    hf_config = {"architectures": [_architecture(params)], **bert_config_to_hf(config),
                 "torch_dtype": "float32", "tie_word_embeddings": True}
    save_file({k: v.astype(np.float32, copy=False) if v.dtype.kind == "f" else v
               for k, v in state.items()},
              os.path.join(directory, HF_SAFETENSORS), metadata={"format": "pt"})
    with open(os.path.join(directory, HF_CONFIG), "w", encoding="utf-8") as f:
        json.dump(hf_config, f, indent=2, sort_keys=True)
        f.write("\n")
    if vocab is not None:
        _copy_vocab(vocab, directory)
        tokenizer_config = {
            "tokenizer_class": "BertTokenizer", "do_lower_case": bool(lower_case),
            "do_basic_tokenize": True, "tokenize_chinese_chars": True, "strip_accents": None,
            "model_max_length": config.max_position_embeddings, "unk_token": "[UNK]",
            "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]"}
        with open(os.path.join(directory, TOKENIZER_CONFIG), "w", encoding="utf-8") as f:
            json.dump(tokenizer_config, f, indent=2, sort_keys=True)
            f.write("\n")


# ---------------------------------------------------------------------------------------
# TensorFlow 1 checkpoints of google-research/bert.

_TF_LEAF_TO_HF = {"kernel": ("weight", True), "gamma": ("weight", False),
                  "beta": ("bias", False), "bias": ("bias", False)}
_TF_SPECIAL_TO_HF = {
    "bert/embeddings/word_embeddings": "bert.embeddings.word_embeddings.weight",
    "bert/embeddings/position_embeddings": "bert.embeddings.position_embeddings.weight",
    "bert/embeddings/token_type_embeddings": "bert.embeddings.token_type_embeddings.weight",
    "cls/predictions/output_bias": "cls.predictions.bias",
    "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",  # [2, hidden]
    "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
}
_HF_SPECIAL_TO_TF = {v: k for k, v in _TF_SPECIAL_TO_HF.items()}
_HF_LEAF_TO_TF = {("LayerNorm", "weight"): "gamma", ("LayerNorm", "bias"): "beta",
                  (None, "weight"): "kernel", (None, "bias"): "bias"}
_TF_NAME = re.compile(r"(bert|cls)(/\w+)+/(kernel|gamma|beta|bias)")


def _tf_name_to_hf(name: str) -> tuple[str, bool] | None:
    """(HF name, whether the array is transposed) of a modeling.py variable, or None."""
    if name in _TF_SPECIAL_TO_HF:
        return _TF_SPECIAL_TO_HF[name], False
    if not _TF_NAME.fullmatch(name):
        return None
    *scopes, leaf = name.split("/")
    hf_leaf, transpose = _TF_LEAF_TO_HF[leaf]
    if (leaf in ("gamma", "beta")) != (scopes[-1] == "LayerNorm"):
        return None
    scopes = [re.sub(r"^layer_(\d+)$", r"layer.\1", s) for s in scopes]
    return ".".join([*scopes, hf_leaf]), transpose


def _hf_name_to_tf(name: str) -> tuple[str, bool]:
    """(TF variable name, whether the array is transposed) of a ``bert.``/``cls.`` HF name."""
    if name in _HF_SPECIAL_TO_TF:
        return _HF_SPECIAL_TO_TF[name], False
    *scopes, leaf = name.split(".")
    tf_leaf = _HF_LEAF_TO_TF[("LayerNorm" if scopes[-1] == "LayerNorm" else None, leaf)]
    scopes = "/".join(scopes)
    scopes = re.sub(r"/layer/(\d+)", r"/layer_\1", scopes)
    return f"{scopes}/{tf_leaf}", tf_leaf == "kernel"


def _tf_checkpoint_prefix(directory: str) -> str:
    import tensorflow as tf

    named = os.path.join(directory, TF_CHECKPOINT)
    if os.path.exists(named + ".index"):
        return named
    latest = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
    if latest:
        return latest
    indexes = (sorted(f for f in os.listdir(directory) if f.endswith(".index"))
               if os.path.isdir(directory) else [])
    if len(indexes) == 1:
        return os.path.join(directory, indexes[0].removesuffix(".index"))
    raise _missing(directory, "TensorFlow", [f"{TF_CHECKPOINT}.index",
                                             "a 'checkpoint' state file", "one *.index file"])


def load_tf_checkpoint(directory: PathLike) -> PretrainedBert:
    """Loads an original google-research/bert TF1 checkpoint directory into our params.

    Reads ``bert_config.json``, the checkpoint ``bert_model.ckpt`` (else the one named by a
    ``checkpoint`` file, else the only ``*.index``) with ``tf.train.load_checkpoint``, and
    ``vocab.txt`` if present. Optimizer slots (``*/adam_m``, ``*/adam_v``,
    ``global_step``) are skipped; any other variable that does not convert is an error.
    ``lower_case`` comes from ``tokenizer_config.json`` if present, else from the directory
    name as Google's releases spell it (``uncased_L-12_H-768_A-12`` / ``cased_...``).
    """
    import tensorflow as tf

    directory = os.fspath(directory)
    config_path = os.path.join(directory, TF_CONFIG)
    if not os.path.exists(config_path):
        raise _missing(directory, "TensorFlow", [TF_CONFIG])
    config = _bert_config_from_tf(_read_json(config_path), config_path)
    prefix = _tf_checkpoint_prefix(directory)
    reader = tf.train.load_checkpoint(prefix)
    state: dict[str, np.ndarray] = {}
    hf_to_tf: dict[str, str] = {}
    unknown = []
    for name in sorted(reader.get_variable_to_shape_map()):
        if name in _TF_OPTIMIZER_NAMES or name.endswith(_TF_OPTIMIZER_SUFFIXES):
            continue
        mapped = _tf_name_to_hf(name)
        if mapped is None:
            unknown.append(name)
            continue
        hf_name, transpose = mapped
        value = _as_float32(reader.get_tensor(name))
        state[hf_name] = value.T if transpose else value
        hf_to_tf[hf_name] = name
    vocab_file = os.path.join(directory, VOCAB_FILE)
    vocab_file = vocab_file if os.path.exists(vocab_file) else None
    if vocab_file is not None:
        _check_vocab(vocab_file, config, config_path)
    params, unused = _params_from_hf(state, config, _heads_in_hf_state(state))
    leftover = sorted(unknown + [hf_to_tf[k] for k in unused])
    if leftover:
        raise _unused_error(
            leftover, config, "TensorFlow",
            f"Check num_hidden_layers (and the other sizes) in {config_path}; only "
            "google-research/bert modeling.py variables and adam_m/adam_v/global_step are "
            "understood.")
    _check_params(params, config, f"The weights in {prefix}")
    lower_case = _lower_case_from(directory)
    if lower_case is None:
        base = os.path.basename(os.path.normpath(directory)).lower()
        lower_case = (True if re.match(r"(.*[^a-z])?uncased", base)
                      else False if re.match(r"(.*[^a-z])?cased", base) else None)
    return PretrainedBert(config, params, vocab_file, lower_case)


def export_tf_checkpoint(params: Mapping[str, Any], config: BertConfig, directory: PathLike,
                         vocab_file: PathLike | None = None, lower_case: bool | None = None
                         ) -> None:
    """Writes a google-research/bert TF1 checkpoint directory.

    ``bert_config.json``, ``bert_model.ckpt.{index,data-00000-of-00001}`` (variables named
    as in modeling.py / run_pretraining.py, kernels ``[in, out]``), a ``checkpoint`` state
    file, and ``vocab.txt`` when given. TF code restores it with ``init_from_checkpoint`` /
    ``Saver``, as it would Google's released checkpoints. Google's format does not record
    the casing; with ``lower_case`` a ``tokenizer_config.json`` (``do_lower_case``) does.
    """
    import tensorflow as tf

    directory, vocab = _prepare_output(directory, vocab_file, config)
    params = _unbox(params)
    tf_config = _bert_config_to_tf(config)
    state = hf_state_from_bert_params(params, config)
    names, tensors = [], []
    for hf_name, value in state.items():
        hf_name = hf_name if hf_name.startswith(("bert.", "cls.")) else f"bert.{hf_name}"
        if hf_name in _IGNORED_HF_KEYS:
            continue  # the decoder is tied; modeling.py has no separate variable
        tf_name, transpose = _hf_name_to_tf(hf_name)
        names.append(tf_name)
        tensors.append(tf.constant(np.ascontiguousarray(value.T if transpose else value)))
    prefix = os.path.join(directory, TF_CHECKPOINT)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)
    with open(os.path.join(directory, "checkpoint"), "w", encoding="utf-8") as f:
        f.write(f'model_checkpoint_path: "{TF_CHECKPOINT}"\n'
                f'all_model_checkpoint_paths: "{TF_CHECKPOINT}"\n')
    with open(os.path.join(directory, TF_CONFIG), "w", encoding="utf-8") as f:
        json.dump(tf_config, f, indent=2, sort_keys=True)
        f.write("\n")
    _copy_vocab(vocab, directory)
    if lower_case is not None:
        with open(os.path.join(directory, TOKENIZER_CONFIG), "w", encoding="utf-8") as f:
            json.dump({"do_lower_case": bool(lower_case)}, f)
            f.write("\n")


# ---------------------------------------------------------------------------------------
# Our own (orbax) checkpoints.


def _load_ours(checkpoint: str, gin_files: Sequence[str], bindings: Sequence[str],
               vocab_file: str | None, lower_case: bool | None) -> PretrainedBert:
    """Params of our checkpoint + the BertConfig (and vocabulary) from its gin config."""
    import gin

    from models import bert
    from pretrain_lm import gin_utils

    if not gin_files:
        model_dir = checkpoint
        if os.path.basename(os.path.dirname(os.path.normpath(checkpoint))) == "checkpoints":
            model_dir = os.path.dirname(os.path.dirname(os.path.normpath(checkpoint)))
        written = os.path.join(model_dir, "config.gin")
        if not os.path.exists(written):
            raise FileNotFoundError(
                f"{written} does not exist; pass the model's gin files with --gin_file "
                "(e.g. --gin_file=models/bert/tiny.gin --gin.VOCAB_SIZE=7433).")
        gin_files = [os.path.abspath(written)]
    gin_utils.parse(gin_files, bindings)
    try:
        model = gin.query_parameter("%MODEL")
        model = model.scoped_configurable_fn() if hasattr(model, "scoped_configurable_fn") \
            else model
        config = model.config
    except (ValueError, AttributeError):
        config = gin.get_configurable(bert.BertConfig)()
    if not isinstance(config, bert.BertConfig):
        raise ConversionError(f"The gin config's model is not BERT ({type(config).__name__}).")
    if vocab_file is None:
        task = gin_utils.macro("MIXTURE_OR_TASK_NAME")
        if isinstance(task, str):
            import tasks

            vocab = tasks.get_vocabulary(task)
            vocab_file = vocab.vocab_file
            lower_case = vocab.lower_case if lower_case is None else lower_case
    params = checkpoints.read_params(checkpoint)
    dropped = sorted(set(params) - {"bert", *_HEADS})
    if dropped:
        warnings.warn(f"Not exported: the parameters {dropped} (a task head has no place in "
                      "BertForPreTraining/BertModel or modeling.py); the encoder is.",
                      stacklevel=2)
        params = {k: v for k, v in params.items() if k not in dropped}
    _check_params(params, config, f"The params in {checkpoint}")
    return PretrainedBert(config, params, vocab_file, lower_case)


# ---------------------------------------------------------------------------------------
# Command line.


def _parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pretrain_lm.tools.interop",
        description="Convert BERT checkpoints: HuggingFace (hf), google-research/bert "
                    "TF1 (tf), and pretrain_lm's own orbax checkpoints (ours, read only).")
    parser.add_argument("--from", dest="source", choices=["hf", "tf", "ours"], required=True,
                        help="format of --input")
    parser.add_argument("--to", dest="target", choices=["hf", "tf"], required=True,
                        help="format to write to --output")
    parser.add_argument("--input", required=True,
                        help="checkpoint directory (ours: MODEL_DIR or MODEL_DIR/checkpoints/STEP)")
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument("--gin_file", action="append", default=[],
                        help="ours: the model's gin files (default: MODEL_DIR/config.gin)")
    parser.add_argument("--gin_bindings", action="append", default=[],
                        help="ours: extra gin bindings; --gin.KEY=VALUE works too")
    parser.add_argument("--vocab_file", default=None,
                        help="vocab.txt to ship (default: the input's; ours: the task's)")
    parser.add_argument("--lower_case", choices=["true", "false"], default=None,
                        help="whether the vocabulary is uncased (default: what the input says)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pretrain_lm.tools.interop --from=hf|tf|ours --to=hf|tf --input=...
    --output=...``.

    Returns 0; a checkpoint that cannot be converted exits with ``error: ...`` (SystemExit).
    """
    from pretrain_lm import gin_utils

    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(gin_utils.rewrite_gin_args(argv))
    case = None if args.lower_case is None else args.lower_case == "true"
    try:
        if args.source == "hf":
            loaded = load_hf_checkpoint(args.input)
        elif args.source == "tf":
            loaded = load_tf_checkpoint(args.input)
        else:
            loaded = _load_ours(args.input, args.gin_file, args.gin_bindings, args.vocab_file,
                                case)
        vocab_file = args.vocab_file or loaded.vocab_file
        lower_case = case if case is not None else loaded.lower_case
        if args.target == "hf":
            if lower_case is None and vocab_file is not None:
                raise ConversionError("The input does not say whether its vocabulary is "
                                      "lower-cased; pass --lower_case=true or false.")
            export_hf_checkpoint(loaded.params, loaded.config, args.output, vocab_file,
                                 lower_case=bool(lower_case))
        else:
            export_tf_checkpoint(loaded.params, loaded.config, args.output, vocab_file,
                                 lower_case=lower_case)
    except (ConversionError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    heads = sorted(k for k in loaded.params if k != "bert")
    print(f"Wrote a {args.target} checkpoint of a {loaded.config.num_layers}-layer, "
          f"{loaded.config.hidden_size}-wide BERT (heads: {heads or 'none'}; vocabulary: "
          f"{vocab_file or 'none'}) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
