"""Every notebook of the learning path (notebooks/*.ipynb) runs top to bottom in a fresh kernel.

The kernel is the Python running the tests (the .venv), started in notebooks/ as a reader would; run dirs
and the files the notebooks write go to a temporary folder through ZOO_NOTEBOOK_RUNS, and the test checks
that nothing new appears in the repository.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def untracked_files() -> set[str]:
    """Return the repository's untracked, non-ignored files (what a notebook could leave behind)."""
    out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(out.stdout.splitlines())


def test_the_learning_path_is_numbered():
    """The notebooks exist, are numbered from 01 without gaps, and are committed with outputs cleared."""
    import nbformat

    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, len(NOTEBOOKS) + 1)]
    assert len(NOTEBOOKS) >= 7
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), f"{path.name}: clear outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("ZOO_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    before = untracked_files()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outputs), "no plots"
    assert untracked_files() == before, "the notebook left files in the repository"
    assert (tmp_path / "runs").is_dir()
