"""Task logic shared by the discriminative models: losses, metrics and the train/val/test steps.

An architecture subclasses `TaskModel` and only says how raw inputs become outputs in `forward`:
(B, num_classes) logits, (B, target_dim) standardised values, or (B, T, vocab) next-token logits.
Metrics are torchmetrics objects updated each step and logged once per epoch, which keeps
per-step overhead low and makes DDP reduction exact.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn
from torchmetrics import classification as C
from torchmetrics import regression as R

from zoo.models.base import ZooModel
from zoo.spec import DataSpec

STAGES = ("train", "val", "test")


def build_metrics(spec: DataSpec) -> torchmetrics.MetricCollection:
    """Return the epoch metrics for the spec's task (the loss is tracked separately)."""
    if spec.task == "classification":
        k = spec.num_classes
        return torchmetrics.MetricCollection(
            {
                "acc": C.MulticlassAccuracy(k, average="micro"),
                "precision": C.MulticlassPrecision(k, average="macro"),
                "recall": C.MulticlassRecall(k, average="macro"),
                "f1": C.MulticlassF1Score(k, average="macro"),
            }
        )
    if spec.task == "regression":
        return torchmetrics.MetricCollection(
            {"mse": R.MeanSquaredError(num_outputs=spec.target_dim), "mae": R.MeanAbsoluteError(), "r2": R.R2Score()}
        )
    return torchmetrics.MetricCollection({})  # language modeling: nll and perplexity come from the loss


class TaskModel(ZooModel):
    """A ZooModel trained with the loss and metrics of its DataSpec's task."""

    def __init__(self, spec: dict[str, Any] | DataSpec, optim: dict[str, Any] | None = None) -> None:
        super().__init__(spec, optim)
        self.ignore_index = self.spec.pad_id if self.spec.pad_id is not None else -100
        # Keyed "<stage>_loss" / "<stage>_task": a bare "train" key would clash with Module.train.
        self.metrics = nn.ModuleDict()
        for s in STAGES:
            self.metrics[f"{s}_loss"] = torchmetrics.MeanMetric()
            self.metrics[f"{s}_task"] = build_metrics(self.spec)
        for name in ("target_mean", "target_std"):
            stats = getattr(self.spec, name)
            self.register_buffer(name, torch.tensor(stats, dtype=torch.float32) if stats else None, persistent=False)

    # -- task maths ---------------------------------------------------------------------------
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the mean training loss of outputs `out` against targets `y`."""
        if self.spec.task == "classification":
            return F.cross_entropy(out, y)
        if self.spec.task == "regression":
            return F.mse_loss(out, self._scale_target(y))
        return F.cross_entropy(out.flatten(0, 1), y.flatten(), ignore_index=self.ignore_index)

    def _scale_target(self, y: torch.Tensor) -> torch.Tensor:
        y = y.view(y.shape[0], -1).float()
        return y if self.target_mean is None else (y - self.target_mean) / self.target_std

    def to_prediction(self, out: torch.Tensor) -> torch.Tensor:
        """Return class probabilities or regression values on the targets' original scale."""
        if self.spec.task == "regression":
            return out if self.target_mean is None else out * self.target_std + self.target_mean
        return out.softmax(-1)

    # -- Lightning steps ----------------------------------------------------------------------
    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        out = self(x)
        loss = self.loss(out, y)
        if self.spec.task == "language_modeling":
            weight = (y != self.ignore_index).sum()
        else:
            weight = y.shape[0]
            target = y.view(out.shape[0], -1).float() if self.spec.task == "regression" else y
            self.metrics[f"{stage}_task"].update(self.to_prediction(out.detach()), target)
        self.metrics[f"{stage}_loss"].update(loss.detach(), weight)
        if stage == "train" and self.global_step % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def _log_epoch(self, stage: str) -> None:
        losses, task_metrics = self.metrics[f"{stage}_loss"], self.metrics[f"{stage}_task"]
        if not losses.update_called:  # e.g. limit_val_batches=0
            return
        loss = losses.compute()
        values = {f"{stage}/loss": loss}
        if self.spec.task == "language_modeling":
            values[f"{stage}/ppl"] = loss.exp() if loss < 50 else torch.tensor(math.inf)
        values.update({f"{stage}/{k}": v for k, v in task_metrics.compute().items()})
        # Values are already reduced across DDP ranks by torchmetrics, hence no sync_dist.
        headline = {f"{stage}/loss", f"{stage}/acc"}  # keep the progress bar short
        for name, value in values.items():
            self.log(name, value, prog_bar=stage == "val" and name in headline)
        losses.reset()
        task_metrics.reset()

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch, batch_idx=0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.to_prediction(self(x))
