"""Experiment tracking: W&B (offline, read back from its run file), TensorBoard and CSV from one run."""

from __future__ import annotations

import csv

import pytest
import torch

from tests.conftest import FAST_TRAINER
from tests.wandb_reader import finished_run, run_files
from zoo.fit import fit
from zoo.models.mlp import MLP
from zoo.training.config import validate

EPOCHS = 2


def weight_samples(self) -> dict:
    """Samples an MLP does not have: its first layer as images and a line of text (test only)."""
    w = next(p for p in self.parameters() if p.dim() == 2)[:4]  # (4, F)
    img = (w - w.min()) / (w.max() - w.min() + 1e-8)
    return {"first_layer": img.view(4, 1, 1, -1).repeat(1, 3, 4, 1), "note": [f"norm {w.norm():.3f}"]}


def iris_config(tmp_path, logger) -> dict:
    cfg = validate({
        "model": {"name": "mlp", "hidden": [16]},
        "data": {"name": "iris"},
        "trainer": {**FAST_TRAINER, "max_epochs": EPOCHS},
        "logger": logger,
        "run": {"dir": str(tmp_path / "runs"), "name": "tracking"},
    })
    return cfg


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """One iris run logging to csv + tensorboard + wandb (watch gradients, log_model), with samples."""
    tmp_path = tmp_path_factory.mktemp("tracked")
    mp = pytest.MonkeyPatch()
    mp.setattr(MLP, "make_samples", weight_samples, raising=False)
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        mp.setenv(var, str(tmp_path / var.lower()))
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    loggers = [{"name": "csv"}, {"name": "tensorboard"},
               {"name": "wandb", "project": "zoo-test", "tags": ["t1"], "group": "g", "notes": "n",
                "log_model": True, "watch": {"log": "gradients", "log_freq": 2}}]
    try:
        results = fit(iris_config(tmp_path, loggers))
    finally:
        mp.undo()
    return results


def test_wandb_run_file_holds_config_metrics_images_summary_artifact(tracked_run):
    from pathlib import Path

    run_dir = Path(tracked_run["run_dir"])
    files = run_files(run_dir / "wandb")  # W&B writes under the run dir, not WANDB_DIR or the repo
    assert len(files) == 1, files
    run = finished_run(files[0])
    assert run.config["model"]["name"] == "mlp" and run.config["model"]["hidden"] == [16]
    assert run.config["data"]["name"] == "iris"
    val_rows = run.rows_with("val/acc")
    assert [r["epoch"] for r in val_rows] == list(range(EPOCHS)), "one val row per epoch"
    assert all("trainer/global_step" in r for r in val_rows)
    images = run.rows_with("samples/first_layer/_type")  # nested values come back as flat "a/b" keys
    assert [r["samples/first_layer/_type"] for r in images] == ["images/separated"] * EPOCHS
    assert [r["trainer/global_step"] for r in images] == [r["trainer/global_step"] for r in val_rows]
    assert [r["samples/note/_type"] for r in run.rows_with("samples/note/_type")] == ["table-file"] * EPOCHS
    assert {"val/acc", "test/acc", "best_ckpt"} <= set(run.summary)
    assert run.summary["test/acc"] == pytest.approx(tracked_run["test"]["test/acc"])
    assert any(a.type == "model" for a in run.artifacts), "log_model=true uploads the checkpoint"
    grads = {k: r[k] for r in run.history for k in r if k.startswith("gradients/") and k.endswith("/_type")}
    assert "gradients/head.weight/_type" in grads, "watch(log=gradients) logs gradient histograms"
    assert set(grads.values()) == {"histogram"}


def test_tensorboard_and_csv_hold_the_same_metrics(tracked_run):
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = Path(tracked_run["run_dir"])
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    csv_metrics = set(rows[0]) - {"step", "epoch"}
    assert {"train/loss", "val/acc", "test/acc"} <= csv_metrics
    assert csv_metrics <= set(tags["scalars"]), "TensorBoard and CSV use the same metric names"
    assert len(events.Scalars("val/acc")) == EPOCHS
    assert [e.value for e in events.Scalars("val/acc")] == pytest.approx(
        [float(r["val/acc"]) for r in rows if r["val/acc"]])
    assert "samples/first_layer" in tags["images"]
    assert "samples/note/text_summary" in tags["tensors"]
    wandb_keys = {k for r in finished_run(run_files(run_dir / "wandb")[0]).history for k in r}
    assert csv_metrics <= wandb_keys, "W&B uses the same metric names"


def test_no_api_key_runs_offline_and_prints_sync_command(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cfg = iris_config(tmp_path, {"name": "wandb"})
    cfg["trainer"]["max_epochs"] = 1
    results = fit(cfg)
    out = capsys.readouterr().out
    assert "no W&B API key found, logging offline" in out
    sync = [line for line in out.splitlines() if "wandb sync " in line]
    assert sync and sync[0].split("wandb sync ")[1].startswith(results["run_dir"])
    assert torch.isfinite(torch.tensor(results["test"]["test/loss"]))


def test_bad_wandb_settings_are_config_errors(tmp_path):
    from zoo.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown key 'logger.projekt'. Did you mean 'project'"):
        iris_config(tmp_path, {"name": "wandb", "projekt": "x"})
    with pytest.raises(ConfigError, match="Did you mean 'gradients'"):
        iris_config(tmp_path, {"name": "wandb", "watch": {"log": "gradient"}})
    with pytest.raises(ConfigError, match="log_model"):
        iris_config(tmp_path, [{"name": "csv"}, {"name": "wandb", "log_model": "sometimes"}])
