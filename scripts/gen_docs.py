"""Regenerate the README's model/data tables from the registry (run by `make docs`)."""

from __future__ import annotations

import re
from pathlib import Path

from zoo.cli.listing import markdown_tables

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    text = README.read_text()
    new = re.sub(r"(<!-- tables:start -->\n).*?(<!-- tables:end -->)",
                 lambda m: m.group(1) + markdown_tables() + "\n" + m.group(2), text, flags=re.DOTALL)
    README.write_text(new)
    print("README tables are up to date" if new == text else "README tables regenerated")


if __name__ == "__main__":
    main()
