"""Run `python -m zoo.fit` and have every process save its final weights, for the DDP tests.

    python -m tests.rank_runner OUT_DIR -- --config ... trainer.strategy=ddp trainer.devices=2

Each rank writes OUT_DIR/rank<R>.pt at the end of training: its state_dict and how many batches
the fast path ran inside chunks there.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch


class SaveRankWeights(L.Callback):
    """At the end of training, save this rank's weights and fast-path batch count to `out/rank<R>.pt`."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        from zoo.training.fastpath import FastPath

        (fast,) = [cb for cb in trainer.callbacks if isinstance(cb, FastPath)]
        state = {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
        torch.save({"state_dict": state, "chunked_batches": fast.batches, "global_step": trainer.global_step},
                   self.out / f"rank{trainer.global_rank}.pt")


def main() -> int:
    sep = sys.argv.index("--")
    out, fit_args = Path(sys.argv[1]), sys.argv[sep + 1 :]
    import zoo.fit
    import zoo.training.callbacks

    build = zoo.training.callbacks.build_callbacks
    zoo.training.callbacks.build_callbacks = lambda *a, **k: [*build(*a, **k), SaveRankWeights(out)]
    return zoo.fit.main(fit_args)


if __name__ == "__main__":
    sys.exit(main())
