"""The `zoo` command line: fit, test, predict, sample, list, info, baseline, export, sweep.

Arguments are parsed before torch is imported, so `zoo --help` and usage errors answer at once.
Errors caused by user input print one line and exit with code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def run_guarded(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; turn user errors into one line on stderr and exit code 2."""
    from zoo.errors import ZooError

    try:
        return fn(args)
    except ZooError as e:
        if getattr(args, "debug", False):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# -- commands ---------------------------------------------------------------------------------


def cmd_fit(args: argparse.Namespace) -> int:
    from zoo.fit import run_fit

    return run_fit(args)


def load_for_cli(path: str) -> tuple[Any, dict[str, Any]]:
    """Return (model, config stored in the checkpoint) for a checkpoint path or pretrained name."""
    from zoo.pretrained import load_with_config

    return load_with_config(path)


def datamodule_for(cfg: dict[str, Any], overrides: list[str]) -> Any:
    """Return the DataModule that a checkpoint was trained on, with `data.key=value` overrides."""
    from omegaconf import OmegaConf

    from zoo.config import check_entry, load_config
    from zoo.errors import ConfigError
    from zoo.registry import DATA

    extra = load_config([], overrides)
    if set(extra) - {"data"}:
        raise ConfigError(f"Only data.* overrides apply here, got: {', '.join(sorted(set(extra) - {'data'}))}")
    data_cfg = OmegaConf.to_container(OmegaConf.merge(cfg["data"], extra.get("data", {})))
    data_cfg = check_entry("data", data_cfg, DATA, {"name": None})
    name = data_cfg.pop("name")
    datamodule = DATA.build(name, **data_cfg)
    datamodule.prepare_data()
    return datamodule


def cmd_test(args: argparse.Namespace) -> int:
    import lightning as L

    model, cfg = load_for_cli(args.ckpt)
    if not cfg:
        from zoo.errors import ZooError

        raise ZooError(f"{args.ckpt} holds no training config, so its data is unknown")
    datamodule = datamodule_for(cfg, args.overrides)
    if datamodule.spec.to_dict() != model.spec.to_dict():
        from zoo.errors import ZooError

        raise ZooError("The data's spec differs from the checkpoint's (different split or preprocessing?)")
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator=args.accelerator, devices=1)
    results = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    print_metrics(results)
    return 0


def print_metrics(metrics: dict[str, float]) -> None:
    """Print metric name/value pairs, one per line."""
    width = max(len(k) for k in metrics) if metrics else 0
    for k in sorted(metrics):
        print(f"{k:<{width}}  {metrics[k]:.4f}")


def cmd_predict(args: argparse.Namespace) -> int:
    from zoo.predict import predict_files

    model, _ = load_for_cli(args.ckpt)
    predict_files(model, args.inputs, args.output)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from zoo.predict import sample

    model, _ = load_for_cli(args.ckpt)
    sample(model, n=args.n, out=args.out, prompt=args.prompt, temperature=args.temperature, top_k=args.top_k,
           label=args.label, max_new_tokens=args.max_new_tokens, seed=args.seed)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from zoo import catalog

    print(catalog.listing(args.what, args.pattern))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from zoo import catalog

    print(catalog.info(args.name))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from zoo.sweep import run_sweep

    rows = run_sweep(args.file, parallel=args.parallel, count=args.count, seed=args.seed, root=args.dir,
                     extra=args.overrides)
    return 0 if any(r["metric"] is not None for r in rows) else 1


def cmd_fetch(args: argparse.Namespace) -> int:
    from zoo.pretrained import weights_path

    for name in args.names:
        print(f"{name}: {weights_path(name)} (sha256 verified)")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from zoo.baseline import run_baseline

    run_baseline(args.data, args.overrides)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from zoo.export import export

    out = export(args.ckpt, args.format, args.out)
    print(f"exported to {out}")
    return 0


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from zoo.fit import add_fit_arguments

    parser = argparse.ArgumentParser(prog="zoo", description="A model zoo on PyTorch Lightning.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_fit_arguments(sub.add_parser("fit", help="train from YAML configs (same as python -m zoo.fit)"))
    p.set_defaults(fn=cmd_fit)

    p = sub.add_parser("test", help="evaluate a checkpoint on its data's test split")
    p.add_argument("--ckpt", required=True, help="checkpoint file or pretrained name")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("overrides", nargs="*", metavar="data.key=value")
    p.set_defaults(fn=cmd_test)

    p = sub.add_parser("predict", help="predict on CSV rows, image files or text lines")
    p.add_argument("--ckpt", required=True, help="checkpoint file or pretrained name")
    p.add_argument("inputs", nargs="+", help="CSV file (tabular), image files (image), or text file (tokens)")
    p.add_argument("--output", "-o", help="write predictions to this CSV instead of stdout")
    p.set_defaults(fn=cmd_predict)

    p = sub.add_parser("sample", help="generate from a generative model or language model")
    p.add_argument("--ckpt", required=True, help="checkpoint file or pretrained name")
    p.add_argument("-n", type=int, default=10, help="number of samples")
    p.add_argument("--out", "-o", help="output file: .png grid for images, .csv for tables, .txt for text")
    p.add_argument("--prompt", default="", help="text to continue (language models)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--label", type=int, default=None, help="class to generate (conditional models)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_sample)

    p = sub.add_parser("list", help="list registered models, data or pretrained weights")
    p.add_argument("what", nargs="?", choices=["models", "data", "pretrained", "all"], default="all")
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'c*'")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser("info", help="show a model's or dataset's arguments and compatibility")
    p.add_argument("name")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("sweep", help="run a W&B-format sweep file's trials locally and rank them")
    p.add_argument("file", help="sweep YAML (method grid|random, metric, parameters, command)")
    p.add_argument("--parallel", "-j", type=int, default=1, help="trials run at once (subprocesses)")
    p.add_argument("--count", type=int, default=None, help="number of trials (random: default run_cap or 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random search")
    p.add_argument("--dir", default="runs/sweeps", help="sweeps go to DIR/<sweep name>/<time>/")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every trial, e.g. trainer.max_epochs=5")
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("fetch", help="download and verify pretrained weights into the cache ($ZOO_HOME)")
    p.add_argument("names", nargs="+", metavar="NAME", help="pretrained names (see `zoo list pretrained`)")
    p.set_defaults(fn=cmd_fetch)

    p = sub.add_parser("baseline", help="fit scikit-learn baselines on a dataset's exact splits")
    p.add_argument("--data", required=True, help="dataset name")
    p.add_argument("overrides", nargs="*", metavar="data.key=value")
    p.set_defaults(fn=cmd_baseline)

    p = sub.add_parser("export", help="export a checkpoint to another format (hf: a transformers folder)")
    p.add_argument("--ckpt", required=True, help="checkpoint file or pretrained name")
    p.add_argument("--format", default="hf", help="hf: transformers model + tokenizer (token LMs)")
    p.add_argument("out", help="output folder")
    p.set_defaults(fn=cmd_export)

    for p in sub.choices.values():
        if not any(a.dest == "debug" for a in p._actions):
            p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["fit"], ["sweep"]):  # overrides may follow options there
        from zoo.fit import parse_fit_args

        args = parse_fit_args(parser, argv)
    else:
        args = parser.parse_args(argv)
    return run_guarded(args.fn, args)


if __name__ == "__main__":
    sys.exit(main())
