"""Regenerate the README's generated tables (run by `make docs`): models and data from the registry,
pretrained entries from their cards."""

from __future__ import annotations

import re
from pathlib import Path

from zoo.cli.listing import markdown_tables
from zoo.hub.cards import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"
TABLES = {"tables": markdown_tables, "pretrained": markdown_table}


def main() -> None:
    text = new = README.read_text()
    for marker, table in TABLES.items():
        new = re.sub(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)",
                     lambda m, table=table: m.group(1) + table() + "\n" + m.group(2), new, flags=re.DOTALL)
    README.write_text(new)
    print("README tables are up to date" if new == text else "README tables regenerated")


if __name__ == "__main__":
    main()
