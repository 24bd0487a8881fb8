"""Run `python -m zoo.fit` and SIGKILL it at a chosen point, for the kill-and-resume tests.

    python -m tests.kill_runner step=8 -- --config ... key=value     # before training step 8
    python -m tests.kill_runner step=8 inside=1 -- ...               # ... which must run inside a fast-path chunk
    python -m tests.kill_runner save=3 -- ...                        # inside the 3rd checkpoint save
    python -m tests.kill_runner val_epoch=2 -- ...                   # at the end of epoch 2's validation

The process kills itself with SIGKILL (no cleanup, no atexit), exactly as `kill -9` would.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import lightning as L


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(L.Callback):
    """Kill the process before training step `step` updates the weights, or after validation of epoch `val_epoch`.

    The step kill comes in `on_before_backward`, a hook of every step, so that the fast path keeps
    running with it (a callback with batch hooks would switch it off). With `inside`, the process
    exits with code 3 instead if that step is not one the fast path runs inside a chunk.
    """

    def __init__(self, step: int | None = None, val_epoch: int | None = None, inside: bool = False) -> None:
        self.step, self.val_epoch, self.inside = step, val_epoch, inside

    def on_before_backward(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            from zoo.training.fastpath import FastPath

            fast = [cb for cb in trainer.callbacks if isinstance(cb, FastPath)]
            if self.inside and not (fast and fast[0].running):
                os._exit(3)
            die()

    def on_validation_epoch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.current_epoch == self.val_epoch and not trainer.sanity_checking:
            die()


def kill_inside_save(n: int) -> None:
    """Make the n-th checkpoint save die after writing its temp file, before the rename."""
    from zoo.training.checkpoint import AtomicCheckpointIO

    save, calls = AtomicCheckpointIO.save_checkpoint, [0]

    def dying_save(self: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == n:
            os.replace = lambda *a, **k: die()  # torch.save has filled the temp file; the rename comes next
        save(self, *args, **kwargs)

    AtomicCheckpointIO.save_checkpoint = dying_save


def main() -> int:
    sep = sys.argv.index("--")
    point, fit_args = dict(a.split("=") for a in sys.argv[1:sep]), sys.argv[sep + 1 :]
    import zoo.fit
    import zoo.training.callbacks

    if "save" in point:
        kill_inside_save(int(point["save"]))
    else:
        killer = Killer(int(point.get("step", -1)), int(point.get("val_epoch", -1)), bool(point.get("inside")))
        build = zoo.training.callbacks.build_callbacks
        zoo.training.callbacks.build_callbacks = lambda *a, **k: [*build(*a, **k), killer]
    return zoo.fit.main(fit_args)


if __name__ == "__main__":
    sys.exit(main())
