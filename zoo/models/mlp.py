"""Multi-layer perceptron: images are flattened, table rows are used as they are, and tokens are embedded.

For tokens there are two classic shapes:

    classifier    bag of embeddings: the mean of the non-padding token vectors -> MLP -> head
    LM            Bengio et al. (2003): the `context` previous token vectors, concatenated -> MLP
                  -> next-token logits, at every position (a sliding window, left-padded)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.bounds import PositiveInt, Probability
from zoo.errors import choose
from zoo.models.base import TaskModel, activation
from zoo.models.text import TextModel
from zoo.registry import MODELS

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
class MLP(TextModel, TaskModel):
    """A stack of fully connected layers with a linear head.

    Args:
        hidden: widths of the hidden layers, e.g. [256, 128].
        activation: relu, gelu, silu, tanh or leaky_relu.
        norm: batch, layer or none, applied after each hidden Linear.
        dropout: dropout probability after each hidden layer.
        embed_dim: width of token embeddings (tokens only).
        context: tokens the LM reads to predict the next one (tokens language modeling only).
    """

    supports = frozenset({("image", "classification"), ("tabular", "classification"), ("tabular", "regression"),
                          ("tokens", "classification"), ("tokens", "language_modeling")})

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        hidden: list[PositiveInt] = (128, 64),
        activation: str = "relu",
        norm: str = "batch",
        dropout: Probability = 0.1,
        embed_dim: PositiveInt = 32,
        context: PositiveInt = 3,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim)
        self.save_hyperparameters()
        s = self.spec
        self.pad_id = s.pad_id if s.pad_id is not None else 0
        if s.modality == "tokens":
            self.context = max(1, context)
            self.embed = nn.Embedding(s.vocab_size, embed_dim, padding_idx=s.pad_id)
            in_dim = embed_dim * self.context if s.task == "language_modeling" else embed_dim
        else:
            in_dim = int(torch.tensor(s.input_shape).prod())
        self.body, width = mlp_layers(in_dim, list(hidden), act=activation, norm=norm, dropout=dropout)
        self.head = nn.Linear(width, s.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.modality != "tokens":
            x = self.standardize(x).flatten(1)  # (B, F) or (B, C*H*W)
            return self.head(self.body(x))
        if self.spec.task == "classification":
            keep = (x != self.pad_id).unsqueeze(-1).float()  # (B, T, 1)
            bag = (self.embed(x) * keep).sum(1) / keep.sum(1).clamp(min=1)  # (B, T, E) -> (B, E)
            return self.head(self.body(bag))
        B, T = x.shape
        # Window t holds tokens t-context+1 .. t; positions before the start read as padding.
        windows = F.pad(x, (self.context - 1, 0), value=self.pad_id).unfold(1, self.context, 1)  # (B, T, context)
        h = self.embed(windows).flatten(2)  # (B, T, context * E)
        return self.head(self.body(h.flatten(0, 1))).view(B, T, -1)  # (B*T, ...) -> (B, T, V)
