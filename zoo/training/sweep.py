"""Hyper-parameter sweeps in the W&B sweep format, run locally: `zoo sweep configs/sweeps/iris_mlp.yaml`.

    method: grid                      # grid | random
    metric: {name: val/acc, goal: maximize}
    parameters:
      optim.lr: {values: [1.0e-3, 3.0e-3]}
      model.dropout: {distribution: uniform, min: 0.0, max: 0.3}
    command: [${env}, ${interpreter}, -m, zoo.fit, --config, configs/experiment/iris_mlp.yaml, ${args}]

The same file drives `wandb sweep FILE` + `wandb agent`: the agent runs the `command`, passing
each trial's parameters as `--key=value`, which `python -m zoo.fit` reads as overrides. Locally,
each trial is a `python -m zoo.fit` subprocess (so DDP and crashes stay contained), and the
results are ranked by the metric in a table saved as results.csv / results.json.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, choose

KNOWN_KEYS = {"method", "metric", "parameters", "command", "program", "name", "description", "project", "entity",
              "early_terminate", "run_cap"}
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform",
                 "log_uniform_values", "q_log_uniform_values", "normal", "q_normal", "log_normal")


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Return the checked sweep config from a W&B-format YAML file."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Sweep file not found: {path}")
    try:
        sweep = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # noqa: BLE001 - any YAML error becomes one line naming the file
        raise ConfigError(f"Cannot read sweep file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(sweep, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with method, metric and parameters")
    for key in sweep:
        choose("sweep key", key, sorted(KNOWN_KEYS))
    if sweep.get("method") == "bayes":
        raise ConfigError("Sweep method 'bayes' needs the W&B server (wandb sweep + wandb agent); use grid or random here")
    sweep["method"] = choose("sweep method", sweep.get("method", "grid"), ("grid", "random"))
    metric = sweep.get("metric") or {}
    if "name" not in metric:
        raise ConfigError(f"{path}: 'metric: {{name: val/acc, goal: maximize}}' is required to rank the trials")
    metric["goal"] = choose("metric goal", metric.get("goal", "minimize"), ("minimize", "maximize"))
    sweep["metric"] = metric
    if not sweep.get("parameters"):
        raise ConfigError(f"{path}: 'parameters' is empty; nothing to sweep")
    sweep["name"] = sweep.get("name") or path.stem
    sweep["base_args"] = base_args(sweep.get("command"))
    return sweep


def base_args(command: list[str] | None) -> list[str]:
    """Return the fixed `zoo.fit` arguments of a W&B `command` (those between the program and ${args})."""
    if not command:
        return []
    args = [str(a) for a in command]
    start = next((i + 1 for i, a in enumerate(args) if a in ("zoo.fit", "${program}") or a.endswith("fit.py")), None)
    if start is None:
        raise ConfigError(f"The sweep command must run zoo.fit (e.g. [..., -m, zoo.fit, --config, FILE, ${{args}}]): {args}")
    return [a for a in args[start:] if not a.startswith("${")]


def grid(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every combination of the parameters' values (grid search allows only value/values)."""
    keys, choices = [], []
    for key, spec in parameters.items():
        if "values" in spec:
            choices.append(list(spec["values"]))
        elif "value" in spec:
            choices.append([spec["value"]])
        else:
            raise ConfigError(f"Grid sweeps need 'values' or 'value' for each parameter; '{key}' has {spec}")
        keys.append(key)
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices)]


def sample_value(key: str, spec: dict[str, Any], rng: random.Random) -> Any:
    """Return one random draw of a parameter following the W&B distribution names."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec and "distribution" not in spec:
        return rng.choice(list(spec["values"]))
    dist = spec.get("distribution")
    if dist is None:  # W&B infers the distribution from the type of min/max
        dist = "int_uniform" if isinstance(spec.get("min"), int) and isinstance(spec.get("max"), int) else "uniform"
    dist = choose(f"distribution of '{key}'", dist, DISTRIBUTIONS)
    q = spec.get("q", 1)
    if dist == "constant":
        return spec["value"]
    if dist == "categorical":
        return rng.choice(list(spec["values"]))
    if dist == "int_uniform":
        return rng.randint(int(spec["min"]), int(spec["max"]))
    if dist in ("uniform", "q_uniform"):
        x = rng.uniform(spec["min"], spec["max"])
    elif dist == "log_uniform":  # min/max are natural-log bounds
        x = math.exp(rng.uniform(spec["min"], spec["max"]))
    elif dist in ("log_uniform_values", "q_log_uniform_values"):
        x = math.exp(rng.uniform(math.log(spec["min"]), math.log(spec["max"])))
    elif dist in ("normal", "q_normal"):
        x = rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0))
    else:  # log_normal
        x = math.exp(rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0)))
    if dist.startswith("q_"):
        x = round(x / q) * q
        return int(x) if isinstance(q, int) else x
    return x


def trials(sweep: dict[str, Any], count: int | None, seed: int) -> list[dict[str, Any]]:
    """Return the parameter sets to run: the whole grid, or `count` random draws (default run_cap or 10)."""
    if sweep["method"] == "grid":
        combos = grid(sweep["parameters"])
        return combos[:count] if count else combos
    rng = random.Random(seed)
    n = count or sweep.get("run_cap") or 10
    return [{k: sample_value(k, spec, rng) for k, spec in sweep["parameters"].items()} for _ in range(n)]


def override(key: str, value: Any) -> str:
    """Return `key=value` with the value in the YAML flow syntax that zoo.fit (and wandb agent) pass."""
    return f"{key}={json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else value}"


def run_trial(i: int, params: dict[str, Any], sweep: dict[str, Any], sweep_dir: Path, extra: list[str]) -> dict:
    """Run one trial as a `python -m zoo.fit` subprocess; return its row for the results table."""
    name = f"trial-{i:03d}"
    args = [*sweep["base_args"], *(override(k, v) for k, v in params.items()), *extra,
            f"run.dir={sweep_dir}", f"run.name={name}"]
    env = {**os.environ, "WANDB_RUN_GROUP": sweep["name"]}  # W&B groups the sweep's runs under its name
    for var in ("ZOO_RUN_DIR", "WANDB_SERVICE"):  # each trial is a run of its own
        env.pop(var, None)
    log = sweep_dir / f"{name}.log"
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "zoo.fit", *args], stdout=f, stderr=subprocess.STDOUT, env=env,
                              check=False)
    row = {"trial": name, **params, "status": "ok" if proc.returncode == 0 else f"failed ({proc.returncode})",
           "seconds": round(time.perf_counter() - start, 1), "metric": None, "run_dir": ""}
    results = sorted((sweep_dir / name).glob("*/results.json"))
    if proc.returncode == 0 and results:
        res = json.loads(results[-1].read_text())
        row["run_dir"] = res["run_dir"]
        value = {**res["val"], **res["test"]}.get(sweep["metric"]["name"])
        row["metric"] = value
        if value is None:
            row["status"] = f"no metric {sweep['metric']['name']}"
    elif proc.returncode:
        lines = [x for x in log.read_text().splitlines() if x.strip()]
        row["status"] += f": {lines[-1][:120]}" if lines else ""
    print(f"{name}  {row['status']}  {sweep['metric']['name']}={row['metric']}  ({row['seconds']} s)", flush=True)
    return row


def rank(rows: list[dict[str, Any]], goal: str) -> list[dict[str, Any]]:
    """Return the rows best first by metric; trials without a metric go last."""
    sign = -1 if goal == "maximize" else 1
    done = sorted((r for r in rows if r["metric"] is not None), key=lambda r: sign * r["metric"])
    ranked = done + [r for r in rows if r["metric"] is None]
    return [{"rank": i + 1 if r["metric"] is not None else "", **r} for i, r in enumerate(ranked)]


def run_sweep(path: str, *, parallel: int = 1, count: int | None = None, seed: int = 0, root: str = "runs/sweeps",
              extra: list[str] | None = None) -> list[dict[str, Any]]:
    """Run a sweep file's trials locally; print and save (results.csv/json) the ranked table; return its rows."""
    sweep = load_sweep(path)
    params = trials(sweep, count, seed)
    sweep_dir = Path(root) / sweep["name"] / time.strftime("%Y%m%d-%H%M%S")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    print(f"sweep {sweep['name']}: {len(params)} {sweep['method']} trials, {parallel} at a time -> {sweep_dir}")
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        rows = list(pool.map(lambda ip: run_trial(ip[0], ip[1], sweep, sweep_dir, extra or []), enumerate(params)))
    ranked = rank(rows, sweep["metric"]["goal"])
    save_table(ranked, sweep_dir)
    print_table(ranked, sweep["metric"]["name"], sweep_dir)
    return ranked


def save_table(rows: list[dict[str, Any]], sweep_dir: Path) -> None:
    """Write the ranked rows to results.csv and results.json in the sweep dir."""
    (sweep_dir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    with open(sweep_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows)


def print_table(rows: list[dict[str, Any]], metric: str, sweep_dir: Path) -> None:
    """Print the ranked trials as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"trials ranked by {metric}", title_justify="left")
    cols = [k for k in rows[0] if k not in ("run_dir",)]
    for col in cols:
        table.add_column(metric if col == "metric" else col, justify="right" if col in ("rank", "metric") else "left")
    for r in rows:
        table.add_row(*("" if r[c] is None else f"{r[c]:.4f}" if c == "metric" else str(r[c]) for c in cols))
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    console.print(f"results: {sweep_dir / 'results.csv'}")
