"""`zoo.load(name_or_path)`: models from checkpoint files or from the pretrained registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.checkpoint import model_from_checkpoint, read_checkpoint


def load_with_config(name_or_path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Return (model in eval mode, the training config stored with it, or {})."""
    ckpt = read_checkpoint(name_or_path)
    return model_from_checkpoint(ckpt), ckpt["zoo"].get("config", {})


def load(name_or_path: str | Path) -> Any:
    """Return a zoo model in eval mode from a checkpoint path (`.ckpt`) or a pretrained name."""
    return load_with_config(name_or_path)[0]
