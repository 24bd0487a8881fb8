"""Convolutional network: 2-D convolutions over images, 1-D convolutions over table features and tokens.

For tokens there are two shapes:

    classifier    token embeddings -> 1-D conv blocks (no pooling) -> max over the non-padding
                  positions -> head (Kim 2014)
    LM            token embeddings -> causal 1-D convolutions with dilations 1, 2, 4, ... and
                  residual connections (WaveNet style) -> next-token logits at every position.
                  Output t sees tokens t - receptive_field + 1 .. t and never a later one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.bounds import PositiveInt, Probability, Widths
from zoo.errors import choose
from zoo.models.base import TaskModel, activation
from zoo.models.text import TextModel
from zoo.registry import MODELS

NORMS = ("batch", "none")


class ConvBlock(nn.Sequential):
    """Conv -> (BatchNorm) -> activation, then 2x max-pooling while the input is large enough."""

    def __init__(self, dims: int, c_in: int, c_out: int, *, kernel_size: int, act: str, norm: str, pool: bool):
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        layers: list[nn.Module] = [conv(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=norm != "batch")]
        if norm == "batch":
            layers.append(bn(c_out))
        layers.append(activation(act))
        if pool:
            layers.append(nn.MaxPool2d(2) if dims == 2 else nn.MaxPool1d(2))
        super().__init__(*layers)


class CausalConv(nn.Module):
    """Dilated 1-D convolution padded on the left only, plus a residual path: output t reads inputs <= t."""

    def __init__(self, c_in: int, c_out: int, *, kernel_size: int, dilation: int, act: str) -> None:
        super().__init__()
        self.left = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation)
        self.act = activation(act)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.act(self.conv(F.pad(x, (self.left, 0))))  # (B, C, T) -> (B, C', T)


@MODELS.register("cnn")
class CNN(TextModel, TaskModel):
    """A VGG-style stack of conv blocks, global average pooling and a linear head.

    Images use 2-D convolutions; a table row is read as a 1-channel sequence of its features
    (1-D convolutions), so a CNN can also be compared with an MLP on tabular data. Tokens are
    embedded and read with 1-D convolutions (see the module docstring).

    Args:
        channels: output channels of each conv block, e.g. [32, 64].
        kernel_size: odd kernel size of every convolution.
        activation: relu, gelu, silu, tanh or leaky_relu.
        norm: batch or none.
        dropout: dropout probability before the head.
        embed_dim: width of token embeddings (tokens only).
    """

    supports = frozenset({("image", "classification"), ("tabular", "classification"), ("tabular", "regression"),
                          ("tokens", "classification"), ("tokens", "language_modeling")})

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        channels: Widths = (32, 64),
        kernel_size: PositiveInt = 3,
        activation: str = "relu",
        norm: str = "batch",
        dropout: Probability = 0.1,
        embed_dim: PositiveInt = 32,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim)
        self.save_hyperparameters()
        choose("norm", norm, NORMS)
        if self.spec.modality == "tokens":
            self._build_token_layers(list(channels), kernel_size, activation, norm, dropout, embed_dim)
            return
        dims = 2 if self.spec.modality == "image" else 1
        c_in = self.spec.input_shape[0] if dims == 2 else 1
        size = min(self.spec.input_shape[-dims:])  # smallest spatial extent, to know when to stop pooling
        blocks = []
        for c_out in channels:
            pool = size >= 4
            blocks.append(ConvBlock(dims, c_in, c_out, kernel_size=kernel_size, act=activation, norm=norm, pool=pool))
            c_in, size = c_out, size // 2 if pool else size
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, self.spec.output_dim))

    def _build_token_layers(self, channels: list[int], kernel_size: int, act: str, norm: str, dropout: float,
                            embed_dim: int) -> None:
        s = self.spec
        self.pad_id = s.pad_id if s.pad_id is not None else 0
        self.embed = nn.Embedding(s.vocab_size, embed_dim, padding_idx=s.pad_id)
        c_in, blocks = embed_dim, []
        for i, c_out in enumerate(channels):
            if s.task == "language_modeling":  # dilation doubles per layer: the receptive field grows exponentially
                blocks.append(CausalConv(c_in, c_out, kernel_size=kernel_size, dilation=2**i, act=act))
            else:
                blocks.append(ConvBlock(1, c_in, c_out, kernel_size=kernel_size, act=act, norm=norm, pool=False))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, s.output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.modality == "tokens":
            return self.forward_tokens(x)
        x = self.standardize(x)
        if self.spec.modality == "tabular":
            x = x.unsqueeze(1)  # (B, F) -> (B, 1, F): features as a 1-D signal
        return self.head(self.pool(self.features(x)))  # (B, C, ...) -> (B, out)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.embed(x).transpose(1, 2))  # (B, T) -> (B, E, T) -> (B, C, T)
        if self.spec.task == "language_modeling":
            return self.head(h.transpose(1, 2))  # (B, T, C) -> (B, T, V)
        pad = (x == self.pad_id).unsqueeze(1)  # (B, 1, T)
        pad[..., 0] = False  # an all-padding row still has one position to pool
        return self.head(h.masked_fill(pad, float("-inf")).amax(-1))  # max over real tokens: (B, C)
