"""ZooModel: the LightningModule base every zoo architecture shares.

It owns the parts that are the same for every model: the DataSpec, the optimizer config,
input standardisation with train-split statistics, the compatibility declaration and the
checkpoint metadata that lets `zoo.load` rebuild a model from the file alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

from zoo.optim import build_optimizer, build_scheduler
from zoo.spec import DataSpec

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    """Return a fresh activation module by name (relu, gelu, silu, tanh, leaky_relu)."""
    from zoo.errors import choose

    return ACTIVATIONS[choose("activation", name, ACTIVATIONS)]()


class ZooModel(L.LightningModule):
    """Base class: subclasses call `super().__init__(spec, optim)` then `self.save_hyperparameters()`."""

    #: (modality, task) pairs this architecture trains on; task "*" means any task of that modality.
    supports: ClassVar[frozenset[tuple[str, str]]] = frozenset()
    registry_name: ClassVar[str]

    def __init__(self, spec: dict[str, Any] | DataSpec, optim: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = DataSpec.from_dict(spec)
        self.optim = dict(optim or {})
        shape = (1, -1, 1, 1) if self.spec.modality == "image" else (1, -1)
        for name in ("input_mean", "input_std"):
            stats = getattr(self.spec, name)
            value = torch.tensor(stats, dtype=torch.float32).view(shape) if stats else None
            self.register_buffer(name, value, persistent=False)

    @classmethod
    def supports_data(cls, modality: str, task: str) -> bool:
        """Return True when this architecture can train on data of this modality and task."""
        return (modality, task) in cls.supports or (modality, "*") in cls.supports

    def monitor(self) -> tuple[str, str]:
        """Return the (metric, mode) that picks the best checkpoint."""
        return "val/loss", "min"

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Return raw inputs scaled with the train split's mean and std (identity for tokens)."""
        if self.input_mean is None:
            return x
        return (x - self.input_mean) / self.input_std

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self, self.optim)
        scheduler = build_scheduler(optimizer, self.optim.get("scheduler", {}), self.trainer.estimated_stepping_batches)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain containers only, so that torch.load(weights_only=True) reads every checkpoint.
        checkpoint["hyper_parameters"]["spec"] = self.spec.to_dict()
        checkpoint.setdefault("zoo", {})["model"] = self.registry_name
