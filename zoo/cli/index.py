"""The index of what is in the zoo: zoo/cli/index.json, read by `zoo list` and `zoo info`.

Listing from the live registry means importing every model and dataset, and with them torch and
Lightning: 9 s before a line is printed. The index holds what listing needs, taken from the
registry and the pretrained cards when `make docs` runs (scripts/gen_docs.py), so that listing
reads one JSON file instead:

    models:     name -> summary, docstring, supported (modality, task) pairs, generative or not,
                arguments (type with bounds, default), compatible data, the README matrix marks
    data:       name -> summary, docstring, modality, task, arguments, compatible models
    pretrained: name -> the card, as zoo/hub/weights/<name>.yaml holds it

tests/test_listing.py fails when the file differs from what the registry says now. Models and data
that installed plugins bring (the `zoo.models` / `zoo.data` entry points) are not in the file:
when such entry points exist, `load_index` builds the whole index from the live registry, which
costs the imports the file saves.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

INDEX_FILE = Path(__file__).with_name("index.json")
PLUGIN_GROUPS = ("zoo.models", "zoo.data")

# The columns of the model x data matrix, as in DESIGN.md: (modality, task, heading, generative).
# A generative column holds the models that learn to sample the data ("*": any task of it);
# the others hold the models that predict the task.
COLUMNS = [
    ("image", "classification", "image cls", False),
    ("tabular", "classification", "tabular cls", False),
    ("tabular", "regression", "tabular reg", False),
    ("tokens", "classification", "tokens cls", False),
    ("tokens", "language_modeling", "tokens LM", False),
    ("image", "*", "generate image", True),
    ("tabular", "*", "generate tabular", True),
]


@cache
def load_index() -> dict[str, Any]:
    """Return the index: the shipped file, or the live registry's when plugins are installed."""
    if any(entry_points(group=group) for group in PLUGIN_GROUPS):
        return build_index(builtins_only=False)
    if not INDEX_FILE.is_file():
        raise ZooError(f"The listing index {INDEX_FILE} is missing; regenerate it with `make docs`")
    return json.loads(INDEX_FILE.read_text())


def index_text(index: dict[str, Any]) -> str:
    """Return the index as the JSON text of zoo/cli/index.json (sorted keys, so that diffs stay small)."""
    return json.dumps(index, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# -- building the index from the live registry (imports every model and dataset) -----------------


def build_index(builtins_only: bool = True) -> dict[str, Any]:
    """Return the index of the registered models, data and pretrained cards.

    `builtins_only` leaves out entries that plugins registered (classes defined outside zoo).
    """
    from zoo.hub.cards import cards
    from zoo.registry import DATA, MODELS

    def keep(cls: type) -> bool:
        return not builtins_only or cls.__module__.startswith("zoo.")

    models = {n: MODELS.get(n) for n in MODELS.names() if keep(MODELS.get(n))}
    data = {n: DATA.get(n) for n in DATA.names() if keep(DATA.get(n))}
    kinds = {n: [tuple(kind) for kind in cls.kinds()] for n, cls in data.items()}  # several: csv, hf_dataset
    out: dict[str, Any] = {"models": {}, "data": {}, "pretrained": {}}
    for name, cls in models.items():
        out["models"][name] = {
            **describe_class(cls),
            "supports": sorted(list(pair) for pair in cls.supports),
            "generative": is_generative(cls),
            "compatible_data": [d for d, ks in kinds.items() if any(cls.supports_data(*k) for k in ks)],
            "matrix": {column[2]: in_column(cls, column) for column in COLUMNS},
        }
    for name, cls in data.items():
        out["data"][name] = {
            **describe_class(cls),
            "modality": ", ".join(dict.fromkeys(m for m, _ in kinds[name])),  # "tabular" or "tokens, image"
            "task": ", ".join(dict.fromkeys(t for _, t in kinds[name])),
            "kinds": [list(k) for k in kinds[name]],
            "compatible_models": [m for m, mcls in models.items() if any(mcls.supports_data(*k) for k in kinds[name])],
        }
    out["pretrained"] = dict(cards())
    return out


def describe_class(cls: type) -> dict[str, Any]:
    """Return a class's summary line, docstring and keyword arguments (type with bounds, default)."""
    from zoo.bounds import describe
    from zoo.training.config import signature_schema

    arguments = []
    for f in dataclasses.fields(signature_schema(cls.__init__)):
        arg: dict[str, Any] = {"name": f.name, "type": describe(f.type)}
        if f.default_factory is not dataclasses.MISSING:
            arg["default"] = f.default_factory()
        elif f.default is not dataclasses.MISSING:
            arg["default"] = f.default
        arguments.append(arg)  # no "default": a required argument
    doc = inspect.getdoc(cls) if cls.__doc__ else ""
    return {"summary": doc.splitlines()[0] if doc else "", "doc": doc, "arguments": arguments}


def is_generative(cls: type) -> bool:
    """Return True for models that sample data (`sample(n, labels=None)`, the VAE/GAN contract)."""
    return callable(getattr(cls, "sample", None))


def in_column(cls: type, column: tuple[str, str, str, bool]) -> bool:
    """Return True when a model belongs under a matrix column."""
    modality, task, _, generative = column
    if is_generative(cls) != generative:
        return False
    if task == "*":
        return any(cls.supports_data(modality, t) for t in ("classification", "regression", "language_modeling"))
    return cls.supports_data(modality, task)
