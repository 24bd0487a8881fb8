"""The documentation site (mkdocs.yml) builds offline with --strict: a broken link or a missing page fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_site_builds_strict_with_readme_notebooks_and_api(tmp_path):
    site = tmp_path / "site"
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(site)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = (site / "index.html").read_text()
    assert "Set-up: two commands" in index and "Where things live" in index  # the README is the landing page
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = site / "notebooks" / nb.stem / "index.html"
        assert page.is_file() and "<img" in page.read_text(), f"{nb.name} is not rendered with its plots"
    for doc in sorted((ROOT / "docs").glob("*.md")):  # every guide is a page, and in the navigation
        assert (site / doc.stem / "index.html").is_file(), doc.name
        assert f'href="{doc.stem}/"' in index or f'href="./{doc.stem}/"' in index, f"{doc.name} is not in the navigation"
    reference = (site / "reference" / "index.html").read_text()
    assert "DataSpec" in reference and "What a DataModule exposes and a model is built from" in reference
    pages = [p.read_text() for p in site.rglob("*.html")]
    assert not any("fonts.googleapis.com" in page for page in pages)  # nothing fetched from the web to read it
