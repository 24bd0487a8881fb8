"""Exact resume: what a checkpoint must hold, beyond Lightning's own state, for a resumed run to
match an uninterrupted one bit for bit.

Lightning's checkpoint already holds the weights, optimizers, schedulers, loop progress and
(through `InMemoryLoader.state_dict`) the position inside the epoch. `ResumeState` adds what
it lacks:

- the torch / numpy / python RNG states (dropout, noise, sampling);
- a cursor into every logger (zoo/training/loggers.py): the CSV rows and W&B step written so far
  (flushed at save time), and the next TensorBoard step. A resumed run cuts its logs back to
  that cursor, so what was logged between the checkpoint and a kill is logged once, not twice.

`ResumeState.snapshot` gives both to the one hook that fills a checkpoint (zoo/training/checkpoint.py).

A resume is a transaction: `check_resume` compares the checkpoint with the model and config that
would continue it before anything is written, and refuses, in one line, what cannot continue it
(another architecture, other data, another optimizer or schedule). A changed `optim.lr` or
`optim.weight_decay` is applied to the restored optimizers (`ResumeState.on_train_start`), which
is what continuing a diverged run with a lower learning rate needs. The run dir itself changes
only once the restore has succeeded (zoo/training/rundir.py).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from zoo.errors import ConfigError
from zoo.models.optim import RETUNABLE, retune
from zoo.spec import DataSpec
from zoo.training.loggers import log_cursor

# -- RNG ----------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Return the global RNG states as plain containers and tensors (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, python_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        # The 625 words as one tensor, not 625 ints: one object for the pickler instead of 625 at every save.
        "python": [version, torch.tensor(words, dtype=torch.int64), python_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, words, gauss = state["python"]  # words: a tensor, or (checkpoints before it was one) a list of ints
    random.setstate((version, tuple(words.tolist() if isinstance(words, torch.Tensor) else words), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- callbacks ----------------------------------------------------------------------------------


class ResumeState(L.Callback):
    """Give each checkpoint the RNG states and logger cursors (`snapshot`); restore the RNG when resuming."""

    fast_path_safe = True  # its batch hooks only record the phase a save happens in, read at a chunk's end

    def __init__(self, retune: tuple[dict[str, Any], dict[str, Any]] | None = None) -> None:
        self.phase: str | None = None  # "batch_end" / "epoch_end": Lightning logs metrics right after a save there
        self.retune = retune  # (the checkpoint's optim, the resumed run's) when lr or weight decay changed

    # These run before ModelCheckpoint's hooks: Lightning always calls checkpoint callbacks last.
    def on_train_batch_end(self, *args: Any) -> None:
        self.phase = "batch_end"

    def on_train_epoch_end(self, *args: Any) -> None:
        self.phase = "epoch_end"

    def on_train_batch_start(self, *args: Any) -> None:
        self.phase = None

    on_validation_start = on_train_batch_start

    def snapshot(self, trainer: L.Trainer) -> dict[str, Any]:
        """Return {"rng", "logs"}: the RNG states and how far each logger got, for the checkpoint being saved."""
        cursor = log_cursor(trainer)
        # Metrics Lightning logs just after this save belong to the checkpoint's past, but a resumed run
        # will not compute them again: keep them, so that the resume logs them and leaves no gap.
        connector, stepped = trainer._logger_connector, trainer.fit_loop.epoch_loop._batches_that_stepped
        if self.phase == "batch_end" and connector.should_update_logs and not trainer.fit_loop._should_accumulate():
            cursor["pending"], cursor["pending_step"] = connector.metrics["log"], stepped
        elif self.phase == "epoch_end":
            cursor["pending"], cursor["pending_step"] = connector.metrics["log"], stepped - 1
        if "pending" in cursor:
            cursor["pending"] = {**{k: float(v) for k, v in cursor["pending"].items()}, "epoch": trainer.current_epoch}
        return {"rng": rng_state(), "logs": cursor}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("zoo", {}).get("rng")
        if rng is not None:
            set_rng_state(rng)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        # Lightning 2.6 hands the saved loader position (mid-epoch checkpoints) to the train loader only
        # when it builds the loader after restoring; a scheduler asking for estimated_stepping_batches
        # builds it before, and the position is dropped. Hand it over again now that the loops are restored.
        trainer.fit_loop._load_combined_loader_states()
        if self.retune is not None:  # the optimizers and schedulers are restored by now
            retune(trainer.optimizers, [c.scheduler for c in trainer.lr_scheduler_configs], *self.retune)
            self.retune = None


def check_resume(ckpt: dict[str, Any], data: dict[str, Any], model: Any) -> dict[str, Any]:
    """Return what a resume from `ckpt` needs ({"cursor", "retune"}), after checking that the checkpoint
    can continue as `model` on `data` (the data section); raise a one-line ConfigError naming the
    override that it cannot.

    Nothing is written here: this runs before the loggers, the Trainer and the run dir.
    """
    hp, name = ckpt["hyper_parameters"], ckpt["zoo"]["model"]
    new_run = "start a new run (without --resume) for that"
    if name != model.registry_name:
        raise ConfigError(f"Cannot resume with model.name={model.registry_name}: the checkpoint holds a '{name}'; {new_run}")
    for key in sorted((set(hp) | set(model.hparams)) - {"spec", "optim"}):
        if hp.get(key) != model.hparams.get(key):
            raise ConfigError(f"Cannot resume with model.{key}={model.hparams.get(key)!r}: the checkpoint's model has "
                              f"model.{key}={hp.get(key)!r}, and its weights fit that architecture only; {new_run}")
    # Compared as DataSpecs: a checkpoint written before a field existed has its default (e.g. table=None).
    if DataSpec.from_dict(hp["spec"]).to_dict() != model.spec.to_dict():
        stored = ckpt["zoo"].get("config", {}).get("data", {})
        changed = [f"data.{k}" for k in sorted(set(stored) | set(data)) if stored.get(k) != data.get(k)]
        raise ConfigError(f"Cannot resume: the data differs from the checkpoint's (changed: "
                          f"{', '.join(changed) or 'the files it reads'}), and a model continues only on the splits, "
                          f"statistics and vocabulary it was built from; {new_run}")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if shapes != {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}:
        raise ConfigError(f"Cannot resume: the checkpoint's weights do not fit a '{name}' built from its own "
                          "hyper-parameters (an edited or foreign file?)")
    old, new = hp.get("optim") or {}, model.optim
    for key, was, now in differences(old, new, "optim"):
        if key.split(".")[1] not in RETUNABLE:
            raise ConfigError(f"Cannot resume with {key}={now!r} (the checkpoint's: {was!r}): it shapes the optimizer "
                              f"state being restored. A resume applies only "
                              f"{' and '.join(f'optim.{k}' for k in RETUNABLE)}; {new_run}")
    changed = any(old.get(k) != new.get(k) for k in RETUNABLE)
    return {"cursor": dict(ckpt["zoo"].get("logs", {})),  # {} for checkpoints that predate the cursor
            "retune": (old, new) if changed else None}


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str) -> list[tuple[str, Any, Any]]:
    """Return (dotted key, old value, new value) for every leaf that differs between two nested dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}.{key}")
        elif a != b:
            out.append((f"{prefix}.{key}", a, b))
    return out


def remove_unfinished_saves(ckpt_dir: Path) -> None:
    """Remove the temp files that a killed save left in `ckpt_dir` (AtomicCheckpointIO's unfinished writes)."""
    for tmp in ckpt_dir.glob(".*.ckpt.*.tmp"):
        tmp.unlink(missing_ok=True)
