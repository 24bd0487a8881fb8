"""Recurrent network (RNN, LSTM or GRU cell) over tokens, image rows or table features.

How each kind of data becomes a sequence of vectors:

    tokens        token embeddings, one step per token (padding skipped by packing)
    image         one step per pixel row: (B, C, H, W) -> (B, H, C*W)
    tabular       one step per feature: x_i * w + e_i, a learned vector per feature position

Classifiers and regressors read the last hidden state (both directions when bidirectional);
a language model predicts the next token at every step, with optionally tied embeddings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from zoo.bounds import PositiveInt, Probability
from zoo.errors import ConfigError, choose
from zoo.models.base import TaskModel
from zoo.models.text import TextModel
from zoo.registry import MODELS

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@MODELS.register("rnn")
class RNN(TextModel, TaskModel):
    """A stack of recurrent layers with a linear head.

    Args:
        cell: rnn (tanh), lstm or gru.
        hidden: width of the hidden state.
        layers: number of stacked recurrent layers.
        bidirectional: read the sequence both ways (classification and regression only).
        dropout: dropout on the inputs, between layers and before the head.
        embed_dim: width of token embeddings (tokens) or feature vectors (tabular).
        tie_weights: share the token embedding with the LM head (needs embed_dim == hidden).
    """

    supports = frozenset({("tokens", "language_modeling"), ("tokens", "classification"), ("image", "classification"),
                          ("tabular", "classification"), ("tabular", "regression")})

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        cell: str = "lstm",
        hidden: PositiveInt = 128,
        layers: PositiveInt = 1,
        bidirectional: bool = False,
        dropout: Probability = 0.1,
        embed_dim: PositiveInt = 64,
        tie_weights: bool = False,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim)
        self.save_hyperparameters()
        choose("cell", cell, CELLS)
        s = self.spec
        self.is_lm = s.task == "language_modeling"
        if self.is_lm and bidirectional:
            raise ConfigError("model.bidirectional=true would let a language model see the next token; set it false")
        if s.modality == "tokens":
            self.embed = nn.Embedding(s.vocab_size, embed_dim, padding_idx=s.pad_id)
            step_dim = embed_dim
        elif s.modality == "image":
            c, _, w = s.input_shape
            step_dim = c * w
        else:
            self.feature_w = nn.Parameter(torch.randn(1, s.input_shape[0], embed_dim) * 0.1)
            self.feature_pos = nn.Parameter(torch.zeros(1, s.input_shape[0], embed_dim))
            step_dim = embed_dim
        self.drop = nn.Dropout(dropout)
        self.rnn = CELLS[cell](step_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), s.output_dim)
        if tie_weights:
            if not self.is_lm:
                raise ConfigError("model.tie_weights applies to language models only")
            if embed_dim != hidden:
                raise ConfigError(f"model.tie_weights needs model.embed_dim == model.hidden, got {embed_dim} != {hidden}")
            self.head.weight = self.embed.weight  # one (V, C) matrix reads and writes tokens

    def steps(self, x: torch.Tensor) -> torch.Tensor:
        """Return the input sequence (B, L, D) of a raw batch."""
        if self.spec.modality == "tokens":
            return self.drop(self.embed(x))  # (B, T) -> (B, T, E)
        x = self.standardize(x)
        if self.spec.modality == "image":
            return x.permute(0, 2, 1, 3).flatten(2)  # (B, C, H, W) -> (B, H, C*W): rows as steps
        return self.drop(x.unsqueeze(-1) * self.feature_w + self.feature_pos)  # (B, F) -> (B, F, E)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.steps(x)
        if self.is_lm:
            out, _ = self.rnn(h)  # causal by construction: step t has only read tokens <= t
            return self.head(self.drop(out))  # (B, T, H) -> (B, T, V)
        if self.spec.modality == "tokens" and self.spec.pad_id is not None:
            # Packing makes the last state that of the last real token, not of the padding after it.
            lengths = (x != self.spec.pad_id).sum(1).clamp(min=1).cpu()
            h = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(h)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        last = h_n[-2:].transpose(0, 1).flatten(1) if self.rnn.bidirectional else h_n[-1]  # (B, H * dirs)
        return self.head(self.drop(last))
