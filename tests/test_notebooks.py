"""The learning path (notebooks/*.ipynb): stored with fresh, clean outputs, and each runs top to bottom in a
fresh kernel, its asserts (the claims its text makes) holding.

`make notebooks` (scripts/run_notebooks.py) executes them in place; the kernel is the Python running the
tests (the .venv), started in notebooks/ as a reader would; run dirs and the files the notebooks write go to a
temporary folder through ZOO_NOTEBOOK_RUNS, and the test checks that nothing new appears in the repository.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)


def untracked_files() -> set[str]:
    """Return the repository's untracked, non-ignored files (what a notebook could leave behind)."""
    out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(out.stdout.splitlines())


def read(path: Path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def test_the_learning_path_is_numbered_and_mapped():
    """The notebooks are numbered from 00 without gaps, and notebooks/README.md maps each one."""
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]
    assert len(NOTEBOOKS) >= 10
    index = (ROOT / "notebooks" / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"({path.name})" in index, f"notebooks/README.md does not link {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_are_fresh_and_clean(path):
    """Every code cell was run, from the current sources (`make notebooks` after an edit), and the outputs
    hold plots and what the notebook prints on purpose: no local path, run stamp, warning or start-up line."""
    nb = read(path)
    assert nb.metadata.get("zoo", {}).get("source_sha256") == runner.source_sha256(nb), \
        f"{path.name}: outputs are stale or missing; run `make notebooks`"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), f"{path.name}: a code cell never ran"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{path.name} stored an error"
    outputs = [o for c in code for o in c.outputs]
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outputs), "no plots"
    assert runner.noise(nb) == [], runner.noise(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_claim_is_asserted(path):
    """Each notebook asserts the numbers it draws conclusions from: at least three asserts."""
    code = "\n".join(c.source for c in read(path).cells if c.cell_type == "code")
    assert code.count("assert ") >= 3, f"{path.name} asserts {code.count('assert ')} claims"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path):
    before = untracked_files()
    nb = runner.execute(path, tmp_path / "runs")  # raises CellExecutionError if a cell (or an assert) fails
    assert runner.noise(nb) == [], runner.noise(nb)
    assert untracked_files() == before, "the notebook left files in the repository"
