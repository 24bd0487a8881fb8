"""The bad-input corpus: every mistake a user can make ends in ONE line and nothing is lost.

Each case runs `python -m zoo.fit`'s or `zoo`'s `main()` in-process and asserts the exit code, a
single `error: ...` line on stderr naming the problem, no traceback, and that the case's folder
(run dirs, $ZOO_HOME cache, output paths; lock files aside) is byte for byte as it was before. The
cases cover config, input files, checkpoints, resume, predict, sample, export, sweep files and serve.

The fixtures (a few tiny trained checkpoints) are built once per module; each case works on its
own copy of the iris run dir. Tests after the corpus cover what is not a one-line refusal: a
resume that applies a lower learning rate, the validation of a run stopped mid-epoch, caches that
heal, values read from the environment.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_cli

EXP = ROOT / "configs" / "experiment"
CPU = ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.enable_progress_bar=false"]
IRIS = ["--config", str(EXP / "iris_mlp.yaml"), "model.hidden=[8]", "optim.scheduler.name=none", "logger=csv", *CPU]
HAS_GPU = torch.cuda.is_available()


def fit(argv: list[str]):
    """Run `python -m zoo.fit` in-process; return its results."""
    from zoo.fit import fit as run
    from zoo.fit import resolve

    cfg, run_dir = resolve(argv[1:2], argv[2:])
    return run(cfg, run_dir)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny trained checkpoints, built once: an iris MLP run, a names LM, a text classifier, two VAEs."""
    root = tmp_path_factory.mktemp("world")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZOO_HOME", str(root / "home"))
    quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
             "logger=false", *CPU, f"run.dir={root / 'runs'}"]
    try:
        iris = fit([*IRIS, "trainer.max_epochs=2", f"run.dir={root / 'runs'}"])
        lm = fit(["--config", str(EXP / "names_transformer.yaml"), "model.d_model=16", "model.n_layer=1",
                  "model.n_head=2", *quick])
        from zoo.data.text_csv import TextCSV

        reviews = TextCSV.example(root / "reviews")["path"]
        textcls = fit([*IRIS, "data.name=text_csv", f"data.path={reviews}", *quick])
        vae_table = fit(["--config", str(EXP / "wine_vae.yaml"), "data.name=iris", "trainer.limit_test_batches=0",
                         *quick])
        vae_image = fit(["--config", str(EXP / "digits_vae.yaml"), "model.channels=[8]", "model.latent_dim=2",
                         "trainer.limit_test_batches=0", *quick])
    finally:
        mp.undo()
    return {"root": root, "run": Path(iris["run_dir"]), "lm": lm["best_ckpt"], "textcls": textcls["best_ckpt"],
            "vae_table": vae_table["best_ckpt"], "vae_image": vae_image["best_ckpt"]}


class Workspace:
    """One case's folder: a copy of the iris run, the cache, inputs and outputs."""

    def __init__(self, world: dict, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.world, self.root, self.monkeypatch = world, root, monkeypatch
        self.runs = root / "runs"
        self.run = self.runs / "iris_mlp" / world["run"].name
        shutil.copytree(world["run"], self.run)
        self.ckpt = str(self.run / "checkpoints" / "best.ckpt")
        self.out = root / "out"
        self.out.mkdir()
        self.marker = root / "payload-ran"

    def __getattr__(self, name: str) -> str:  # w.lm, w.textcls, ...: the shared checkpoints (read only)
        return str(self.world[name])

    def file(self, name: str, content: str | bytes) -> str:
        """Write an input file and return its path."""
        path = self.root / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    def iris_ckpt(self, edit: Callable[[dict], None], name: str = "edited.ckpt") -> str:
        """Write a copy of the iris checkpoint changed by `edit`; return its path."""
        ckpt = torch.load(self.ckpt, weights_only=True)
        edit(ckpt)
        path = self.root / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, path)
        return str(path)

    def payload(self) -> bytes:
        """Return a pickle that would create `self.marker` if anything ever unpickled it unsafely."""
        import io

        buf = io.BytesIO()
        torch.save({"state_dict": Payload(str(self.marker))}, buf)
        return buf.getvalue()


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def snapshot(root: Path) -> dict[str, str]:
    """Return {path: sha256} of every file under root except lock files."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def png_header(width: int, height: int) -> bytes:
    """Return a tiny PNG that declares width x height grey pixels (a decompression bomb when large)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def sweep_file(w: Workspace, body: str) -> list[str]:
    return ["sweep", w.file("sweep.yaml", body), "--dir", str(w.root / "sweeps")]


GOOD_SWEEP = "method: grid\nmetric: {name: val/acc, goal: maximize}\nparameters:\n  optim.lr: {values: [0.01]}\n"
NOT_UTF8 = "caf\xe9,1.0\n".encode("latin-1")
RANDOM_BYTES = bytes(range(128, 256)) * 8


@dataclass
class Case:
    id: str
    command: str  # "fit" (python -m zoo.fit) or "zoo"
    args: Callable[[Workspace], list[str]]
    fragments: tuple[str, ...] = ()
    code: int = 2
    gpu_free: bool = False  # the case assumes a machine without a GPU (the CI's)


def fit_case(id: str, overrides: list[str], *fragments: str, **kw) -> Case:
    """A fresh iris run with `overrides` (run.dir inside the case's folder)."""
    return Case(id, "fit", lambda w: [*IRIS, f"run.dir={w.runs}", *overrides], fragments, **kw)


def data_case(id: str, name: str, content: str | bytes, *fragments: str, data: str = "text_csv",
              extra: tuple[str, ...] = ()) -> Case:
    """A fresh run on a text file the case writes."""
    model = ["model.name=mlp", "model.hidden=[8]"]
    return Case(id, "fit", lambda w: [*IRIS, f"run.dir={w.runs}", *model, f"data.name={data}",
                                      f"data.path={w.file(name, content)}", *extra], fragments)


def resume_case(id: str, overrides: list[str], *fragments: str, damage: Callable[[Workspace], None] | None = None) -> Case:
    """`--resume` the iris run (after `damage` to it) with `overrides`."""
    def args(w: Workspace) -> list[str]:
        if damage:
            damage(w)
        return ["--resume", str(w.run), *overrides]

    return Case(id, "fit", args, fragments)


def predict_case(id: str, ckpt: str, name: str, content: str | bytes, *fragments: str) -> Case:
    return Case(id, "zoo", lambda w: ["predict", "--ckpt", getattr(w, ckpt) if ckpt != "pretrained" else "cnn-digits",
                                      w.file(name, content)], fragments)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()  # best.ckpt and last.ckpt may be hard links: break the link, damage one
    path.write_bytes(data[: len(data) // 2])


def corrupt_cards(w: Workspace) -> list[str]:
    """Point zoo at a copy of its shipped weights in which cnn-digits is corrupt."""
    from zoo.hub import pretrained

    cards = w.root / "package"
    shutil.copytree(pretrained.CARDS_DIR, cards)
    (cards / "cnn-digits.safetensors").write_bytes(b"\0" * 100)
    w.monkeypatch.setattr(pretrained, "CARDS_DIR", cards)
    return ["fetch", "cnn-digits"]


def broken_listing(w: Workspace) -> list[str]:
    import zoo.cli.listing

    def boom(*args, **kwargs):
        raise RuntimeError("something zoo did not foresee")

    w.monkeypatch.setattr(zoo.cli.listing, "listing", boom)
    return ["list", "models"]


CONFIG = [
    fit_case("max_epochs-negative", ["trainer.max_epochs=-5"], "Invalid trainer settings", "max_epochs"),
    fit_case("max_epochs-text", ["trainer.max_epochs=abc"], "trainer.max_epochs", "abc"),
    fit_case("max_steps-negative", ["trainer.max_steps=-5"], "max_steps"),
    fit_case("accelerator-gpu-without-gpu", ["trainer.accelerator=gpu"], "Invalid trainer settings", gpu_free=True),
    fit_case("devices-zero", ["trainer.devices=0"], "Invalid trainer settings"),
    fit_case("strategy-unknown", ["trainer.strategy=nope"], "Invalid trainer settings"),
    fit_case("precision-unknown", ["trainer.precision=7"], "trainer.precision"),
    fit_case("fast_dev_run-negative", ["trainer.fast_dev_run=-1"], "Invalid trainer settings"),
    fit_case("accumulate-zero", ["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches", ">= 1"),
    fit_case("log-every-zero", ["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps"),
    fit_case("clip-negative", ["trainer.gradient_clip_val=-1.0"], "trainer.gradient_clip_val"),
    fit_case("max_time-text", ["trainer.max_time=soon"], "Invalid trainer settings"),
    fit_case("limit-batches-negative", ["trainer.limit_train_batches=-1"], "Invalid trainer settings"),
    fit_case("clip-algorithm-unknown", ["trainer.gradient_clip_algorithm=sideways"], "Invalid trainer settings"),
    fit_case("enable_checkpointing-false", ["trainer.enable_checkpointing=false"], "trainer.enable_checkpointing",
             "callbacks.checkpoint"),
    fit_case("trainer-logger-managed", ["trainer.logger=true"], "'trainer.logger' is set by zoo"),
    fit_case("trainer-callbacks-managed", ["trainer.callbacks=[]"], "'trainer.callbacks' is set by zoo"),
    fit_case("trainer-root-managed", ["trainer.default_root_dir=/tmp"], "run.dir"),
    fit_case("trainer-autolog-managed", ["trainer.enable_autolog_hparams=true"], "trainer.enable_autolog_hparams"),
    fit_case("trainer-key-typo", ["trainer.max_epoch=3"], "Did you mean 'max_epochs'"),
    fit_case("checkpoint-mode-sideways", ["callbacks.checkpoint.mode=sideways"], "callbacks.checkpoint.mode",
             "sideways"),
    fit_case("checkpoint-monitor-unknown", ["callbacks.checkpoint.monitor=val/nonexistent"], "val/nonexistent",
             "val/acc"),
    fit_case("checkpoint-monitor-test-metric", ["callbacks.checkpoint.monitor=test/acc"], "test/acc"),
    fit_case("checkpoint-monitor-typo", ["callbacks.checkpoint.monitor=val/acc1"], "Did you mean 'val/acc'"),
    fit_case("checkpoint-mode-fights-metric", ["callbacks.checkpoint.monitor=val/acc", "callbacks.checkpoint.mode=min"],
             "worst val/acc", "mode max"),
    fit_case("early-stopping-monitor-unknown", ["callbacks.early_stopping.enabled=true",
                                                "callbacks.early_stopping.monitor=val/f2"], "val/f2"),
    fit_case("early-stopping-mode-unknown", ["callbacks.early_stopping.mode=upward"], "upward"),
    fit_case("checkpoint-every-negative", ["callbacks.checkpoint.every_n_train_steps=-1"],
             "callbacks.checkpoint.every_n_train_steps"),
    fit_case("interpolation-missing", ["model.dropout=${nope}"], "model.dropout", "nope"),
    fit_case("env-var-missing", ["data.batch_size=${oc.env:ZOO_TEST_SURELY_UNSET}"], "ZOO_TEST_SURELY_UNSET"),
    fit_case("run-name-absolute", ["run.name=/tmp/elsewhere"], "run.name"),
    fit_case("run-name-parent", ["run.name=../escaped"], "run.name"),
    fit_case("run-name-nested", ["run.name=a/b"], "run.name"),
    fit_case("run-name-dot", ["run.name=.."], "run.name"),
    fit_case("model-too-large", ["model.hidden=[100000000000000]"], "does not fit in memory", "model.hidden"),
    fit_case("optim-betas-one", ["optim.betas=[0.9]"], "optim.betas"),
    fit_case("optim-lr-zero", ["optim.lr=0"], "optim.lr"),
    fit_case("scheduler-typo", ["optim.scheduler.name=cosin"], "Did you mean 'cosine'"),
    fit_case("optimizer-unknown", ["optim.name=adamm"], "adamm"),
    fit_case("top-key-typo", ["trainr.max_epochs=3"], "Did you mean 'trainer'"),
    fit_case("model-unknown", ["model.name=cnnn"], "Did you mean 'cnn'"),
    fit_case("data-unknown", ["data.name=digitz"], "Did you mean 'digits'"),
    Case("incompatible-pair", "fit", lambda w: ["model.name=gan", "data.name=names", f"run.dir={w.runs}"],
         ("cannot train on",)),
    fit_case("model-key-typo", ["model.hiden=[8]"], "Did you mean 'hidden'"),
    fit_case("model-activation-unknown", ["model.activation=rellu"], "rellu"),
    fit_case("seed-text", ["seed=abc"], "seed"),
    fit_case("fractions-leave-no-train", ["data.val_fraction=0.6", "data.test_fraction=0.5"], "below 1"),
    fit_case("text_csv-without-path", ["model.name=mlp", "data.name=text_csv"], "data.path"),
    fit_case("logger-unknown", ["logger.name=wandbb"], "Unknown logger 'wandbb'"),
    fit_case("wandb-mode-unknown", ["logger={name: wandb, mode: sometimes}"], "sometimes"),
    fit_case("override-without-value", ["trainer.max_epochs"], "not of the form key=value"),
    fit_case("override-bad-syntax", ["model.hidden=[8,"], "Cannot parse overrides"),
    Case("resume-true-without-runs", "fit", lambda w: [*IRIS, f"run.dir={w.root / 'empty'}", "run.resume=true"],
         ("run.resume=true",)),
    Case("config-file-missing", "fit", lambda w: ["--config", str(w.root / "nope.yaml")], ("Config file not found",)),
    Case("config-file-broken", "fit", lambda w: ["--config", w.file("bad.yaml", "model: [unclosed\n")],
         ("Cannot read config",)),
    Case("config-file-list", "fit", lambda w: ["--config", w.file("list.yaml", "- a\n- b\n")], ("Cannot read config",)),
    Case("nothing-to-train", "fit", lambda w: [], ("Nothing to train",)),
]

FILES = [
    data_case("csv-ragged-short-row", "r.csv", "text,label\ngood film,pos\nno label here\n", "line 3", "1 fields"),
    data_case("csv-ragged-long-row", "r.csv", "text,label\ngood film,pos\nbad,neg,extra\n", "line 3", "3 fields"),
    data_case("csv-empty-label", "r.csv", "text,label\ngood film,pos\nbad film,\n", "line 3", "'label'"),
    data_case("csv-empty-text", "r.csv", "text,label\ngood film,pos\n,neg\n", "line 3", "'text'"),
    data_case("jsonl-missing-label", "r.jsonl", '{"text": "good", "label": "pos"}\n{"text": "bad"}\n', "line 2",
              "'label'"),
    data_case("jsonl-not-json", "r.jsonl", '{"text": "good", "label": "pos"}\n{text: bad}\n', "line 2", "not JSON"),
    data_case("jsonl-not-object", "r.jsonl", '["good", "pos"]\n', "line 1", "JSON object"),
    data_case("csv-not-utf8", "r.csv", b"text,label\n" + "caf\xe9,pos\n".encode("latin-1"), "not UTF-8"),
    data_case("csv-random-bytes", "r.csv", RANDOM_BYTES, "not UTF-8"),
    data_case("csv-empty-file", "r.csv", "", "has no rows"),
    data_case("csv-header-only", "r.csv", "text,label\n", "has no rows"),
    data_case("csv-missing-column", "r.csv", "review,label\ngood,pos\n", "no column 'text'"),
    data_case("csv-numbers-as-text", "r.csv", "text,label\n" + "".join(f"{i * 0.5},{i % 2}\n" for i in range(40)),
              "only numbers", "csv"),
    data_case("csv-label-per-row", "r.csv", "text,label\n" + "".join(f"row {i},{i * 1.5}\n" for i in range(40)),
              "40 distinct labels in 40 rows"),
    data_case("csv-one-label", "r.csv", "text,label\n" + "".join(f"row {i},pos\n" for i in range(20)),
              "at least 2 distinct labels"),
    Case("csv-path-missing", "fit", lambda w: [*IRIS, f"run.dir={w.runs}", "model.name=mlp", "data.name=text_csv",
                                               f"data.path={w.root / 'none.csv'}"], ("not found",)),
    data_case("text-empty-file", "t.txt", "", "holds no text", data="text_file"),
    data_case("text-whitespace-file", "t.txt", "  \n\n\t\n", "holds no text", data="text_file"),
    data_case("text-not-utf8", "t.txt", NOT_UTF8 * 50, "not UTF-8", data="text_file"),
    data_case("text-too-short-for-block", "t.txt", "a short text. " * 8, "data.val_fraction and data.test_fraction",
              data="text_file", extra=("data.block_size=200",)),
    Case("text-folder-without-txt", "fit", lambda w: [*IRIS, f"run.dir={w.runs}", "model.name=mlp",
                                                      "data.name=text_file", f"data.path={w.out}"], ("No files matching",)),
    Case("text-url-missing", "fit", lambda w: [*IRIS, f"run.dir={w.runs}", "model.name=mlp", "data.name=text_file",
                                               f"data.url={(w.root / 'gone.txt').as_uri()}"], ("Cannot download",)),
    Case("text-url-sha-mismatch", "fit", lambda w: [*IRIS, f"run.dir={w.runs}", "model.name=mlp", "data.name=text_file",
                                                    f"data.url=file://{w.file('served.txt', 'some text ' * 100)}",
                                                    f"data.sha256={'0' * 64}"], ("sha256 mismatch",)),
    Case("text-url-scheme", "fit", lambda w: [*IRIS, f"run.dir={w.runs}", "model.name=mlp", "data.name=text_file",
                                              "data.url=ftp://example.org/a.txt"], ("Unsupported URL scheme",)),
    Case("text-path-and-url", "fit", lambda w: [*IRIS, f"run.dir={w.runs}", "model.name=mlp", "data.name=text_file",
                                                f"data.path={w.file('t.txt', 'text ' * 100)}", "data.url=shakespeare"],
         ("not both",)),
]

PREDICT = [
    predict_case("table-nan-inf", "ckpt", "x.csv", "5.1,3.5,nan,inf\n", "NaN or infinite"),
    predict_case("table-inf-second-row", "ckpt", "x.csv", "5.1,3.5,1.4,0.2\n5.1,3.5,1.4,-inf\n", "row 2", "infinite"),
    predict_case("table-empty", "ckpt", "x.csv", "", "no rows"),
    predict_case("table-header-only", "ckpt", "x.csv",
                 "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n", "no rows"),
    predict_case("table-ragged", "ckpt", "x.csv", "5.1,3.5,1.4,0.2\n5.1,3.5\n", "expected 4 values"),
    predict_case("table-text", "ckpt", "x.csv", "5.1,3.5,wide,0.2\n", "must be a number"),
    predict_case("table-random-bytes", "ckpt", "x.csv", RANDOM_BYTES, "not UTF-8"),
    predict_case("table-latin1", "ckpt", "x.csv", NOT_UTF8, "not UTF-8"),
    predict_case("text-empty-file", "textcls", "x.txt", "", "no lines"),
    predict_case("text-blank-lines", "textcls", "x.txt", "\n  \n\n", "no lines"),
    predict_case("text-not-utf8", "textcls", "x.txt", NOT_UTF8, "not UTF-8"),
    predict_case("image-decompression-bomb", "pretrained", "bomb.png", png_header(30_000, 30_000), "bomb.png",
                 "refused"),
    predict_case("image-not-an-image", "pretrained", "fake.png", b"not a png at all", "not a readable image"),
    predict_case("image-truncated-png", "pretrained", "cut.png", png_header(8, 8)[:30], "not a readable image"),
    predict_case("generative-model", "vae_table", "x.csv", "5.1,3.5,1.4,0.2\n", "does not predict"),
    Case("input-missing", "zoo", lambda w: ["predict", "--ckpt", w.ckpt, str(w.root / "none.csv")],
         ("Input file not found",)),
    Case("input-is-folder", "zoo", lambda w: ["predict", "--ckpt", w.ckpt, str(w.out)], ("Input file not found",)),
    Case("output-folder-missing", "zoo", lambda w: ["predict", "--ckpt", w.ckpt, w.file("x.csv", "5.1,3.5,1.4,0.2\n"),
                                                    "--output", str(w.root / "no" / "such" / "p.csv")],
         ("No such file or directory",)),
    Case("output-is-folder", "zoo", lambda w: ["predict", "--ckpt", w.ckpt, w.file("x.csv", "5.1,3.5,1.4,0.2\n"),
                                               "--output", str(w.out)], ("Is a directory",)),
    Case("ckpt-unknown-name", "zoo", lambda w: ["predict", "--ckpt", "cnn-digitz", w.file("x.csv", "1,2,3,4\n")],
         ("Did you mean 'cnn-digits'",)),
]


def ckpt_case(id: str, command: list[str], make: Callable[[Workspace], str], *fragments: str) -> Case:
    """Run `zoo <command> --ckpt <the file make writes>`."""
    def args(w: Workspace) -> list[str]:
        ckpt = make(w)
        out = [str(w.root / "export-out")] if command[0] == "export" else []
        extra = [w.file("x.csv", "5.1,3.5,1.4,0.2\n")] if command[0] == "predict" else []
        return [*command, "--ckpt", ckpt, *extra, *out]

    return Case(id, "zoo", args, fragments)


def weights_file(w: Workspace) -> str:
    """Write the iris model as zoo weights (safetensors with metadata, no training config)."""
    from zoo.hub.pretrained import load_checkpoint, save_weights

    path = w.root / "inputs" / "iris.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(load_checkpoint(w.ckpt), path)
    return str(path)


def safetensors_file(w: Workspace, metadata: dict | None) -> str:
    from safetensors.torch import save_file

    path = w.root / "inputs" / "w.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)
    return str(path)


CHECKPOINTS = [
    ckpt_case("missing", ["test"], lambda w: str(w.root / "none.ckpt"), "Checkpoint not found"),
    ckpt_case("folder", ["sample"], lambda w: str(w.out), "not found"),
    ckpt_case("random-bytes", ["test"], lambda w: w.file("r.ckpt", RANDOM_BYTES), "Cannot read checkpoint"),
    ckpt_case("truncated", ["predict"], lambda w: w.file("t.ckpt", Path(w.ckpt).read_bytes()[:5000]),
              "Cannot read checkpoint"),
    ckpt_case("pickle-payload", ["test"], lambda w: w.file("evil.ckpt", w.payload()), "Refused to load",
              "could run code"),
    ckpt_case("pickle-payload-predict", ["predict"], lambda w: w.file("evil.ckpt", w.payload()), "Refused to load"),
    ckpt_case("not-zoo", ["test"], lambda w: w.iris_ckpt(lambda c: c.pop("zoo")), "is not a zoo checkpoint"),
    ckpt_case("unknown-model", ["predict"], lambda w: w.iris_ckpt(lambda c: c["zoo"].update(model="cnnn")),
              "Unknown model 'cnnn'"),
    ckpt_case("hparams-do-not-build", ["predict"],
              lambda w: w.iris_ckpt(lambda c: c["hyper_parameters"].update(bogus=1)), "do not build a 'mlp'"),
    ckpt_case("weights-do-not-fit", ["predict"], lambda w: w.iris_ckpt(
        lambda c: c["state_dict"].update({next(iter(c["state_dict"])): torch.zeros(3, 3)})), "do not fit"),
    ckpt_case("safetensors-no-metadata", ["predict"], lambda w: safetensors_file(w, None), "has no zoo metadata"),
    ckpt_case("safetensors-no-model-name", ["predict"],
              lambda w: safetensors_file(w, {"zoo": json.dumps({"hyper_parameters": {}})}), "has no zoo metadata"),
    ckpt_case("safetensors-metadata-not-json", ["sample"], lambda w: safetensors_file(w, {"zoo": "{not json"}),
              "Cannot read weights"),
    ckpt_case("safetensors-random-bytes", ["predict"], lambda w: w.file("r.safetensors", RANDOM_BYTES),
              "Cannot read weights"),
    ckpt_case("test-without-config", ["test"], lambda w: weights_file(w), "holds no training config"),
    Case("test-data-spec-differs", "zoo", lambda w: ["test", "--ckpt", w.ckpt, "data.seed=5"], ("spec differs",)),
    Case("test-data-key-typo", "zoo", lambda w: ["test", "--ckpt", w.ckpt, "data.batch=5"], ("data.batch",)),
    Case("test-non-data-override", "zoo", lambda w: ["test", "--ckpt", w.ckpt, "model.hidden=[4]"],
         ("Only data.* overrides",)),
    Case("test-accelerator-gpu", "zoo", lambda w: ["test", "--ckpt", w.ckpt, "--accelerator", "gpu"],
         ("Invalid trainer settings",), gpu_free=True),
    Case("shipped-weights-corrupt", "zoo", corrupt_cards, ("cnn-digits", "reinstall")),
    Case("fetch-unknown", "zoo", lambda w: ["fetch", "cnn-digitz"], ("Did you mean 'cnn-digits'",)),
]

RESUME = [
    resume_case("architecture-override", ["model.hidden=[16]"], "model.hidden=[16]", "without --resume"),
    resume_case("architecture-dropout", ["model.dropout=0.5"], "model.dropout"),
    resume_case("model-name-override", ["model.name=cnn"], "model.hidden"),
    resume_case("data-override-changes-spec", ["data.seed=1"], "data differs", "data.seed"),
    resume_case("optimizer-kind", ["optim.name=sgd"], "optim.name", "optim.lr"),
    resume_case("schedule", ["optim.scheduler.name=cosine"], "optim.scheduler.name"),
    resume_case("betas", ["optim.betas=[0.8,0.9]"], "optim.betas"),
    resume_case("trainer-invalid", ["trainer.max_epochs=-5"], "max_epochs"),
    resume_case("monitor-unknown", ["callbacks.checkpoint.monitor=val/nope"], "val/nope"),
    resume_case("last-random-bytes", [], "Cannot resume", "best.ckpt is intact (step",
                damage=lambda w: (w.run / "checkpoints/last.ckpt").unlink() or
                (w.run / "checkpoints/last.ckpt").write_bytes(RANDOM_BYTES)),
    resume_case("last-truncated", [], "best.ckpt is intact", damage=lambda w: truncate(w.run / "checkpoints/last.ckpt")),
    resume_case("last-pickle-payload", [], "Cannot resume", "best.ckpt is intact",
                damage=lambda w: (w.run / "checkpoints/last.ckpt").unlink() or
                (w.run / "checkpoints/last.ckpt").write_bytes(w.payload())),
    resume_case("last-and-best-corrupt", [], "cannot be read either", damage=lambda w: [
        truncate(w.run / "checkpoints" / n) for n in ("last.ckpt", "best.ckpt")]),
    resume_case("last-not-zoo", [], "not a zoo checkpoint", damage=lambda w: (w.run / "checkpoints/last.ckpt").unlink()
                or torch.save({"state_dict": {}}, w.run / "checkpoints/last.ckpt")),
    resume_case("last-missing", [], "last.ckpt not found", damage=lambda w: (w.run / "checkpoints/last.ckpt").unlink()),
    resume_case("config-missing", [], "config.yaml not found", damage=lambda w: (w.run / "config.yaml").unlink()),
    resume_case("config-broken", [], "Cannot read config", damage=lambda w: (w.run / "config.yaml").write_text("a: [\n")),
    Case("run-dir-missing", "fit", lambda w: ["--resume", str(w.root / "nowhere")], ("Cannot resume",)),
]

SAMPLE = [
    Case("top-k-zero", "zoo", lambda w: ["sample", "--ckpt", w.lm, "--top-k", "0"], ("top_k must be at least 1",)),
    Case("top-k-negative", "zoo", lambda w: ["sample", "--ckpt", w.lm, "--top-k", "-3"], ("top_k",)),
    Case("n-zero", "zoo", lambda w: ["sample", "--ckpt", w.lm, "-n", "0"], ("-n must be at least 1",)),
    Case("n-zero-vae", "zoo", lambda w: ["sample", "--ckpt", w.vae_table, "-n", "0", "--out", str(w.out / "s.csv")],
         ("-n must be at least 1",)),
    Case("temperature-negative", "zoo", lambda w: ["sample", "--ckpt", w.lm, "--temperature", "-1"], ("temperature",)),
    Case("max-new-tokens-negative", "zoo", lambda w: ["sample", "--ckpt", w.lm, "--max-new-tokens", "-1"],
         ("max_new_tokens",)),
    Case("classifier", "zoo", lambda w: ["sample", "--ckpt", w.ckpt], ("generate",)),
    Case("label-on-unconditional", "zoo", lambda w: ["sample", "--ckpt", w.vae_table, "--label", "1"],
         ("conditional",)),
    Case("image-out-not-png", "zoo", lambda w: ["sample", "--ckpt", w.vae_image, "--out", str(w.out / "g.jpg")],
         ("PNG",)),
    Case("table-out-folder-missing", "zoo", lambda w: ["sample", "--ckpt", w.vae_table, "--out",
                                                       str(w.root / "no" / "s.csv")], ("No such file or directory",)),
    Case("text-out-is-folder", "zoo", lambda w: ["sample", "--ckpt", w.lm, "--out", str(w.out)], ("Is a directory",)),
    Case("ckpt-missing", "zoo", lambda w: ["sample", "--ckpt", str(w.root / "no.ckpt")], ("Checkpoint not found",)),
]


def export_onto(w: Workspace, kind: str) -> list[str]:
    target = w.root / "target"
    if kind == "file":
        target.write_text("precious")
    else:
        target.mkdir()
        (target / "keep.txt").write_text("precious")
    return ["export", "--ckpt", w.lm, "--format", "hf", str(target)]


EXPORT = [
    Case("onto-existing-file", "zoo", lambda w: export_onto(w, "file"), ("already exists",)),
    Case("into-non-empty-folder", "zoo", lambda w: export_onto(w, "dir"), ("already exists", "not empty")),
    Case("format-unknown", "zoo", lambda w: ["export", "--ckpt", w.lm, "--format", "pickle", str(w.root / "e")],
         ("Unknown export format 'pickle'",)),
    Case("not-a-language-model", "zoo", lambda w: ["export", "--ckpt", w.ckpt, "--format", "hf", str(w.root / "e")],
         ("language models",)),
    Case("ckpt-missing", "zoo", lambda w: ["export", "--ckpt", str(w.root / "no.ckpt"), "--format", "onnx", str(w.root / "e")],
         ("not found",)),
]

SWEEP = [
    Case("file-missing", "zoo", lambda w: ["sweep", str(w.root / "none.yaml"), "--dir", str(w.root / "sweeps")],
         ("none.yaml",)),
    Case("yaml-broken", "zoo", lambda w: sweep_file(w, "method: [grid\n")),
    Case("not-a-mapping", "zoo", lambda w: sweep_file(w, "- grid\n")),
    Case("distribution-normal", "zoo", lambda w: sweep_file(w, GOOD_SWEEP.replace("grid", "random").replace(
        "{values: [0.01]}", "{distribution: normal, mu: 0.01, sigma: 0.001}")), ("normal",)),
    Case("method-unknown", "zoo", lambda w: sweep_file(w, GOOD_SWEEP.replace("grid", "grids"))),
    Case("key-unknown", "zoo", lambda w: sweep_file(w, GOOD_SWEEP + "paramters: {}\n")),
    Case("metric-missing", "zoo", lambda w: sweep_file(w, GOOD_SWEEP.replace("metric: {name: val/acc, goal: maximize}\n",
                                                                             ""))),
    Case("goal-unknown", "zoo", lambda w: sweep_file(w, GOOD_SWEEP.replace("maximize", "sideways"))),
    Case("parameters-empty", "zoo", lambda w: sweep_file(w, GOOD_SWEEP.split("parameters")[0] + "parameters: {}\n")),
]

def busy_port(w: Workspace) -> list[str]:
    """Listen on a free port for the length of the case; return `zoo serve` asked to use it."""
    import socket

    w.listener = socket.socket()
    w.listener.bind(("127.0.0.1", 0))
    w.listener.listen()
    return ["serve", "mlp-iris", "--port", str(w.listener.getsockname()[1])]


SERVE = [  # refused before a model loads or Gradio starts, or before the page is served
    Case("unknown-name", "zoo", lambda w: ["serve", "cnn-digitz"], ("Did you mean 'cnn-digits'",)),
    Case("ckpt-missing", "zoo", lambda w: ["serve", str(w.root / "no.ckpt")], ("Checkpoint not found",)),
    Case("ckpt-random-bytes", "zoo", lambda w: ["serve", w.file("r.ckpt", RANDOM_BYTES)], ("Cannot read checkpoint",)),
    Case("pickle-payload", "zoo", lambda w: ["serve", w.file("evil.ckpt", w.payload())], ("Refused to load",)),
    Case("second-model-missing", "zoo", lambda w: ["serve", "mlp-iris", str(w.root / "no.ckpt")],
         ("Checkpoint not found",)),
    Case("port-out-of-range", "zoo", lambda w: ["serve", "--port", "70000"], ("--port must be between 1 and 65535",)),
    Case("port-in-use", "zoo", busy_port, ("Address already in use", "pick another --port")),
    Case("host-unknown", "zoo", lambda w: ["serve", "--host", "no-such-host.invalid"], ("Cannot serve on",)),
]

BOUNDARY = [
    Case("info-unknown", "zoo", lambda w: ["info", "cnnn"], ("Did you mean 'cnn'",)),
    Case("baseline-unknown-data", "zoo", lambda w: ["baseline", "--data", "digitz"], ("Did you mean 'digits'",)),
    Case("unexpected-exception", "zoo", broken_listing, ("Unexpected RuntimeError", "--debug"), code=1),
]

GROUPS = {"config": CONFIG, "files": FILES, "predict": PREDICT, "checkpoint": CHECKPOINTS, "resume": RESUME,
          "sample": SAMPLE, "export": EXPORT, "sweep": SWEEP, "serve": SERVE, "boundary": BOUNDARY}
CASES = [pytest.param(c, id=f"{group}-{c.id}") for group, cases in GROUPS.items() for c in cases]


def test_the_corpus_is_large():
    assert len(CASES) >= 100, len(CASES)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_loses_nothing(case, world, tmp_path, monkeypatch, capsys):
    if case.gpu_free and HAS_GPU:
        pytest.skip("this case needs a machine without a GPU")
    from zoo.cli.main import main as zoo_main
    from zoo.fit import main as fit_main

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    w = Workspace(world, tmp_path, monkeypatch)
    argv = case.args(w)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = (fit_main if case.command == "fit" else zoo_main)(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == case.code, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in case.fragments:
        assert fragment in lines[0], lines[0]
    assert snapshot(tmp_path) == before, "a failed command changed or left files"
    assert not w.marker.exists(), "a pickled payload ran"


# -- the real process -------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_GPU, reason="needs a machine without a GPU")
def test_the_real_command_prints_one_line(tmp_path):
    """In a real process too: Lightning's start-up lines come only with a Trainer, after every check."""
    proc = run_cli("zoo.fit", *IRIS, f"run.dir={tmp_path}", "trainer.accelerator=gpu", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: Invalid trainer settings") and not list(tmp_path.iterdir())


def test_debug_shows_the_traceback(tmp_path):
    from zoo.errors import ConfigError
    from zoo.fit import main

    with pytest.raises(ConfigError, match="max_epochs"):
        main([*IRIS, f"run.dir={tmp_path}", "trainer.max_epochs=-5", "--debug"])


def test_keyboard_interrupt_is_one_word_and_code_130(monkeypatch, capsys):
    import zoo.cli.listing
    from zoo.cli.main import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo.cli.listing, "listing", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(KeyboardInterrupt):  # --debug: the exception itself, with its traceback
        main(["list", "--debug"])


# -- what is not a refusal ---------------------------------------------------------------------------


def poison_when_lr_above(monkeypatch, lr: float, step: int) -> None:
    """Make the MLP's loss NaN from `step` on while its optimizer's learning rate is above `lr`."""
    from zoo.models.mlp import MLP

    forward = MLP.forward

    def poisoned(self, x):
        out = forward(self, x)
        high = self.trainer.optimizers[0].param_groups[0]["lr"] > lr
        return out * float("nan") if self.training and high and self.trainer.global_step >= step else out

    monkeypatch.setattr(MLP, "forward", poisoned)


def test_a_diverged_run_continues_with_the_advised_lower_lr(tmp_path, monkeypatch, capsys):
    """The NaN message advises a resume with a lower optim.lr; the resume applies it to the restored
    optimizer, so the run continues where the old lr diverged, and config.yaml tells the truth."""
    from zoo.fit import main

    poison_when_lr_above(monkeypatch, 0.005, 8)  # epoch 1 of 6 steps each
    assert main([*IRIS, "optim.lr=0.01", "trainer.max_epochs=3", f"run.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (Lightning's own start-up lines may come first)
    assert err.startswith("error: Non-finite loss (nan) at epoch 1, step 8: training stopped (last good checkpoint:")
    command = re.search(r"zoo fit (--resume \S+ optim\.lr=\S+)", err).group(1).split()
    assert command[-1] == "optim.lr=0.001", err

    assert main(command) == 0, capsys.readouterr().err
    run_dir = Path(command[1])
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 18 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert [g["lr"] for g in last["optimizer_states"][0]["param_groups"]] == [0.001, 0.001]
    assert "lr: 0.001" in (run_dir / "config.yaml").read_text()


def test_resume_applies_a_new_lr_to_the_schedule_it_continues(tmp_path):
    """With a schedule, the resumed run's lr is the one a run started with the new lr has at that step."""
    from zoo.fit import fit as run
    from zoo.fit import resolve

    schedule = ["optim.scheduler.name=linear", "optim.scheduler.min_lr_ratio=0.5"]
    run_dir = Path(fit([*IRIS, *schedule, "optim.lr=0.01", "trainer.max_epochs=2", f"run.dir={tmp_path}"])["run_dir"])
    cfg, resumed = resolve([], ["optim.lr=0.004", "trainer.max_epochs=3"], resume=str(run_dir))
    run(cfg, resumed)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 18  # the linear decay ends at 0.5 x lr on the last of 18 steps
    assert [g["lr"] for g in last["optimizer_states"][0]["param_groups"]] == pytest.approx([0.002, 0.002])
    assert last["lr_schedulers"][0]["base_lrs"] == pytest.approx([0.004, 0.004])


def test_every_checkpoint_is_read_weights_only(world, tmp_path, monkeypatch, capsys):
    """Lightning's own loads in fit (the resume) and test (best.ckpt) pass weights_only=True, so an
    environment that flips torch's default (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD) cannot make them unpickle code."""
    from zoo.fit import main

    run_dir = tmp_path / world["run"].name
    shutil.copytree(world["run"], run_dir)
    loads = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("weights_only")) or load(*a, **k))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    assert main(["--resume", str(run_dir), "trainer.max_epochs=3"]) == 0, capsys.readouterr().err
    assert len(loads) >= 3 and all(w is True for w in loads), loads  # zoo's check, the resume, the test


def test_a_run_stopped_mid_epoch_reports_its_final_weights(tmp_path, capsys):
    """max_steps=9 ends inside epoch 1 (6 steps an epoch): the final weights are validated, best.ckpt and
    the table come from them, and the table says which step it reports."""
    import lightning as L

    from zoo.fit import main
    from zoo.hub.pretrained import load_with_config
    from zoo.training.config import datamodule_for

    assert main([*IRIS, "trainer.max_steps=9", "trainer.max_epochs=-1", f"run.dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    results = json.loads(next(tmp_path.glob("iris_mlp/*/results.json")).read_text())
    ckpts = Path(results["run_dir"]) / "checkpoints"
    model, cfg = load_with_config(ckpts / "last.ckpt")
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 9
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
    final = trainer.validate(model, datamodule=datamodule_for(cfg, []), verbose=False)[0]
    assert final["val/loss"] == pytest.approx(results["val"]["val/loss"], rel=1e-5), "val describes an older state"
    assert torch.load(ckpts / "best.ckpt", weights_only=True)["global_step"] == 9, \
        "the final weights are the best here (early training: the loss still falls)"
    assert results["val_step"] == results["best_step"] == 9 and "val at step 9, test on best.ckpt (step 9)" in out


def test_two_urls_with_the_same_file_name_never_share_a_cache_file(tmp_path):
    from zoo.data.text import TextFile

    texts = []
    for name in ("a", "b"):
        src = tmp_path / name / "input.txt"
        src.parent.mkdir()
        src.write_text(f"text from {name} " * 50)
        dm = TextFile(url=src.as_uri(), block_size=8)
        with pytest.warns(UserWarning, match="not verified"):
            dm.prepare_data()
        texts.append(dm.documents()[0])
    assert texts[0].startswith("text from a") and texts[1].startswith("text from b")
    pinned = TextFile(url=(tmp_path / "a" / "input.txt").as_uri(), sha256=hashlib.sha256(texts[0].encode()).hexdigest())
    assert pinned.download_path().name.startswith(pinned.sha256[:16])  # keyed by the content it must have


def test_a_corrupt_cache_entry_is_made_again(tmp_path):
    """Judges, downloads and weights share one rule: a cached file that fails its digest is made again."""
    from types import SimpleNamespace

    from zoo.data.download import cache_dir
    from zoo.evaluation.quality import judge_for
    from zoo.spec import DataSpec

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 1, 8, 8, generator=g), torch.arange(16) % 2
    spec = DataSpec(modality="image", task="classification", input_shape=(1, 8, 8), num_classes=2)
    data = SimpleNamespace(spec=spec, split=lambda name: (x, y))
    judge = judge_for(data)
    (path,) = (cache_dir() / "judges").glob("*.pt")
    probs = judge.classify(x)
    path.write_bytes(path.read_bytes()[:100])  # a truncated file, as a killed writer or a full disk leaves
    with pytest.warns(UserWarning, match="corrupt"):
        again = judge_for(data)
    assert torch.allclose(again.classify(x), probs)  # trained again, deterministically
    assert torch.allclose(judge_for(data).classify(x), probs)  # and the healed file now loads


def test_values_from_the_environment_are_saved_as_written(tmp_path, monkeypatch):
    """config.yaml, the loggers and the checkpoints keep ${oc.env:...}; a resume reads the environment again."""
    from zoo.fit import main

    private = tmp_path / "private-runs"
    monkeypatch.setenv("ZOO_TEST_RUNS", str(private))
    assert main([*IRIS, "trainer.max_epochs=1", "run.dir=${oc.env:ZOO_TEST_RUNS}"]) == 0
    (run_dir,) = private.glob("iris_mlp/*")
    for text in ((run_dir / "config.yaml").read_text(), (run_dir / "hparams.yaml").read_text(),
                 json.dumps(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["zoo"]["config"])):
        assert "${oc.env:ZOO_TEST_RUNS}" in text and str(private) not in text
    assert main(["--resume", str(run_dir), "trainer.max_epochs=2"]) == 0


def test_checkpoints_are_as_readable_as_the_other_run_files(world):
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    for name in ("best.ckpt", "last.ckpt"):
        assert mode(world["run"] / "checkpoints" / name) == mode(world["run"] / "config.yaml"), name


def test_non_finite_table_values_are_refused():
    import numpy as np

    from zoo.data.base import ArrayDataModule
    from zoo.errors import ConfigError

    class Holes(ArrayDataModule):
        registry_name = "holes"

        def load_arrays(self):
            x = np.ones((20, 3))
            x[7, 1] = np.nan
            return x, np.arange(20) % 2, {}

    with pytest.raises(ConfigError, match="data 'holes': 1 of 20 rows have NaN or infinite features \\(the first is row 7\\)"):
        Holes().setup()


def test_every_model_declares_a_monitor_it_logs():
    """The default monitor of every model is among the metrics it declares (the matrix checks they are logged)."""
    from zoo.registry import DATA, MODELS, data_kinds

    for m in MODELS.names():
        cls = MODELS.get(m)
        for d, kind in [(name, kind) for name in DATA.names() for kind in data_kinds(name)]:
            if cls.supports_data(*kind):
                declared = cls.epoch_metrics(*kind)
                assert declared and all(mode in ("min", "max") for mode in declared.values()), (m, d)
                assert any(k.startswith("val/") for k in declared), (m, d)


def test_csv_reader_keeps_quoted_newlines(tmp_path):
    from zoo.data.text_csv import read_rows

    path = tmp_path / "r.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], ["two\nlines", "pos"], ["one", "neg"]])
    assert read_rows(path, ("text", "label")) == [["two\nlines", "pos"], ["one", "neg"]]


