"""Execute the learning-path notebooks in place, so that they are stored with their outputs (`make notebooks`).

    python scripts/run_notebooks.py                       # every notebook in notebooks/
    python scripts/run_notebooks.py notebooks/05_nlp.ipynb

Each notebook runs top to bottom in a fresh kernel started in notebooks/, with its run dirs in a
temporary folder (ZOO_NOTEBOOK_RUNS). Its metadata then records a hash of its sources
(`metadata.zoo.source_sha256`), which tests/test_notebooks.py compares with the sources to tell a
notebook whose outputs are stale. Outputs that a learner should not see (a local path, a run
timestamp, Lightning's start-up lines, warnings) fail the run with the cell that printed them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# What a stored output must not contain: machine paths, run stamps, and library noise.
NOISE = re.compile(r"/tmp/|/work/|/home/|/root/|/Users/|\d{8}-\d{6}|GPU available|TPU available|Restoring states"
                   r"|Loaded model weights|Warning|warnings\.warn|it/s\]|^\[transformers\]")


def source_sha256(nb) -> str:
    """Return the sha256 of a notebook's cell types and sources (what its outputs depend on)."""
    h = hashlib.sha256()
    for cell in nb.cells:
        h.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    return h.hexdigest()


def output_text(output) -> str:
    """Return the text a reader sees in one output (stream text, or the text/plain of a result)."""
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return str(output.get("data", {}).get("text/plain", ""))


def noise(nb) -> list[str]:
    """Return 'cell N: line' for every output line a learner should not see."""
    found = []
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            found += [f"cell {i}: {line.strip()}" for line in output_text(output).splitlines() if NOISE.search(line)]
    return found


def execute(path: Path, runs: Path, timeout: int = 600):
    """Return the notebook at `path` executed in a fresh kernel (outputs filled in, metadata hash set)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = {"ZOO_NOTEBOOK_RUNS": str(runs), "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "OMP_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # this checkout
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        # The kernel's own log (its notice that it talks to this process over local TCP) is not the notebook's.
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                extra_arguments=["--IPKernelApp.log_level=ERROR"],
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    nb.metadata["zoo"] = {"source_sha256": source_sha256(nb)}
    return nb


def main(argv: list[str] | None = None) -> int:
    import nbformat

    from zoo.data.download import atomic_output

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: all)")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    failed = 0
    for path in paths:
        with tempfile.TemporaryDirectory() as runs:
            nb = execute(path, Path(runs))
        bad = noise(nb)
        if bad:
            print(f"{path.name}: outputs a learner should not see:\n  " + "\n  ".join(bad), file=sys.stderr)
            failed += 1
            continue
        with atomic_output(path) as tmp:  # a failed write leaves the stored notebook as it was
            nbformat.write(nb, tmp)
        print(f"{path.name}: executed, outputs stored")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
