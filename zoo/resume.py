"""Exact resume and kill safety: RNG state, log cursors and a non-finite loss guard.

Lightning's checkpoint already holds the weights, optimizers, schedulers, loop progress and
(through `InMemoryLoader.state_dict`) the position inside the epoch. `ResumeState` adds what
it lacks for a resumed run to match an uninterrupted one exactly:

- the torch / numpy / python RNG states (dropout, noise, sampling);
- a cursor into every logger: the CSV rows and W&B step written so far (flushed at save
  time), and the next TensorBoard step. A resumed run cuts its logs back to that cursor, so
  what was logged between the checkpoint and a kill is logged once, not twice.

`FiniteLoss` stops training at a non-finite loss (on the CPU before its gradients reach the
weights; on a GPU within 50 steps), and never lets a checkpoint save weights that followed it,
so last.ckpt keeps the last good state.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from zoo.errors import ZooError


class TrainingDiverged(ZooError):
    """The loss became NaN or infinite; the message says where and which checkpoint is still good."""


# -- RNG ----------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Return the global RNG states as plain containers and tensors (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- callbacks ----------------------------------------------------------------------------------


class ResumeState(L.Callback):
    """Store RNG states and logger cursors in every checkpoint; restore the RNG when resuming."""

    def __init__(self) -> None:
        self.phase: str | None = None  # "batch_end" / "epoch_end": Lightning logs metrics right after a save there

    # These run before ModelCheckpoint's hooks: Lightning always calls checkpoint callbacks last.
    def on_train_batch_end(self, *args: Any) -> None:
        self.phase = "batch_end"

    def on_train_epoch_end(self, *args: Any) -> None:
        self.phase = "epoch_end"

    def on_train_batch_start(self, *args: Any) -> None:
        self.phase = None

    on_validation_start = on_train_batch_start

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        zoo = checkpoint.setdefault("zoo", {})
        zoo["rng"] = rng_state()
        zoo["logs"] = cursor = log_cursor(trainer)
        # Metrics Lightning logs just after this save belong to the checkpoint's past, but a resumed run
        # will not compute them again: keep them, so that the resume logs them and leaves no gap.
        connector, stepped = trainer._logger_connector, trainer.fit_loop.epoch_loop._batches_that_stepped
        if self.phase == "batch_end" and connector.should_update_logs and not trainer.fit_loop._should_accumulate():
            cursor["pending"], cursor["pending_step"] = connector.metrics["log"], stepped
        elif self.phase == "epoch_end":
            cursor["pending"], cursor["pending_step"] = connector.metrics["log"], stepped - 1
        if "pending" in cursor:
            cursor["pending"] = {**{k: float(v) for k, v in cursor["pending"].items()}, "epoch": trainer.current_epoch}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("zoo", {}).get("rng")
        if rng is not None:
            set_rng_state(rng)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        # Lightning 2.6 hands the saved loader position (mid-epoch checkpoints) to the train loader only
        # when it builds the loader after restoring; a scheduler asking for estimated_stepping_batches
        # builds it before, and the position is dropped. Hand it over again now that the loops are restored.
        trainer.fit_loop._load_combined_loader_states()


def log_cursor(trainer: L.Trainer) -> dict[str, Any]:
    """Flush the loggers and return how far each got: CSV rows, W&B run id and step, next step."""
    cursor: dict[str, Any] = {"step": trainer.fit_loop.epoch_loop._batches_that_stepped}
    for logger in trainer.loggers:
        if isinstance(logger, ResumableCSVLogger):
            logger.save()  # rows buffered in memory would be lost by a kill
            cursor["csv_rows"] = logger.experiment.rows_written
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.flush()
        elif isinstance(logger, WandbLogger):
            cursor["wandb_id"] = logger.experiment.id
            cursor["wandb_step"] = logger.experiment.step
    return cursor


class FiniteLoss(L.Callback):
    """Raise `TrainingDiverged` when a training loss is NaN or infinite; weights from it are never saved.

    On the CPU every loss is checked before its backward, so bad gradients never reach the
    weights. On an accelerator, reading a flag back every step would make the device wait for
    Python at each step (about 5% of a GPT-2-sized step on an H100), so the flag is accumulated
    on the device and read every `check_every` steps and before every checkpoint is written:
    training stops within `check_every` steps, and a checkpoint never holds the bad weights.
    """

    def __init__(self, check_every: int | None = None) -> None:
        self.check_every = check_every
        self._bad: torch.Tensor | None = None  # any non-finite loss since the last check (on the device)
        self._since = 0  # the first step not yet checked

    def on_before_backward(self, trainer: L.Trainer, pl_module: Any, loss: torch.Tensor) -> None:
        bad = ~torch.isfinite(loss.detach()).all()
        if self._bad is None:
            self._bad, self._since = bad, trainer.global_step
        else:
            self._bad |= bad
        every = self.check_every or (1 if loss.device.type == "cpu" else 50)
        if (trainer.global_step + 1 - self._since) >= every:
            self.check(trainer, loss)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self.check(trainer)  # raising here aborts the save: the file on disk stays the last good one

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer, loss: torch.Tensor | None = None) -> None:
        """Read the flag (one host sync) and raise if a non-finite loss was seen since the last check."""
        if self._bad is None:
            return
        bad, since = bool(self._bad), self._since
        self._bad = None
        if trainer.world_size > 1:  # every rank must stop together, or the others hang in all-reduce
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        good = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was saved yet"
        step = trainer.global_step
        where = f"step {step}" if since == step else f"a step between {since} and {step}"
        value = f" ({loss.detach().float().mean().item()})" if loss is not None and since == step else ""
        raise TrainingDiverged(
            f"Non-finite loss{value} at epoch {trainer.current_epoch}, {where}: training stopped ({good}). "
            "Try a lower optim.lr or gradient clipping."
        )


def last_checkpoints(ckpt_dir: Path, every_n_train_steps: int | None, best: L.Callback | None = None) -> list[L.Callback]:
    """Return the callbacks keeping ckpt_dir/last.ckpt: after each epoch, and every N steps when asked.

    The epoch-end one links to `best` (a ModelCheckpoint) instead of writing again when best was just saved.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    from zoo.checkpoint import LastCheckpoint

    class MidEpochCheckpoint(ModelCheckpoint):
        """Step-based saves, except on an epoch's last batch: the epoch-end save after validation covers it.

        (A resume from a save made before the epoch's validation would skip that validation.)
        """

        def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
            if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
                super().on_train_batch_end(trainer, *args)

    common = {"dirpath": ckpt_dir, "filename": "last", "save_top_k": 1, "enable_version_counter": False}
    callbacks: list[L.Callback] = [LastCheckpoint(best, **common, every_n_epochs=1)]
    if every_n_train_steps:
        callbacks.append(MidEpochCheckpoint(**common, every_n_train_steps=every_n_train_steps))
    return callbacks


# -- loggers that continue after a resume -----------------------------------------------------


class AppendingWriter(ExperimentWriter):
    """CSV writer that keeps an existing metrics.csv (cut to `keep_rows` rows) instead of deleting it."""

    def __init__(self, log_dir: str, keep_rows: int | None = None) -> None:
        self.keep_rows = keep_rows
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        self.rows_written = 0
        if not path.is_file():
            return
        if self.keep_rows is None:  # a fresh run never shares its dir, but be safe: start over
            path.unlink()
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header, rows = list(reader.fieldnames or []), list(reader)[: self.keep_rows]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = header
        self.rows_written = len(rows)

    def save(self) -> None:
        self.rows_written += len(self.metrics)
        super().save()


class ResumableCSVLogger(CSVLogger):
    """CSVLogger writing run_dir/metrics.csv; after a resume it continues the file at the checkpoint's row."""

    def __init__(self, save_dir: str, keep_rows: int | None = None) -> None:
        super().__init__(save_dir=save_dir, name="", version="")
        self.keep_rows = keep_rows

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(self.log_dir, self.keep_rows)
        return self._experiment


def log_pending(loggers: list[Any], cursor: dict[str, Any]) -> None:
    """Log the metrics that the resumed checkpoint was saved just before (see `ResumeState`)."""
    if cursor.get("pending"):
        for logger in loggers:
            if isinstance(logger, TensorBoardLogger) and cursor["pending_step"] < cursor["step"]:
                continue  # TensorBoard kept that step (purge_step starts after it)
            logger.log_metrics(cursor["pending"], step=cursor["pending_step"])
            logger.save()


def prepare_resume(ckpt_path: Path) -> dict[str, Any]:
    """Remove temp files a killed save left beside `ckpt_path`; return the checkpoint's logger cursor."""
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        for tmp in ckpt_path.parent.glob(".*.ckpt.*.tmp"):  # AtomicCheckpointIO's unfinished writes
            tmp.unlink(missing_ok=True)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    return dict(ckpt.get("zoo", {}).get("logs", {}))  # {} for checkpoints that predate the cursor
