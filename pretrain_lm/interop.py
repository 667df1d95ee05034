"""Weight conversion between HuggingFace BERT checkpoints and our Flax BERT.

Works on plain ``{name: numpy array}`` state dicts (from safetensors, a PyTorch
``state_dict`` turned into numpy, ...), so this module imports neither torch nor
transformers. Every tensor of the source must be used and every parameter of the
target filled: anything left over is reported in one error, never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.bert import BertConfig

# HF names that carry no information of their own (tied copies, buffers).
_IGNORED_HF_KEYS = (
    "cls.predictions.decoder.weight",  # tied to the word embeddings
    "cls.predictions.decoder.bias",  # tied to cls.predictions.bias
    "bert.embeddings.position_ids",
    "bert.embeddings.token_type_ids",
)


class ConversionError(ValueError):
    """Raised when a foreign checkpoint does not fit the model config."""


def _heads(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """HF ``[out, in]`` q/k/v weight -> our ``[embed, heads, head_dim]`` kernel."""
    hidden = weight.shape[1]
    return weight.T.reshape(hidden, num_heads, hidden // num_heads)


def _ln(state: Mapping[str, np.ndarray], prefix: str) -> dict:
    return {"scale": state[f"{prefix}.weight"], "bias": state[f"{prefix}.bias"]}


def _dense(state: Mapping[str, np.ndarray], prefix: str) -> dict:
    return {"kernel": state[f"{prefix}.weight"].T, "bias": state[f"{prefix}.bias"]}


def bert_params_from_hf(state: Mapping[str, np.ndarray], config: BertConfig,
                        *, with_pretraining_heads: bool = True) -> dict:
    """Converts a HuggingFace ``BertForPreTraining``/``BertModel`` state dict to our params.

    Keys may carry the ``bert.`` prefix (``BertForPreTraining``) or not (``BertModel``).
    Returns the params tree of ``BertForPreTraining`` (or of ``BertEncoder`` under
    ``"bert"`` when ``with_pretraining_heads`` is False).
    """
    state = {k if k.startswith(("bert.", "cls.")) else f"bert.{k}": np.asarray(v)
             for k, v in state.items()}
    used: set[str] = set()

    class Tracking(dict):
        def __getitem__(self, key: str) -> np.ndarray:
            if key not in state:
                raise ConversionError(
                    f"HuggingFace checkpoint has no tensor {key!r}; is it a BERT checkpoint "
                    f"with {config.num_layers} layers?")
            used.add(key)
            return state[key]

    s = Tracking()
    heads = config.num_heads
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
            name: {"kernel": _heads(s[f"{p}.attention.self.{name}.weight"], heads),
                   "bias": s[f"{p}.attention.self.{name}.bias"].reshape(heads, -1)}
            for name in ("query", "key", "value")
        }
        out_w = s[f"{p}.attention.output.dense.weight"]  # [hidden_out, hidden_in]
        attention["out"] = {
            "kernel": out_w.T.reshape(heads, -1, out_w.shape[0]),
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
    if with_pretraining_heads:
        params["mlm_head"] = {
            "transform": _dense(s, "cls.predictions.transform.dense"),
            "layer_norm": _ln(s, "cls.predictions.transform.LayerNorm"),
            "output_bias": s["cls.predictions.bias"],
        }
        params["nsp_head"] = _dense(s, "cls.seq_relationship")
    unused = sorted(k for k in state if k not in used and k not in _IGNORED_HF_KEYS
                    and (with_pretraining_heads or not k.startswith("cls.")))
    if unused:
        raise ConversionError(
            f"{len(unused)} HuggingFace tensors have no place in a {config.num_layers}-layer "
            f"BERT: {unused[:10]}{' ...' if len(unused) > 10 else ''}. Check that the model "
            "config (num_layers, heads) matches the checkpoint's config.json.")
    return params
