"""The `trainer` section: keyword arguments of `lightning.Trainer`, passed to it untouched, but checked first.

- `check_trainer` (part of config validation): a key must be a Trainer argument that zoo does not
  set itself (MANAGED_TRAINER_KEYS), its value of a type the argument's hint admits, and within the
  bounds of TRAINER_BOUNDS;
- `dry_run_trainer` (zoo.fit, first thing): what Lightning's constructor itself refuses on this machine.
"""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any

from zoo.bounds import NonNegativeFloat, NonNegativeInt, PositiveInt, Range, check_bounds, describe
from zoo.errors import ConfigError, did_you_mean, first_line

# Trainer arguments whose bad values Lightning's constructor lets through, to fail later (a
# ZeroDivisionError for accumulate_grad_batches=0) or quietly (log_every_n_steps=0): their bounds.
TRAINER_BOUNDS = {"accumulate_grad_batches": PositiveInt, "log_every_n_steps": PositiveInt,
                  "check_val_every_n_epoch": PositiveInt, "min_epochs": NonNegativeInt, "min_steps": NonNegativeInt,
                  "gradient_clip_val": NonNegativeFloat, "num_sanity_val_steps": Annotated[int, Range(-1)]}
# Trainer arguments that fit builds from other sections.
MANAGED_TRAINER_KEYS = {"logger": "logger", "callbacks": "callbacks", "default_root_dir": "run.dir",
                        "plugins": "zoo's checkpoint writer",
                        "enable_checkpointing": "callbacks.checkpoint (best.ckpt and last.ckpt are always written)",
                        "enable_autolog_hparams": "logger (zoo logs the resolved config to every logger)"}


def check_trainer(trainer: dict[str, Any]) -> dict[str, Any]:
    """Check that trainer keys are `lightning.Trainer` arguments that zoo does not manage itself, that
    each value has a type the argument's hint admits (pydantic, strict: `max_epochs=many` or
    `max_epochs=true` is refused), and the TRAINER_BOUNDS. (What Lightning's constructor refuses
    itself, and what depends on the machine, is `dry_run_trainer`'s.)"""
    import lightning
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    hints = typing.get_type_hints(lightning.Trainer.__init__)
    valid = [n for n in inspect.signature(lightning.Trainer.__init__).parameters if n != "self"]
    for key, value in trainer.items():
        if key in MANAGED_TRAINER_KEYS:
            raise ConfigError(f"'trainer.{key}' is set by zoo; use the '{MANAGED_TRAINER_KEYS[key]}' section instead")
        if key not in valid:
            raise ConfigError(f"Unknown key 'trainer.{key}'.{did_you_mean(key, valid)} See lightning.Trainer arguments")
        if key not in hints:
            continue
        adapter = TypeAdapter(hints[key], config=ConfigDict(arbitrary_types_allowed=True, strict=True))
        try:
            adapter.validate_python(value)
        except ValidationError:
            raise ConfigError(f"Invalid value for 'trainer.{key}': expected {describe(hints[key])}, "
                              f"got {value!r} ({type(value).__name__})") from None
    check_bounds({k: v for k, v in TRAINER_BOUNDS.items() if k in trainer}, trainer, "trainer.")
    return trainer


def dry_run_trainer(trainer: dict[str, Any]) -> None:
    """Build a throwaway `lightning.Trainer` from the section, so that what Lightning refuses in its
    constructor (max_epochs=-5, accelerator=gpu on a machine without one, devices=64, an unknown
    strategy or precision) fails now, before any data loads and before a run dir appears.

    zoo.fit calls it first thing; `validate` does not, because some of these depend on the machine
    (a config for a GPU cluster validates, and `--print-config` prints it, on a laptop). It takes
    ~30 ms and writes nothing. Lightning's start-up lines are silenced here (the real Trainer prints
    them), and the global torch flags its constructor sets are put back.
    """
    import logging
    import os
    import warnings

    import lightning
    import torch
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    log = logging.getLogger("lightning.pytorch")  # "GPU available: ..." at every construction
    level, bench = log.level, torch.backends.cudnn.benchmark
    deterministic = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lightning.Trainer(**{"enable_progress_bar": False, "enable_model_summary": False, **trainer,
                                 "logger": False, "enable_checkpointing": False})
    except (MisconfigurationException, ValueError, TypeError) as e:
        raise ConfigError(f"Invalid trainer settings: {first_line(e)}") from None
    finally:
        log.setLevel(level)
        torch.backends.cudnn.benchmark = bench
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas
