"""Convolutional network: 2-D convolutions over images, 1-D convolutions over table features."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import choose
from zoo.models.base import activation
from zoo.registry import MODELS
from zoo.tasks import TaskModel

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


@MODELS.register("cnn")
class CNN(TaskModel):
    """A VGG-style stack of conv blocks, global average pooling and a linear head.

    Images use 2-D convolutions; a table row is read as a 1-channel sequence of its features
    (1-D convolutions), so a CNN can also be compared with an MLP on tabular data.

    Args:
        channels: output channels of each conv block, e.g. [32, 64].
        kernel_size: odd kernel size of every convolution.
        activation: relu, gelu, silu, tanh or leaky_relu.
        norm: batch or none.
        dropout: dropout probability before the head.
    """

    supports = frozenset({("image", "classification"), ("tabular", "classification"), ("tabular", "regression")})

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        channels: list[int] = (32, 64),
        kernel_size: int = 3,
        activation: str = "relu",
        norm: str = "batch",
        dropout: float = 0.1,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim)
        self.save_hyperparameters()
        choose("norm", norm, NORMS)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        if self.spec.modality == "tabular":
            x = x.unsqueeze(1)  # (B, F) -> (B, 1, F): features as a 1-D signal
        return self.head(self.pool(self.features(x)))  # (B, C, ...) -> (B, out)
