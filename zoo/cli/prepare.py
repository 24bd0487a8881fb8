"""`zoo prepare --data NAME --out DIR [data.key=value ...]`: any zoo dataset as litdata shards.

The shards (zoo/data/streaming.py) hold the dataset's train/val/test splits and its DataSpec;
`data.name=streaming data.path=DIR` trains from them, in one process or many.
"""

from __future__ import annotations

import argparse


def cmd_prepare(args: argparse.Namespace) -> int:
    from zoo.data.streaming import write_shards
    from zoo.registry import DATA
    from zoo.training.config import data_section

    source = data_section({"data": {"name": args.data}}, args.overrides)
    datamodule = DATA.build(source["name"], **{k: v for k, v in source.items() if k != "name"})
    datamodule.prepare_data()
    meta = write_shards(datamodule, args.out, source=source, chunk_bytes=args.chunk_bytes, workers=args.workers,
                        overwrite=args.overwrite)
    spec = meta["spec"]
    sizes = ", ".join(f"{k} {v}" for k, v in meta["sizes"].items())
    print(f"wrote {args.data} ({spec['modality']} {spec['task']}; {sizes}) to {args.out}")
    print(f"train from it with: data.name=streaming data.path={args.out}")
    return 0
