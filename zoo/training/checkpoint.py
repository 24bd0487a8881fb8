"""Every saving decision of a zoo run: which checkpoints exist, when they are written, how, and what
goes into them.

    run_dir/checkpoints/best.ckpt   best on the monitored metric (the model's choice, or callbacks.checkpoint)
    run_dir/checkpoints/last.ckpt   after every epoch (a hard link to best.ckpt when that was just
                                    saved), and every N steps with callbacks.checkpoint.every_n_train_steps

- `checkpoint_callbacks` builds the Lightning callbacks that write them;
- `AtomicCheckpointIO` writes each file atomically (a temporary file, then a rename);
- `CheckpointContents` is the one hook that fills `checkpoint["zoo"]`: the model's registry name
  (so `zoo.load` rebuilds it from the file alone), the resolved run config, and the RNG states
  and logger cursors of exact resume (zoo/training/resume.py). It first asks the NaN guard
  (zoo/training/callbacks.py): weights that followed a non-finite loss are never saved.

Reading checkpoints back is zoo.load's business (zoo/hub/pretrained.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from zoo.data.download import FILE_MODE


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file in the same folder, then rename it over the target.

    A crash or kill during a save leaves the previous good checkpoint untouched. (No fsync: the
    rename is atomic for the processes that read the file; an fsync per save would only add
    protection against power loss, at a cost docs/tracking.md gives.)
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600; a checkpoint is as readable as the run's other files
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def link_atomically(source: str | Path, target: str | Path) -> None:
    """Make `target` a hard link to `source`, replacing any old `target` in one atomic rename."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # a file system without hard links: copy instead
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


class LastCheckpoint(ModelCheckpoint):
    """last.ckpt, written as a hard link to best.ckpt when that was just saved at the same step.

    An improving epoch then writes one file instead of two. Every later save replaces a path with
    a new file (see AtomicCheckpointIO), so the two names never share a future write.
    """

    def __init__(self, best: ModelCheckpoint | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.best = best

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        best = self.best
        if best is None or best._last_global_step_saved != trainer.global_step or not best.best_model_path:
            return super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            link_atomically(best.best_model_path, filepath)
        trainer.strategy.barrier("zoo_link_last")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


class MidEpochCheckpoint(ModelCheckpoint):
    """last.ckpt every N steps, except on an epoch's last batch: the epoch-end save after validation covers it.

    (A resume from a save made before the epoch's validation would skip that validation.)
    """

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, *args)


class CheckpointContents(L.Callback):
    """Fill `checkpoint["zoo"]` of every checkpoint a run writes: model name, config, RNG and log cursors.

    `guard` (a `FiniteLoss`) is asked first: if the loss went non-finite since its last check, it
    raises, and the save is abandoned with the file on disk still the last good one.
    """

    def __init__(self, saved: dict[str, Any], resume: Any, guard: Any = None) -> None:
        self.saved, self.resume, self.guard = saved, resume, guard

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self.guard is not None:
            self.guard.check(trainer)
        checkpoint["zoo"] = {"model": pl_module.registry_name, "config": self.saved, **self.resume.snapshot(trainer)}


def checkpoint_callbacks(c: dict[str, Any], monitor: tuple[str, str], run_dir: Path, saved: dict[str, Any],
                         resume: Any, guard: Any = None) -> list[L.Callback]:
    """Return the callbacks that write run_dir/checkpoints/ as the `callbacks.checkpoint` section `c`
    says; best.ckpt follows `monitor` (metric, mode), and every file holds `saved`, the run's config.

    `best` comes before last.ckpt's callbacks, so that an improving epoch's last.ckpt links to it.
    """
    ckpt_dir = run_dir / "checkpoints"
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor[0], mode=monitor[1], save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False,
                           every_n_epochs=c["every_n_epochs"])
    common = {"dirpath": ckpt_dir, "filename": "last", "save_top_k": 1, "enable_version_counter": False}
    callbacks: list[L.Callback] = [best, LastCheckpoint(best, **common, every_n_epochs=1)]
    if c["every_n_train_steps"]:
        callbacks.append(MidEpochCheckpoint(**common, every_n_train_steps=c["every_n_train_steps"]))
    return [*callbacks, CheckpointContents(saved, resume, guard)]


def saved_step(path: str | Path | None) -> int | None:
    """Return the global step a checkpoint file was saved at (None for no file)."""
    if not path:
        return None
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
