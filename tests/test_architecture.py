"""The house: imports point down the layers (import-linter), files stay small, each folder says what
lives in it, one room decides what a checkpoint holds, and the old import paths still work."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.conftest import ROOT

ZOO = ROOT / "zoo"
SUBPACKAGES = sorted(p.parent.name for p in ZOO.glob("*/__init__.py"))
# The contracts and the two entry points: everything else lives in a subpackage.
TOP_LEVEL = {"__init__.py", "__main__.py", "fit.py", "registry.py", "spec.py", "errors.py", "bounds.py"}


def zoo_files() -> list[Path]:
    return sorted(ZOO.rglob("*.py"))


def test_lint_imports_keeps_the_layers():
    """pyproject.toml's import-linter contracts: commands -> training/evaluation/hub -> models/data -> contracts."""
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's zoo, not another one installed
    proc = subprocess.run([str(lint)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout, proc.stdout[-2000:]


def test_top_level_holds_only_the_contracts_and_entry_points():
    assert {p.name for p in ZOO.glob("*.py")} == TOP_LEVEL
    assert set(SUBPACKAGES) == {"cli", "data", "evaluation", "hub", "models", "training"}


@pytest.mark.parametrize("path", zoo_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_stay_readable(path):
    assert len(path.read_text().splitlines()) <= 400, f"{path} is over 400 lines: split it by concern"


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_subpackage_says_what_lives_there_and_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse((ZOO / package / "__init__.py").read_text()))
    assert doc, f"zoo/{package}/__init__.py has no docstring"
    assert "import" in doc, f"zoo/{package}/__init__.py does not say what it may import"


def test_models_never_touch_data_files_or_loggers():
    """Models sample and predict; evaluators receive the data (zoo.evaluation), callbacks write files."""
    attributes = {"datamodule", "logger", "loggers", "write_text", "write_bytes", "cache_dir"}  # x.<attr>
    names = {"open", "cache_dir", "datamodule", "save_image"}
    for path in sorted((ZOO / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                assert node.attr not in attributes, f"{path.name}:{node.lineno} uses .{node.attr}"
            elif isinstance(node, ast.Name):
                assert node.id not in names, f"{path.name}:{node.lineno} uses {node.id}"


def test_one_hook_fills_checkpoint_zoo():
    """checkpoint["zoo"] is written in exactly one place: zoo/training/checkpoint.py."""
    writers = []
    for path in zoo_files():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            writes = [t for t in targets if isinstance(t, ast.Subscript) and ast.unparse(t.slice) == "'zoo'"]
            calls = isinstance(node, ast.Call) and ast.unparse(node.func).endswith(".setdefault") and \
                node.args and ast.unparse(node.args[0]) == "'zoo'"
            if writes or calls:
                writers.append(path.relative_to(ROOT).as_posix())
    assert writers == ["zoo/training/checkpoint.py"], writers


@pytest.mark.parametrize("old,new", [("zoo.config", "zoo.training.config"), ("zoo.download", "zoo.data.download")])
def test_documented_old_import_paths_still_work(old, new):
    """Plugins written against the old docs/extending.md import zoo.config and zoo.download."""
    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as e:\n    print(e)\n")
    warned = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert f"{old} moved to {new}" in warned.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert importlib.import_module(old) is importlib.import_module(new)
    assert importlib.import_module(new).__spec__.name == new


def test_public_api():
    import zoo
    from zoo.data.tables import ArrayDataModule  # its home before the move, still importable
    from zoo.models.base import TaskModel

    assert zoo.TaskModel is TaskModel and zoo.ZooDataModule.__name__ == "ZooDataModule"
    assert ArrayDataModule is importlib.import_module("zoo.data.base").ArrayDataModule
    assert callable(zoo.load) and "cnn" in zoo.MODELS.names()


# The contracts that only read a value to check it (its declared bounds; a name among the choices): a
# key is checked there on its way, it does not travel through them.
CHECKS = {"bounds.py", "errors.py"}


def config_routes(argv: list[str]) -> dict[str, list[str]]:
    """Run `python -m zoo.fit ARGV` in-process and return, for the checked config and each of its
    sections and sub-sections, the zoo files it enters on its way to `lightning.Trainer`, in order:
    a file each time a call into it receives the object, consecutive stays in one file counted once.

    Objects are followed by identity, from the moment `validate` returns the config until zoo.fit
    builds its Trainer (the dry run's Trainer is on the way). Lightning's and torch's files are not
    zoo's and are left out, and so are the checks of CHECKS."""
    import lightning

    import zoo.fit
    from zoo.training.config import validate

    tracked: dict[int, str] = {}
    kept: list[object] = []  # holds every tracked object, so that no id is reused
    routes: dict[str, list[str]] = {}
    zoo_dir, done = str(ZOO) + os.sep, []

    def track(value: object, key: str, depth: int = 0) -> None:
        if isinstance(value, (dict, list)) and depth <= 3:
            tracked[id(value)] = key or "the config"
            kept.append(value)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                track(v, f"{key}.{k}" if key else str(k), depth + 1)

    def profile(frame, event, arg):
        if done:
            return
        if event == "return" and frame.f_code is validate.__code__:
            track(arg, "")
        if event != "call":
            return
        if frame.f_code is lightning.Trainer.__init__.__code__ and frame.f_back.f_code is zoo.fit.fit.__code__:
            done.append(True)  # the route ends at the Trainer that trains
            return
        path = frame.f_code.co_filename
        if not path.startswith(zoo_dir) or Path(path).name in CHECKS:
            return
        name = Path(path).relative_to(ROOT).as_posix()
        for key in {tracked[id(v)] for v in frame.f_locals.values() if id(v) in tracked}:
            route = routes.setdefault(key, [])
            if not route or route[-1] != name:
                route.append(name)

    sys.setprofile(profile)
    try:
        assert zoo.fit.main(argv) == 0
    finally:
        sys.setprofile(None)
    assert done, "zoo.fit never built its Trainer"
    return routes


def test_every_config_key_reaches_lightning_through_four_files_at_most(tmp_path, capsys):
    """Issue 11's walk of one config key: from `python -m zoo.fit` to `lightning.Trainer`, the config
    and every section of it (and so every key) pass through at most 4 of zoo's files and never come
    back to one they have left.

    The run covers every section that builds something: the trainer, the data and the model, all
    three loggers, checkpoints every N steps, early stopping and the LR monitor, and a resume."""
    args = ["--config", str(ROOT / "configs/experiment/digits_cnn.yaml"), "trainer.max_epochs=2",
            "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
            "trainer.enable_progress_bar=false", f"run.dir={tmp_path}", "run.name=walk",
            "callbacks.checkpoint.every_n_train_steps=2", "callbacks.early_stopping.enabled=true",
            "logger=[{name: csv}, {name: tensorboard}, {name: wandb, mode: offline}]"]
    first_run = config_routes(args)
    resumed = config_routes([*args[-2:], "trainer.max_epochs=3", "--resume", str(next((tmp_path / "walk").iterdir()))])
    capsys.readouterr()
    for routes in (first_run, resumed):
        assert {"the config", "trainer", "callbacks.checkpoint", "logger", "model", "optim"} <= set(routes), routes
        for key, files in routes.items():
            assert len(set(files)) == len(files), f"{key} comes back to a file it left: {' -> '.join(files)}"
            assert len(files) <= 4, f"{key} passes through {len(files)} files: {' -> '.join(files)}"
