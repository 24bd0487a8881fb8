"""Multi-layer perceptron: images are flattened, table rows are used as they are."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import choose
from zoo.models.base import activation
from zoo.registry import MODELS
from zoo.tasks import TaskModel

NORMS = ("batch", "layer", "none")


def mlp_layers(in_dim: int, hidden: list[int], *, act: str, norm: str, dropout: float) -> tuple[nn.Sequential, int]:
    """Return Linear -> norm -> activation -> dropout blocks and their output width."""
    choose("norm", norm, NORMS)
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        elif norm == "layer":
            layers.append(nn.LayerNorm(width))
        layers += [activation(act), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*layers), in_dim


@MODELS.register("mlp")
class MLP(TaskModel):
    """A stack of fully connected layers with a linear head.

    Args:
        hidden: widths of the hidden layers, e.g. [256, 128].
        activation: relu, gelu, silu, tanh or leaky_relu.
        norm: batch, layer or none, applied after each hidden Linear.
        dropout: dropout probability after each hidden layer.
    """

    supports = frozenset({("image", "classification"), ("tabular", "classification"), ("tabular", "regression")})

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        hidden: list[int] = (128, 64),
        activation: str = "relu",
        norm: str = "batch",
        dropout: float = 0.1,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim)
        self.save_hyperparameters()
        in_dim = int(torch.tensor(self.spec.input_shape).prod())
        self.body, width = mlp_layers(in_dim, list(hidden), act=activation, norm=norm, dropout=dropout)
        self.head = nn.Linear(width, self.spec.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x).flatten(1)  # (B, F) or (B, C*H*W)
        return self.head(self.body(x))
