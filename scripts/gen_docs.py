"""Regenerate what is generated from the registry (run by `make docs`): the listing index
(zoo/cli/index.json, read by `zoo list` and `zoo info`) and the README's model/data tables."""

from __future__ import annotations

import re
from pathlib import Path

from zoo.cli.index import INDEX_FILE, build_index, index_text
from zoo.cli.listing import markdown_tables

README = Path(__file__).resolve().parents[1] / "README.md"


def update(path: Path, new: str, what: str) -> None:
    """Write `new` to `path` when it differs, and say which happened."""
    old = path.read_text() if path.is_file() else None
    if new != old:
        path.write_text(new)
    print(f"{what} {'regenerated' if new != old else 'is up to date'}")


def main() -> None:
    index = build_index()
    update(INDEX_FILE, index_text(index), "listing index (zoo/cli/index.json)")
    text = README.read_text()
    tables = re.sub(r"(<!-- tables:start -->\n).*?(<!-- tables:end -->)",
                    lambda m: m.group(1) + markdown_tables(index) + "\n" + m.group(2), text, flags=re.DOTALL)
    update(README, tables, "README tables")


if __name__ == "__main__":
    main()
