"""The AWD-LSTM language model in PyTorch, written as Merity et al.'s code does: the peer
of ``models.awd_lstm`` in ``benchmarks.awd_lstm`` (step time) and
``benchmarks.awd_lstm_reference`` (perplexity on PTB). No flags: both import it."""

from __future__ import annotations

from typing import Any


def awd_config(vocab: int, embed: int, hidden: int, layers: int) -> Any:
    from models.awd_lstm import AWDLSTMConfig

    return AWDLSTMConfig(vocab_size=vocab, embed_dim=embed, hidden_size=hidden,
                         num_layers=layers)


def peer_model(config: Any) -> Any:
    """The AWD-LSTM in PyTorch, as Merity et al.'s code writes it (``benchmarks.awd_lstm``'s
    module doc lists what it does)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class LockedDropout(nn.Module):
        def __init__(self, rate: float) -> None:
            super().__init__()
            self.rate = rate

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or not self.rate:
                return x
            mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.rate)
            return x * mask / (1 - self.rate)

    class AWDLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sizes = config.layer_sizes()
            self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
            nn.init.uniform_(self.embedding.weight, -config.init_range, config.init_range)
            self.rnns = nn.ModuleList(
                nn.LSTM(n_in, n_out, batch_first=True)
                for n_in, n_out in zip([config.embed_dim, *sizes[:-1]], sizes, strict=True))
            self.decoder_bias = nn.Parameter(torch.zeros(config.vocab_size))
            self.input_dropout = LockedDropout(config.rate("input"))
            self.hidden_dropout = LockedDropout(config.rate("hidden"))
            self.output_dropout = LockedDropout(config.rate("output"))

        def initial_state(self, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [(torch.zeros(1, batch, n), torch.zeros(1, batch, n))
                    for n in config.layer_sizes()]

        def forward(self, ids: torch.Tensor, state: list) -> tuple[torch.Tensor, ...]:
            x = self.embedding(ids)
            rate = config.rate("embed")
            if self.training and rate:
                # Embedding dropout (whole rows of the table), applied to the rows looked
                # up: the same as looking up in the masked table, without masking all of it.
                keep = x.new_empty(config.vocab_size, 1).bernoulli_(1 - rate) / (1 - rate)
                x = x * F.embedding(ids, keep)
            x = self.input_dropout(x)
            new_state = []
            for i, rnn in enumerate(self.rnns):
                # Weight drop: DropConnect on the raw hidden-to-hidden weight, one mask
                # per step, the dropped copy run through the fused LSTM.
                dropped = F.dropout(rnn.weight_hh_l0, config.rate("weight"), self.training)
                raw, layer_state = torch.func.functional_call(
                    rnn, {"weight_hh_l0": dropped}, (x, state[i]))
                new_state.append(layer_state)
                last = i == len(self.rnns) - 1
                x = (self.output_dropout if last else self.hidden_dropout)(raw)
            logits = F.linear(x, self.embedding.weight, self.decoder_bias)  # tied
            return logits, raw, x, new_state

    return AWDLSTM()
