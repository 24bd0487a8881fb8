"""`zoo fit` (the same as `python -m zoo.fit`) and `zoo sweep`."""

from __future__ import annotations

import argparse


def cmd_fit(args: argparse.Namespace) -> int:
    from zoo.fit import run_fit

    return run_fit(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from zoo.training.sweep import run_sweep

    rows = run_sweep(args.file, parallel=args.parallel, count=args.count, seed=args.seed, root=args.dir,
                     extra=args.overrides)
    return 0 if any(r["metric"] is not None for r in rows) else 1
