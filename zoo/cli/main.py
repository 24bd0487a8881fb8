"""The `zoo` command line: the parser, and dispatch to one module per command group.

    zoo fit | sweep            zoo/cli/train.py       (python -m zoo.fit, training/sweep.py and trial.py)
    zoo test | baseline        zoo/cli/evaluate.py
    zoo prepare                zoo/cli/prepare.py     (data/streaming.py)
    zoo predict                zoo/cli/predict.py
    zoo sample                 zoo/cli/sample.py
    zoo list | info            zoo/cli/listing.py
    zoo fetch | verify | export   zoo/cli/hub.py
    zoo runs | plot            zoo/cli/runs.py
    zoo tune                   zoo/cli/tune.py
    zoo serve                  zoo/cli/serve/ (the Gradio page)

Arguments are parsed before torch is imported (a command's module is imported only to run it),
so `zoo --help` and usage errors answer at once. Every failure prints one line (zoo.errors.user_errors):
exit code 2 for bad input, 1 for a failure zoo did not foresee; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from zoo.errors import user_errors

# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the `zoo` parser; each command names the function that runs it as "module:function"."""
    from zoo.fit import add_fit_arguments

    parser = argparse.ArgumentParser(prog="zoo", description="A model zoo on PyTorch Lightning.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_fit_arguments(sub.add_parser("fit", help="train from YAML configs (same as python -m zoo.fit)"))
    p.set_defaults(fn="zoo.cli.train:cmd_fit")

    p = sub.add_parser("test", help="evaluate a checkpoint on its data's test split")
    p.add_argument("--ckpt", required=True, help="checkpoint file or pretrained name")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("overrides", nargs="*", metavar="data.key=value")
    p.set_defaults(fn="zoo.cli.evaluate:cmd_test")

    p = sub.add_parser("predict", help="predict on CSV rows, image files or text lines")
    p.add_argument("--ckpt", required=True, help="checkpoint file or pretrained name")
    p.add_argument("inputs", nargs="+", help="CSV file (tabular), image files (image), or text file (tokens)")
    p.add_argument("--output", "-o", help="write predictions to this CSV instead of stdout")
    p.set_defaults(fn="zoo.cli.predict:cmd_predict")

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
    p.set_defaults(fn="zoo.cli.sample:cmd_sample")

    p = sub.add_parser("list", help="list registered models, data or pretrained weights")
    p.add_argument("what", nargs="?", choices=["models", "data", "pretrained", "all"], default="all")
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'c*'")
    p.set_defaults(fn="zoo.cli.listing:cmd_list")

    p = sub.add_parser("info", help="show a model's or dataset's arguments and compatibility, or a pretrained card")
    p.add_argument("name")
    p.set_defaults(fn="zoo.cli.listing:cmd_info")

    p = sub.add_parser("sweep", help="run a W&B-format sweep file's trials locally with Optuna and rank them")
    p.add_argument("file", nargs="?", help="sweep YAML (method grid|random|bayes, metric, parameters, early_terminate)")
    p.add_argument("--resume", metavar="SWEEP_DIR", help="continue a killed sweep from its SWEEP_DIR/optuna.db")
    p.add_argument("--parallel", "-j", type=int, default=1, help="trials run at once (subprocesses)")
    p.add_argument("--count", type=int, default=None, help="number of trials (default: the grid, else run_cap or 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    p.add_argument("--dir", default="runs/sweeps", help="sweeps go to DIR/<sweep name>/<time>/")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every trial, e.g. trainer.max_epochs=5")
    p.set_defaults(fn="zoo.cli.train:cmd_sweep")

    p = sub.add_parser("fetch", help="download and verify pretrained weights into the cache ($ZOO_HOME)")
    p.add_argument("names", nargs="+", metavar="NAME", help="pretrained names (see `zoo list pretrained`)")
    p.set_defaults(fn="zoo.cli.hub:cmd_fetch")

    p = sub.add_parser("baseline", help="fit classical baselines (scikit-learn, TF-IDF, n-gram LMs) on a dataset's exact splits")
    p.add_argument("--data", required=True, help="dataset name")
    p.add_argument("overrides", nargs="*", metavar="data.key=value")
    p.set_defaults(fn="zoo.cli.evaluate:cmd_baseline")

    p = sub.add_parser("prepare", help="write a dataset's splits and spec as litdata shards, for data.name=streaming")
    p.add_argument("--data", required=True, help="dataset name")
    p.add_argument("--out", required=True, help="output folder (then upload it to s3://..., gs://... if you like)")
    p.add_argument("--chunk-bytes", default="64MB", help="size of each shard file (litdata chunk_bytes)")
    p.add_argument("--workers", type=int, default=1, help="writer processes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")
    p.add_argument("overrides", nargs="*", metavar="data.key=value")
    p.set_defaults(fn="zoo.cli.prepare:cmd_prepare")

    p = sub.add_parser("verify", help="re-hash the cached pretrained weights; remove and name every bad file")
    p.set_defaults(fn="zoo.cli.hub:cmd_verify")

    p = sub.add_parser("export", help="export a checkpoint for deployment: onnx, torchscript or hf")
    p.add_argument("--ckpt", required=True, help="checkpoint file or pretrained name")
    p.add_argument("--format", required=True, metavar="FORMAT",
                   help="onnx (model.onnx) | torchscript (model.pt) | hf (a transformers folder, token LMs)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is a file or a folder that is not empty")
    p.add_argument("out", help="output folder: the model file, README.md (the model card), tokenizer.json for text")
    p.set_defaults(fn="zoo.cli.hub:cmd_export")

    p = sub.add_parser("serve", help="a local web page to play with models (Gradio): draw, generate, sample")
    p.add_argument("models", nargs="*", metavar="CKPT_OR_NAME", help="checkpoints or pretrained names to open")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.set_defaults(fn="zoo.cli.serve.page:cmd_serve")

    p = sub.add_parser("tune", help="Lightning's batch-size and learning-rate finders on a config")
    p.add_argument("--config", "-c", action="append", default=[], metavar="YAML", help="config file; repeat to merge")
    p.add_argument("--lr", action="store_true", help="run the learning-rate finder (default: both finders)")
    p.add_argument("--batch-size", action="store_true", help="run the batch-size finder (default: both finders)")
    p.add_argument("--write", metavar="OUT.yaml", help="save the config with the suggestions applied")
    p.add_argument("--min-lr", type=float, default=1e-6, help="lowest learning rate tried (default 1e-6)")
    p.add_argument("--max-lr", type=float, default=1.0, help="highest learning rate tried (default 1)")
    p.add_argument("--lr-steps", type=int, default=100, help="training steps of the LR finder (default 100)")
    p.add_argument("--max-batch-size", type=int, default=None, help="largest batch tried (default: the train split)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. model.channels=[8,16]")
    p.set_defaults(fn="zoo.cli.tune:cmd_tune")

    p = sub.add_parser("runs", help="a table of runs: model, data, best monitored metric, test metrics, time")
    p.add_argument("dir", nargs="?", default="runs", help="a run dir or a folder of them (default: runs)")
    p.add_argument("--json", action="store_true", help="print the runs as JSON instead of a table")
    p.set_defaults(fn="zoo.cli.runs:cmd_runs")

    p = sub.add_parser("plot", help="plot runs' learning curves from their metrics.csv, one line per run")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", "-o", default="curves.png", help="PNG file to write (default: curves.png)")
    p.add_argument("--metric", "-m", action="append", metavar="NAME",
                   help="a metric panel besides the loss, e.g. val/acc; repeat for more (default: the monitored "
                        "metric and val/acc)")
    p.set_defaults(fn="zoo.cli.runs:cmd_plot")

    for p in sub.choices.values():
        if not any(a.dest == "debug" for a in p._actions):
            p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["fit"], ["sweep"], ["tune"]):  # overrides may follow options there
        from zoo.fit import parse_fit_args

        args = parse_fit_args(parser, argv)
    else:
        args = parser.parse_args(argv)
    module, name = args.fn.split(":")
    with user_errors(args.debug) as boundary:
        return getattr(importlib.import_module(module), name)(args)
    return boundary.code


if __name__ == "__main__":
    sys.exit(main())
