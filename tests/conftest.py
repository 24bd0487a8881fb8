"""Shared fixtures: isolated W&B/HF environment, subprocess CLI runner, fast trainer settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# One thread per process, here and in every subprocess the tests start: the models are small, the
# machine has 2 cores, and pytest-xdist may run two workers; more threads only contend (10x slower).
os.environ["OMP_NUM_THREADS"] = "1"
# huggingface_hub and datasets read HF_HUB_OFFLINE once, when first imported (during collection), so the
# per-test setting below comes too late for them: without this, a hub name is retried online for ~20 s.
os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(1)

# Fast, quiet, deterministic settings for in-process trainings in tests.
FAST_TRAINER = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "enable_model_summary": False}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Keep W&B, HF and zoo caches out of the home folder and the repo; never touch the network."""
    home = tmp_path_factory.mktemp("home")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))  # datasets' cache of local files (load_dataset on parquet)
    monkeypatch.setenv("ZOO_HOME", str(home / "zoo"))
    monkeypatch.delenv("ZOO_RUN_DIR", raising=False)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m <args>` in a subprocess with the test environment; return the completed process."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def fresh_models(monkeypatch):
    """The global model registry, reset so that plugins load again; restored afterwards."""
    from zoo.registry import MODELS

    monkeypatch.setattr(MODELS, "_classes", dict(MODELS._classes))
    monkeypatch.setattr(MODELS, "_loaded", False)
    return MODELS


@pytest.fixture
def cli():
    return run_cli
