"""Metrics per task, shared by the discriminative models through `zoo.models.base.TaskModel`.

classification: accuracy, macro precision / recall / F1; regression: MSE, MAE, R2;
language modeling: the loss itself (nats per token) and its perplexity.
"""

from __future__ import annotations

import torch
import torchmetrics
from torchmetrics import classification as C
from torchmetrics import regression as R

from zoo.spec import DataSpec

STAGES = ("train", "val", "test")
# The epoch metrics of each task beside the loss, with the direction in which each improves.
MODES = {
    "classification": {"acc": "max", "precision": "max", "recall": "max", "f1": "max"},
    "regression": {"mse": "min", "mae": "min", "r2": "max"},
    "language_modeling": {"ppl": "min"},
}


class Totals(torchmetrics.Metric):
    """Running sums of a few per-batch quantities (loss x count, correct, count), summed across DDP ranks.

    Training updates this instead of full metric collections: one in-place add per step, no
    host sync and no input validation, which keeps small-model steps close to a hand loop.
    """

    full_state_update = False

    def __init__(self, size: int) -> None:
        super().__init__()
        self.add_state("sums", default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        self.sums += values.detach().to(self.sums.dtype)

    def compute(self) -> torch.Tensor:
        return self.sums


def build_metrics(spec: DataSpec) -> torchmetrics.MetricCollection:
    """Return the val/test metrics for the spec's task (the loss is tracked separately)."""
    if spec.task == "classification":
        k = spec.num_classes
        # Predictions come in as class indices, already checked by the model's own shapes.
        return torchmetrics.MetricCollection(
            {
                "acc": C.MulticlassAccuracy(k, average="micro", validate_args=False),
                "precision": C.MulticlassPrecision(k, average="macro", validate_args=False),
                "recall": C.MulticlassRecall(k, average="macro", validate_args=False),
                "f1": C.MulticlassF1Score(k, average="macro", validate_args=False),
            }
        )
    if spec.task == "regression":
        return torchmetrics.MetricCollection(
            {"mse": R.MeanSquaredError(num_outputs=spec.target_dim), "mae": R.MeanAbsoluteError(), "r2": R.R2Score()}
        )
    return torchmetrics.MetricCollection({})  # language modeling: nll and perplexity come from the loss
