"""When a run dir appears and what of it zoo writes itself: config.yaml, tokenizer.json and the
loggers' start. (Checkpoints are zoo/training/checkpoint.py's, samples the Samples callback's.)

`RunDir` writes them at `on_train_start`, the first moment a run is sure to start: every setting
was accepted, the data loaded, and for a resumed run Lightning has restored the checkpoint in full
(weights, optimizers, schedulers, loops). A run that fails before it, on a bad setting or a
checkpoint that does not fit, leaves no run dir, or the resumed one exactly as it was: config.yaml
and metrics.csv change only after the restore succeeded.

That is also when the Trainer gets its loggers: Lightning opens every logger's files while it sets
up (the CSV logger makes its folder, and on a resume cuts metrics.csv back to the checkpoint's
row), which is before it restores the checkpoint. So zoo.fit builds the Trainer without loggers,
and `RunDir` builds them from the `logger` section and hands them over (it is the first callback,
ahead of any that needs a logger).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from zoo.data.download import atomic_output
from zoo.training.environment import yaml_text
from zoo.training.loggers import build_loggers, start_loggers
from zoo.training.resume import remove_unfinished_saves


class RunDir(L.Callback):
    """Write run_dir/config.yaml (`saved` is the config as saved: see zoo/training/environment.py) and
    the tokenizer of text data, then build the loggers of the `logger` section, give them to the
    Trainer and start them (`cursor`: where a resumed run's logs continue). `loggers` holds them
    from then on (zoo.fit finishes them after the test)."""

    def __init__(self, run_dir: Path, saved: dict[str, Any], logger: list[dict[str, Any]], tokenizer: str | None = None,
                 cursor: dict[str, Any] | None = None) -> None:
        self.run_dir, self.saved, self.logger = run_dir, saved, logger
        self.tokenizer, self.cursor = tokenizer, cursor or {}
        self.loggers: list[Any] = []
        self.written = False

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.write(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.write(trainer, pl_module)  # a fit with nothing left to train never calls on_train_start

    def write(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Write the run dir's files and start the loggers, once."""
        if self.written:
            return
        self.written = True
        if trainer.is_global_zero:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.run_dir / "config.yaml") as tmp:  # never a half-written file
                tmp.write_text(yaml_text(self.saved), encoding="utf-8")
            if self.tokenizer:  # text data: the tokenizer beside the run (it is in every checkpoint too)
                with atomic_output(self.run_dir / "tokenizer.json") as tmp:
                    tmp.write_text(self.tokenizer, encoding="utf-8")
            remove_unfinished_saves(self.run_dir / "checkpoints")
        self.loggers = build_loggers(self.logger, self.run_dir, self.cursor)
        trainer.loggers = self.loggers
        start_loggers(self.loggers, self.saved, pl_module, self.cursor)
