"""Run `python -m zoo.fit` on streaming data and record which sample ids each rank trains on.

    python -m tests.ids_runner OUT_DIR -- --config ... data.name=streaming data.path=...

Each process (DDP ranks included: Lightning relaunches this module) appends one JSON line per training
batch to OUT_DIR/rank<R>.jsonl: {"epoch": E, "ids": [...]}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    sep = sys.argv.index("--")
    out, fit_args = Path(sys.argv[1]), sys.argv[sep + 1 :]
    from litdata import StreamingDataLoader

    import zoo.data.streaming as streaming
    import zoo.fit

    base = streaming.loader_class()

    class Recording(base):
        def __iter__(self):
            import torch.distributed as dist

            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            for batch in StreamingDataLoader.__iter__(self):  # the collated sample dicts, ids included
                if self.consumed is not None:  # the training loader
                    with open(out / f"rank{rank}.jsonl", "a") as f:
                        f.write(json.dumps({"epoch": self.current_epoch, "ids": batch["id"].tolist()}) + "\n")
                yield streaming.to_batch(batch)

    streaming.loader_class = lambda: Recording
    out.mkdir(parents=True, exist_ok=True)
    return zoo.fit.main(fit_args)


if __name__ == "__main__":
    sys.exit(main())
