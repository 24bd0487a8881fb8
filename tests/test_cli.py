"""The user's path: `python -m zoo.fit` and the `zoo` CLI in subprocesses."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

EXP = ROOT / "configs" / "experiment"
QUIET = ["trainer.enable_progress_bar=false"]


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, one line on stderr that starts with 'error:', names the problem, and no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err[-2000:])
    assert "Traceback" not in err, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


BAD_CONFIGS = [
    (["--config", "configs/experiment/nope.yaml"], ["Config file not found"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "trainr.max_epochs=3"], ["Unknown key 'trainr'", "Did you mean 'trainer'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "model.name=cnnn"], ["Unknown model 'cnnn'", "Did you mean 'cnn'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "data.name=digitz"], ["Unknown data 'digitz'", "Did you mean 'digits'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "model.chanels=[8]"], ["model.chanels", "Did you mean 'channels'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "model.dropout=lots"], ["Invalid value for 'model.dropout'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "seed=abc"], ["Invalid value for 'seed'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "optim.name=adamm"], ["Unknown optimizer 'adamm'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "trainer.max_epoch=1"], ["Did you mean 'max_epochs'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "trainer.accelerator=tpuu"], ["Invalid trainer settings"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "logger.name=wandbb"], ["Unknown logger 'wandbb'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "trainer.max_epochs"], ["not of the form key=value"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "model.activation=rellu"], ["Unknown activation 'rellu'"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "data.batch_size=0"], ["'data.batch_size': must be >= 1, got 0 (data 'digits')"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "optim.lr=-1"], ["Invalid value for 'optim.lr': must be > 0"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "model.channels=[8,-1]"], ["'model.channels': each item must be >= 1"]),
    (["--config", str(EXP / "digits_cnn.yaml"), "model.channels=[]"], ["Invalid value for 'model.channels': needs at least 1 item, got []"]),
    (["--resume", "/nonexistent/run"], ["Cannot resume"]),
    ([], ["Nothing to train"]),
]


@pytest.mark.parametrize("args,fragments", BAD_CONFIGS, ids=[" ".join(a[-1:]) or "empty" for a, _ in BAD_CONFIGS])
def test_bad_config_exits_2_with_one_line(args, fragments, tmp_path):
    extra = ["run.dir=" + str(tmp_path)] if args else []
    assert_user_error(run_cli("zoo.fit", *args, *extra, cwd=tmp_path), *fragments)
    assert not list(tmp_path.glob("*/*/config.yaml")), "a failed config must not leave a run dir"


def test_broken_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    assert_user_error(run_cli("zoo.fit", "--config", str(bad)), "Cannot read config")


def test_help_does_not_import_torch():
    code = "import sys; from zoo.cli.main import build_parser; build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    proc = run_cli("zoo", "--help")
    assert proc.returncode == 0 and "fit" in proc.stdout and "baseline" in proc.stdout
    proc = run_cli("zoo", "frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_print_config(tmp_path):
    proc = run_cli("zoo.fit", "--config", str(EXP / "iris_mlp.yaml"), "--print-config", "optim.lr=0.5")
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.5" in proc.stdout and "name: iris_mlp" in proc.stdout and "hidden:" in proc.stdout


def test_list_and_info(capsys):
    from zoo.cli import main
    from zoo.registry import DATA, MODELS

    proc = run_cli("zoo", "list", "models", "c*")  # the console path once; the rest in-process
    assert proc.returncode == 0, proc.stderr
    assert "cnn" in proc.stdout and "mlp" not in proc.stdout

    def zoo(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = zoo("list", "data")
    assert code == 0 and all(name in out for name in DATA.names())
    code, out, _ = zoo("list")
    assert all(name in out for name in MODELS.names()) and "pretrained:" in out
    code, out, _ = zoo("info", "cnn")
    assert code == 0 and "channels: list[int >= 1] (at least 1 item) = [32, 64]" in out and "compatible data" in out
    code, out, _ = zoo("info", "digits")
    assert code == 0 and "compatible models" in out and "batch_size" in out
    code, _, err = zoo("info", "cnnn")
    assert code == 2 and "Did you mean 'cnn'" in err


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """One short iris training shared by the checkpoint tests."""
    runs = tmp_path_factory.mktemp("runs")
    proc = run_cli("zoo.fit", "--config", str(EXP / "iris_mlp.yaml"), f"run.dir={runs}", "trainer.max_epochs=5", *QUIET)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (runs / "iris_mlp").iterdir()
    return run_dir


def test_run_dir_layout(iris_run):
    for name in ("config.yaml", "metrics.csv", "results.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (iris_run / name).is_file(), name
    results = json.loads((iris_run / "results.json").read_text())
    assert set(results["test"]) >= {"test/acc", "test/loss", "test/f1", "test/precision", "test/recall"}
    assert not list(iris_run.glob("checkpoints/*.tmp")), "a temporary checkpoint file was left behind"


def test_zoo_test_and_predict(iris_run, tmp_path):
    ckpt = iris_run / "checkpoints" / "best.ckpt"
    proc = run_cli("zoo", "test", "--ckpt", str(ckpt))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((iris_run / "results.json").read_text())
    printed = dict(line.split() for line in proc.stdout.strip().splitlines())
    assert abs(float(printed["test/acc"]) - results["test"]["test/acc"]) < 1e-4  # same split, same number

    rows = tmp_path / "flowers.csv"
    rows.write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    out = tmp_path / "pred.csv"
    proc = run_cli("zoo", "predict", "--ckpt", str(ckpt), str(rows), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    pred = list(csv.DictReader(out.open()))
    assert [r["prediction"] for r in pred] == ["setosa", "virginica"]
    assert abs(sum(float(v) for k, v in pred[0].items() if k.startswith("p_")) - 1) < 1e-3

    rows.write_text("1,2,3\n")
    assert_user_error(run_cli("zoo", "predict", "--ckpt", str(ckpt), str(rows)), "expected 4 values")


def test_corrupt_checkpoint(iris_run, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes((iris_run / "checkpoints" / "best.ckpt").read_bytes()[:1000])
    assert_user_error(run_cli("zoo", "test", "--ckpt", str(bad)), "corrupt")
    assert_user_error(run_cli("zoo", "test", "--ckpt", str(tmp_path / "missing.ckpt")), "not found")


def test_predict_images(tmp_path):
    """`zoo predict` on PNG files: the digits model reads, converts and resizes them itself."""
    from PIL import Image

    from zoo.data.images import Digits
    from zoo.fit import fit
    from zoo.training.config import validate

    cfg = validate({"model": {"name": "cnn", "channels": [8, 16]}, "data": {"name": "digits"}, "optim": {"lr": 3e-3},
                    "trainer": {"max_epochs": 8, "enable_progress_bar": False}, "logger": False,
                    "run": {"dir": str(tmp_path), "name": "digits"}})
    ckpt = fit(cfg)["best_ckpt"]
    x, y = Digits().split("test")
    paths = []
    for i in range(4):  # 32x32 RGB files, as a user would draw them
        img = Image.fromarray((x[i, 0].numpy() * 255).astype("uint8")).resize((32, 32)).convert("RGB")
        paths.append(tmp_path / f"digit{i}_{int(y[i])}.png")
        img.save(paths[-1])
    proc = run_cli("zoo", "predict", "--ckpt", ckpt, *map(str, paths))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(proc.stdout.splitlines()))
    hits = sum(r["prediction"] == Path(r["input"]).stem.split("_")[1] for r in rows)
    assert hits >= 3, rows
