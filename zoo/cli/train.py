"""`zoo fit` (the same as `python -m zoo.fit`) and `zoo sweep`."""

from __future__ import annotations

import argparse


def cmd_fit(args: argparse.Namespace) -> int:
    from zoo.fit import run_fit

    return run_fit(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from zoo.errors import ConfigError
    from zoo.training.sweep import run_sweep

    if not args.file and not args.resume:
        raise ConfigError("zoo sweep needs a sweep file (see configs/sweeps/) or --resume SWEEP_DIR")
    rows = run_sweep(args.file, resume=args.resume, parallel=args.parallel, count=args.count, seed=args.seed,
                     root=args.dir, extra=args.overrides)
    return 0 if any(r["status"] == "ok" for r in rows) else 1
