"""Metrics per task, shared by the discriminative models (`zoo.models.base.TaskModel`).

classification: accuracy, macro precision / recall / F1; regression: MSE, MAE, R2;
language modeling: the loss itself (nats per token) and its perplexity.
"""

from __future__ import annotations

import torchmetrics
from torchmetrics import classification as C
from torchmetrics import regression as R

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


def __getattr__(name: str):
    # Transitional: TaskModel moved to zoo.models.base (importing it here at module level made
    # `import zoo.tasks` before `zoo.models` circular). Remove once no caller uses the old path.
    if name == "TaskModel":
        from zoo.models.base import TaskModel

        return TaskModel
    raise AttributeError(name)
