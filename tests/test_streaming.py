"""`zoo prepare` and `streaming`: any dataset as litdata shards, trained from a folder (or a URL), with
DDP ranks reading disjoint samples and an exact resume after a kill mid-epoch."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from tests.conftest import FAST_TRAINER, ROOT, run_cli
from zoo.registry import DATA, data_kind

IRIS = ["--config", str(ROOT / "configs" / "experiment" / "iris_mlp.yaml"), "data.name=streaming",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Iris written as shards by the command, as a user would."""
    from zoo.cli.main import main

    out = tmp_path_factory.mktemp("shards") / "iris"
    assert main(["prepare", "--data", "iris", "--out", str(out)]) == 0
    return out


def test_shards_hold_the_source_splits_and_spec(shards, tmp_path, capsys):
    from zoo.cli.main import main

    source, streamed = DATA.build("iris"), DATA.build("streaming", path=str(shards))
    assert streamed.spec == source.spec
    assert data_kind("streaming", {"path": str(shards)}) == ("tabular", "classification")
    for split in ("train", "val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(streamed.split(split), source.split(split)))
    _, y = next(iter(streamed._loader("train", shuffle=True)))
    assert len(set(y.tolist())) == 3, "a batch mixes the classes, although iris stores them in blocks"
    # the same shards through litdata's remote path (a `local:` URL is fetched into a cache, as s3:// would be)
    remote = DATA.build("streaming", path=f"local:{shards}", cache_dir=str(tmp_path / "cache"))
    assert remote.spec == source.spec and torch.equal(remote.split("test")[0], source.split("test")[0])
    assert list((tmp_path / "cache" / "test").rglob("chunk-*.bin")), "chunks are fetched into the cache"

    capsys.readouterr()
    assert main(["prepare", "--data", "iris", "--out", str(shards)]) == 2  # never over a good folder by accident
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists and is not empty" in err[0]
    assert main(["prepare", "--data", "iris", "--out", str(shards), "--overwrite", "data.seed=1"]) == 0
    assert json.loads((shards / "zoo.json").read_text())["source"]["seed"] == 1
    assert not list(shards.parent.glob(".iris.tmp-*")), "the temporary folder is gone"
    assert main(["prepare", "--data", "iris", "--out", str(shards), "--overwrite"]) == 0


def test_prepare_then_train_round_trip(shards, tmp_path, capsys):
    from zoo.cli.main import main
    from zoo.fit import fit, resolve

    cfg, _ = resolve([IRIS[1]], [*IRIS[2:], f"data.path={shards}", f"run.dir={tmp_path}", "logger=false"])
    cfg["trainer"].update(FAST_TRAINER)
    results = fit(cfg)
    assert results["test"]["test/acc"] >= 0.85, results["test"]
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("zoo: fast path")]
    assert said == ["zoo: fast path off: the train loader (ZooStreamingLoader) streams its data; the fast path is "
                    "for data in memory"]  # streamed batches keep Lightning's loop, and the run says why
    assert main(["test", "--ckpt", results["best_ckpt"]]) == 0  # the checkpoint's config finds the shards again
    printed = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    assert abs(float(printed["test/acc"]) - results["test"]["test/acc"]) < 1e-4

    assert main(["fit", *IRIS, f"data.path={tmp_path / 'nowhere'}", f"run.dir={tmp_path}"]) == 2
    assert "No zoo shards at" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_ranks_read_disjoint_samples(shards, tmp_path):
    """2 gloo processes (Lightning relaunches the module): each epoch, the ranks train on disjoint sample ids."""
    ids = tmp_path / "ids"
    proc = run_cli("tests.ids_runner", str(ids), "--", *IRIS, f"data.path={shards}", f"run.dir={tmp_path}",
                   "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=2", "logger=false",
                   env={"MASTER_PORT": str(30500 + os.getpid() % 1000)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = {}
    for rank in (0, 1):
        for line in (ids / f"rank{rank}.jsonl").read_text().splitlines():
            row = json.loads(line)
            seen.setdefault((rank, row["epoch"]), []).extend(row["ids"])
    n_train = json.loads((shards / "zoo.json").read_text())["sizes"]["train"]
    for epoch in (1, 2):
        a, b = seen[0, epoch], seen[1, epoch]
        assert len(a) == len(b) == len(set(a)) == len(set(b)) > 0  # equal work, no repeats within a rank
        assert not set(a) & set(b), f"epoch {epoch}: ranks share samples"
        assert set(a) | set(b) <= set(range(n_train))
    assert seen[0, 1] != seen[0, 2], "each epoch is shuffled anew"


@pytest.mark.slow
def test_killed_run_resumes_exactly(shards, tmp_path):
    """SIGKILL before step 10 (last.ckpt from step 8, in epoch 1 of 6-step epochs); the resume matches an
    uninterrupted run bit for bit."""
    from zoo.fit import fit, resolve

    args = [*IRIS[2:], f"data.path={shards}", "trainer.devices=1", "trainer.max_epochs=3", "trainer.deterministic=true",
            "callbacks.checkpoint.every_n_train_steps=4", "logger=csv"]
    cfg, _ = resolve([IRIS[1]], [*args, f"run.dir={tmp_path / 'reference'}"])
    fit(cfg)
    proc = run_cli("tests.kill_runner", "step=10", "--", *IRIS[:2], *args, f"run.dir={tmp_path / 'killed'}")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "killed" / "iris_mlp").iterdir()
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    cfg, resume_dir = resolve([], [], resume=str(run_dir))
    fit(cfg, resume_dir)
    (ref_dir,) = (tmp_path / "reference" / "iris_mlp").iterdir()
    ref = torch.load(ref_dir / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["global_step"] == ref["global_step"] == 18
    for key, value in ref["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), f"{key} differs from the uninterrupted run"
