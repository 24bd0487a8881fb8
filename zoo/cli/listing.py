"""`zoo list`, `zoo info` and the README tables: what is in the zoo, read from the index of the
registry and the pretrained cards (zoo/cli/index.py), so that they answer without importing torch."""

from __future__ import annotations

import argparse
import fnmatch
from typing import Any

from zoo.cli.index import COLUMNS, load_index
from zoo.errors import ConfigError, did_you_mean


def cmd_list(args: argparse.Namespace) -> int:
    print(listing(args.what, args.pattern))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(info(args.name))
    return 0


def listing(what: str = "all", pattern: str = "*") -> str:
    """Return a plain-text listing of models, data and/or pretrained weights matching a wildcard."""
    index, lines = load_index(), []
    if what in ("models", "all"):
        names = matching(index["models"], pattern)
        lines.append("models:")
        width = max([len(n) for n in names] + [4])
        for name in names:
            lines.append(f"  {name:<{width}}  {index['models'][name]['summary']}")
    if what in ("data", "all"):
        names = matching(index["data"], pattern)
        lines.append("data:")
        width = max([len(n) for n in names] + [4])
        for name in names:
            d = index["data"][name]
            lines.append(f"  {name:<{width}}  {d['modality']:<8} {d['task']:<18} {d['summary']}")
    if what in ("pretrained", "all"):
        from zoo.hub.cards import listing_line

        names = matching(index["pretrained"], pattern)
        lines.append("pretrained:")
        width = max([len(n) for n in names] + [4])
        lines += [f"  {listing_line(index['pretrained'][name], width)}" for name in names]
    return "\n".join(lines)


def matching(entries: dict[str, Any], pattern: str) -> list[str]:
    """Return the sorted names of `entries` that match a shell-style wildcard."""
    return sorted(n for n in entries if fnmatch.fnmatchcase(n, pattern))


def info(name: str) -> str:
    """Return a description of a model or dataset (docstring, arguments, compatibility), or the card of a
    pretrained entry."""
    index = load_index()
    if name in index["pretrained"]:
        from zoo.hub.cards import card_text

        return card_text(index["pretrained"][name])
    if name in index["models"]:
        entry, kind = index["models"][name], "model"
        pairs = ", ".join(f"{m} {t}" for m, t in entry["supports"])
        extra = [f"supports: {pairs}", f"compatible data: {', '.join(entry['compatible_data']) or 'none'}"]
    elif name in index["data"]:
        entry, kind = index["data"][name], "data"
        extra = [f"modality: {entry['modality']}", f"task: {entry['task']}",
                 f"compatible models: {', '.join(entry['compatible_models']) or 'none'}"]
    else:
        names = sorted(index["models"]) + sorted(index["data"]) + sorted(index["pretrained"])
        raise ConfigError(f"Unknown model, data or pretrained name '{name}'.{did_you_mean(name, names)} Available: {', '.join(names)}")
    lines = [f"{kind} '{name}': {entry['summary']}", "", *extra, "", "arguments:"]
    for arg in entry["arguments"]:
        if "default" in arg:
            lines.append(f"  {arg['name']}: {arg['type']} = {arg['default']!r}")
        else:
            lines.append(f"  {arg['name']}: {arg['type']} (required)")
    body = "\n".join(entry["doc"].splitlines()[1:]).strip()
    if body:
        lines += ["", body]
    return "\n".join(lines)


def markdown_tables(index: dict[str, Any] | None = None) -> str:
    """Return the README's model, data and compatibility tables as Markdown."""
    index = index or load_index()
    models, data = index["models"], index["data"]
    out = ["| model | description |", "|---|---|"]
    out += [f"| `{m}` | {models[m]['summary']} |" for m in sorted(models)]
    out += ["", "| data | modality | task | description |", "|---|---|---|---|"]
    out += [f"| `{d}` | {data[d]['modality']} | {data[d]['task']} | {data[d]['summary']} |" for d in sorted(data)]
    out += ["", "| model | " + " | ".join(c[2] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for m in sorted(models):
        marks = ["✓" if models[m]["matrix"][column[2]] else "×" for column in COLUMNS]
        out.append(f"| `{m}` | " + " | ".join(marks) + " |")
    return "\n".join(out)
