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
        c = checked(SCHEMAS[name], item, where)
        if name == "wandb":  # checked here, so that a typo fails before any run starts
            if c["watch"]["log"]:
                c["watch"]["log"] = choose(f"{where}.watch.log", c["watch"]["log"], ("gradients", "parameters", "all"))
            log_model = choose(f"{where}.log_model", str(c["log_model"]).lower(), ("false", "true", "all"))
            c["log_model"] = {"false": False, "true": True, "all": "all"}[log_model]
            if c["mode"]:
                c["mode"] = choose(f"{where}.mode", c["mode"], ("online", "offline", "disabled"))
        out.append(c)
    return out


def build_loggers(configs: list[dict[str, Any]], run_dir: Path, cursor: dict[str, Any] | None = None) -> list[Any]:
    """Return Lightning loggers writing under `run_dir` (nothing is written until `start_loggers`).

    `cursor` (from the checkpoint being resumed) makes every logger continue where that
    checkpoint left it: the same CSV file and W&B run, TensorBoard purging the steps after it.
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    from zoo.resume import ResumableCSVLogger

    cursor = cursor or {}
    loggers = []
    for c in configs:
        if c["name"] == "csv":
            logger = ResumableCSVLogger(str(run_dir), keep_rows=cursor.get("csv_rows"))
        elif c["name"] == "tensorboard":
            # purge_step hides events a killed run wrote after its last checkpoint
            logger = TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", log_graph=c["log_graph"],
                                       default_hp_metric=False, purge_step=cursor.get("step"))
        else:
            logger = build_wandb(c, run_dir, cursor)
        logger.zoo_config = c
        loggers.append(logger)
    return loggers


def start_loggers(loggers: list[Any], cfg: dict[str, Any], model: Any, cursor: dict[str, Any] | None = None) -> None:
    """Log the resolved config to every logger, start W&B watching, and continue a resumed run's logs."""
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities import rank_zero_only

    for logger in loggers:
        logger.log_hyperparams(cfg)
        if not isinstance(logger, WandbLogger) or rank_zero_only.rank != 0:
            continue
        c, run = logger.zoo_config, logger.experiment
        if c["watch"]["log"]:
            logger.watch(model, log=c["watch"]["log"], log_freq=c["watch"]["log_freq"])
        if run.step < logger.resume_step:
            # offline, W&B restarts the step at 0: continue at the checkpoint's step instead
            run.log({}, step=logger.resume_step, commit=False)
    from zoo.resume import log_pending

    log_pending(loggers, cursor or {})


def wandb_mode(requested: str | None) -> str:
    """Return the W&B mode: the requested one, else online only when an API key is configured."""
    if requested:
        return choose("wandb mode", requested, ("online", "offline", "disabled"))
    env = os.environ.get("WANDB_MODE")
    if env:
        return env
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    import netrc

    try:  # `wandb login` stores the key in ~/.netrc (or $NETRC)
        if netrc.netrc(os.environ.get("NETRC")).authenticators("api.wandb.ai"):
            return "online"
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


def build_wandb(c: dict[str, Any], run_dir: Path, cursor: dict[str, Any]) -> Any:
    """Return a WandbLogger writing to run_dir/wandb; offline (and said so) when no API key is configured.

    A resumed run reopens the run id stored in its checkpoint and continues at the stored step.
    """
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities import rank_zero_only

    mode = wandb_mode(c["mode"])
    if mode == "offline" and not c["mode"] and rank_zero_only.rank == 0:
        print("zoo: no W&B API key found, logging offline (sync later with `wandb sync`)")
    os.environ["WANDB_MODE"] = mode  # WandbLogger(offline=True, log_model=True) refuses; the env var does not
    name = c["run_name"] or f"{run_dir.parent.name}/{run_dir.name}"
    tags = c["tags"] or None
    resume = {"id": cursor["wandb_id"], "resume": "allow"} if cursor.get("wandb_id") else {}
    logger = WandbLogger(project=c["project"], entity=c["entity"], name=name, group=c["group"], tags=tags,
                         notes=c["notes"], save_dir=str(run_dir), log_model=c["log_model"], **resume)
    logger._wandb_init.pop("anonymous", None)  # Lightning passes anonymous=None, which wandb 0.31 warns about
    logger.resume_step = cursor.get("wandb_step", 0)
    return logger


def finish_loggers(loggers: list[Any], results: dict[str, Any] | None) -> None:
    """Put final val/test metrics in the W&B summary, close the run and say where it is (URL or sync command)."""
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities import rank_zero_only

    for logger in loggers:
        if not isinstance(logger, WandbLogger) or rank_zero_only.rank != 0 or logger._experiment is None:
            continue
        import wandb

        run = logger.experiment
        if results is not None:
            run.summary.update({**results["val"], **results["test"], "best_ckpt": results["best_ckpt"] or ""})
        offline = run.settings.mode == "offline" or run.offline
        url, run_path = run.url, Path(run.dir).parent  # .../wandb/offline-run-<time>-<id>/files -> its folder
        run.finish(exit_code=0 if results is not None else 1)
        if wandb.run is not None:
            wandb.finish()
        if offline:
            print(f"W&B run saved offline; upload it with: wandb sync {run_path}")
        elif url:
            print(f"W&B run: {url}")
