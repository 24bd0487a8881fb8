"""Sweeps in the W&B format run by Optuna: parsing, the search space, the `--key=value` arguments of
`wandb agent`, pruning from a running trial's metrics.csv, and a bayes sweep that resumes after a kill."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import ROOT
from zoo.errors import ConfigError
from zoo.fit import resolve
from zoo.training.sweep import base_args, grid_size, load_sweep, pruner, rank, sampler, suggest
from zoo.training.trial import metric_values, override

AGENT_COMMAND = ["${env}", "${interpreter}", "-m", "zoo.fit", "--config", "configs/experiment/iris_mlp.yaml", "${args}"]
COMMAND = "command:\n" + "".join(f"  - {a}\n" for a in AGENT_COMMAND)
TRIAL = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1", "logger=csv"]


def write_sweep(tmp_path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def draws(sweep: dict, n: int, seed: int = 0) -> list[dict]:
    """Return n trials' parameter values as Optuna's sampler for the sweep picks them."""
    study = optuna.create_study(sampler=sampler(sweep, seed), direction=sweep["metric"]["goal"])
    out = []

    def objective(trial):
        out.append(suggest(trial, sweep["parameters"]))
        return float(len(out) % 3)  # something for TPE to model

    study.optimize(objective, n_trials=n)
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_repo_sweep_files_give_valid_runs(path):
    sweep = load_sweep(path)
    assert sweep["base_args"][0] == "--config" and Path(ROOT / sweep["base_args"][1]).is_file()
    n = grid_size(sweep) if sweep["method"] == "grid" else 5
    points = draws(sweep, n)
    assert len({json.dumps(p, sort_keys=True) for p in points}) == n  # a grid: each point once
    for params in points:  # every trial is a valid run config
        cfg, _ = resolve([str(ROOT / sweep["base_args"][1])], [override(k, v) for k, v in params.items()])
        assert cfg["optim"]["lr"] == params["optim.lr"]


def test_the_grids_are_whole():
    assert [grid_size(load_sweep(ROOT / "configs" / "sweeps" / f"{n}.yaml")) for n in ("iris_mlp", "digits_cnn")] == [4, 4]


def test_random_and_bayes_draw_from_the_distributions(tmp_path):
    text = """
metric: {name: val/loss, goal: minimize}
parameters:
  optim.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-1}
  model.dropout: {distribution: q_uniform, min: 0.0, max: 0.5, q: 0.1}
  data.batch_size: {distribution: int_uniform, min: 8, max: 64}
  model.hidden: {values: [[16], [64, 32]]}
  model.activation: {values: [relu, gelu]}
  optim.weight_decay: {distribution: q_log_uniform_values, min: 1.0e-5, max: 1.0e-2, q: 1.0e-5}
  seed: {value: 3}
"""
    for method in ("random", "bayes"):
        sweep = load_sweep(write_sweep(tmp_path, f"method: {method}\n" + text))
        got = draws(sweep, 40)
        assert got == draws(sweep, 40)  # reproducible from the seed
        assert all(1e-4 <= d["optim.lr"] <= 1e-1 for d in got)
        assert min(d["optim.lr"] for d in got) < 1e-3 < max(d["optim.lr"] for d in got)  # log scale, not uniform
        assert all(math.isclose(d["model.dropout"] * 10, round(d["model.dropout"] * 10)) for d in got)
        assert all(isinstance(d["data.batch_size"], int) and 8 <= d["data.batch_size"] <= 64 for d in got)
        assert {tuple(d["model.hidden"]) for d in got} == {(16,), (64, 32)}  # lists survive Optuna's categoricals
        assert {d["model.activation"] for d in got} == {"relu", "gelu"}
        assert all(math.isclose(d["optim.weight_decay"] / 1e-5, round(d["optim.weight_decay"] / 1e-5)) for d in got)
        assert {d["seed"] for d in got} == {3}


def test_sweep_file_errors_are_one_line(tmp_path):
    cases = {
        "method: grd\nmetric: {name: a}\nparameters: {x: {values: [1]}}": "Did you mean 'grid'",
        "method: grid\nparameters: {x: {values: [1]}}": "metric",
        "method: grid\nmetric: {name: a}\nparameters: {x: {min: 1, max: 2}}": "Grid sweeps need 'values'",
        "method: grid\nmetric: {name: a}\nparamters: {x: {values: [1]}}": "Did you mean 'parameters'",
        "method: random\nmetric: {name: a}\nparameters: {x: {distribution: normal}}": "no Optuna counterpart",
        "method: random\nmetric: {name: a}\nparameters: {x: {distribution: unifrom, min: 0, max: 1}}":
            "Did you mean 'uniform'",
        "method: random\nmetric: {name: a}\nparameters: {x: {min: 2, max: 1}}": "min < max",
        "method: random\nmetric: {name: a}\nparameters: {x: {distribution: log_uniform_values, min: 0, max: 1}}":
            "positive",
        "method: bayes\nmetric: {name: a}\nparameters: {x: {values: [1]}}\nearly_terminate: {type: hyperbnd}":
            "Did you mean 'hyperband'",
        "method: bayes\nmetric: {name: a}\nparameters: {x: {values: [1]}}\nearly_terminate: {type: hyperband}":
            "needs min_iter",
        "method: bayes\nmetric: {name: a}\nparameters: {x: {values: [1]}}\nearly_terminate: {type: median, mn_iter: 1}":
            "Did you mean 'min_iter'",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_sweep(write_sweep(tmp_path, text))
    with pytest.raises(ConfigError, match="must run zoo.fit"):
        base_args(["python", "train.py", "${args}"])


def test_early_terminate_maps_to_optuna_pruners():
    hyperband = pruner({"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3})
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert (hyperband._min_resource, hyperband._reduction_factor) == (3, 3)  # 27 / 3**2
    median = pruner({"type": "median", "min_iter": 2, "startup_trials": 1})
    assert isinstance(median, optuna.pruners.MedianPruner) and median._n_warmup_steps == 2
    assert isinstance(pruner(None), optuna.pruners.NopPruner)  # not Optuna's default median rule


def test_ranking_puts_complete_then_pruned_then_failed():
    rows = [{"trial": "a", "metric": 0.5, "status": "ok"}, {"trial": "b", "metric": None, "status": "failed (2)"},
            {"trial": "c", "metric": 0.9, "status": "ok"}, {"trial": "d", "metric": 0.95, "status": "pruned at step 1"}]
    assert [(r["rank"], r["trial"]) for r in rank(rows, "maximize")] == [(1, "c"), (2, "a"), ("", "d"), ("", "b")]
    assert [r["trial"] for r in rank(rows, "minimize")] == ["a", "c", "d", "b"]


def test_metric_values_leave_a_half_written_line(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,val/acc\n0,6,1.1,\n0,6,,0.5\n1,13,0.9,\n1,13,,0.75\n2,20,,0.8")
    assert metric_values(path, "val/acc") == [0.5, 0.75]  # "0.8" may be the start of "0.8125"
    assert metric_values(path, "val/f1") == [] and metric_values(tmp_path / "none.csv", "val/acc") == []


def test_fit_reads_wandb_agent_arguments(cli):
    """`wandb agent` runs the sweep's command with each parameter as `--key=value` (lists as JSON)."""
    args = [a for a in AGENT_COMMAND[3:] if not a.startswith("${")]  # what follows `python -m`
    proc = cli(*args, "--optim.lr=0.01", "--model.hidden=[8, 4]", "--model.dropout=0.25", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.01" in proc.stdout and "dropout: 0.25" in proc.stdout and "- 8\n  - 4" in proc.stdout
    bad = cli(*args, "--optim.lr", "0.01", "--print-config")
    assert bad.returncode == 2 and "unrecognized argument" in bad.stderr


@pytest.mark.slow  # two `python -m zoo.fit` subprocesses
def test_median_rule_prunes_a_running_trial(cli, tmp_path):
    """Trial 1 (lr 1e-6) is still at chance after its first epoch, below trial 0 (lr 0.05) at its first
    epoch, so the median rule stops trial 1's process while it runs, long before its 60 epochs."""
    path = write_sweep(tmp_path, """
name: iris_median
method: grid
metric: {name: val/acc, goal: maximize}
parameters:
  optim.lr: {values: [1.0e-6, 0.05]}  # GridSampler shuffles the grid with the seed: 0.05 runs first
early_terminate: {type: median, startup_trials: 1}
""" + COMMAND)
    proc = cli("zoo", "sweep", str(path), "--dir", str(tmp_path / "sweeps"), *TRIAL, "trainer.max_epochs=60")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "sweeps" / "iris_median").iterdir()
    rows = {r["trial"]: r for r in json.loads((sweep_dir / "results.json").read_text())}
    assert rows["trial-000"]["status"] == "ok" and rows["trial-000"]["rank"] == 1
    assert rows["trial-001"]["status"] == "pruned at step 1" and rows["trial-001"]["optim.lr"] == 1e-6
    pruned = Path(rows["trial-001"]["run_dir"])
    assert not (pruned / "results.json").exists()  # stopped mid-training ...
    epochs = {line.split(",")[0] for line in (pruned / "metrics.csv").read_text().splitlines()[1:]}
    assert len(epochs) < 60  # ... long before its max_epochs
    study = optuna.load_study(study_name="iris_median", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    assert study.trials[1].intermediate_values[1] < study.trials[0].intermediate_values[1]


@pytest.mark.slow  # three `python -m zoo.fit` subprocesses and two sweep processes
def test_bayes_sweep_resumes_after_a_kill(tmp_path):
    """Kill -9 a 2-trial TPE sweep (and its running trial) during its second trial; --resume reruns the cut
    trial with the same parameters and keeps the finished one."""
    path = write_sweep(tmp_path, """
name: iris_bayes
method: bayes
metric: {name: val/acc, goal: maximize}
run_cap: 2
parameters:
  optim.lr: {distribution: log_uniform_values, min: 1.0e-3, max: 1.0e-1}
  model.hidden: {values: [[16], [32, 16]]}
""" + COMMAND)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    zoo = [sys.executable, "-m", "zoo", "sweep"]
    sweep = subprocess.Popen([*zoo, str(path), "--dir", str(tmp_path / "sweeps"), *TRIAL, "trainer.max_epochs=50",
                              "callbacks.early_stopping.enabled=true", "callbacks.early_stopping.patience=2"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)  # a group of its own: the kill takes its trial with it
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("sweeps/iris_bayes/*/trial-001/*/metrics.csv")):  # trial 1 is training
            assert time.monotonic() < deadline and sweep.poll() is None, "the sweep never reached trial 1"
            time.sleep(0.2)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    (sweep_dir,) = (tmp_path / "sweeps" / "iris_bayes").iterdir()
    assert (sweep_dir / "trial-000").is_dir() and not list(sweep_dir.glob("trial-001/*/results.json"))

    proc = subprocess.run([*zoo, "--resume", str(sweep_dir)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 of 2 bayes trials to run" in proc.stdout
    rows = {r["trial"]: r for r in json.loads((sweep_dir / "results.json").read_text())}
    assert sorted(rows) == ["trial-000", "trial-001", "trial-002"] and rows["trial-001"]["status"] == "interrupted"
    assert rows["trial-000"]["status"] == rows["trial-002"]["status"] == "ok"
    assert rows["trial-002"]["optim.lr"] == rows["trial-001"]["optim.lr"]  # the cut trial, run again
    assert rows["trial-002"]["model.hidden"] == rows["trial-001"]["model.hidden"]
    assert len(list(sweep_dir.glob("trial-000/*/config.yaml"))) == 1  # the finished trial was not rerun
    for name in ("trial-000", "trial-002"):  # each ok trial's metric is its own run's
        run = json.loads((Path(rows[name]["run_dir"]) / "results.json").read_text())
        assert run["val"]["val/acc"] == rows[name]["metric"]
        assert "max_epochs: 50" in (Path(rows[name]["run_dir"]) / "config.yaml").read_text()  # overrides kept
