"""Hyper-parameter sweeps in the W&B sweep format, run locally by Optuna: `zoo sweep configs/sweeps/iris_mlp.yaml`.

    method: bayes                     # grid | random | bayes (Optuna's GridSampler, RandomSampler, TPESampler)
    metric: {name: val/acc, goal: maximize}
    parameters:
      optim.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-1}
      model.hidden: {values: [[16], [64, 32]]}
    early_terminate: {type: hyperband, min_iter: 3}   # or {type: median}: Optuna's pruners
    command: [${env}, ${interpreter}, -m, zoo.fit, --config, configs/experiment/iris_mlp.yaml, ${args}]

The same file drives `wandb sweep FILE` + `wandb agent`: the agent runs the `command`, passing
each trial's parameters as `--key=value`, which `python -m zoo.fit` reads as overrides. Locally,
Optuna samples the parameters and each trial is a `python -m zoo.fit` subprocess with its own
run dir (zoo/training/trial.py: how a running trial reports to the pruner). The study lives in
an SQLite file in the sweep dir, optuna.db, so that a killed sweep resumes
(`zoo sweep --resume SWEEP_DIR`) and `optuna-dashboard sqlite:///SWEEP_DIR/optuna.db` shows it.
The ranked table is printed and saved as results.csv / results.json.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, ZooError, choose

KNOWN_KEYS = {"method", "metric", "parameters", "command", "program", "name", "description", "project", "entity",
              "early_terminate", "run_cap"}
METHODS = ("grid", "random", "bayes")
# W&B distributions with an Optuna counterpart; `log_*` ones take natural-log bounds, `*_values` ones values.
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform",
                 "log_uniform_values", "q_log_uniform", "q_log_uniform_values")
TERMINATE_KEYS = {"hyperband": {"type", "min_iter", "max_iter", "s", "eta"},
                  "median": {"type", "min_iter", "startup_trials"}}
STORAGE = "optuna.db"


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Return the checked sweep config from a W&B-format YAML file (every parameter is checked too)."""
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
    sweep["method"] = choose("sweep method", sweep.get("method", "grid"), METHODS)
    metric = sweep.get("metric") or {}
    if "name" not in metric:
        raise ConfigError(f"{path}: 'metric: {{name: val/acc, goal: maximize}}' is required to rank the trials")
    metric["goal"] = choose("metric goal", metric.get("goal", "minimize"), ("minimize", "maximize"))
    sweep["metric"] = metric
    if not sweep.get("parameters"):
        raise ConfigError(f"{path}: 'parameters' is empty; nothing to sweep")
    for key, spec in sweep["parameters"].items():
        if not isinstance(spec, dict):
            raise ConfigError(f"Parameter '{key}' must be a mapping such as {{values: [...]}}, got {spec!r}")
        if sweep["method"] == "grid" and not ({"value", "values"} & set(spec)):
            raise ConfigError(f"Grid sweeps need 'values' or 'value' for each parameter; '{key}' has {spec}")
        distribution(key, spec)
    pruner(sweep.get("early_terminate"))
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


# -- the search space: W&B parameters as Optuna distributions ----------------------------------------


def encoded(value: Any) -> Any:
    """Return a choice as Optuna stores categorical values: primitives as they are, lists and dicts as JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def distribution(key: str, spec: dict[str, Any]) -> Any:
    """Return the Optuna distribution of a W&B parameter spec (None for a constant), or raise ConfigError."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if "value" in spec and spec.get("distribution", "constant") == "constant":
        return None
    dist = spec.get("distribution")
    if dist is None:  # W&B infers it: a list of values, else integer or real min/max
        if "values" in spec:
            dist = "categorical"
        else:
            dist = "int_uniform" if isinstance(spec.get("min"), int) and isinstance(spec.get("max"), int) else "uniform"
    if dist in ("normal", "q_normal", "log_normal", "q_log_normal", "inv_log_uniform", "inv_log_uniform_values"):
        raise ConfigError(f"Distribution '{dist}' of '{key}' has no Optuna counterpart; use {', '.join(DISTRIBUTIONS)} "
                          "(or run this file with wandb agent)")
    dist = choose(f"distribution of '{key}'", dist, DISTRIBUTIONS)
    if dist == "categorical":
        if not spec.get("values"):
            raise ConfigError(f"Parameter '{key}' needs a non-empty 'values' list")
        return CategoricalDistribution([encoded(v) for v in spec["values"]])
    missing = [k for k in ("min", "max") if k not in spec]
    if missing:
        raise ConfigError(f"Parameter '{key}' ({dist}) needs 'min' and 'max'")
    low, high, q = spec["min"], spec["max"], spec.get("q")
    if dist.startswith(("log_uniform", "q_log_uniform")):
        if dist in ("log_uniform", "q_log_uniform"):  # bounds are natural logs of the values
            low, high = math.exp(low), math.exp(high)
        if not 0 < low:
            raise ConfigError(f"Parameter '{key}' ({dist}) needs positive values, got min {spec['min']}")
    if not low < high:
        raise ConfigError(f"Parameter '{key}' needs min < max, got {spec['min']} and {spec['max']}")
    if dist == "int_uniform":
        return IntDistribution(int(low), int(high))
    if dist == "q_uniform":
        q = q or 1
        if isinstance(q, int) and isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, step=q)
        return FloatDistribution(float(low), float(high), step=float(q))
    return FloatDistribution(float(low), float(high), log=dist != "uniform")  # q_log_*: rounded to q after


def suggest(trial: Any, parameters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return the values of one trial's parameters: constants as given, the others asked of Optuna's sampler."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values = {}
    for key, spec in parameters.items():
        dist = distribution(key, spec)
        if dist is None:
            values[key] = spec["value"]
        elif isinstance(dist, CategoricalDistribution):
            picked = trial.suggest_categorical(key, dist.choices)
            values[key] = spec["values"][list(dist.choices).index(picked)]
        elif isinstance(dist, IntDistribution):
            values[key] = trial.suggest_int(key, dist.low, dist.high, step=dist.step)
        else:
            x = trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)
            q = spec.get("q")
            if q and dist.log:  # W&B's q_log_*: a log-uniform draw rounded to a multiple of q
                x = round(x / q) * q
                x = int(x) if isinstance(q, int) else x
            values[key] = x
    return values


def sampler(sweep: dict[str, Any], seed: int) -> Any:
    """Return Optuna's sampler for the sweep's method: the whole grid, random draws, or TPE (W&B's bayes)."""
    import optuna

    if sweep["method"] == "grid":
        space = {k: [encoded(v) for v in (s["values"] if "values" in s else [s["value"]])]
                 for k, s in sweep["parameters"].items() if distribution(k, s) is not None}
        return optuna.samplers.GridSampler(space, seed=seed)
    if sweep["method"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def grid_size(sweep: dict[str, Any]) -> int:
    """Return the number of points in a grid sweep: the product of the parameters' numbers of values."""
    return math.prod(len(s["values"]) if "values" in s else 1 for s in sweep["parameters"].values())


def pruner(early_terminate: dict[str, Any] | None) -> Any:
    """Return Optuna's pruner for W&B's `early_terminate` (hyperband, or zoo's `median`); none prunes nothing.

    Iterations are the times a trial logged the sweep's metric (its validation epochs):
    hyperband's `min_iter` is Optuna's min_resource, `max_iter` / `eta`**`s` gives it when only
    `max_iter` is set, `eta` is the reduction factor; median's `min_iter` is the warm-up.
    """
    import optuna

    if not early_terminate:
        return optuna.pruners.NopPruner()  # (Optuna's own default would be the median rule)
    if not isinstance(early_terminate, dict) or "type" not in early_terminate:
        raise ConfigError("early_terminate needs a type: {type: hyperband, min_iter: 3} or {type: median}")
    kind = choose("early_terminate type", early_terminate["type"], TERMINATE_KEYS)
    for key in early_terminate:
        choose(f"early_terminate key ({kind})", key, TERMINATE_KEYS[kind])
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(early_terminate.get("startup_trials", 5)),
                                           n_warmup_steps=int(early_terminate.get("min_iter", 0)))
    eta = int(early_terminate.get("eta", 3))
    if "min_iter" in early_terminate:
        min_resource = int(early_terminate["min_iter"])
    elif "max_iter" in early_terminate:
        min_resource = max(1, int(early_terminate["max_iter"] / eta ** int(early_terminate.get("s", 0))))
    else:
        raise ConfigError("early_terminate type hyperband needs min_iter (or max_iter with s)")
    return optuna.pruners.HyperbandPruner(min_resource=min_resource, reduction_factor=eta,
                                          max_resource=int(early_terminate.get("max_iter", 0)) or "auto")


# -- running a sweep: a new one, or a killed one resumed --------------------------------------------


def run_sweep(path: str | None = None, *, resume: str | None = None, parallel: int = 1, count: int | None = None,
              seed: int = 0, root: str = "runs/sweeps", extra: list[str] | None = None,
              poll_seconds: float = 1.0) -> list[dict[str, Any]]:
    """Run a sweep file's trials (or the rest of a killed sweep's); print and save the ranked table; return its rows."""
    import optuna
    from filelock import FileLock, Timeout

    from zoo.training.trial import Objective

    if resume:
        sweep_dir = Path(resume)
        if not (sweep_dir / STORAGE).is_file():
            raise ConfigError(f"Cannot resume: {sweep_dir / STORAGE} not found (is {sweep_dir} a sweep dir?)")
        if path or extra:
            raise ConfigError("A resumed sweep keeps its own file and overrides; pass only --resume SWEEP_DIR")
    else:
        sweep = load_sweep(path)
        sweep_dir = Path(root) / sweep["name"] / time.strftime("%Y%m%d-%H%M%S")
        sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(sweep_dir / ".sweep.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ZooError(f"Another zoo sweep is running in {sweep_dir}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # zoo prints a line per trial itself
    with lock:
        storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / STORAGE}",
                                             engine_kwargs={"connect_args": {"timeout": 60}})
        if resume:
            (name,) = optuna.study.get_all_study_names(storage)
            setup = optuna.load_study(study_name=name, storage=storage).user_attrs["zoo"]
            sweep = setup["sweep"]
        else:
            setup = {"sweep": sweep, "extra": list(extra or []), "seed": seed,
                     "count": count or (None if sweep["method"] == "grid" else sweep.get("run_cap") or 10)}
        study = optuna.create_study(study_name=sweep["name"], storage=storage, load_if_exists=bool(resume),
                                    direction=sweep["metric"]["goal"], pruner=pruner(sweep.get("early_terminate")))
        if not resume:
            study.set_user_attr("zoo", setup)
        requeue_interrupted(study)
        # a resumed random/TPE sweep must not draw the first trials' values again: seed past them
        study.sampler = sampler(sweep, setup["seed"] + len(study.trials))
        target = setup["count"] or grid_size(sweep)
        todo = max(0, target - len(finished(study)))
        print(f"sweep {sweep['name']}: {todo} of {target} {sweep['method']} trials to run, {parallel} at a time -> "
              f"{sweep_dir}\n  study: sqlite:///{sweep_dir / STORAGE} (zoo sweep --resume {sweep_dir}; "
              f"optuna-dashboard sqlite:///{sweep_dir / STORAGE})", flush=True)
        objective = Objective(sweep, sweep_dir, setup["extra"], lambda trial: suggest(trial, sweep["parameters"]),
                              poll_seconds)
        study.optimize(objective, n_trials=todo, n_jobs=max(1, parallel), catch=(objective.Failed,))
        rows = rank(table_rows(study, sweep), sweep["metric"]["goal"])
        save_table(rows, sweep_dir)
    print_table(rows, sweep["metric"]["name"], sweep_dir)
    return rows


def finished(study: Any) -> list[Any]:
    """Return the trials that count towards the sweep's total: complete, pruned, or failed on their own."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or t.state == TrialState.FAIL and not t.user_attrs.get("interrupted")]


def requeue_interrupted(study: Any) -> None:
    """Queue again, with the same parameters, the trials that a kill or Ctrl-C cut short.

    The sweep's lock is held, so a trial still marked running belongs to a process that died.
    The copy keeps the trial's system attributes (GridSampler's grid point among them).
    """
    import optuna
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("zoo_retry_of") for t in trials}
    for t in trials:
        if t.number in retried or not (t.state == TrialState.RUNNING or t.state == TrialState.FAIL
                                       and t.user_attrs.get("interrupted")):
            continue
        if t.state == TrialState.RUNNING:  # (`_trial_id` is how Optuna's own callbacks name a trial to the storage)
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=t.params, distributions=t.distributions,
            system_attrs={**t.system_attrs, "zoo_retry_of": t.number}))


# -- the ranked table ---------------------------------------------------------------------------------


def table_rows(study: Any, sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one row per trial that ran: its parameters, status, time, metric and run dir."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.WAITING, TrialState.RUNNING):
            continue
        attrs = t.user_attrs
        status = attrs.get("status") or ("interrupted" if attrs.get("interrupted") else t.state.name.lower())
        rows.append({"trial": f"trial-{t.number:03d}", **attrs.get("params", {}), "status": status,
                     "seconds": attrs.get("seconds"), "metric": t.value, "run_dir": attrs.get("run_dir", "")})
    keys = list(sweep["parameters"])  # the same columns in every row, in the file's order
    return [{"trial": r["trial"], **{k: r.get(k) for k in keys}, **{k: r[k] for k in list(r)[1:] if k not in keys}}
            for r in rows]


def rank(rows: list[dict[str, Any]], goal: str) -> list[dict[str, Any]]:
    """Return the rows best first: complete trials ranked by metric, then pruned ones, then the rest."""
    sign = -1 if goal == "maximize" else 1

    def by_metric(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rs, key=lambda r: sign * r["metric"])

    ok = by_metric([r for r in rows if r.get("status", "ok") == "ok" and r["metric"] is not None])
    pruned = by_metric([r for r in rows if str(r.get("status", "")).startswith("pruned") and r["metric"] is not None])
    rest = [r for r in rows if not any(r is x for x in ok + pruned)]
    return [{"rank": i + 1 if i < len(ok) else "", **r} for i, r in enumerate(ok + pruned + rest)]


def save_table(rows: list[dict[str, Any]], sweep_dir: Path) -> None:
    """Write the ranked rows to results.csv and results.json in the sweep dir."""
    if not rows:
        return
    (sweep_dir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    with open(sweep_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows)


def print_table(rows: list[dict[str, Any]], metric: str, sweep_dir: Path) -> None:
    """Print the ranked trials as a table."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    if not rows:
        console.print(f"no trial ran (sweep dir: {sweep_dir})")
        return
    table = Table(title=f"trials ranked by {metric}", title_justify="left")
    cols = [k for k in rows[0] if k not in ("run_dir",)]
    for col in cols:
        table.add_column(metric if col == "metric" else col, justify="right" if col in ("rank", "metric") else "left")
    def cell(col: str, value: Any) -> str:
        if value is None:
            return ""
        if col == "metric":
            return f"{value:.4f}"
        return f"{value:.4g}" if isinstance(value, float) and col != "seconds" else str(value)  # results.csv: all digits

    for r in rows:
        table.add_row(*(cell(c, r[c]) for c in cols))
    console.print(table)
    console.print(f"results: {sweep_dir / 'results.csv'}")
