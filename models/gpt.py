"""GPT-2 style decoder-only language model (Radford et al., 2019) on the shared stack.

The ``Decoder`` of ``models/transformer.py`` without encoder-decoder attention: learned
positions, pre-LN blocks with a final LayerNorm, GELU (tanh form, as GPT-2), causal
self-attention, and the softmax tied to the token embedding. Weights convert one-to-one
from HuggingFace ``GPT2LMHeadModel`` (``pretrain_lm/tools/interop_transformer.py``). Sizes:
``gin_configs/models/gpt/`` (tiny ... 124M).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import layers
from models.base import (
    AutoregressiveDecoding,
    Batch,
    Metrics,
    StepFn,
    decoder_lm_batch,
    packing_efficiency,
    perplexity,
)
from models.transformer import Decoder, TokenEmbedding, TransformerConfig

Array = jax.Array


def gpt_config(vocab_size: int = 50257, d_model: int = 768, num_layers: int = 12,
               num_heads: int = 12, max_length: int = 1024, dropout_rate: float = 0.1,
               layer_norm_epsilon: float = 1e-5, dtype: str = "float32") -> TransformerConfig:
    """GPT-2's choices on ``TransformerConfig`` (defaults: the 124M model)."""
    return TransformerConfig(
        vocab_size=vocab_size, d_model=d_model, num_encoder_layers=0,
        num_decoder_layers=num_layers, num_heads=num_heads, d_ff=4 * d_model,
        dropout_rate=dropout_rate, attention_dropout_rate=dropout_rate,
        activation="gelu_tanh", pre_layer_norm=True, positions="learned",
        max_length=max_length, scale_embeddings=False, output_bias=False,
        layer_norm_epsilon=layer_norm_epsilon, dtype=dtype)


class DecoderOnlyLM(nn.Module):
    """Token + position embedding -> causal pre-LN blocks -> tied softmax."""

    config: TransformerConfig

    def setup(self) -> None:
        self.embed = TokenEmbedding(self.config)
        self.decoder = Decoder(self.config)

    def __call__(self, tokens: Array, *, deterministic: bool, decode: bool = False,
                 decode_position: Array | None = None,
                 packing: dict[str, Array] | None = None) -> Array:
        """Next-token logits; ``packing``: seqio's ``decoder_segment_ids`` /
        ``decoder_positions`` of packed rows (None: one example a row)."""
        packing = packing or {}
        offset = decode_position if decode and decode_position is not None else 0
        x = self.embed(tokens, deterministic=deterministic, offset=offset,
                       positions=packing.get("decoder_positions"))
        x = self.decoder(x, deterministic=deterministic, decode=decode,
                         decode_position=decode_position,
                         target_segments=packing.get("decoder_segment_ids"))
        return self.embed.logits(x)


@dataclasses.dataclass(frozen=True)
class LanguageModel(AutoregressiveDecoding):
    """Next-token prediction (seqio ``DecoderFeatureConverter`` names): the network reads
    ``decoder_input_tokens`` (the targets shifted right after 0) and is scored on
    ``decoder_target_tokens`` where ``decoder_loss_weights`` is 1."""

    input_format = "decoder"
    supports_packing = True
    grows_cache = True

    config: TransformerConfig = dataclasses.field(default_factory=gpt_config)
    max_length: int = 128

    @property
    def network(self) -> DecoderOnlyLM:
        return DecoderOnlyLM(self.config)

    @property
    def input_vocab_size(self) -> int:
        return self.config.vocab_size

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        return decoder_lm_batch(batch_size, self.max_length)

    def tokens_per_example(self, batch: Any) -> int:
        return int(batch["decoder_target_tokens"].shape[-1])

    def init(self, rng: Array, batch: Batch) -> dict:
        params_rng, dropout_rng = jax.random.split(rng)
        return self.network.init({"params": params_rng, "dropout": dropout_rng},
                                 batch["decoder_input_tokens"], deterministic=True)["params"]

    def apply(self, params: dict, batch: Batch, *, rng: Array | None = None,
              train: bool = False) -> Array:
        return self.network.apply({"params": params}, batch["decoder_input_tokens"],
                                  deterministic=not train,
                                  packing=layers.packing_features(batch),
                                  rngs={"dropout": rng} if train else None)

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        logits = self.apply(params, batch, rng=rng, train=train)
        weights = batch["decoder_loss_weights"].astype(jnp.float32)
        _, nll, correct, count = layers.label_smoothed_cross_entropy(
            logits, batch["decoder_target_tokens"], weights, 0.0)
        loss = nll / jnp.maximum(count, 1.0)
        return loss, {"loss": (loss, jnp.ones(())), "nll": (nll, count),
                      "token_accuracy": (correct, count),
                      "packing_efficiency": packing_efficiency(weights)}

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        return {"perplexity": perplexity(averages["nll"])} if "nll" in averages else {}

    def flops_per_example(self) -> float:
        cfg, n = self.config, self.max_length
        d = cfg.d_model
        per_token = cfg.num_decoder_layers * (8 * d * d + 4 * d * cfg.d_ff + 4 * n * d)
        return 3.0 * n * (per_token + 2 * d * cfg.vocab_size)

    # -- decoding ---------------------------------------------------------------------
    def default_decode_length(self, batch: Batch) -> int:
        return self.config.max_length

    def decode_state(self, params: dict, batch: Batch, max_length: int) -> dict:
        """An empty key/value cache for ``max_length`` positions, and the prompt.

        ``batch["prompt_tokens"]`` ``[b, p]`` holds each row's prompt, right-padded with 0
        (a row of 0s: no prompt). The step function teacher-forces it: while the position
        is inside a row's prompt, the logits select the prompt's next id with
        log-probability 0 and ``-inf`` elsewhere, so greedy, sampling and beam search all
        emit the prompt first, writing its keys and values into the cache as a prefill
        would, and then continue from it."""
        prompt = jnp.asarray(batch["prompt_tokens"], jnp.int32)
        dummy = jnp.zeros((prompt.shape[0], max_length), jnp.int32)
        _, variables = self.network.apply({"params": params}, dummy, deterministic=True,
                                          decode=True, mutable=["cache"])
        return {"cache": jax.tree.map(jnp.zeros_like, variables["cache"]),
                "constants": {"prompt": prompt,
                              "prompt_length": jnp.sum(prompt != 0, axis=-1)}}

    def step_fn(self, params: dict) -> StepFn:
        """``step_fn(token_ids [n], state, position)`` for ``models.decoding``."""

        def step(token_ids: Array, state: dict, position: Array) -> tuple[Array, dict]:
            logits, variables = self.network.apply(
                {"params": params, "cache": state["cache"]}, token_ids[:, None],
                deterministic=True, decode=True, decode_position=position,
                mutable=["cache"])
            logits = logits[:, 0]
            prompt = state["constants"]["prompt"]
            forced = prompt[:, jnp.minimum(position, prompt.shape[1] - 1)]
            one_hot = jnp.where(jnp.arange(logits.shape[-1]) == forced[:, None], 0.0,
                                -jnp.inf).astype(logits.dtype)
            in_prompt = position < state["constants"]["prompt_length"]
            logits = jnp.where(in_prompt[:, None], one_hot, logits)
            return logits, {**state, "cache": variables["cache"]}

        return step

    def score_batch(self, params: dict, batch: Batch) -> Array:
        layers.refuse_packed(batch, "score_batch gives one log-likelihood a row")
        return layers.sequence_log_likelihood(self.apply(params, batch),
                                              batch["decoder_target_tokens"],
                                              batch["decoder_loss_weights"])
