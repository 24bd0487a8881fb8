"""`zoo fetch` (download and verify pretrained weights) and `zoo export` (other formats)."""

from __future__ import annotations

import argparse


def cmd_fetch(args: argparse.Namespace) -> int:
    from zoo.hub.pretrained import weights_path

    for name in args.names:
        print(f"{name}: {weights_path(name)} (sha256 verified)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from zoo.hub.export import export

    out = export(args.ckpt, args.format, args.out)
    print(f"exported to {out}")
    return 0
