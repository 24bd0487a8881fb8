"""The benchmark scripts still run end to end (tiny sizes; their figures are not checked here:
timings on a shared machine are noise, see the scripts' docstrings and docs for measured figures)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run_script(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_bench_overhead_prints_ratios_and_ends_with_a_json_line():
    out = run_script("scripts/bench_overhead.py", "--datasets", "digits", "--epochs", "1", "--repeats", "1",
                     "--batch-sizes", "256")
    for clock in ("wall", "cpu"):
        assert re.search(rf"digits batch 256 \({clock} time\): hand \d+\.\d+s  fast \d+\.\d+s  ordinary \d+\.\d+s  "
                         r"floor \d+\.\d+s", out), out
    assert re.search(r"fast/hand +median \d+\.\d+ \(min \d+\.\d+, max \d+\.\d+\)", out), out
    assert "zoo: fast path on:" in out and "zoo: fast path off: fast_path=off" in out, out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["repeats"] == {"digits": 1} and os.path.isdir(summary["files_in"])
    for clock in ("wall", "cpu"):
        assert set(summary["median_ratios"][clock]["digits"]["256"]) == {"fast/hand", "ordinary/hand", "floor/hand",
                                                                         "fast/floor", "ordinary/fast"}


def test_bench_overhead_refuses_a_missing_root_folder(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/bench_overhead.py", "--root", str(tmp_path / "absent")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no such folder" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_bench_lm_prints_tokens_per_second_and_ends_with_a_json_line():
    out = run_script("scripts/bench_lm.py", "--steps", "3", "--repeats", "1")
    assert re.search(r"median tokens/s: zoo [\d,]+  hand [\d,]+", out), out
    assert re.search(r"median ratio zoo/hand \(step time\): \d+\.\d+", out), out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["tokens_per_s"]["zoo"] > 0 and summary["zoo/hand"] > 0 and summary["mfu"] == {"zoo": None, "hand": None}


def test_bench_generative_prints_steps_per_second():
    out = run_script("scripts/bench_generative.py", "--steps", "2", "--warmup", "1", "--size", "12",
                     "--batch-size", "32", "--devices", "cpu")
    assert all(re.search(rf"{name}\s+\d+\.\d+", out) for name in ("gan", "vae", "diffusion")), out


def test_bench_vision_prints_images_per_second_ratio_and_json():
    out = run_script("scripts/bench_vision.py", "--n", "100", "--repeats", "1", "--warmup", "0", "--batch-size", "32",
                     "--device", "cpu")
    assert re.search(r"zoo\s+[\d,]+ images/s", out) and re.search(r"hand\s+[\d,]+ images/s", out), out
    assert re.search(r"ratio zoo/hand \(time\): median \d+\.\d+", out), out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["bench"] == "vision" and result["n"] == 100 and result["ratio_zoo_over_hand"] > 0
