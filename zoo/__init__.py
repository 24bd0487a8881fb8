"""zoo: a modular model zoo on PyTorch Lightning.

    import zoo
    model = zoo.load("runs/digits_cnn/20261126-120000/checkpoints/best.ckpt")   # or a pretrained name
    zoo.MODELS.names("c*"), zoo.DATA.names()

Heavy imports (torch, lightning) happen on first attribute access, so `zoo --help` stays fast.
The package is laid out by concern; docs/architecture.md draws the layers:

    cli/ and fit.py  ->  training/, evaluation/, hub/  ->  models/, data/  ->  registry, spec, errors, bounds
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": "zoo.hub.pretrained",
    "MODELS": "zoo.registry",
    "DATA": "zoo.registry",
    "DataSpec": "zoo.spec",
    "ZooModel": "zoo.models.base",
    "TaskModel": "zoo.models.base",
    "ZooDataModule": "zoo.data.base",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


# Modules that moved when zoo was split into subpackages, under the names that docs/extending.md
# gave plugin authors before: `import zoo.config` still works, and warns where the module lives now.
MOVED = {"zoo.config": "zoo.training.config", "zoo.download": "zoo.data.download"}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old module name as the module it moved to (the very same module object)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: Any) -> Any:
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; import it from there", DeprecationWarning,
                      stacklevel=2)
        module = importlib.import_module(MOVED[spec.name])
        self._own_spec = module.__spec__  # the import system stamps the old name's spec on the module
        return module

    def exec_module(self, module: Any) -> None:
        module.__spec__ = self._own_spec  # ... so give it its own back: it is already executed


sys.meta_path.append(_MovedModules())
