"""`zoo test` (a checkpoint on its data's test split) and `zoo baseline` (scikit-learn on the same splits)."""

from __future__ import annotations

import argparse
import shutil

from zoo.errors import ZooError


def cmd_test(args: argparse.Namespace) -> int:
    from zoo.hub.pretrained import load_with_config
    from zoo.training.evaluate import evaluate

    model, cfg = load_with_config(args.ckpt)
    if not cfg:
        raise ZooError(f"{args.ckpt} holds no training config, so its data is unknown")
    print_metrics(evaluate(model, cfg, args.overrides, accelerator=args.accelerator)[0])
    return 0


def print_metrics(metrics: dict[str, float]) -> None:
    """Print metric name/value pairs, one per line."""
    width = max(len(k) for k in metrics) if metrics else 0
    for k in sorted(metrics):
        print(f"{k:<{width}}  {metrics[k]:.4f}")


def cmd_baseline(args: argparse.Namespace) -> int:
    run_baseline(args.data, args.overrides)
    return 0


def run_baseline(data: str, overrides: list[str]) -> dict[str, dict[str, float]]:
    """Fit and print the baselines for a registered dataset (with data.key=value overrides)."""
    from rich.console import Console
    from rich.table import Table

    from zoo.evaluation.baseline import fit_baselines
    from zoo.training.config import datamodule_for

    datamodule = datamodule_for({"data": {"name": data}}, overrides)
    results = fit_baselines(datamodule)
    metrics = sorted({k for r in results.values() for k in r}, key=lambda k: (k.split("/")[0] != "val", k))
    table = Table(title=f"baselines on '{data}' (same splits as zoo, seed {datamodule.seed})", title_justify="left")
    table.add_column("model", no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right")
    for name, r in results.items():
        table.add_row(name, *[f"{r[m]:.4f}" for m in metrics])
    Console(width=max(140, shutil.get_terminal_size().columns)).print(table)
    return results
