"""Kill safety and exact resume: SIGKILL a run at three points, resume it, compare with an uninterrupted run.

Iris, batch 16 -> 6 training steps per epoch, 3 epochs, last.ckpt after each epoch and every 4 steps.
"""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli
from tests.wandb_reader import finished_run, run_files
from zoo.fit import fit, resolve
from zoo.hub.pretrained import read_checkpoint

ARGS = ["--config", "configs/experiment/iris_mlp.yaml", "trainer.max_epochs=3", "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.deterministic=true",
        "callbacks.checkpoint.every_n_train_steps=4", "logger=[{name: csv}, {name: wandb}]"]


def run_dir_under(root: Path) -> Path:
    (run_dir,) = root.glob("iris_mlp/*")
    return run_dir


def csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def wandb_rows(path: Path) -> list[tuple]:
    """Return (W&B step, trainer step, metric names and values) per history row of one run file."""
    return [(r["_step"], r.get("trainer/global_step"),
             sorted((k, v) for k, v in r.items() if k not in ("_runtime", "_timestamp", "_step")))
            for r in finished_run(path).history]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in-process."""
    tmp = tmp_path_factory.mktemp("reference")
    mp = pytest.MonkeyPatch()
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        mp.setenv(var, str(tmp / var.lower()))
    mp.setenv("WANDB_MODE", "offline")
    try:
        cfg, _ = resolve(ARGS[1:2], [*ARGS[2:], f"run.dir={tmp}"])
        fit(cfg)
    finally:
        mp.undo()
    return run_dir_under(tmp)


# (where the kill happens, the global step of the last.ckpt the resume starts from)
KILLS = [
    # inside the 5th file write (last.ckpt at step 16; epoch ends 6 and 18 write best.ckpt and link last.ckpt
    # to it): the temp file is written, not renamed; the resume starts from epoch 1's linked last.ckpt
    pytest.param("save=5", 12, id="in-save"),
    # killed inside a fast-path chunk (steps 6-7 of epoch 1 are one Lightning loop iteration); resume at the epoch start
    pytest.param("step=7 inside=1", 6, id="after-epoch", marks=pytest.mark.slow),
    pytest.param("val_epoch=2", 16, id="in-val", marks=pytest.mark.slow),  # resume mid-epoch from step 16
]


@pytest.mark.parametrize("point,resumed_from", KILLS)
def test_killed_run_resumes_exactly(point, resumed_from, reference, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_SERVICE", raising=False)  # the child must not share this process's W&B service
    proc = run_cli("tests.kill_runner", *point.split(), "--", *ARGS, f"run.dir={tmp_path}")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_dir = run_dir_under(tmp_path)
    ckpt_dir = run_dir / "checkpoints"
    if point.startswith("save"):
        assert list(ckpt_dir.glob(".last.ckpt.*.tmp")), "the kill came while the temp file was being written"
    last = read_checkpoint(ckpt_dir / "last.ckpt")  # still a complete, loadable checkpoint
    assert last["global_step"] == resumed_from

    cfg, resume_dir = resolve([], [], resume=str(run_dir))
    results = fit(cfg, resume_dir)
    assert not list(ckpt_dir.glob(".*.tmp")), "the resume cleans up the unfinished save"

    ref = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert got["global_step"] == ref["global_step"] == 18
    for key, value in ref["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), f"{key} differs from the uninterrupted run"
    ref_adam, got_adam = ref["optimizer_states"][0]["state"], got["optimizer_states"][0]["state"]
    assert all(torch.equal(ref_adam[i]["exp_avg_sq"], got_adam[i]["exp_avg_sq"]) for i in ref_adam)
    assert results["test"] == _results(reference)

    # CSV: the same rows at the same steps, none missing or repeated. Epoch-level train metrics of an
    # epoch cut in the middle cover only the batches after the resume, so compare their steps only.
    ref_rows, got_rows = csv_rows(reference), csv_rows(run_dir)
    assert [(r["step"], r["epoch"]) for r in got_rows] == [(r["step"], r["epoch"]) for r in ref_rows]
    cut_epoch = str(resumed_from // 6) if resumed_from % 6 else None
    for r, g in zip(ref_rows, got_rows):
        if not (r["train/loss"] and r["epoch"] == cut_epoch):
            assert g == r

    # W&B: the resumed process continues the same run id at the checkpoint's W&B step, and logs exactly
    # the rows the uninterrupted run logged from there on (the killed process's buffered rows are lost).
    (ref_file,), files = run_files(reference / "wandb"), run_files(run_dir / "wandb")
    assert len(files) == 2 and len({f.name for f in files}) == 1, files  # two segments, one run id
    ref_hist, resumed = wandb_rows(ref_file), wandb_rows(files[-1])
    first = resumed[0][0]
    assert [row[:2] for row in resumed] == [row[:2] for row in ref_hist[first:]]
    assert [row[0] for row in ref_hist] == list(range(len(ref_hist)))


def _results(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "results.json").read_text())["test"]


def poison_mlp_from_step(monkeypatch, step: int) -> None:
    from zoo.models.mlp import MLP

    forward = MLP.forward

    def poisoned(self, x):  # the loss turns NaN from `step` on
        out = forward(self, x)
        return out * float("nan") if self.training and self.trainer.global_step >= step else out

    monkeypatch.setattr(MLP, "forward", poisoned)


def test_non_finite_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from zoo.fit import main

    poison_mlp_from_step(monkeypatch, 8)  # in epoch 1
    code = main([*ARGS[:-1], "logger=csv", f"run.dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: Non-finite loss (nan) at epoch 1, step 8: training stopped (last good checkpoint:")
    assert "Traceback" not in "\n".join(err)
    last = read_checkpoint(run_dir_under(tmp_path) / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 8
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_deferred_finite_check_never_saves_bad_weights(tmp_path, monkeypatch, capsys):
    """The accelerator mode (flag read every N steps) stops at the next save, before it writes."""
    from functools import partial

    import zoo.training.callbacks
    from zoo.fit import main

    monkeypatch.setattr(zoo.training.callbacks, "FiniteLoss", partial(zoo.training.callbacks.FiniteLoss, check_every=50))
    poison_mlp_from_step(monkeypatch, 9)  # the next save, every 4 steps, comes at step 12
    code = main([*ARGS[:-1], "logger=csv", f"run.dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: Non-finite loss at epoch 1, a step between 8 and 12: training stopped"), err[-1]
    last = read_checkpoint(run_dir_under(tmp_path) / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 8
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_every_strategy_saves_through_the_atomic_writer():
    import lightning as L

    from zoo.training.checkpoint import AtomicCheckpointIO

    for strategy, devices in (("auto", 1), ("ddp", 2), ("ddp_spawn", 2)):
        trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, plugins=[AtomicCheckpointIO()],
                            logger=False, enable_progress_bar=False)
        assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO), strategy
