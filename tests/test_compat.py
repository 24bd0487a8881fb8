"""Runs and checkpoints written before the package split (tests/fixtures/pre_move/) still load, predict,
generate, test and resume exactly as they did."""

from __future__ import annotations

import csv
import json
import shutil

import torch

from tests.conftest import ROOT, run_cli

FIXTURES = ROOT / "tests" / "fixtures" / "pre_move"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def test_old_checkpoints_load_and_give_the_same_outputs():
    import zoo

    lm, want = zoo.load(FIXTURES / "names_transformer.ckpt"), EXPECTED["names_transformer"]
    texts = lm.generate(want["prompt"], n=want["n"], max_new_tokens=want["max_new_tokens"], seed=want["seed"])
    assert texts == want["texts"]
    mlp, want = zoo.load(FIXTURES / "iris_mlp_run" / "checkpoints" / "last.ckpt"), EXPECTED["iris_mlp"]
    probs = mlp.predict_step(torch.tensor(want["inputs"]))
    torch.testing.assert_close(probs, torch.tensor(want["probs"]))


def test_old_run_tests_and_resumes(tmp_path):
    run_dir = tmp_path / "iris_mlp_run"
    shutil.copytree(FIXTURES / "iris_mlp_run", run_dir)
    (run_dir / "checkpoints" / "best.ckpt").hardlink_to(run_dir / "checkpoints" / "last.ckpt")
    results = json.loads((run_dir / "results.json").read_text())

    proc = run_cli("zoo", "test", "--ckpt", str(run_dir / "checkpoints" / "last.ckpt"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = dict(line.split() for line in proc.stdout.splitlines() if line.startswith("test/"))
    assert abs(float(shown["test/acc"]) - results["test"]["test/acc"]) < 1e-4, proc.stdout

    rows_before = len(list(csv.DictReader(open(run_dir / "metrics.csv"))))
    proc = run_cli("zoo.fit", "--resume", str(run_dir), "trainer.max_epochs=22")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 21 and ckpt["zoo"]["model"] == "mlp"
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) > rows_before and {r["epoch"] for r in rows if r["epoch"]} >= {"20", "21"}
