"""Early stopping from config, and `zoo runs` / `zoo plot` on runs this module trains (iris, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import FAST_TRAINER, ROOT
from zoo.cli.main import main
from zoo.cli.runs import curves_figure, read_run
from zoo.fit import fit, resolve

IRIS = str(ROOT / "configs" / "experiment" / "iris_mlp.yaml")
PATIENCE, MAX_EPOCHS = 3, 200


def train(runs: Path, name: str, *overrides: str) -> dict:
    trainer = [f"trainer.{k}={str(v).lower()}" for k, v in FAST_TRAINER.items()]
    cfg, _ = resolve([IRIS], [f"run.dir={runs}", f"run.name={name}", *trainer, *overrides])
    return fit(cfg)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict, dict]:
    """Two iris runs: one that stops early (patience 3 of at most 200 epochs), one of 4 epochs with
    the classical baselines in its results.json (as `zoo fit` writes them when asked)."""
    from zoo.cli.evaluate import run_baseline

    root = tmp_path_factory.mktemp("runs")
    early = train(root, "iris_early", f"trainer.max_epochs={MAX_EPOCHS}", "callbacks.early_stopping.enabled=true",
                  f"callbacks.early_stopping.patience={PATIENCE}")
    short = train(root, "iris_short", "trainer.max_epochs=4")
    path = Path(short["run_dir"]) / "results.json"
    results = json.loads(path.read_text())
    results["baselines"] = run_baseline("iris", [])
    path.write_text(json.dumps(results))
    return root, early, short


def val_losses(run_dir: str) -> pd.Series:
    frame = pd.read_csv(Path(run_dir) / "metrics.csv")
    return frame.dropna(subset=["val/loss"]).set_index("epoch")["val/loss"]


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch(runs):
    _, early, _ = runs
    losses = val_losses(early["run_dir"])
    best_epoch, last_epoch = int(losses.idxmin()), int(losses.index.max())
    assert last_epoch + 1 < MAX_EPOCHS, "early stopping never stopped the run"
    assert last_epoch == best_epoch + PATIENCE  # stopped after exactly `patience` epochs without improvement
    assert (losses.loc[best_epoch + 1:] >= losses.loc[best_epoch]).all()
    ckpt = torch.load(early["best_ckpt"], map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == best_epoch  # best.ckpt holds the best epoch, not the last
    assert early["monitor"] == {"metric": "val/loss", "mode": "min", "best": pytest.approx(losses.min())}


def test_zoo_runs_lists_both_runs(runs, capsys):
    root, early, short = runs
    assert main(["runs", str(root), "--json"]) == 0
    rows = {r["experiment"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"iris_early", "iris_short"}
    row = rows["iris_early"]
    assert (row["model"], row["data"], row["monitor"]) == ("mlp", "iris", "val/loss")
    assert row["best"] == pytest.approx(val_losses(early["run_dir"]).min())
    assert row["test"] == early["test"] and row["fit_seconds"] == early["fit_seconds"]
    assert rows["iris_early"]["baseline"] is None
    baseline = rows["iris_short"]["baseline"]  # the best of logistic regression and random forest, on test/acc
    results = json.loads((Path(short["run_dir"]) / "results.json").read_text())["baselines"]
    assert baseline["metric"] == "test/acc" and baseline["value"] == results[baseline["name"]]["test/acc"]
    assert results[baseline["name"]]["val/acc"] == max(r["val/acc"] for r in results.values())

    assert main(["runs", str(root)]) == 0
    table = capsys.readouterr().out
    for text in ("iris_early", "iris_short", "val/loss", f"acc {early['test']['test/acc']:.4g}", baseline["name"]):
        assert text in table, table


def test_zoo_runs_reads_an_unfinished_run(runs, tmp_path):
    """A run killed before its results.json: the best monitored value comes from metrics.csv."""
    _, early, _ = runs
    run = tmp_path / "iris_killed" / "20260101-000000"
    run.mkdir(parents=True)
    for name in ("config.yaml", "metrics.csv"):
        (run / name).write_bytes((Path(early["run_dir"]) / name).read_bytes())
    row = read_run(run)
    assert row["best"] == pytest.approx(val_losses(early["run_dir"]).min()) and row["test"] == {}
    assert row["status"].startswith("no results")


def test_zoo_plot_draws_one_line_per_run(runs, tmp_path, capsys):
    _, early, short = runs
    dirs = [Path(early["run_dir"]), Path(short["run_dir"])]
    out = tmp_path / "curves.png"
    assert main(["plot", *map(str, dirs), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    from PIL import Image

    assert Image.open(out).size[0] > 500
    fig = curves_figure(dirs)
    loss, acc = fig.axes
    assert acc.get_title() == "val/acc"
    assert len(loss.get_lines()) == 4 and len(acc.get_lines()) == 2  # train + val loss per run; val/acc per run
    epochs = sorted(val_losses(early["run_dir"]).index)
    assert list(acc.get_lines()[0].get_xdata()) == epochs

    assert main(["plot", str(dirs[0]), "--metric", "val/nope"]) == 2
    assert "No run logged val/nope" in capsys.readouterr().err
