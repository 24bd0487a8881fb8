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

    Steps call `add`: an in-place add per value (a host number, such as a batch size, costs no
    device op), with none of torchmetrics' per-update bookkeeping (its update wrapper, the state's
    attribute set), and no host sync: small-model steps stay close to a hand loop. `epoch_sums`
    hands the epoch's sums to the metric state once, for torchmetrics to sum across DDP ranks, and
    starts the next epoch.
    """

    full_state_update = False

    def __init__(self, size: int) -> None:
        super().__init__()
        self.add_state("sums", default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        self.running: list[torch.Tensor | float] | None = None  # this epoch's sums so far, on this rank

    def add(self, *values: torch.Tensor | float) -> None:
        """Add one batch's values to this epoch's sums: tensors without gradients (summed in float64 on
        their device) or host numbers such as a batch size (summed on the host)."""
        running = self.running
        if running is None:
            self.running = [v.detach().to(torch.float64, copy=True) if isinstance(v, torch.Tensor) else float(v)
                            for v in values]
            return
        for i, v in enumerate(values):
            if isinstance(v, torch.Tensor):
                running[i].add_(v)
            else:
                running[i] += v

    def update(self, values: torch.Tensor) -> None:
        self.sums += values.detach().to(self.sums.dtype)

    def compute(self) -> torch.Tensor:
        return self.sums

    def epoch_sums(self) -> torch.Tensor | None:
        """Return the sums over this epoch's batches on every rank, and reset; None if no batch was added
        (e.g. limit_val_batches=0)."""
        if self.running is None:
            return None
        device = self.sums.device
        self.update(torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device) for v in self.running]))
        sums = self.compute()
        self.reset()
        return sums

    def reset(self) -> None:
        super().reset()
        self.running = None


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
