"""Sequence taggers with pretrained language-model features: TagLM and the ELMo tagger.

One network (``Tagger``), chosen by ``TaggerConfig.lm``:

* ``"none"``: the baseline (Lample et al. 2016 / Ma & Hovy 2016): each token is
  ``[word embedding; character representation]`` -> a 2-layer bidirectional LSTM ->
  a dense layer -> a linear-chain CRF (``models/crf.py``).
* ``"taglm"`` / ``"taglm_forward"`` / ``"taglm_backward"``: TagLM (Peters et al., 2017):
  the top states of a frozen pretrained biLM (forward and backward, or one of them) are
  concatenated to the output of the FIRST biLSTM layer, before the second.
* ``"elmo"``: the ELMo tagger (Peters et al., 2018): a task-specific scalar mix
  ``gamma * sum_j softmax(s)_j * h_j`` of the frozen biLM's layers (``elmo.ScalarMix``,
  optionally layer-normalised) is concatenated to the token representation at the
  input, and with ``elmo_at_output`` a second mix to the top biLSTM's output.

The character representation (``char_encoder``): a CNN over ELMo's character ids
(``elmo.CharCNN``: max over positions, no highway, no projection), a character biLSTM
(Lample et al.: the last forward and first backward state), or none. The biLM is
``elmo.BiLM`` under the parameter name ``bilm`` (so ``PretrainedParams(subtrees=("bilm",))``
loads it from an ``ELMoLanguageModel`` run); it reads each sentence wrapped in
``<S>`` ... ``</S>`` (added here), never gets gradients (``stop_gradient``) and runs
without dropout; freeze it in the optimizer too (``optimizers.adamw(frozen=("bilm",))``)
so that weight decay leaves it alone.

CoVe (McCann et al., 2017; ``models/cove.py``), with ``cove`` set: the tagger's word
embeddings are also read by a pretrained MT-LSTM (``cove.CoVeEncoder`` under the parameter
name ``cove``, so ``PretrainedParams(subtrees=("cove",), check_vocabulary=False)`` loads it
from a ``CoVeTranslationModel`` run), whose top-layer states are concatenated to the token
representation at the input: ``[GloVe(w); CoVe(w); ...]``. Like the biLM it gets no
gradients and runs without dropout; freeze ``("cove", "word_embed")`` in the optimizer,
the word embeddings being CoVe's fixed GloVe (start them from the vectors CoVe was trained
on, ``tasks.tagging.pretrained_embeddings``).

``TaggerModel`` is the trainer's objective: the CRF's negative log-likelihood per
sentence; evaluation decodes with Viterbi and counts entities as conlleval does
(``crf.entity_counts``), so ``entity_f1`` over a whole split is exact.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta

from models import characters, cove, crf, elmo, layers
from models.base import Batch, Metrics, Model, TaskInfo

Array = jax.Array

LM_MODES = ("none", "taglm", "taglm_forward", "taglm_backward", "elmo")
CHAR_ENCODERS = ("none", "cnn", "bilstm")


@dataclasses.dataclass(frozen=True)
class TaggerConfig:
    """Sizes and options of a ``Tagger`` (defaults: a small CPU-sized tagger)."""

    vocab_size: int
    num_tags: int
    word_embed_dim: int = 50            # 0: no word embedding (characters only)
    char_encoder: str = "cnn"
    char_embed_dim: int = 16
    char_filters: tuple[tuple[int, int], ...] = ((3, 30),)  # (width, count), Ma & Hovy
    char_hidden: int = 25               # char biLSTM, per direction (Lample et al.)
    hidden: int = 100                   # per direction, each of the 2 biLSTM layers
    num_layers: int = 2
    dropout: float = 0.5                # on the token representation and each layer's output
    lm: str = "none"
    # The frozen biLM (needed unless lm == "none"; with lm "none" its parameters are still
    # made, loaded and frozen but never used: an ablation changes `lm` alone).
    bilm: elmo.ELMoConfig | None = None
    elmo_layer_norm: bool = False
    elmo_at_output: bool = False
    elmo_dropout: float = 0.5           # on the mixed ELMo vector (Peters et al. 2018)
    # CoVe (McCann et al. 2017): a pretrained MT-LSTM over the word embeddings, its output
    # concatenated at the input; None: no CoVe.
    cove: cove.CoVeConfig | None = None

    def __post_init__(self) -> None:
        if self.lm not in LM_MODES:
            raise ValueError(f"lm={self.lm!r}; choose one of {LM_MODES}.")
        if self.char_encoder not in CHAR_ENCODERS:
            raise ValueError(f"char_encoder={self.char_encoder!r}; choose one of "
                             f"{CHAR_ENCODERS}.")
        if self.lm != "none" and self.bilm is None:
            raise ValueError(f"lm={self.lm!r} needs the biLM's sizes (bind "
                             "TaggerConfig.bilm = @elmo.elmo_tiny() ...).")
        if self.cove is not None and self.word_embed_dim != self.cove.vector_dim:
            raise ValueError(f"CoVe reads the word embeddings: word_embed_dim="
                             f"{self.word_embed_dim} must equal cove.vector_dim="
                             f"{self.cove.vector_dim} (the vectors its MT-LSTM was trained on).")
        if self.word_embed_dim == 0 and self.char_encoder == "none":
            raise ValueError("The tagger needs word embeddings or a character encoder.")
        if self.num_layers < 2 and self.lm.startswith("taglm"):
            raise ValueError("TagLM puts the LM states between biLSTM layers 1 and 2: "
                             "num_layers >= 2.")

    def char_cnn_config(self) -> elmo.ELMoConfig:
        """The ``elmo.CharCNN`` sizes of the character CNN (tanh, no highway/projection)."""
        return elmo.plain_char_cnn_config(self.char_embed_dim, self.char_filters)


def _char_mask(char_ids: Array) -> Array:
    """True at real character slots (not word padding, not whole-token padding)."""
    return (char_ids != 0) & (char_ids != characters.PAD_CHAR + characters.CHAR_OFFSET)


class CharBiLSTM(nn.Module):
    """Each word's characters -> ``[last forward state; first backward state]``."""

    embed_dim: int
    hidden: int

    @nn.compact
    def __call__(self, char_ids: Array) -> Array:
        batch, time, chars = char_ids.shape
        flat = char_ids.reshape(batch * time, chars)
        mask = _char_mask(flat)
        x = nn.Embed(characters.NUM_CHAR_IDS, self.embed_dim, name="char_embed")(flat)
        _, (forward, _) = layers.LSTM(self.hidden, name="forward")(x, mask)
        _, (backward, _) = layers.LSTM(self.hidden, reverse=True, name="backward")(x, mask)
        out = jnp.concatenate([forward, backward], axis=-1).reshape(batch, time, -1)
        return jnp.where(elmo.token_mask(char_ids)[..., None], out, 0.0)


class Tagger(nn.Module):
    """Token ids ``[b, t]`` and character ids ``[b, t, 50]`` -> CRF emissions ``[b, t, k]``
    (see the module docstring for the variants). Padding tokens (id 0) come last."""

    config: TaggerConfig

    def setup(self) -> None:
        cfg = self.config
        if cfg.word_embed_dim:
            self.word_embed = layers.Embed(cfg.vocab_size, cfg.word_embed_dim,
                                           init_stddev=1.0 / np.sqrt(cfg.word_embed_dim))
        if cfg.char_encoder == "cnn":
            self.chars = elmo.CharCNN(cfg.char_cnn_config())
        elif cfg.char_encoder == "bilstm":
            self.chars = CharBiLSTM(cfg.char_embed_dim, cfg.char_hidden)
        if cfg.bilm is not None:
            self.bilm = elmo.BiLM(cfg.bilm)
        if cfg.cove is not None:
            self.cove = cove.CoVeEncoder(cfg.cove)
        if cfg.lm == "elmo":
            self.input_mix = elmo.ScalarMix(cfg.bilm.num_layers + 1, cfg.elmo_layer_norm)
            if cfg.elmo_at_output:
                self.output_mix = elmo.ScalarMix(cfg.bilm.num_layers + 1, cfg.elmo_layer_norm)
        self.rnns = [layers.BiLSTM(cfg.hidden, name=f"bilstm_{i}") for i in range(cfg.num_layers)]
        self.dropout = layers.Dropout(cfg.dropout)
        self.elmo_dropout = layers.Dropout(cfg.elmo_dropout)
        self.emissions = nn.Dense(cfg.num_tags, name="emissions")

    def lm_layers(self, char_ids: Array, mask: Array) -> tuple[list[Array], Array, Array]:
        """The frozen biLM on the sentence: its ``num_layers + 1`` activations and the
        top forward / backward states, ``<S>``/``</S>`` positions removed."""
        out = self.bilm(elmo.add_sentence_boundaries(char_ids, mask), deterministic=True)
        tensors = [*out.activations, out.forward, out.backward]
        tensors, _ = elmo.remove_sentence_boundaries(
            [jax.lax.stop_gradient(t) for t in tensors], out.mask)
        return tensors[:-2], tensors[-2], tensors[-1]

    def __call__(self, token_ids: Array, char_ids: Array, *, deterministic: bool = True
                 ) -> Array:
        cfg = self.config
        mask = token_ids > 0
        features = []
        if cfg.word_embed_dim:
            features.append(self.word_embed(token_ids))
        if cfg.cove is not None:  # fixed: no gradient into CoVe or through it
            words = jax.lax.stop_gradient(features[0])
            features.append(jax.lax.stop_gradient(self.cove(words, mask)))
        if cfg.char_encoder != "none":
            features.append(self.chars(char_ids))
        x = self.dropout(jnp.concatenate(features, axis=-1), deterministic=deterministic)
        if cfg.lm != "none":
            activations, forward, backward = self.lm_layers(char_ids, mask)
        elif cfg.bilm is not None and self.is_initializing():
            self.lm_layers(char_ids, mask)  # created (and loaded, frozen), never used
        if cfg.lm == "elmo":
            mixed = self.input_mix(activations, mask)
            x = jnp.concatenate(
                [x, self.elmo_dropout(mixed, deterministic=deterministic)], axis=-1)
        for i, rnn in enumerate(self.rnns):
            x = self.dropout(rnn(x, mask), deterministic=deterministic)
            if i == 0 and cfg.lm.startswith("taglm"):
                lm = {"taglm": [forward, backward], "taglm_forward": [forward],
                      "taglm_backward": [backward]}[cfg.lm]
                x = jnp.concatenate([x, *lm], axis=-1)
        if cfg.lm == "elmo" and cfg.elmo_at_output:
            mixed = self.output_mix(activations, mask)
            x = jnp.concatenate(
                [x, self.elmo_dropout(mixed, deterministic=deterministic)], axis=-1)
        return self.emissions(x)


@dataclasses.dataclass(frozen=True)
class TaggerModel(Model):
    """The tagger's training objective on word-level tagging batches (``tasks/tagging.py``):
    ``token_ids`` / ``tag_ids`` / ``token_weights`` ``[b, t]``, ``char_ids`` ``[b, t, 50]``.

    Loss: the CRF's mean negative log-likelihood per sentence. Metrics: ``nll`` (per
    sentence) and, in evaluation (Viterbi decoding), ``token_accuracy``,
    ``entity_precision``, ``entity_recall`` (conlleval's counts) and the derived
    ``entity_f1`` (fractions in [0, 1], as seqeval reports them).

    ``tag_names`` give the CRF its size, the BIO constraints (``constrained``) and the
    entity counts; ``word_embeddings`` (``[vocab_size, word_embed_dim]``, e.g.
    ``tasks.tagging.pretrained_embeddings(task)``) start the word embedding."""

    input_format = "word_level"

    config: TaggerConfig
    tag_names: tuple[str, ...] = ()
    constrained: bool = True
    max_length: int = 64
    word_embeddings: Any = dataclasses.field(default=None, compare=False, hash=False,
                                             repr=False)

    def __post_init__(self) -> None:
        if len(self.tag_names) != self.config.num_tags:
            raise ValueError(f"{len(self.tag_names)} tag names for num_tags="
                             f"{self.config.num_tags}; bind TaggerConfig.num_tags to the "
                             "task's number of tags.")
        object.__setattr__(self, "tag_names", tuple(self.tag_names))

    @property
    def network(self) -> Tagger:
        return Tagger(self.config)

    @property
    def crf(self) -> crf.CRF:
        allowed = crf.allowed_transitions(self.tag_names) if self.constrained else ()
        return crf.CRF(self.config.num_tags, *allowed)

    @property
    def input_vocab_size(self) -> int:
        return self.config.vocab_size

    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        shape = (batch_size, self.max_length)
        chars = self.config.bilm.max_characters_per_token if self.config.bilm else 50
        return {"token_ids": np.ones(shape, np.int32),
                "char_ids": np.ones((*shape, chars), np.int32),
                "tag_ids": np.zeros(shape, np.int32),
                "token_weights": np.ones(shape, np.float32)}

    def tokens_per_example(self, batch: Any) -> int:
        return int(batch["token_ids"].shape[-1])

    def check_task(self, task: TaskInfo) -> None:
        if task.tag_names is None:
            raise ValueError(f"{task.name!r} is not a word-level tagging task "
                             "(tasks/tagging.py); the tagger trains on one.")
        if tuple(task.tag_names) != self.tag_names:
            raise ValueError(f"Task {task.name!r} has tags {list(task.tag_names)}; the model "
                             f"was built for {list(self.tag_names)}. Bind TaggerModel.tag_names = "
                             "@tagging.tag_names() with tagging.tag_names.task = the task.")

    def init(self, rng: Array, batch: Batch) -> dict:
        emissions_rng, crf_rng = jax.random.split(rng)
        params = self.network.init({"params": emissions_rng}, batch["token_ids"],
                                   batch["char_ids"])["params"]
        emissions = jnp.zeros((*batch["token_ids"].shape, self.config.num_tags))
        params = {**params, "crf": self.crf.init(crf_rng, emissions, batch["tag_ids"])["params"]}
        if self.word_embeddings is not None:
            params = layers.with_embedding_table(
                params, np.asarray(self.word_embeddings),
                "bind TaggerConfig.vocab_size and word_embed_dim to the task's vocabulary "
                "size and the vectors' dimension.")
        return params

    def _emissions(self, params: dict, batch: Batch, rng: Array | None, train: bool
                   ) -> Array:
        network_params = {k: v for k, v in params.items() if k != "crf"}
        if train and self.config.dropout > 0 and rng is None:
            raise ValueError("Training with dropout needs an rng.")
        return self.network.apply({"params": network_params}, batch["token_ids"],
                                  batch["char_ids"], deterministic=not train,
                                  rngs={"dropout": rng} if train and rng is not None else None)

    def loss(self, params: dict, batch: Batch, *, rng: Array | None,
             train: bool) -> tuple[Array, Metrics]:
        emissions = self._emissions(params, batch, rng, train)
        mask = (batch["token_ids"] > 0) & (batch["token_weights"] > 0)
        tags = batch["tag_ids"]
        crf_vars = {"params": params["crf"]}
        log_likelihood = self.crf.apply(crf_vars, emissions, tags, mask)
        has_tokens = mask.any(axis=1).astype(jnp.float32)
        nll = -jnp.sum(log_likelihood * has_tokens)
        sentences = jnp.sum(has_tokens)
        loss = nll / jnp.maximum(sentences, 1.0)
        metrics: Metrics = {"nll": (nll, sentences), "loss": (loss, jnp.ones(()))}
        if not train:
            predicted, _ = self.crf.apply(crf_vars, emissions, mask, method=crf.CRF.viterbi)
            tokens = jnp.sum(mask, dtype=jnp.float32)
            metrics["token_accuracy"] = (jnp.sum((predicted == tags) & mask,
                                                 dtype=jnp.float32), tokens)
            correct, n_predicted, n_gold = crf.entity_counts(predicted, tags, mask,
                                                             self.tag_names)
            metrics["entity_precision"] = (correct, n_predicted)
            metrics["entity_recall"] = (correct, n_gold)
        return loss, metrics

    def predict_batch(self, params: dict, batch: Batch, **unused: Any) -> dict[str, Array]:
        """``{"tags": Viterbi tag ids [b, t]}`` (0 at padding)."""
        emissions = self._emissions(params, batch, None, False)
        mask = batch["token_ids"] > 0
        predicted, _ = self.crf.apply({"params": params["crf"]}, emissions, mask,
                                      method=crf.CRF.viterbi)
        return {"tags": predicted}

    def score_batch(self, params: dict, batch: Batch) -> Array:
        """The CRF's log-likelihood ``[b]`` of each sentence's gold tags."""
        emissions = self._emissions(params, batch, None, False)
        mask = (batch["token_ids"] > 0) & (batch["token_weights"] > 0)
        return self.crf.apply({"params": params["crf"]}, emissions, batch["tag_ids"], mask)

    def derived_metrics(self, averages: dict[str, float]) -> dict[str, float]:
        """``entity_f1`` from the averaged precision and recall (fractions, as seqeval)."""
        if "entity_precision" not in averages or "entity_recall" not in averages:
            return {}
        p, r = averages["entity_precision"], averages["entity_recall"]
        return {"entity_f1": 2 * p * r / (p + r) if p + r > 0 else 0.0}


def mix_weights(params: dict) -> dict[str, tuple[np.ndarray, float]]:
    """``{"input_mix": (softmax weights, gamma), ...}`` of an ELMo tagger's scalar mixes."""
    params = meta.unbox(params)
    return {name: elmo.scalar_mix_weights(params[name])
            for name in ("input_mix", "output_mix") if name in params}
