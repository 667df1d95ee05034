"""HuggingFace ``MarianMTModel`` and ``GPT2LMHeadModel`` weights -> our Transformer / GPT,
and our Transformer back to a ``MarianMTModel`` state dict.

Plain ``{name: numpy array}`` state dicts in, our parameter trees out (no torch import).
Every source tensor must find a place and every parameter must be filled; leftovers are
one ``ConversionError``. Used by the parity tests, to start from HF checkpoints, and
(``marian_state_from_transformer_params``) to decode a trained model of ours with HF
``generate`` on the same weights (``benchmarks.transformer_mt --trained_dir``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.transformer import TransformerConfig
from pretrain_lm.tools.interop import ConversionError, _dense, _heads, _ln


class _Tracking:
    """Reads tensors from a state dict and remembers which were used."""

    def __init__(self, state: Mapping[str, np.ndarray], ignored: tuple[str, ...]) -> None:
        self.state = {k: np.asarray(v, np.float32) for k, v in state.items()}
        self.used: set[str] = set()
        self.ignored = ignored

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.state:
            raise ConversionError(f"The checkpoint has no tensor {key!r}; does its config "
                                  "(layers, heads) match the model's?")
        self.used.add(key)
        return self.state[key]

    def check_all_used(self) -> None:
        unused = sorted(k for k in self.state if k not in self.used
                        and not any(k.endswith(i) for i in self.ignored))
        if unused:
            raise ConversionError(f"{len(unused)} tensors have no place in the model: "
                                  f"{unused[:10]}; check the number of layers.")


def _attention(s: _Tracking, prefix: str, heads: int, names: tuple[str, ...]) -> dict:
    q, k, v, o = names
    out_w = s[f"{prefix}.{o}.weight"]
    params = {ours: {"kernel": _heads(s[f"{prefix}.{theirs}.weight"], heads),
                     "bias": s[f"{prefix}.{theirs}.bias"].reshape(heads, -1)}
              for ours, theirs in (("query", q), ("key", k), ("value", v))}
    params["out"] = {"kernel": out_w.T.reshape(heads, -1, out_w.shape[0]),
                     "bias": s[f"{prefix}.{o}.bias"]}
    return params


def transformer_params_from_marian(state: Mapping[str, np.ndarray],
                                   config: TransformerConfig) -> dict:
    """``MarianMTModel`` state dict -> ``EncoderDecoder`` params (post-LN, sinusoidal,
    scaled, shared embeddings; ``config.output_bias`` takes ``final_logits_bias``)."""
    s = _Tracking(state, ("embed_positions.weight", "lm_head.weight",
                          "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"))
    names = ("q_proj", "k_proj", "v_proj", "out_proj")
    heads = config.num_heads
    embed: dict = {"tokens": {"embedding": s["model.shared.weight"]}}
    if config.output_bias:
        embed["output_bias"] = s["final_logits_bias"].reshape(-1)

    def block(prefix: str, cross: bool) -> dict:
        out = {
            "attention": _attention(s, f"{prefix}.self_attn", heads, names),
            "attention_sublayer": {"layer_norm": _ln(s, f"{prefix}.self_attn_layer_norm")},
            "mlp": {"intermediate": _dense(s, f"{prefix}.fc1"),
                    "output": _dense(s, f"{prefix}.fc2")},
            "mlp_sublayer": {"layer_norm": _ln(s, f"{prefix}.final_layer_norm")},
        }
        if cross:
            out["cross_attention"] = _attention(s, f"{prefix}.encoder_attn", heads, names)
            out["cross_attention_sublayer"] = {
                "layer_norm": _ln(s, f"{prefix}.encoder_attn_layer_norm")}
        return out

    params = {
        "embed": embed,
        "encoder": {f"layer_{i}": block(f"model.encoder.layers.{i}", False)
                    for i in range(config.num_encoder_layers)},
        "decoder": {f"layer_{i}": block(f"model.decoder.layers.{i}", True)
                    for i in range(config.num_decoder_layers)},
    }
    if not config.output_bias and "final_logits_bias" in s.state:
        if np.any(s.state["final_logits_bias"]):
            raise ConversionError("The checkpoint has a non-zero final_logits_bias; set "
                                  "TransformerConfig.output_bias=True.")
        s.used.add("final_logits_bias")
    s.check_all_used()
    return params


def marian_state_from_transformer_params(params: Mapping, config: TransformerConfig,
                                         template: Mapping[str, np.ndarray]
                                         ) -> dict[str, np.ndarray]:
    """Our ``EncoderDecoder`` params -> a ``MarianMTModel`` state dict: the exact inverse
    of ``transformer_params_from_marian``, found by sending every element's index through
    it (so the two cannot drift apart). ``template``: the state dict of a
    ``MarianMTModel`` of the same config, for the shapes and for the tensors the
    conversion does not read (sinusoidal positions); the tied copies of the shared
    embedding (``lm_head``, ``encoder`` / ``decoder.embed_tokens``) are filled from it."""
    import jax

    names = sorted(template)
    offsets, total = {}, 0
    for name in names:
        offsets[name] = total
        total += int(np.asarray(template[name]).size)
    if total >= 2**24:
        raise ConversionError(f"{total} elements: too many to trace exactly in float32.")
    index_state = {name: np.arange(offsets[name], offsets[name] + np.asarray(
        template[name]).size, dtype=np.float64).reshape(np.shape(template[name]))
        for name in names}
    if not config.output_bias and "final_logits_bias" in index_state:
        index_state["final_logits_bias"] = np.zeros_like(index_state["final_logits_bias"])
    traced = transformer_params_from_marian(index_state, config)
    flat = np.concatenate([np.asarray(template[n], np.float32).ravel() for n in names])
    ours = dict(jax.tree_util.tree_leaves_with_path(params))
    for path, where in jax.tree_util.tree_leaves_with_path(traced):
        if path not in ours:
            raise ConversionError(f"Our params have no {jax.tree_util.keystr(path)}; is "
                                  "the config the run's?")
        where = np.asarray(where).astype(np.int64).ravel()
        flat[where] = np.asarray(ours[path], np.float32).ravel()
    out = {n: flat[offsets[n]:offsets[n] + np.asarray(template[n]).size].reshape(
        np.shape(template[n])) for n in names}
    shared = out["model.shared.weight"]
    for tied in ("lm_head.weight", "model.encoder.embed_tokens.weight",
                 "model.decoder.embed_tokens.weight"):
        if tied in out:
            out[tied] = shared.copy()
    return out


def gpt_params_from_hf(state: Mapping[str, np.ndarray], config: TransformerConfig) -> dict:
    """``GPT2LMHeadModel`` state dict -> params of ``models.gpt`` (pre-LN, learned
    positions, tied head). GPT-2's ``Conv1D`` kernels are ``[in, out]``."""
    state = {k if k.startswith("transformer.") or k.startswith("lm_head") else
             f"transformer.{k}": v for k, v in state.items()}
    s = _Tracking(state, ("attn.bias", "attn.masked_bias", "lm_head.weight"))
    heads, d = config.num_heads, config.d_model

    def conv(prefix: str) -> dict:
        return {"kernel": s[f"{prefix}.weight"], "bias": s[f"{prefix}.bias"]}

    def ln(prefix: str) -> dict:
        return {"scale": s[f"{prefix}.weight"], "bias": s[f"{prefix}.bias"]}

    decoder: dict = {}
    for i in range(config.num_decoder_layers):
        p = f"transformer.h.{i}"
        qkv_w, qkv_b = s[f"{p}.attn.c_attn.weight"], s[f"{p}.attn.c_attn.bias"]
        attention = {
            name: {"kernel": qkv_w[:, j * d:(j + 1) * d].reshape(d, heads, -1),
                   "bias": qkv_b[j * d:(j + 1) * d].reshape(heads, -1)}
            for j, name in enumerate(("query", "key", "value"))}
        proj = s[f"{p}.attn.c_proj.weight"]
        attention["out"] = {"kernel": proj.reshape(heads, -1, d),
                            "bias": s[f"{p}.attn.c_proj.bias"]}
        decoder[f"layer_{i}"] = {
            "attention": attention,
            "attention_sublayer": {"layer_norm": ln(f"{p}.ln_1")},
            "mlp": {"intermediate": conv(f"{p}.mlp.c_fc"), "output": conv(f"{p}.mlp.c_proj")},
            "mlp_sublayer": {"layer_norm": ln(f"{p}.ln_2")},
        }
    decoder["final_layer_norm"] = ln("transformer.ln_f")
    params = {"embed": {"tokens": {"embedding": s["transformer.wte.weight"]},
                        "positions": {"embedding": s["transformer.wpe.weight"]}},
              "decoder": decoder}
    s.check_all_used()
    return params
