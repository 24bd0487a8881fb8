"""`zoo tune`: Lightning's batch-size and learning-rate finders on embedded data (iris), and the
config they write, which validates and trains."""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image

from tests.conftest import ROOT
from zoo.cli.main import main
from zoo.fit import fit, resolve
from zoo.registry import DATA

EXP = ROOT / "configs" / "experiment"
QUIET = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


def test_tune_finds_batch_size_and_lr_and_writes_a_config_that_trains(tmp_path, capsys):
    out = tmp_path / "iris_tuned.yaml"
    code = main(["tune", "--config", str(EXP / "iris_mlp.yaml"), "--lr", "--batch-size", "--write", str(out),
                 "--lr-steps", "40", "--min-lr", "1e-5", "--max-lr", "1", f"run.dir={tmp_path / 'runs'}", *QUIET])
    printed = capsys.readouterr().out
    assert code == 0, printed
    (run_dir,) = (tmp_path / "runs" / "iris_mlp").iterdir()
    found = json.loads((run_dir / "tune.json").read_text())
    lr, bs = found["lr"]["value"], found["batch_size"]["value"]
    assert math.isfinite(lr) and 1e-5 <= lr <= 1, lr  # inside the searched range
    assert found["lr"]["steps"] > 10 and lr in found["lr"]["curve"]["lr"]  # a point of the curve that was measured
    iris = DATA.build("iris")
    iris.prepare_data()
    assert bs == len(iris.split("train")[0]) and "train split" in found["batch_size"]["why"]  # a CPU never runs out
    assert Image.open(run_dir / "lr_find.png").size[0] >= 400
    assert f"learning rate: {lr:.3g}" in printed and f"batch size: {bs}" in printed

    cfg, _ = resolve([str(out)], [f"run.dir={tmp_path / 'runs'}", "trainer.max_epochs=2", *QUIET])
    assert cfg["optim"]["lr"] == float(f"{lr:.3g}") and cfg["data"]["batch_size"] == bs
    assert cfg["model"] == resolve([str(EXP / "iris_mlp.yaml")], [])[0]["model"]  # only the tuned keys changed
    results = fit(cfg)
    assert Path(results["best_ckpt"]).is_file() and results["test"]["test/acc"] > 0


def test_tune_on_a_cpu_keeps_the_batch_size_unless_asked(tmp_path, capsys):
    assert main(["tune", "--config", str(EXP / "iris_mlp.yaml"), "--lr-steps", "20", f"run.dir={tmp_path}", *QUIET]) == 0
    assert "batch size: kept 16" in capsys.readouterr().out
    (run_dir,) = (tmp_path / "iris_mlp").iterdir()
    assert set(json.loads((run_dir / "tune.json").read_text())) == {"lr"}


def test_tune_refuses_manual_optimization_in_one_line(tmp_path, capsys):
    code = main(["tune", "--config", str(EXP / "digits_gan.yaml"), "--lr", f"run.dir={tmp_path}", *QUIET])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "manual optimization" in err and len(err.splitlines()) == 1
    assert main(["tune", "--config", str(EXP / "iris_mlp.yaml"), "--min-lr", "1", "--max-lr", "0.1"]) == 2
    assert "--min-lr must be above 0 and below --max-lr" in capsys.readouterr().err
