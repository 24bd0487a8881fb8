"""Writing checkpoints atomically (and once per epoch), and rebuilding models from a checkpoint file alone."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from weakref import proxy

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from zoo.errors import ZooError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file in the same folder, then rename it over the target.

    A crash or kill during a save leaves the previous good checkpoint untouched. (No fsync: the
    rename is atomic for the processes that read the file; an fsync per save would only add
    protection against power loss, at ~10 ms a save on small models.)
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
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


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Return a zoo checkpoint dict loaded with `weights_only=True`, or raise a one-line ZooError."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"Checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ZooError(
            f"Cannot read checkpoint {path}: the file is corrupt or not a torch checkpoint ({type(e).__name__})"
        ) from None
    if not isinstance(ckpt, dict) or "zoo" not in ckpt or "hyper_parameters" not in ckpt:
        raise ZooError(f"{path} is not a zoo checkpoint (no model name and hyper-parameters in it)")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> Any:
    """Return the registered model rebuilt from a checkpoint dict, in eval mode."""
    from zoo.registry import MODELS

    cls = MODELS.get(ckpt["zoo"]["model"])
    model = cls(**ckpt["hyper_parameters"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ZooError(f"Checkpoint weights do not fit model '{cls.registry_name}': {str(e).splitlines()[0]}") from None
    return model.eval()


def load_checkpoint(path: str | Path) -> Any:
    """Return the model stored in a zoo checkpoint file, in eval mode, with no config or data needed."""
    return model_from_checkpoint(read_checkpoint(path))
