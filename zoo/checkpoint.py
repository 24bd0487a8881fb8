"""Writing checkpoints atomically, and rebuilding models from a checkpoint file alone."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from zoo.errors import ZooError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file in the same folder, fsync, then rename over the target.

    A crash or kill during a save leaves the previous good checkpoint untouched.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


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
