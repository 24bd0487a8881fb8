"""`zoo tune --config X.yaml [--lr] [--batch-size] [--write OUT.yaml]`: Lightning's Tuner on a zoo config.

    zoo tune --config configs/experiment/digits_cnn.yaml --write digits_tuned.yaml
    python -m zoo.fit --config digits_tuned.yaml

The batch-size finder runs first (the learning rate depends on the batch size): it doubles the
batch from 2, a few steps each, until a step runs out of memory or the batch reaches the train
split's size (or --max-batch-size). With neither --lr nor --batch-size, both run on an
accelerator and only the LR finder on a CPU, where memory does not run out and the finder would
only ever answer "the whole train split", a batch that leaves one step per epoch. The learning-rate finder then trains `--lr-steps` steps
while the rate grows exponentially from --min-lr to --max-lr, and suggests the rate where the
smoothed loss falls fastest. Both restore the model's initial weights when done, and neither
touches the config's checkpoints or loggers: the run dir gets config.yaml, lr_find.png (the loss
against the rate, the suggestion marked) and tune.json (the suggestions).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, ZooError


def cmd_tune(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from zoo.data.download import atomic_output
    from zoo.fit import new_run_dir, resolve

    if not args.config:
        raise ConfigError("zoo tune needs --config FILE (see configs/experiment/)")
    cfg, _ = resolve(args.config, args.overrides)
    # no flag: the LR finder, and the batch-size finder where memory can run out (an accelerator)
    find_lr, find_batch = (args.lr, args.batch_size) if args.lr or args.batch_size else (True, None)
    run_dir = new_run_dir(cfg)
    found = tune(cfg, run_dir, lr=find_lr, batch_size=find_batch, min_lr=args.min_lr, max_lr=args.max_lr,
                 lr_steps=args.lr_steps, max_batch_size=args.max_batch_size)
    overrides = []
    if "batch_size" in found:
        print(f"batch size: {found['batch_size']['value']} ({found['batch_size']['why']})")
        overrides.append(f"data.batch_size={found['batch_size']['value']}")
    if "lr" in found:
        lr = found["lr"]
        print(f"learning rate: {lr['value']:.3g} (searched {lr['min_lr']:g} to {lr['max_lr']:g} in {lr['steps']} "
              f"steps; plot: {lr['plot']})")
        overrides.append(f"optim.lr={lr['value']:.3g}")
    if args.write:
        tuned = tuned_config(cfg, found)
        with atomic_output(args.write) as tmp:  # no half-written config
            tmp.write_text(OmegaConf.to_yaml(tuned))
        print(f"wrote {args.write}; train it with: python -m zoo.fit --config {args.write}")
    else:
        print(f"train with: python -m zoo.fit {' '.join(f'--config {c}' for c in args.config)} {' '.join(overrides)}")
    return 0


def tune(cfg: dict[str, Any], run_dir: Path, *, lr: bool = True, batch_size: bool | None = True, min_lr: float = 1e-6,
         max_lr: float = 1.0, lr_steps: int = 100, max_batch_size: int | None = None) -> dict[str, Any]:
    """Run the batch-size and/or learning-rate finders for `cfg` on one device; return what they found.

    `batch_size=None` runs the batch-size finder only on an accelerator.

    Writes run_dir/config.yaml, run_dir/tune.json and, for the LR finder, run_dir/lr_find.png.
    """
    import lightning as L
    from omegaconf import OmegaConf

    from zoo.training.config import build_data_and_model
    from zoo.training.loggers import quiet_lightning

    if not 0 < min_lr < max_lr:
        raise ConfigError(f"--min-lr must be above 0 and below --max-lr, got {min_lr:g} and {max_lr:g}")
    quiet_lightning()
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    datamodule, model = build_data_and_model(cfg)
    if not model.automatic_optimization:
        raise ZooError(f"zoo tune needs a model trained by one optimizer; '{model.registry_name}' steps its "
                       "optimizers itself (manual optimization), which Lightning's finders do not support")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    found: dict[str, Any] = {}
    if batch_size is None:  # on a CPU memory does not run out, and the finder would pick the whole train split
        batch_size = tuning_trainer(cfg, run_dir).strategy.root_device.type != "cpu"
        if not batch_size:
            print(f"batch size: kept {datamodule.batch_size} (the batch-size finder looks for the largest batch that "
                  "fits in an accelerator's memory; on a CPU pass --batch-size to run it anyway)")
    if batch_size:
        found["batch_size"] = find_batch_size(cfg, model, datamodule, run_dir, max_batch_size)
    if lr:
        found["lr"] = find_lr(cfg, model, datamodule, run_dir, min_lr, max_lr, lr_steps)
    (run_dir / "tune.json").write_text(json.dumps(found, indent=2) + "\n")
    return found


def tuning_trainer(cfg: dict[str, Any], run_dir: Path) -> Any:
    """Return a Trainer for the finders: the config's precision and device type, one device, no logger or checkpoints."""
    import lightning as L

    kwargs = {k: v for k, v in cfg["trainer"].items() if k not in ("devices", "strategy", "num_nodes", "max_epochs",
                                                                      "max_steps", "max_time", "fast_dev_run")}
    try:
        return L.Trainer(**{"enable_model_summary": False, **kwargs}, devices=1, max_epochs=-1, logger=False,
                         enable_checkpointing=False, default_root_dir=str(run_dir))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"Invalid trainer settings: {str(e).splitlines()[0]}") from None


def find_batch_size(cfg: dict[str, Any], model: Any, datamodule: Any, run_dir: Path,
                    max_batch_size: int | None) -> dict[str, Any]:
    """Return the batch-size finder's result: the largest power of two that trains, up to the cap."""
    import logging

    from lightning.pytorch.tuner import Tuner

    # Lightning ends with "will continue with full run using batch size N", N being past the cap: drop that line
    logging.getLogger("lightning.pytorch.tuner.batch_size_scaling").setLevel(logging.WARNING)
    cap = max_batch_size or len(datamodule.split("train")[0])
    value = int(Tuner(tuning_trainer(cfg, run_dir)).scale_batch_size(model, datamodule=datamodule, mode="power",
                                                                      max_val=cap))
    if value >= cap:  # Lightning stops at the first power of two past the cap
        value = cap
        why = "capped by --max-batch-size" if max_batch_size else "the train split's size: memory never ran out"
    else:
        why = "the largest power of two that trains in memory"
    datamodule.batch_size = value
    return {"value": value, "why": why}


def find_lr(cfg: dict[str, Any], model: Any, datamodule: Any, run_dir: Path, min_lr: float, max_lr: float,
            steps: int) -> dict[str, Any]:
    """Return the learning-rate finder's suggestion and save its plot as run_dir/lr_find.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lightning.pytorch.tuner import Tuner

    finder = Tuner(tuning_trainer(cfg, run_dir)).lr_find(model, datamodule=datamodule, min_lr=min_lr, max_lr=max_lr,
                                                         num_training=steps, update_attr=False)
    value = finder.suggestion() if finder is not None else None
    if value is None or not math.isfinite(value):
        raise ZooError(f"The learning-rate finder could not suggest a rate from {len(finder.results['lr'])} steps; "
                       "raise --lr-steps or widen --min-lr/--max-lr")
    fig = finder.plot(suggest=True)
    fig.axes[0].set_title(f"{cfg['run']['name']}: suggested lr {value:.3g}")
    fig.savefig(run_dir / "lr_find.png", dpi=100)
    plt.close(fig)
    return {"value": float(value), "min_lr": min_lr, "max_lr": max_lr, "steps": len(finder.results["lr"]),
            "plot": str(run_dir / "lr_find.png"),
            "curve": {"lr": [float(x) for x in finder.results["lr"]], "loss": [float(x) for x in finder.results["loss"]]}}


def tuned_config(cfg: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """Return `cfg` with the found batch size and learning rate, validated again."""
    import copy

    from zoo.training.config import validate

    tuned = copy.deepcopy(cfg)
    if "batch_size" in found:
        tuned["data"]["batch_size"] = found["batch_size"]["value"]
    if "lr" in found:
        tuned["optim"]["lr"] = float(f"{found['lr']['value']:.3g}")
    return validate(tuned)
