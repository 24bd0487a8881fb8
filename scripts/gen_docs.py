"""Regenerate what is generated from the registry and the cards (run by `make docs`): the listing
index (zoo/cli/index.json, read by `zoo list` and `zoo info`), the README's model/data tables and its
pretrained table, and docs/baselines.md's tables of baselines per data kind and of their figures,
fitting each on each embedded dataset."""

from __future__ import annotations

import re
from pathlib import Path

from zoo.cli.evaluate import markdown_figures, markdown_kinds
from zoo.cli.index import INDEX_FILE, build_index, index_text
from zoo.cli.listing import markdown_tables
from zoo.hub.cards import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def update(path: Path, new: str, what: str) -> None:
    """Write `new` to `path` when it differs, and say which happened."""
    old = path.read_text() if path.is_file() else None
    if new != old:
        path.write_text(new)
    print(f"{what} {'regenerated' if new != old else 'is up to date'}")


def regenerate(path: Path, marker: str, body: str) -> None:
    """Replace the text between `<!-- marker:start -->` and `<!-- marker:end -->` in `path` with `body`."""
    text = path.read_text()
    new = re.sub(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)",
                 lambda m: m.group(1) + body + "\n" + m.group(2), text, flags=re.DOTALL)
    update(path, new, f"{path.name} {marker}")


def main() -> None:
    index = build_index()
    update(INDEX_FILE, index_text(index), "listing index (zoo/cli/index.json)")
    regenerate(ROOT / "README.md", "tables", markdown_tables(index))
    regenerate(ROOT / "README.md", "pretrained", markdown_table())
    regenerate(ROOT / "docs" / "baselines.md", "kinds", markdown_kinds())
    regenerate(ROOT / "docs" / "baselines.md", "figures", markdown_figures())


if __name__ == "__main__":
    main()
