"""Train a model from YAML: `python -m zoo.fit --config configs/experiment/digits_cnn.yaml [key=value ...]`.

The flow, top to bottom: config (zoo/training/config.py) -> DataModule -> DataSpec -> model ->
run dir, loggers and callbacks (zoo/training/) -> lightning.Trainer(**cfg.trainer) -> fit -> test
the best checkpoint -> with `--baseline`, the data's classical baselines on the same splits
(zoo/evaluation/baseline/) -> run dir with results. This file only orchestrates: each config
section goes from here to the one place that uses it (docs/architecture.md).

Everything is checked before anything is written: the config (including what Lightning's Trainer
would refuse), the data, and for a resume the checkpoint against the model that continues it.
The run dir appears (or a resumed one changes) only when training starts (zoo/training/rundir.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, ZooError, user_errors


def add_fit_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the fit options to `parser` (shared by `python -m zoo.fit` and `zoo fit`)."""
    parser.add_argument("--config", "-c", action="append", default=[], metavar="YAML",
                        help="config file; repeat to merge left to right")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from RUN_DIR/checkpoints/last.ckpt")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--baseline", action="store_true",
                        help="also fit the data's classical baselines on the same splits (same as run.baseline=true)")
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


def resume_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Return run_dir's last.ckpt, read before anything else happens; when it cannot be read, the
    error says whether best.ckpt can."""
    from zoo.hub.pretrained import read_checkpoint

    last, best = run_dir / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "best.ckpt"
    if not last.is_file():
        raise ConfigError(f"Cannot resume: {last} not found")
    try:
        return read_checkpoint(last)
    except ZooError as e:
        try:
            hint = (f"{best} is intact (step {read_checkpoint(best)['global_step']}): copy it over last.ckpt "
                    "to resume from there")
        except ZooError:
            hint = "best.ckpt cannot be read either: start a new run"
        raise ZooError(f"Cannot resume: {e}; {hint}") from None


def fit(cfg: dict[str, Any], run_dir: Path | None = None, *, verbose: bool = True) -> dict[str, Any]:
    """Train and test as `cfg` says; return {"run_dir", "best_ckpt", "val", "test", "val_step",
    "best_step", "fit_seconds"} and write results.json.

    With `run_dir` (a previous run), training continues from its checkpoints/last.ckpt. With
    `verbose=False` (library use, notebooks) Lightning's info lines and the progress bar stay hidden.
    """
    import lightning as L

    from zoo.evaluation.baseline import fit_baselines
    from zoo.training.callbacks import FinalValidation, build_callbacks
    from zoo.training.checkpoint import AtomicCheckpointIO, saved_step
    from zoo.training.config import build_data_and_model
    from zoo.training.environment import saved_config
    from zoo.training.lean import skip_failing_nvml_probe
    from zoo.training.loggers import finish_loggers, quiet_lightning
    from zoo.training.resume import ResumeState, check_resume
    from zoo.training.rundir import RunDir
    from zoo.training.trainer_args import dry_run_trainer

    # Each section of `cfg` goes to the one place that uses it, in this order, and comes back to no
    # file it left (docs/architecture.md, "One config key, start to end").
    ckpt = resume_checkpoint(run_dir) if run_dir is not None else None  # read and checked before anything else
    resume_ckpt = str(run_dir / "checkpoints" / "last.ckpt") if run_dir is not None else None
    run_dir = run_dir or new_run_dir(cfg)  # a path only: nothing is written before training starts
    dry_run_trainer(cfg["trainer"])  # what Lightning would refuse on this machine, before any data loads
    quiet_lightning(verbose)
    skip_failing_nvml_probe()
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    datamodule, model = build_data_and_model(cfg)
    resumed = check_resume(ckpt, cfg["data"], model) if ckpt else {"cursor": {}, "retune": None}
    resume = ResumeState(resumed["retune"])  # applies a changed lr or weight decay to the restored optimizers
    del ckpt  # Lightning reads the file itself; the weights need not be held twice
    saved = saved_config(cfg)  # as config.yaml, the checkpoints and the loggers keep it
    files = RunDir(run_dir, saved, cfg["logger"], datamodule.spec.tokenizer, resumed["cursor"])  # loggers too
    trainer_kwargs = {"enable_model_summary": False, "enable_progress_bar": verbose, **cfg["trainer"]}
    callbacks = [files, *build_callbacks(cfg["callbacks"], model, run_dir, saved, resume, fast_path=cfg["fast_path"],
                                         has_logger=bool(cfg["logger"]),
                                         progress_bar=trainer_kwargs["enable_progress_bar"], verbose=verbose)]
    try:
        trainer = L.Trainer(**trainer_kwargs, default_root_dir=str(run_dir), logger=False, callbacks=callbacks,
                            plugins=[AtomicCheckpointIO()], enable_autolog_hparams=False)
    except (ValueError, TypeError) as e:  # config validation built one already; this is a safety net
        raise ConfigError(f"Invalid trainer settings: {str(e).splitlines()[0]}") from None
    os.environ["ZOO_RUN_DIR"] = str(run_dir)  # DDP workers re-run this script and must share the run dir
    results = None
    try:
        if cfg["model"]["compile"]:
            model.compile_for_training()
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_ckpt, weights_only=True)
        fit_seconds = time.perf_counter() - start
        val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path or None  # None under fast_dev_run: test as trained
        score = checkpoint.best_model_score
        monitor = {"metric": checkpoint.monitor, "mode": checkpoint.mode,
                   "best": None if score is None else float(score)}  # what picked best.ckpt (zoo runs)
        tested = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        final = next(c for c in callbacks if isinstance(c, FinalValidation))
        results = {"run_dir": str(run_dir), "best_ckpt": best, "monitor": monitor, "val": val,
                   "test": tested[0] if tested else {}, "val_step": final.step, "best_step": saved_step(best),
                   "fit_seconds": round(fit_seconds, 3)}
        if cfg["run"]["baseline"] and trainer.is_global_zero:  # {name: {"val/acc": ..., "test/acc": ...}}
            results["baselines"] = fit_baselines(datamodule)
    finally:
        os.environ.pop("ZOO_RUN_DIR", None)
        finish_loggers(files.loggers, results)  # W&B summary, then the run URL or `wandb sync` command
    if trainer.is_global_zero:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def print_summary(results: dict[str, Any], model: str = "model") -> None:
    """Print val/test metrics as a table (one row per model when baselines ran), then where the run lives."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if results.get("baselines"):
        rows = {f"{model} (this run)": {**results["val"], **results["test"]}, **results["baselines"]}
        print_comparison(rows, "results, with baselines on the same splits")
    else:
        table = Table(title="results", title_justify="left")
        table.add_column("metric")
        table.add_column("val", justify="right")
        table.add_column("test", justify="right")
        names = sorted({k.split("/", 1)[1] for k in [*results["val"], *results["test"]] if "/" in k})
        for name in names:
            val, test = results["val"].get(f"val/{name}"), results["test"].get(f"test/{name}")
            table.add_row(name, "" if val is None else f"{val:.4f}", "" if test is None else f"{test:.4f}")
        console.print(table)
    console.print(f"reported: {reported_steps(results)}", soft_wrap=True)
    console.print(f"run dir: {results['run_dir']}")
    if results["best_ckpt"]:
        console.print(f"best checkpoint: {results['best_ckpt']}", soft_wrap=True)


def print_comparison(rows: dict[str, dict[str, float]], title: str) -> None:
    """Print a table with one row per model and one column per "val/<metric>" and "test/<metric>"."""
    from rich.console import Console
    from rich.table import Table

    split_order = {"val": 0, "test": 1}
    metrics = sorted({k for r in rows.values() for k in r if k.split("/")[0] in split_order},
                     key=lambda k: (split_order[k.split("/")[0]], k))
    table = Table(title=title, title_justify="left")
    table.add_column("model", no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right")
    for name, r in rows.items():
        table.add_row(name, *["" if r.get(m) is None else f"{r[m]:.4f}" for m in metrics])
    Console(width=None if sys.stdout.isatty() else 240).print(table)  # a log file gets every column whole


def reported_steps(results: dict[str, Any]) -> str:
    """Return which state each column of the results table describes, e.g. 'val at step 600, test on best.ckpt (step 500)'."""
    val = "val at step {}".format(results["val_step"]) if results.get("val_step") is not None else "no validation"
    if not results.get("best_ckpt"):
        return f"{val}, test on the final weights"
    return f"{val}, test on best.ckpt (step {results.get('best_step')})"


def run_fit(args: argparse.Namespace) -> int:
    """Resolve the config from parsed arguments; print it, or train and print the summary."""
    from lightning.pytorch.utilities import rank_zero_only
    from omegaconf import OmegaConf

    from zoo.training.environment import saved_config

    if not args.config and not args.resume and not args.overrides:
        raise ConfigError("Nothing to train: pass --config FILE (see configs/experiment/) or --resume RUN_DIR")
    overrides = [*args.overrides, *(["run.baseline=true"] if args.baseline else [])]  # saved in config.yaml
    cfg, run_dir = resolve(args.config, overrides, args.resume)
    if args.print_config:
        print(OmegaConf.to_yaml(saved_config(cfg)), end="")
        return 0
    results = fit(cfg, run_dir)
    if rank_zero_only.rank == 0:
        print_summary(results, cfg["model"]["name"])
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
    parser = add_fit_arguments(argparse.ArgumentParser(prog="python -m zoo.fit", description=__doc__.splitlines()[0]))
    args = parse_fit_args(parser, argv)
    with user_errors(args.debug) as boundary:
        return run_fit(args)
    return boundary.code


if __name__ == "__main__":
    sys.exit(main())
