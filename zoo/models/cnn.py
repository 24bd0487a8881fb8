"""Convolutional network: 2-D convolutions over images, 1-D convolutions over table features and tokens.

Over images and tables there are two kinds of stage (`block`), each `channels[i]` wide and
`blocks_per_stage` blocks deep:

    plain         conv -> BN -> act blocks, 2x max-pooling after each stage (VGG style)
    residual      a conv stem, then pre-activation basic blocks BN -> act -> conv -> BN -> act -> conv
                  plus the input (He et al. 2016, "Identity Mappings in Deep Residual Networks"); each
                  stage after the first starts with a stride-2 block, its shortcut a strided 1x1 conv.
                  ResNet-20 for CIFAR: channels [16, 32, 64] x 3 blocks; ResNet-18: [64, 128, 256, 512] x 2.

Both stop downsampling once the input is smaller than 4, then pool globally into the head.

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
from zoo.errors import ConfigError, choose
from zoo.models.base import TaskModel, activation
from zoo.models.text import TextModel
from zoo.registry import MODELS

NORMS = ("batch", "none")
BLOCKS = ("plain", "residual")


def norm_layer(dims: int, channels: int, norm: str) -> nn.Module:
    """Return BatchNorm over `channels` (1-D or 2-D), or an identity for norm 'none'."""
    if norm == "none":
        return nn.Identity()
    return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)


def preactivation(dims: int, channels: int, norm: str, act: str) -> nn.Sequential:
    """Return norm -> activation: what a pre-activation block applies before each convolution."""
    return nn.Sequential(norm_layer(dims, channels, norm), activation(act))


class ConvBlock(nn.Sequential):
    """Conv -> (BatchNorm) -> activation, then 2x max-pooling while the input is large enough."""

    def __init__(self, dims: int, c_in: int, c_out: int, *, kernel_size: int, act: str, norm: str, pool: bool):
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        layers: list[nn.Module] = [conv(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=norm != "batch")]
        if norm == "batch":
            layers.append(norm_layer(dims, c_out, norm))
        layers.append(activation(act))
        if pool:
            layers.append(nn.MaxPool2d(2) if dims == 2 else nn.MaxPool1d(2))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Pre-activation basic block: x + conv(act(BN(conv(act(BN(x)))))), the first conv strided to downsample."""

    def __init__(self, dims: int, c_in: int, c_out: int, *, kernel_size: int, act: str, norm: str, stride: int):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        pad, bias = kernel_size // 2, norm == "none"
        self.pre = preactivation(dims, c_in, norm, act)
        self.body = nn.Sequential(
            conv(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=bias),
            preactivation(dims, c_out, norm, act),
            conv(c_out, c_out, kernel_size, padding=pad, bias=bias),
        )
        # A shape change needs a projection; it reads the pre-activated input, as in the pre-activation ResNet.
        self.shortcut = None if stride == 1 and c_in == c_out else conv(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre(x)
        skip = x if self.shortcut is None else self.shortcut(h)
        return skip + self.body(h)  # (B, C, H, W) -> (B, C', H / stride, W / stride)


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
    """A stack of conv stages (VGG-style or pre-activation ResNet), global average pooling and a linear head.

    Images use 2-D convolutions; a table row is read as a 1-channel sequence of its features
    (1-D convolutions), so a CNN can also be compared with an MLP on tabular data. Tokens are
    embedded and read with 1-D convolutions (see the module docstring).

    Args:
        channels: output channels of each stage, e.g. [32, 64].
        kernel_size: odd kernel size of every convolution.
        activation: relu, gelu, silu, tanh or leaky_relu.
        norm: batch or none.
        dropout: dropout probability before the head.
        embed_dim: width of token embeddings (tokens only).
        block: plain (conv-BN-act, then max-pooling) or residual (pre-activation basic blocks,
            stride-2 downsampling) for images and tables; token models keep their own blocks.
        blocks_per_stage: blocks in each stage (ResNet-20: 3, ResNet-18: 2).
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
        block: str = "plain",
        blocks_per_stage: PositiveInt = 1,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim)
        self.save_hyperparameters()
        choose("norm", norm, NORMS)
        choose("block", block, BLOCKS)
        if self.spec.modality == "tokens":
            if block != "plain" or blocks_per_stage != 1:
                raise ConfigError("model.block and model.blocks_per_stage apply to images and tables; token "
                                  "models have their own blocks (residual causal convolutions for LMs)")
            self._build_token_layers(list(channels), kernel_size, activation, norm, dropout, embed_dim)
            return
        dims = 2 if self.spec.modality == "image" else 1
        c_in = self.spec.input_shape[0] if dims == 2 else 1
        size = min(self.spec.input_shape[-dims:])  # smallest spatial extent, to know when to stop downsampling
        opts = dict(kernel_size=kernel_size, act=activation, norm=norm)
        if block == "plain":
            blocks = []
            for c_out in channels:
                pool = size >= 4
                for i in range(blocks_per_stage):  # pool after the stage's last block
                    last = pool and i == blocks_per_stage - 1
                    blocks.append(ConvBlock(dims, c_in, c_out, pool=last, **opts))
                    c_in = c_out
                size = size // 2 if pool else size
            self.features = nn.Sequential(*blocks)
        else:
            conv = nn.Conv2d if dims == 2 else nn.Conv1d
            blocks = [conv(c_in, channels[0], kernel_size, padding=kernel_size // 2, bias=False)]  # the stem
            c_in = channels[0]
            for stage, c_out in enumerate(channels):
                stride = 2 if stage > 0 and size >= 4 else 1
                for i in range(blocks_per_stage):
                    blocks.append(ResidualBlock(dims, c_in, c_out, stride=stride if i == 0 else 1, **opts))
                    c_in = c_out
                size = -(-size // stride)  # a stride-2 conv with padding rounds up
            # Pre-activation blocks end on a convolution: normalise and activate once before pooling.
            self.features = nn.Sequential(*blocks, preactivation(dims, c_in, norm, activation))
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
