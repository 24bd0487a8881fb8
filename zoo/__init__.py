"""zoo: a modular model zoo on PyTorch Lightning.

    import zoo
    model = zoo.load("runs/digits_cnn/20261126-120000/checkpoints/best.ckpt")   # or a pretrained name
    zoo.MODELS.names("c*"), zoo.DATA.names()

Heavy imports (torch, lightning) happen on first attribute access, so `zoo --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": "zoo.pretrained",
    "MODELS": "zoo.registry",
    "DATA": "zoo.registry",
    "DataSpec": "zoo.spec",
    "ZooModel": "zoo.models.base",
    "ZooDataModule": "zoo.data.base",
    "TaskModel": "zoo.tasks",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
