"""`zoo test` (a checkpoint on its data's test split) and `zoo baseline` (classical models on the same splits)."""

from __future__ import annotations

import argparse

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
    from zoo.evaluation.baseline import fit_baselines
    from zoo.fit import print_comparison
    from zoo.training.config import datamodule_for

    datamodule = datamodule_for({"data": {"name": data}}, overrides)
    results = fit_baselines(datamodule)
    title = f"baselines on '{data}' (same splits as zoo, seed {datamodule.seed})"
    print_comparison(results, title)
    return results


def markdown_kinds() -> str:
    """Return the table of docs/baselines.md (`make docs`) that lists the baselines of each data kind."""
    from zoo.evaluation.baseline import BASELINES, baselines_for

    lines = ["| modality | task | baselines |", "|---|---|---|"]
    for modality, task in sorted({kind for n in BASELINES.names() for kind in BASELINES.get(n).supports}):
        lines.append(f"| {modality} | {task} | {', '.join(f'`{n}`' for n in baselines_for(modality, task))} |")
    return "\n".join(lines)


# The metric each task's baselines are compared by in docs/baselines.md.
HEADLINE = {"classification": "acc", "regression": "r2", "language_modeling": "loss"}


def embedded_baselines() -> dict[str, dict[str, dict[str, float]]]:
    """Return {data: fit_baselines(data)} for every registered dataset that needs no files of the user's."""
    from zoo.evaluation.baseline import fit_baselines
    from zoo.registry import DATA

    return {data: fit_baselines(DATA.build(data)) for data in DATA.names() if not hasattr(DATA.get(data), "example")}


def markdown_figures(results: dict[str, dict[str, dict[str, float]]] | None = None) -> str:
    """Return the table of docs/baselines.md (`make docs`): each baseline on each embedded dataset, with
    default arguments, by the headline metric of the task (nats per token for an LM)."""
    from zoo.registry import data_kind

    lines = ["| data | metric | baseline | val | test |", "|---|---|---|---:|---:|"]
    for data, rows in (embedded_baselines() if results is None else results).items():
        metric = HEADLINE[data_kind(data)[1]]
        for name, r in rows.items():
            lines.append(f"| `{data}` | {metric} | `{name}` | {r[f'val/{metric}']:.3f} | {r[f'test/{metric}']:.3f} |")
    return "\n".join(lines)
