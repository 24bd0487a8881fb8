"""`zoo runs [DIR]` (a table of the runs under DIR) and `zoo plot RUN_DIR ...` (their learning curves).

Both read what zoo.fit leaves in a run dir (README: "Every run writes a run dir"):
config.yaml (model, data, the checkpoint monitor), results.json (the monitor's best value, the
test metrics, the fit time, and the classical baselines when they were fitted) and metrics.csv
(one row per logging step, epoch-level values in the rows of each epoch's end).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

# Metrics where higher is better; every other one (loss, mse, mae, ppl, fid, ...) is lower-is-better.
HIGHER_IS_BETTER = {"acc", "f1", "precision", "recall", "r2", "elbo", "auc", "cond_acc", "confidence"}
# The metric a run is compared with a baseline on: the first of these that both report.
HEADLINE = ("acc", "r2", "f1", "mse", "mae", "ppl", "loss")


def cmd_runs(args: argparse.Namespace) -> int:
    runs = [read_run(d) for d in find_runs(Path(args.dir))]
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        print_runs(runs, Path(args.dir))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    out = plot_runs([Path(d) for d in args.run_dirs], Path(args.out), args.metric or None)
    print(f"wrote {out}")
    return 0


# -- reading run dirs ------------------------------------------------------------------------------


def is_run_dir(path: Path) -> bool:
    """Return True for a zoo.fit run dir (config.yaml with metrics, results or checkpoints beside it)."""
    return (path / "config.yaml").is_file() and any(
        (path / name).exists() for name in ("results.json", "metrics.csv", "checkpoints"))


def find_runs(root: Path) -> list[Path]:
    """Return the run dirs at or under `root`, oldest first (by their time stamp, then path)."""
    if not root.is_dir():
        raise ZooError(f"No such folder: {root}")
    if is_run_dir(root):
        return [root]
    found = [p.parent for p in root.rglob("config.yaml") if is_run_dir(p.parent)]
    return sorted(found, key=lambda p: (p.name, str(p)))


def read_yaml(path: Path) -> dict[str, Any]:
    """Return a YAML file's mapping ({} when absent or unreadable)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_run(run_dir: Path) -> dict[str, Any]:
    """Return what `zoo runs` shows of one run dir: names, the best monitored value, test metrics, time."""
    cfg = read_yaml(run_dir / "config.yaml")
    results: dict[str, Any] = {}
    if (run_dir / "results.json").is_file():
        try:
            results = json.loads((run_dir / "results.json").read_text()) or {}
        except json.JSONDecodeError:
            results = {}
    metric, mode, best = monitored(cfg, results, run_dir)
    return {
        "run_dir": str(run_dir),
        "experiment": run_dir.parent.name,
        "stamp": run_dir.name,
        "model": (cfg.get("model") or {}).get("name"),
        "data": (cfg.get("data") or {}).get("name"),
        "monitor": metric,
        "mode": mode,
        "best": best,
        "test": results.get("test") or {},
        "fit_seconds": results.get("fit_seconds"),
        "status": "done" if results else "no results (running, stopped or failed)",
        "baseline": best_baseline(results.get("test") or {}, results.get("baselines") or {}),
    }


def monitored(cfg: dict[str, Any], results: dict[str, Any], run_dir: Path) -> tuple[str, str, float | None]:
    """Return (metric, mode, best value) of the checkpoint monitor.

    zoo.fit records them in results.json; for a run without them (unfinished, or older than
    that record) the config names the monitor (default val/loss) and metrics.csv gives the best.
    """
    if results.get("monitor"):
        m = results["monitor"]
        return m["metric"], m["mode"], m["best"]
    checkpoint = ((cfg.get("callbacks") or {}).get("checkpoint") or {})
    metric, mode = checkpoint.get("monitor") or "val/loss", checkpoint.get("mode") or "min"
    values = [v for v in epoch_values(run_dir).get(metric, {}).values() if not math.isnan(v)]
    best = (max if mode == "max" else min)(values) if values else None
    return metric, mode, best


def best_baseline(test: dict[str, float], baselines: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    """Return the best classical baseline on the run's headline test metric (chosen on val when it can be)."""
    for short in HEADLINE:
        key = f"test/{short}"
        if key not in test:
            continue
        scored = {n: b for n, b in baselines.items() if key in b}
        if not scored:
            continue
        sign = 1 if short in HIGHER_IS_BETTER else -1
        name = max(scored, key=lambda n: sign * scored[n].get(f"val/{short}", scored[n][key]))
        return {"name": name, "metric": key, "value": scored[name][key]}
    return None


def epoch_values(run_dir: Path) -> dict[str, dict[int, float]]:
    """Return {metric: {epoch: value}} from a run's metrics.csv: the last value each epoch logged."""
    import pandas as pd

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return {}
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return {}
    if "epoch" not in frame:
        return {}
    per_epoch = frame.dropna(subset=["epoch"]).groupby("epoch").last()  # last non-empty value of each column
    return {col: {int(e): float(v) for e, v in per_epoch[col].dropna().items()}
            for col in per_epoch.columns if col != "step"}


# -- the table ---------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    """Return a metric value with 4 significant digits, or '' for none."""
    return "" if value is None else f"{value:.4g}"


def print_runs(runs: list[dict[str, Any]], root: Path) -> None:
    """Print the runs as a table, one row per run."""
    from rich.console import Console
    from rich.table import Table

    baselines = any(r["baseline"] for r in runs)  # a column only when some run has them
    table = Table(title=f"{len(runs)} run{'s' * (len(runs) != 1)} under {root}", title_justify="left")
    for col in ("experiment", "stamp", "model", "data", "best monitored", "test metrics",
                *(["best baseline (test)"] if baselines else []), "fit time"):
        table.add_column(col, justify="right" if col == "fit time" else "left")
    for r in runs:
        best = f"{r['monitor']} {fmt(r['best'])}" if r["best"] is not None else r["monitor"]
        test = "  ".join(f"{k.split('/', 1)[-1]} {fmt(v)}" for k, v in sorted(r["test"].items())) or r["status"]
        b = r["baseline"]
        baseline = [f"{b['name']}: {b['metric'].split('/', 1)[-1]} {fmt(b['value'])}" if b else ""] if baselines else []
        seconds = "" if r["fit_seconds"] is None else f"{r['fit_seconds']:.1f} s"
        table.add_row(r["experiment"], r["stamp"], r["model"] or "", r["data"] or "", best, test, *baseline, seconds)
    Console(width=None if sys.stdout.isatty() else max(160, shutil.get_terminal_size().columns)).print(table)


# -- the plot ----------------------------------------------------------------------------------------


def plot_runs(run_dirs: list[Path], out: Path, metrics: list[str] | None = None) -> Path:
    """Draw runs' learning curves (`curves_figure`) and save them as a PNG; return its path."""
    import matplotlib.pyplot as plt

    fig = curves_figure(run_dirs, metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def curves_figure(run_dirs: list[Path], metrics: list[str] | None = None) -> Any:
    """Return a matplotlib figure of train/val loss and the monitored metrics per epoch, one colour per run.

    `metrics` (default: each run's checkpoint monitor when it is not val/loss, and val/acc when
    logged) get one panel each after the loss panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for d in run_dirs:
        if not (d / "metrics.csv").is_file():
            raise ZooError(f"{d} has no metrics.csv (is it a zoo run dir with a csv logger?)")
        curves[d] = epoch_values(d)
    if metrics is None:
        metrics = []
        for d in run_dirs:
            for m in (read_run(d)["monitor"], "val/acc"):
                if m != "val/loss" and m in curves[d] and m not in metrics:
                    metrics.append(m)
    missing = [m for m in metrics if not any(m in c for c in curves.values())]
    if missing:
        logged = sorted({k for c in curves.values() for k in c if "/" in k})
        raise ZooError(f"No run logged {', '.join(missing)}. Logged metrics: {', '.join(logged)}")
    panels = ["loss", *metrics]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, d in enumerate(run_dirs):
        colour, label, c = colours[i % len(colours)], f"{d.parent.name}/{d.name}", curves[d]
        for stage, style in (("train", "-"), ("val", "--")):
            if f"{stage}/loss" in c:
                axes[0, 0].plot(*zip(*sorted(c[f"{stage}/loss"].items())), style, color=colour, label=f"{label} {stage}")
        for ax, metric in zip(axes[0, 1:], metrics):
            if metric in c:
                ax.plot(*zip(*sorted(c[metric].items())), "-o", markersize=3, color=colour, label=label)
    for ax, title in zip(axes[0], panels):
        ax.set_title("train (solid) and val (dashed) loss" if title == "loss" else title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
