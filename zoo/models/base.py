"""The LightningModule bases every zoo architecture shares.

`ZooModel` owns what is the same for every model: the DataSpec, the optimizer config, input
standardisation with train-split statistics, the compatibility declaration, and hyper-parameters
kept as plain containers, so that `Model.load_from_checkpoint(path)` and `zoo.load(path)`
rebuild a model from the file alone. (What else a zoo checkpoint holds, under "zoo", is decided
in zoo/training/checkpoint.py: models never touch files, loggers or the datamodule.)

`TaskModel` adds the task logic of the discriminative models (MLP, CNN, RNN, transformer): an
architecture subclasses it and only says how raw inputs become outputs in `forward`:
(B, num_classes) logits, (B, target_dim) standardised values, or (B, T, vocab) next-token logits.
Metrics are torchmetrics objects updated each step and logged once per epoch, which keeps
per-step overhead low and makes DDP reduction exact.
"""

from __future__ import annotations

import inspect
import math
import typing
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from zoo.bounds import check_bounds
from zoo.errors import ZooError, choose
from zoo.models.metrics import MODES, STAGES, Totals, build_metrics
from zoo.models.optim import build_optimizer, build_scheduler
from zoo.spec import DataSpec

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    """Return a fresh activation module by name (relu, gelu, silu, tanh, leaky_relu)."""
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

    def save_hyperparameters(self, *args: Any, ignore: Any = None, frame: Any = None, logger: bool = False) -> None:
        """Lightning's `save_hyperparameters`, then a check of the values against the bounds in the
        constructor's type hints (zoo.bounds), before any layer is built from them.

        `logger=False` by default: `zoo.fit` logs the whole resolved config to every logger once, so
        the model's own copy would only duplicate it (and the CSV logger would re-dump it to
        hparams.yaml at every flush)."""
        frame = frame or inspect.currentframe().f_back
        super().save_hyperparameters(*args, ignore=ignore, frame=frame, logger=logger)
        try:
            hints = typing.get_type_hints(type(self).__init__, include_extras=True)
        except (NameError, TypeError):  # hints that only a type checker can resolve: nothing to check
            return
        check_bounds(hints, self.hparams, "model.")

    @classmethod
    def supports_data(cls, modality: str, task: str) -> bool:
        """Return True when this architecture can train on data of this modality and task."""
        return (modality, task) in cls.supports or (modality, "*") in cls.supports

    def monitor(self) -> tuple[str, str]:
        """Return the (metric, mode) that picks the best checkpoint."""
        return "val/loss", "min"

    @classmethod
    def epoch_metrics(cls, modality: str, task: str) -> dict[str, str]:
        """Return the metrics this architecture logs once per epoch in training and validation on data
        of this kind, each with the mode ("min" or "max") in which it improves.

        These are the names a checkpoint or early-stopping monitor may watch: zoo's config check
        reads them before any data loads, and tests/test_matrix.py checks that every model logs them.
        """
        return {"val/loss": "min"}

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Return raw inputs scaled with the train split's mean and std (identity for tokens)."""
        if self.input_mean is None:
            return x
        return (x - self.input_mean) / self.input_std

    def compile_for_training(self) -> None:
        """Apply `torch.compile` to the hot path of a training step (`model.compile=true`): here, `forward`."""
        self.compile()

    def logs_this_step(self) -> bool:
        """Return True in the training steps after which Lightning writes step metrics to the loggers (the
        last of every `trainer.log_every_n_steps` optimizer steps): a value logged in another step is
        replaced, or dropped at the epoch's end, before anything writes it."""
        every = self.trainer.log_every_n_steps
        return bool(every) and (self.global_step + 1) % every == 0

    # -- Lightning steps: each stage runs `_shared_step(batch, stage)` per batch, `_log_epoch(stage)` at its end
    def _shared_step(self, batch: Any, stage: str) -> torch.Tensor | None:
        """Return the loss of a batch in `stage` ("train", "val" or "test") and update that stage's metrics."""
        raise NotImplementedError

    def _log_epoch(self, stage: str) -> None:
        """Log the metrics that `stage` gathered over the epoch, then reset them (nothing by default)."""

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

    def configure_optimizers(self) -> Any:
        optim = dict(self.optim)
        if optim.get("fused") is None and self._grad_scaler() is not None and self.trainer.gradient_clip_val:
            optim["fused"] = False  # a fused step unscales inside itself: too late to clip fp16-scaled gradients
        optimizer = build_optimizer(self, optim)
        scheduler = build_scheduler(optimizer, self.optim.get("scheduler", {}), self.trainer.estimated_stepping_batches)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Clip as Lightning does (the Trainer's `gradient_clip_val` and algorithm), also for an optimizer that
        unscales its own gradients (fused AdamW) when no GradScaler scaled them (bf16-mixed, 32-true).

        Lightning refuses that case under its AMP plugin, bf16 included (FACTS.md, "Fused AdamW with
        clipping"), although without a scaler the gradients are the true ones. Here they are clipped
        with the plugin's own clip functions, the ones Lightning calls for other optimizers.
        """
        if gradient_clip_val and getattr(optimizer, "_step_supports_amp_scaling", False) and self._grad_scaler() is None:
            precision = self.trainer.precision_plugin
            if gradient_clip_algorithm == "value":
                precision.clip_grad_by_value(optimizer, gradient_clip_val)
            else:
                precision.clip_grad_by_norm(optimizer, gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _grad_scaler(self) -> Any:
        """Return the Trainer's GradScaler (fp16 mixed precision), or None."""
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain containers only, so that torch.load(weights_only=True) reads every checkpoint.
        checkpoint["hyper_parameters"]["spec"] = self.spec.to_dict()


class TaskModel(ZooModel):
    """A ZooModel trained with the loss and metrics of its DataSpec's task."""

    def __init__(self, spec: dict[str, Any] | DataSpec, optim: dict[str, Any] | None = None) -> None:
        super().__init__(spec, optim)
        self.ignore_index = self.spec.pad_id if self.spec.pad_id is not None else -100
        # Per stage: Totals of (loss x count, count, correct) and, for val/test, the task's full
        # metrics. Keyed "<stage>_..." because a bare "train" key would clash with Module.train.
        self.metrics = nn.ModuleDict()
        for s in STAGES:
            self.metrics[f"{s}_totals"] = Totals(3)
            if s != "train":
                self.metrics[f"{s}_task"] = build_metrics(self.spec)
        # The val/test predictions and targets of the epoch so far, given to the task metrics in one
        # update at its end: one pass of torchmetrics' per-update work an epoch, not one per batch.
        self.epoch_outputs: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        for name in ("target_mean", "target_std"):
            stats = getattr(self.spec, name)
            self.register_buffer(name, torch.tensor(stats, dtype=torch.float32) if stats else None, persistent=False)

    @classmethod
    def epoch_metrics(cls, modality: str, task: str) -> dict[str, str]:
        train = {"loss": "min", **({"acc": "max"} if task == "classification" else {})}
        val = {"loss": "min", **MODES[task]}
        return {**{f"train/{k}": m for k, m in train.items()}, **{f"val/{k}": m for k, m in val.items()}}

    def compile_for_training(self) -> None:
        """Compile forward and loss as one graph, so that the compiler fuses the loss into the output layer."""
        self.forward_loss = torch.compile(self.forward_loss)

    # -- task maths ---------------------------------------------------------------------------
    def forward_loss(self, x: torch.Tensor, y: torch.Tensor, keep_outputs: bool = True
                     ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Return (outputs, mean loss) of a batch: the part of a step that `model.compile=true` compiles.

        With `keep_outputs=False` the outputs are dropped (None): a language model's step needs only
        the loss, and its (B, T, vocab) logits, 3 GB for GPT-2 at B=32, are then neither written out
        by the compiled graph nor kept alive until the step ends (docs/transformers.md has what
        returning them cost).
        """
        out = self(x)
        return (out if keep_outputs else None), self.loss(out, y)

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
        # Outputs feed the accuracy and the val/test metrics; a language model's metrics come from the loss alone.
        keep = {"classification": True, "regression": stage != "train", "language_modeling": False}[self.spec.task]
        out, loss = self.forward_loss(x, y, keep)
        # The batch's sample count is known on the host; a language model's count of real tokens is not.
        count = (y != self.ignore_index).sum() if self.spec.task == "language_modeling" else y.shape[0]
        correct = (out.argmax(-1) == y).sum() if self.spec.task == "classification" else 0
        self.metrics[f"{stage}_totals"].add(loss.detach() * count, count, correct)
        if stage != "train" and self.spec.task != "language_modeling":
            preds = out.argmax(-1) if self.spec.task == "classification" else self.to_prediction(out)
            target = y.view(out.shape[0], -1).float() if self.spec.task == "regression" else y
            kept = self.epoch_outputs.setdefault(stage, ([], []))
            kept[0].append(preds.detach())
            kept[1].append(target)
        if stage == "train" and self.logs_this_step():
            self.log("train/loss_step", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def _log_epoch(self, stage: str) -> None:
        sums = self.metrics[f"{stage}_totals"].epoch_sums()  # summed across DDP ranks by torchmetrics
        if sums is None:  # no batch, e.g. limit_val_batches=0
            return
        loss_sum, count, correct = sums.float()
        loss = loss_sum / count
        values = {f"{stage}/loss": loss}
        if self.spec.task == "language_modeling":
            values[f"{stage}/ppl"] = loss.exp() if loss < 50 else torch.tensor(math.inf)
        if stage == "train" and self.spec.task == "classification":
            values["train/acc"] = correct / count
        if stage != "train":
            task_metrics = self.metrics[f"{stage}_task"]
            if stage in self.epoch_outputs:
                preds, targets = self.epoch_outputs.pop(stage)
                task_metrics.update(torch.cat(preds), torch.cat(targets))
            values.update({f"{stage}/{k}": v for k, v in task_metrics.compute().items()})
            task_metrics.reset()
        headline = {f"{stage}/loss", f"{stage}/acc"}  # keep the progress bar short
        for name, value in values.items():
            self.log(name, value, prog_bar=stage == "val" and name in headline)

    def predict_step(self, batch, batch_idx=0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.to_prediction(self(x))

    def encode_rows(self, rows: Any) -> torch.Tensor:
        """Return (N, F) inputs from raw table rows (a DataFrame or {column: values}), preprocessed as the
        data was in training; for models trained on a table file (`csv`), whose spec carries `table`."""
        from zoo.spec import encode_table

        if not self.spec.table:
            raise ZooError(f"This '{self.registry_name}' was not trained on a table file, so it has no column "
                           "preprocessing; give it feature tensors")
        try:
            return torch.from_numpy(encode_table(self.spec.table, rows)).to(self.device)
        except ValueError as e:
            raise ZooError(str(e)) from None
