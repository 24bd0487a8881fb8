"""Experiment loggers built from the `logger` config section: csv (default), tensorboard, wandb.

    logger: {name: csv}
    logger: [{name: csv}, {name: tensorboard}, {name: wandb, project: zoo}]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.config import checked
from zoo.errors import ConfigError, choose


@dataclass
class CSVConfig:
    name: str = "csv"


@dataclass
class TensorBoardConfig:
    name: str = "tensorboard"
    log_graph: bool = False


@dataclass
class WatchConfig:
    log: str | None = None  # gradients | parameters | all; None disables watching
    log_freq: int = 100


@dataclass
class WandbConfig:
    name: str = "wandb"
    project: str = "zoo"
    entity: str | None = None
    run_name: str | None = None  # default: the run dir's experiment/timestamp
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    mode: str | None = None  # online | offline | disabled; default: online with an API key, else offline
    log_model: Any = False  # false | true | all: upload checkpoints as artifacts
    watch: WatchConfig = field(default_factory=WatchConfig)


SCHEMAS = {"csv": CSVConfig, "tensorboard": TensorBoardConfig, "wandb": WandbConfig}


def check_loggers(value: Any) -> list[dict[str, Any]]:
    """Return the logger section as a list of checked logger configs (a single mapping is allowed)."""
    if value is None:
        return [checked(CSVConfig, {}, "logger")]
    if value is False:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"Each logger needs a name ({', '.join(SCHEMAS)}), got {item!r}")
        where = "logger" if len(items) == 1 else f"logger[{i}]"
        name = choose("logger", item["name"], SCHEMAS)
        out.append(checked(SCHEMAS[name], item, where))
    return out


def build_loggers(configs: list[dict[str, Any]], run_dir: Path, cfg: dict[str, Any]) -> list[Any]:
    """Return Lightning loggers writing under `run_dir` (nothing is written until they log)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers = []
    for c in configs:
        if c["name"] == "csv":
            logger = CSVLogger(save_dir=str(run_dir), name="", version="")
        elif c["name"] == "tensorboard":
            logger = TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", log_graph=c["log_graph"],
                                       default_hp_metric=False)
        else:
            logger = build_wandb(c, run_dir)
        loggers.append(logger)
    return loggers


def wandb_mode(requested: str | None) -> str:
    """Return the W&B mode: the requested one, else online only when an API key is configured."""
    if requested:
        return choose("wandb mode", requested, ("online", "offline", "disabled"))
    env = os.environ.get("WANDB_MODE")
    if env:
        return env
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        import wandb

        if wandb.Api().api_key:  # a key stored by `wandb login`
            return "online"
    except Exception:
        pass
    return "offline"


def build_wandb(c: dict[str, Any], run_dir: Path) -> Any:
    """Return a WandbLogger; offline (and said so) when no API key is configured."""
    from lightning.pytorch.loggers import WandbLogger

    mode = wandb_mode(c["mode"])
    if mode == "offline" and not c["mode"]:
        print("zoo: no W&B API key found, logging offline (sync later with `wandb sync`)")
    os.environ["WANDB_MODE"] = mode  # WandbLogger(offline=True, log_model=True) refuses; the env var does not
    name = c["run_name"] or f"{run_dir.parent.name}/{run_dir.name}"
    logger = WandbLogger(
        project=c["project"], entity=c["entity"], name=name, group=c["group"], tags=c["tags"] or None,
        notes=c["notes"], save_dir=str(run_dir), log_model=c["log_model"],
    )
    return logger
