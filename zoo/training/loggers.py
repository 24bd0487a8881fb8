"""Experiment loggers built from the checked `logger` config section: csv (default), tensorboard, wandb.

    logger: {name: csv}
    logger: [{name: csv}, {name: tensorboard}, {name: wandb, project: zoo}]

Every logger can continue a resumed run where its checkpoint left it (`cursor`, from
zoo/training/resume.py): the CSV file cut back to the checkpoint's row, TensorBoard purging the
steps after it, the same W&B run id and step.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from zoo.data.download import atomic_output
from zoo.training.environment import yaml_text


def build_loggers(configs: list[dict[str, Any]], run_dir: Path, cursor: dict[str, Any] | None = None) -> list[Any]:
    """Return Lightning loggers writing under `run_dir` (nothing is written until `start_loggers`).

    `cursor` (from the checkpoint being resumed) makes every logger continue where that
    checkpoint left it: the same CSV file and W&B run, TensorBoard purging the steps after it.
    """
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
    """Log the resolved config (and the model graph, where asked) to every logger, start W&B watching,
    and continue a resumed run's logs. (This replaces Lightning's own hyper-parameter logging, which
    zoo.fit turns off: it would touch the logs before a resumed checkpoint is restored.)"""
    from lightning.pytorch.utilities import rank_zero_only

    for logger in loggers:
        logger.log_hyperparams(cfg)
        logger.log_graph(model)  # a no-op unless a TensorBoard logger has log_graph: true
        if not isinstance(logger, WandbLogger) or rank_zero_only.rank != 0:
            continue
        c, run = logger.zoo_config, logger.experiment
        if c["watch"]["log"]:
            logger.watch(model, log=c["watch"]["log"], log_freq=c["watch"]["log_freq"])
        if run.step < logger.resume_step:
            # offline, W&B restarts the step at 0: continue at the checkpoint's step instead
            run.log({}, step=logger.resume_step, commit=False)
    log_pending(loggers, cursor or {})


def wandb_mode(requested: str | None) -> str:
    """Return the W&B mode: the requested one (checked with the logger section), else online only when an
    API key is configured."""
    if requested:
        return requested
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
    """Put final val/test metrics (and baselines) in the W&B summary, close the run and say where it is (URL or sync command)."""
    from lightning.pytorch.utilities import rank_zero_only

    for logger in loggers:
        if not isinstance(logger, WandbLogger) or rank_zero_only.rank != 0 or logger._experiment is None:
            continue
        import wandb

        run = logger.experiment
        if results is not None:
            baselines = {f"baselines/{name}/{k}": v for name, r in results.get("baselines", {}).items() for k, v in r.items()}
            run.summary.update({**results["val"], **results["test"], **baselines, "best_ckpt": results["best_ckpt"] or ""})
        offline = run.settings.mode == "offline" or run.offline
        url, run_path = run.url, Path(run.dir).parent  # .../wandb/offline-run-<time>-<id>/files -> its folder
        run.finish(exit_code=0 if results is not None else 1)
        if wandb.run is not None:
            wandb.finish()
        if offline:
            print(f"W&B run saved offline; upload it with: wandb sync {run_path}")
        elif url:
            print(f"W&B run: {url}")


# -- continuing a resumed run's logs --------------------------------------------------------------


def log_cursor(trainer: Any) -> dict[str, Any]:
    """Flush the loggers and return how far each got: CSV rows, W&B run id and step, next step."""
    cursor: dict[str, Any] = {"step": trainer.fit_loop.epoch_loop._batches_that_stepped}
    for logger in trainer.loggers:
        if isinstance(logger, ResumableCSVLogger):
            logger.save()  # rows buffered in memory would be lost by a kill
            cursor["csv_rows"] = logger.experiment.rows_written
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.flush()
        elif isinstance(logger, WandbLogger):
            cursor["wandb_id"] = logger.experiment.id
            cursor["wandb_step"] = logger.experiment.step
    return cursor


def log_pending(loggers: list[Any], cursor: dict[str, Any]) -> None:
    """Log the metrics that the resumed checkpoint was saved just before (see `ResumeState`)."""
    if cursor.get("pending"):
        for logger in loggers:
            if isinstance(logger, TensorBoardLogger) and cursor["pending_step"] < cursor["step"]:
                continue  # TensorBoard kept that step (purge_step starts after it)
            logger.log_metrics(cursor["pending"], step=cursor["pending_step"])
            logger.save()


class AppendingWriter(ExperimentWriter):
    """CSV writer that keeps an existing metrics.csv (cut to `keep_rows` rows) instead of deleting it."""

    def __init__(self, log_dir: str, keep_rows: int | None = None) -> None:
        self.keep_rows = keep_rows
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        self.rows_written = 0
        if not path.is_file():
            return
        if self.keep_rows is None:  # a fresh run never shares its dir, but be safe: start over
            path.unlink()
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header, rows = list(reader.fieldnames or []), list(reader)[: self.keep_rows]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = header
        self.rows_written = len(rows)

    def log_hparams(self, params: dict[str, Any]) -> None:
        """Record the run's config in hparams.yaml as Lightning's writer does, with the YAML of `yaml_text`."""
        self.hparams.update(params)
        with atomic_output(Path(self.log_dir, self.NAME_HPARAMS_FILE)) as tmp:  # never a half-written file
            tmp.write_text(yaml_text(self.hparams), encoding="utf-8")

    def save(self) -> None:
        self.rows_written += len(self.metrics)
        super().save()


class ResumableCSVLogger(CSVLogger):
    """CSVLogger writing run_dir/metrics.csv; after a resume it continues the file at the checkpoint's row."""

    def __init__(self, save_dir: str, keep_rows: int | None = None) -> None:
        super().__init__(save_dir=save_dir, name="", version="")
        self.keep_rows = keep_rows

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(self.log_dir, self.keep_rows)
        return self._experiment


def quiet_lightning(verbose: bool = True) -> None:
    """Silence Lightning's advertising and the warnings that do not apply to in-memory data.

    With `verbose=False` (zoo.fit.fit(..., verbose=False), for library use such as a notebook)
    Lightning's info lines ("GPU available", "Restoring states from ...") and the progress bars of
    Hugging Face `transformers` (a pretrained backbone's "Loading weights") are hidden as well, until
    a call with `verbose=True`; warnings and errors still show.
    """
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    elif "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.enable_progress_bar()

    for pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*", ".*LeafSpec.*",
                    ".*Checkpoint directory .* exists and is not empty.*", ".*Experiment logs directory .* exists.*",
                    ".*sync_dist=True.*"):  # epoch metrics are reduced by torchmetrics already
        warnings.filterwarnings("ignore", pattern)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage() and "LitModels" not in record.getMessage()
    )
