"""Sweeps in the W&B format: parsing, grid/random trials, the `--key=value` arguments of `wandb agent`,
and a real 4-trial grid sweep on iris that ranks its trials."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from zoo.errors import ConfigError
from zoo.fit import resolve
from zoo.training.sweep import base_args, load_sweep, override, rank, trials

AGENT_COMMAND = ["${env}", "${interpreter}", "-m", "zoo.fit", "--config", "configs/experiment/iris_mlp.yaml", "${args}"]


def write_sweep(tmp_path, text: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_repo_sweep_files_are_4_trial_grids():
    for name in ("iris_mlp", "digits_cnn"):
        sweep = load_sweep(f"configs/sweeps/{name}.yaml")
        assert sweep["method"] == "grid" and len(trials(sweep, None, 0)) == 4
        assert sweep["base_args"] == ["--config", f"configs/experiment/{name}.yaml"]
        for params in trials(sweep, None, 0):  # every trial is a valid run config
            cfg, _ = resolve([sweep["base_args"][1]], [override(k, v) for k, v in params.items()])
            assert cfg["optim"]["lr"] == params["optim.lr"]


def test_random_search_draws_from_the_distributions(tmp_path):
    path = write_sweep(tmp_path, """
method: random
metric: {name: val/loss, goal: minimize}
run_cap: 50
parameters:
  optim.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-1}
  model.dropout: {distribution: q_uniform, min: 0.0, max: 0.5, q: 0.1}
  data.batch_size: {distribution: int_uniform, min: 8, max: 64}
  model.activation: {values: [relu, gelu]}
  seed: {value: 3}
""")
    draws = trials(load_sweep(path), None, seed=0)
    assert len(draws) == 50 and draws == trials(load_sweep(path), None, seed=0)  # reproducible
    assert all(1e-4 <= d["optim.lr"] <= 1e-1 for d in draws)
    assert min(d["optim.lr"] for d in draws) < 1e-3 < max(d["optim.lr"] for d in draws)  # log scale, not uniform
    assert all(math.isclose(d["model.dropout"] * 10, round(d["model.dropout"] * 10)) for d in draws)
    assert {d["model.activation"] for d in draws} == {"relu", "gelu"}
    assert all(isinstance(d["data.batch_size"], int) and 8 <= d["data.batch_size"] <= 64 for d in draws)
    assert {d["seed"] for d in draws} == {3}


def test_sweep_file_errors_are_one_line(tmp_path):
    cases = {
        "method: bayes\nmetric: {name: a}\nparameters: {x: {values: [1]}}": "needs the W&B server",
        "method: grd\nmetric: {name: a}\nparameters: {x: {values: [1]}}": "Did you mean 'grid'",
        "method: grid\nparameters: {x: {values: [1]}}": "metric",
        "method: grid\nmetric: {name: a}\nparameters: {x: {min: 1, max: 2}}": "Grid sweeps need 'values'",
        "method: grid\nmetric: {name: a}\nparamters: {x: {values: [1]}}": "Did you mean 'parameters'",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            trials(load_sweep(write_sweep(tmp_path, text)), None, 0)
    with pytest.raises(ConfigError, match="must run zoo.fit"):
        base_args(["python", "train.py", "${args}"])


def test_ranking_puts_failed_trials_last():
    rows = [{"trial": "a", "metric": 0.5}, {"trial": "b", "metric": None}, {"trial": "c", "metric": 0.9}]
    assert [(r["rank"], r["trial"]) for r in rank(rows, "maximize")] == [(1, "c"), (2, "a"), ("", "b")]
    assert [r["trial"] for r in rank(rows, "minimize")] == ["a", "c", "b"]


def test_fit_reads_wandb_agent_arguments(cli):
    """`wandb agent` runs the sweep's command with each parameter as `--key=value` (lists as JSON)."""
    args = [a for a in AGENT_COMMAND[3:] if not a.startswith("${")]  # what follows `python -m`
    proc = cli(*args, "--optim.lr=0.01", "--model.hidden=[8, 4]", "--model.dropout=0.25", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.01" in proc.stdout and "dropout: 0.25" in proc.stdout and "- 8\n  - 4" in proc.stdout
    bad = cli(*args, "--optim.lr", "0.01", "--print-config")
    assert bad.returncode == 2 and "unrecognized argument" in bad.stderr


@pytest.mark.slow  # four `python -m zoo.fit` subprocesses
def test_iris_grid_sweep_ranks_its_trials(cli, tmp_path):
    proc = cli("zoo", "sweep", "configs/sweeps/iris_mlp.yaml", "--parallel", "2", "--dir", str(tmp_path),
               "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "logger=csv")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "trials ranked by val/acc" in proc.stdout
    (sweep_dir,) = tmp_path.glob("iris_mlp/*")
    rows = json.loads((sweep_dir / "results.json").read_text())
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    accs = [r["metric"] for r in rows]
    assert accs == sorted(accs, reverse=True) and [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert {(r["optim.lr"], tuple(r["model.hidden"])) for r in rows} == {
        (lr, h) for lr in (1e-3, 1e-2) for h in ((16,), (64, 32))}
    for r in rows:  # each trial's metric is the one its own run reported
        run_dir = Path(r["run_dir"])
        assert json.loads((run_dir / "results.json").read_text())["val"]["val/acc"] == r["metric"]
        assert "max_epochs: 3" in (run_dir / "config.yaml").read_text()  # CLI overrides reach every trial
    with open(sweep_dir / "results.csv", newline="") as f:
        assert [row["trial"] for row in csv.DictReader(f)] == [r["trial"] for r in rows]
