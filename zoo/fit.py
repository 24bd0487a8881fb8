"""Train a model from YAML: `python -m zoo.fit --config configs/experiment/digits_cnn.yaml [key=value ...]`.

The flow, top to bottom: config (zoo/training/config.py) -> registry names -> DataModule ->
DataSpec -> model -> loggers and callbacks (zoo/training/) -> lightning.Trainer(**cfg.trainer)
-> fit -> test the best checkpoint -> run dir with results. This file only orchestrates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def add_fit_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the fit options to `parser` (shared by `python -m zoo.fit` and `zoo fit`)."""
    parser.add_argument("--config", "-c", action="append", default=[], metavar="YAML",
                        help="config file; repeat to merge left to right")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from RUN_DIR/checkpoints/last.ckpt")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. trainer.max_epochs=3")
    return parser


def experiment_name(cfg: dict[str, Any], config_paths: list[str]) -> str:
    """Return run.name, else the experiment file's stem, else '<data>_<model>'."""
    if cfg["run"]["name"]:
        return cfg["run"]["name"]
    for path in reversed(config_paths):
        if Path(path).parent.name == "experiment":
            return Path(path).stem
    return f"{cfg['data']['name']}_{cfg['model']['name']}"


def resolve(config_paths: list[str], overrides: list[str], resume: str | None = None) -> tuple[dict, Path | None]:
    """Return the validated config and, when resuming, the run dir to continue."""
    from zoo.errors import ConfigError
    from zoo.training.config import load_config, validate

    run_dir = None
    if resume:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"Cannot resume: {run_dir / 'config.yaml'} not found (is {run_dir} a zoo run dir?)")
        config_paths = [str(run_dir / "config.yaml"), *config_paths]
    cfg = validate(load_config(config_paths, overrides))
    cfg["run"]["name"] = experiment_name(cfg, config_paths)
    if run_dir is None and cfg["run"]["resume"]:
        run_dir = latest_run(cfg)
    return cfg, run_dir


def latest_run(cfg: dict[str, Any]) -> Path:
    """Return the newest run dir of this experiment that has a last.ckpt."""
    from zoo.errors import ConfigError

    root = Path(cfg["run"]["dir"]) / cfg["run"]["name"]
    runs = sorted(p for p in root.glob("*") if (p / "checkpoints" / "last.ckpt").is_file())
    if not runs:
        raise ConfigError(f"run.resume=true but no run with checkpoints/last.ckpt under {root}")
    return runs[-1]


def new_run_dir(cfg: dict[str, Any]) -> Path:
    """Return a fresh run dir path; DDP child processes reuse the one rank 0 chose (ZOO_RUN_DIR)."""
    if os.environ.get("ZOO_RUN_DIR"):
        return Path(os.environ["ZOO_RUN_DIR"])
    root = Path(cfg["run"]["dir"]) / cfg["run"]["name"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir, i = root / stamp, 1
    while run_dir.exists():  # two runs started in the same second
        run_dir, i = root / f"{stamp}-{i}", i + 1
    return run_dir


def build_data_and_model(cfg: dict[str, Any]) -> tuple[Any, Any]:
    """Return the DataModule and the model for `cfg`, after checking that they fit together."""
    from zoo.registry import DATA, MODELS, check_compatible
    from zoo.training.config import FIT_MODEL_KEYS

    name = cfg["model"]["name"]
    model_cfg = {k: v for k, v in cfg["model"].items() if k not in FIT_MODEL_KEYS}  # fit's own: name, compile
    data_cfg = dict(cfg["data"])
    check_compatible(name, data_cfg["name"])
    datamodule = DATA.build(data_cfg.pop("name"), **data_cfg)
    datamodule.prepare_data()
    model = MODELS.build(name, spec=datamodule.spec.to_dict(), optim=cfg["optim"], **model_cfg)
    return datamodule, model


def fit(cfg: dict[str, Any], run_dir: Path | None = None) -> dict[str, Any]:
    """Train and test as `cfg` says; return {"run_dir", "best_ckpt", "val", "test"} and write results.json.

    With `run_dir` (a previous run), training continues from its checkpoints/last.ckpt.
    """
    import lightning as L
    from lightning.pytorch.utilities import rank_zero_only
    from omegaconf import OmegaConf

    from zoo.errors import ConfigError
    from zoo.training.callbacks import build_callbacks
    from zoo.training.checkpoint import AtomicCheckpointIO
    from zoo.training.fastpath import skip_failing_nvml_probe
    from zoo.training.loggers import build_loggers, finish_loggers, quiet_lightning, start_loggers
    from zoo.training.resume import prepare_resume

    resume_ckpt = None
    if run_dir is not None:
        resume_ckpt = run_dir / "checkpoints" / "last.ckpt"
        if not resume_ckpt.is_file():
            raise ConfigError(f"Cannot resume: {resume_ckpt} not found")
    run_dir = run_dir or new_run_dir(cfg)
    quiet_lightning()
    skip_failing_nvml_probe()
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    datamodule, model = build_data_and_model(cfg)
    cursor = prepare_resume(resume_ckpt) if resume_ckpt else {}  # where the killed run's logs stopped
    loggers = build_loggers(cfg["logger"], run_dir, cursor)
    trainer_kwargs = {"enable_model_summary": False, **cfg["trainer"]}
    try:
        trainer = L.Trainer(
            **trainer_kwargs,
            default_root_dir=str(run_dir),
            logger=loggers or False,
            callbacks=build_callbacks(cfg, model, run_dir, bool(loggers)),
            plugins=[AtomicCheckpointIO()],
        )
    except (ValueError, TypeError) as e:
        raise ConfigError(f"Invalid trainer settings: {str(e).splitlines()[0]}") from None
    # Only now, with every setting accepted, does the run dir appear.
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        if datamodule.spec.tokenizer:  # text data: the tokenizer beside the run (it is in every checkpoint too)
            (run_dir / "tokenizer.json").write_text(datamodule.spec.tokenizer)
    os.environ["ZOO_RUN_DIR"] = str(run_dir)  # DDP workers re-run this script and must share the run dir
    results = None
    try:
        start_loggers(loggers, cfg, model, cursor)
        if cfg["model"]["compile"]:
            model.compile_for_training()
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume_ckpt) if resume_ckpt else None)
        fit_seconds = time.perf_counter() - start
        val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        best = trainer.checkpoint_callback.best_model_path or None  # None under fast_dev_run: test as trained
        tested = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
        results = {"run_dir": str(run_dir), "best_ckpt": best, "val": val, "test": tested[0] if tested else {},
                   "fit_seconds": round(fit_seconds, 3)}
    finally:
        os.environ.pop("ZOO_RUN_DIR", None)
        finish_loggers(loggers, results)  # W&B summary, then the run URL or `wandb sync` command
    if trainer.is_global_zero:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def print_summary(results: dict[str, Any]) -> None:
    """Print val/test metrics as a table, then where the run lives."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results", title_justify="left")
    table.add_column("metric")
    table.add_column("val", justify="right")
    table.add_column("test", justify="right")
    names = sorted({k.split("/", 1)[1] for k in [*results["val"], *results["test"]] if "/" in k})
    for name in names:
        val, test = results["val"].get(f"val/{name}"), results["test"].get(f"test/{name}")
        table.add_row(name, "" if val is None else f"{val:.4f}", "" if test is None else f"{test:.4f}")
    console = Console()
    console.print(table)
    console.print(f"run dir: {results['run_dir']}")
    if results["best_ckpt"]:
        console.print(f"best checkpoint: {results['best_ckpt']}", soft_wrap=True)


def run_fit(args: argparse.Namespace) -> int:
    """Resolve the config from parsed arguments; print it, or train and print the summary."""
    from lightning.pytorch.utilities import rank_zero_only
    from omegaconf import OmegaConf

    from zoo.errors import ConfigError

    if not args.config and not args.resume and not args.overrides:
        raise ConfigError("Nothing to train: pass --config FILE (see configs/experiment/) or --resume RUN_DIR")
    cfg, run_dir = resolve(args.config, args.overrides, args.resume)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg), end="")
        return 0
    results = fit(cfg, run_dir)
    if rank_zero_only.rank == 0:
        print_summary(results)
    return 0


def parse_fit_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse fit arguments; `--key=value` (as `wandb agent` passes them) and late `key=value` are overrides."""
    args, unknown = parser.parse_known_args(argv)
    for item in unknown:
        if "=" not in item or item.startswith("-") and not item.startswith("--"):
            parser.error(f"unrecognized argument: {item}")
        args.overrides.append(item.removeprefix("--"))
    return args


def main(argv: list[str] | None = None) -> int:
    from zoo.errors import user_errors

    parser = add_fit_arguments(argparse.ArgumentParser(prog="python -m zoo.fit", description=__doc__.splitlines()[0]))
    args = parse_fit_args(parser, argv)
    with user_errors(args.debug) as boundary:
        return run_fit(args)
    return boundary.code


if __name__ == "__main__":
    sys.exit(main())
