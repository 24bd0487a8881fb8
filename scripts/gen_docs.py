"""Regenerate the README's generated tables (run by `make docs`): models and data from the registry,
pretrained entries from their cards; and docs/baselines.md's tables of baselines per data kind and of
their figures, fitting each on each embedded dataset."""

from __future__ import annotations

import re
from pathlib import Path

from zoo.cli.evaluate import markdown_figures, markdown_kinds
from zoo.cli.listing import markdown_tables
from zoo.hub.cards import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def regenerate(path: Path, marker: str, body: str) -> None:
    """Replace the text between `<!-- marker:start -->` and `<!-- marker:end -->` in `path` with `body`."""
    text = path.read_text()
    new = re.sub(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)",
                 lambda m: m.group(1) + body + "\n" + m.group(2), text, flags=re.DOTALL)
    path.write_text(new)
    print(f"{path.name} {marker} are up to date" if new == text else f"{path.name} {marker} regenerated")


def main() -> None:
    regenerate(ROOT / "README.md", "tables", markdown_tables())
    regenerate(ROOT / "README.md", "pretrained", markdown_table())
    regenerate(ROOT / "docs" / "baselines.md", "kinds", markdown_kinds())
    regenerate(ROOT / "docs" / "baselines.md", "figures", markdown_figures())


if __name__ == "__main__":
    main()
