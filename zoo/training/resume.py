"""Exact resume: what a checkpoint must hold, beyond Lightning's own state, for a resumed run to
match an uninterrupted one bit for bit.

Lightning's checkpoint already holds the weights, optimizers, schedulers, loop progress and
(through `InMemoryLoader.state_dict`) the position inside the epoch. `ResumeState` adds what
it lacks:

- the torch / numpy / python RNG states (dropout, noise, sampling);
- a cursor into every logger (zoo/training/loggers.py): the CSV rows and W&B step written so far
  (flushed at save time), and the next TensorBoard step. A resumed run cuts its logs back to
  that cursor, so what was logged between the checkpoint and a kill is logged once, not twice.

`ResumeState.snapshot` gives both to the one hook that fills a checkpoint (zoo/training/checkpoint.py).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from zoo.training.loggers import log_cursor

# -- RNG ----------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Return the global RNG states as plain containers and tensors (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, python_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        # The 625 words as one tensor, not 625 ints: one object for the pickler instead of 625 at every save.
        "python": [version, torch.tensor(words, dtype=torch.int64), python_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, words, gauss = state["python"]  # words: a tensor, or (checkpoints before it was one) a list of ints
    random.setstate((version, tuple(words.tolist() if isinstance(words, torch.Tensor) else words), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- callbacks ----------------------------------------------------------------------------------


class ResumeState(L.Callback):
    """Give each checkpoint the RNG states and logger cursors (`snapshot`); restore the RNG when resuming."""

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

    def snapshot(self, trainer: L.Trainer) -> dict[str, Any]:
        """Return {"rng", "logs"}: the RNG states and how far each logger got, for the checkpoint being saved."""
        cursor = log_cursor(trainer)
        # Metrics Lightning logs just after this save belong to the checkpoint's past, but a resumed run
        # will not compute them again: keep them, so that the resume logs them and leaves no gap.
        connector, stepped = trainer._logger_connector, trainer.fit_loop.epoch_loop._batches_that_stepped
        if self.phase == "batch_end" and connector.should_update_logs and not trainer.fit_loop._should_accumulate():
            cursor["pending"], cursor["pending_step"] = connector.metrics["log"], stepped
        elif self.phase == "epoch_end":
            cursor["pending"], cursor["pending_step"] = connector.metrics["log"], stepped - 1
        if "pending" in cursor:
            cursor["pending"] = {**{k: float(v) for k, v in cursor["pending"].items()}, "epoch": trainer.current_epoch}
        return {"rng": rng_state(), "logs": cursor}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("zoo", {}).get("rng")
        if rng is not None:
            set_rng_state(rng)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        # Lightning 2.6 hands the saved loader position (mid-epoch checkpoints) to the train loader only
        # when it builds the loader after restoring; a scheduler asking for estimated_stepping_batches
        # builds it before, and the position is dropped. Hand it over again now that the loops are restored.
        trainer.fit_loop._load_combined_loader_states()


def prepare_resume(ckpt_path: Path) -> dict[str, Any]:
    """Remove temp files a killed save left beside `ckpt_path`; return the checkpoint's logger cursor."""
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        for tmp in ckpt_path.parent.glob(".*.ckpt.*.tmp"):  # AtomicCheckpointIO's unfinished writes
            tmp.unlink(missing_ok=True)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    return dict(ckpt.get("zoo", {}).get("logs", {}))  # {} for checkpoints that predate the cursor
