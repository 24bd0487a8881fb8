"""`zoo list`, `zoo info` and the README tables: what is in the zoo, all read from the registry
(models and data) and the pretrained cards (zoo/hub/pretrained.py)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

from zoo.errors import ConfigError, did_you_mean
from zoo.registry import DATA, MODELS, compatible_data, compatible_models, data_kinds


def cmd_list(args: argparse.Namespace) -> int:
    print(listing(args.what, args.pattern))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(info(args.name))
    return 0


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


def kind_text(data: str) -> tuple[str, str]:
    """Return a dataset's modality and task as shown in listings: "tabular", "classification, regression"."""
    kinds = data_kinds(data)
    return ", ".join(dict.fromkeys(m for m, _ in kinds)), ", ".join(dict.fromkeys(t for _, t in kinds))


def summary(cls: type) -> str:
    """Return the first line of a class docstring."""
    return (inspect.getdoc(cls) or "").splitlines()[0] if cls.__doc__ else ""


REQUIRED = dataclasses.MISSING


def arguments(cls: type) -> list[tuple[str, str, Any]]:
    """Return (name, type, default or REQUIRED) of a class's keyword arguments, except spec and optim."""
    from zoo.bounds import describe
    from zoo.training.config import signature_schema

    out = []
    for f in dataclasses.fields(signature_schema(cls.__init__)):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append((f.name, describe(f.type), default))
    return out


def listing(what: str = "all", pattern: str = "*") -> str:
    """Return a plain-text listing of models and/or data matching a wildcard."""
    lines = []
    if what in ("models", "all"):
        names = MODELS.names(pattern)
        lines.append("models:")
        width = max([len(n) for n in names] + [4])
        for name in names:
            lines.append(f"  {name:<{width}}  {summary(MODELS.get(name))}")
    if what in ("data", "all"):
        names = DATA.names(pattern)
        lines.append("data:")
        width = max([len(n) for n in names] + [4])
        for name in names:
            modality, task = kind_text(name)
            lines.append(f"  {name:<{width}}  {modality:<8} {task:<18} {summary(DATA.get(name))}")
    if what in ("pretrained", "all"):
        from zoo.hub.cards import listing_line, matching

        found = matching(pattern)
        lines.append("pretrained:")
        width = max([len(c["name"]) for c in found] + [4])
        lines += [f"  {listing_line(c, width)}" for c in found]
    return "\n".join(lines)


def info(name: str) -> str:
    """Return a description of a model, dataset or pretrained entry (its card)."""
    from zoo.hub.cards import card_text, cards

    if name in cards():
        return card_text(cards()[name])
    if name in MODELS:
        cls = MODELS.get(name)
        pairs = ", ".join(f"{m} {t}" for m, t in sorted(cls.supports))
        extra = [f"supports: {pairs}", f"compatible data: {', '.join(compatible_data(name)) or 'none'}"]
        kind = "model"
    elif name in DATA:
        cls = DATA.get(name)
        modality, task = kind_text(name)
        extra = [f"modality: {modality}", f"task: {task}",
                 f"compatible models: {', '.join(compatible_models(name)) or 'none'}"]
        kind = "data"
    else:
        names = MODELS.names() + DATA.names() + list(cards())
        raise ConfigError(f"Unknown model, data or pretrained name '{name}'.{did_you_mean(name, names)} "
                          f"Available: {', '.join(names)}")
    lines = [f"{kind} '{name}': {summary(cls)}", "", *extra, "", "arguments:"]
    for arg, type_name, default in arguments(cls):
        lines.append(f"  {arg}: {type_name} (required)" if default is REQUIRED else f"  {arg}: {type_name} = {default!r}")
    doc = inspect.getdoc(cls) or ""
    body = "\n".join(doc.splitlines()[1:]).strip()
    if body:
        lines += ["", body]
    return "\n".join(lines)


def markdown_tables() -> str:
    """Return the README's model, data and compatibility tables as Markdown."""
    out = ["| model | description |", "|---|---|"]
    out += [f"| `{m}` | {summary(MODELS.get(m))} |" for m in MODELS.names()]
    out += ["", "| data | modality | task | description |", "|---|---|---|---|"]
    for d in DATA.names():
        modality, task = kind_text(d)
        out.append(f"| `{d}` | {modality} | {task} | {summary(DATA.get(d))} |")
    out += ["", "| model | " + " | ".join(c[2] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for m in MODELS.names():
        cls = MODELS.get(m)
        marks = ["✓" if in_column(cls, column) else "×" for column in COLUMNS]
        out.append(f"| `{m}` | " + " | ".join(marks) + " |")
    return "\n".join(out)
