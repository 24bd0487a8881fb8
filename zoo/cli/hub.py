"""`zoo fetch` (download and verify pretrained weights), `zoo verify` (re-hash the cache) and `zoo export`."""

from __future__ import annotations

import argparse


def cmd_fetch(args: argparse.Namespace) -> int:
    from zoo.hub.pretrained import weights_path

    for name in args.names:
        print(f"{name}: {weights_path(name)} (sha256 verified)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Print one line per cached weights file; exit 1 when a bad one was found (and removed)."""
    from zoo.data.download import cache_dir
    from zoo.hub.pretrained import verify_cache

    report = verify_cache()
    for path, problem in report:
        print(f"ok   {path}" if problem is None else f"BAD  {path}: {problem}; removed")
    bad = sum(problem is not None for _, problem in report)
    print(f"{len(report)} cached weights files checked under {cache_dir() / 'weights'} and the Hugging Face "
          f"cache: {len(report) - bad} good, {bad} bad")
    return 1 if bad else 0


def cmd_export(args: argparse.Namespace) -> int:
    from zoo.hub.export import export

    out = export(args.ckpt, args.format, args.out, force=args.force)
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"exported {args.ckpt} as {args.format} to {out}/ ({files})")
    return 0
