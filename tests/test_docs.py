"""The README and docs stay true: generated tables are current and guide code runs."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_extending_guide_runs(tmp_path):
    """Every python block of docs/extending.md, run in order in a fresh interpreter."""
    code = "\n\n".join(python_blocks((ROOT / "docs" / "extending.md").read_text()))
    assert "@MODELS.register" in code and "@DATA.register" in code
    script = tmp_path / "guide.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "moons test accuracy" in proc.stdout


def test_readme_tables_are_current():
    """The model/data tables in the README are generated from the registry (`make docs`)."""
    from zoo.cli.listing import markdown_tables

    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- tables:start -->\n(.*?)<!-- tables:end -->", readme, flags=re.DOTALL)
    assert match, "README.md lost its generated-tables markers"
    assert match.group(1).strip() == markdown_tables().strip(), "README tables are stale: run `make docs`"


def test_readme_lists_every_pretrained_entry_with_its_metrics():
    """The README's pretrained table is generated from the cards (`make docs`)."""
    from zoo.hub.cards import markdown_table

    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- pretrained:start -->\n(.*?)<!-- pretrained:end -->", readme, flags=re.DOTALL)
    assert match, "README.md lost its pretrained-table markers"
    assert match.group(1).strip() == markdown_table().strip(), "README's pretrained table is stale: run `make docs`"


def test_readme_starts_with_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.find("## ", readme.find("## ") + 1)]
    assert "make demo" in head and "make test" in head
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
