"""Real trainings on embedded data that must reach real metrics, checkpoint round trips, and DDP."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tests.conftest import ROOT, run_cli

EXP = ROOT / "configs" / "experiment"
QUIET = ["trainer.enable_progress_bar=false"]


def train(experiment: str, tmp_path, *overrides: str, env: dict | None = None) -> dict:
    """Run `python -m zoo.fit` on an experiment in a subprocess; return its results.json."""
    proc = run_cli("zoo.fit", "--config", str(EXP / f"{experiment}.yaml"), f"run.dir={tmp_path}", *QUIET, *overrides,
                   env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run dir:" in proc.stdout
    (run_dir,) = (tmp_path / experiment).iterdir()
    for name in ("config.yaml", "metrics.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.slow
def test_digits_cnn_reaches_97(tmp_path):
    results = train("digits_cnn", tmp_path)
    assert results["test"]["test/acc"] >= 0.97, results["test"]


@pytest.mark.slow
def test_iris_mlp_reaches_90(tmp_path):
    results = train("iris_mlp", tmp_path)
    assert results["test"]["test/acc"] >= 0.9, results["test"]


@pytest.mark.slow
def test_diabetes_mlp_matches_linear_baseline(tmp_path):
    from zoo.evaluation.baseline import fit_baselines
    from zoo.registry import DATA

    results = train("diabetes_mlp", tmp_path)
    ridge = fit_baselines(DATA.build("diabetes"))["ridge_regression"]["test/r2"]  # same seed, same split
    r2 = results["test"]["test/r2"]
    assert r2 >= 0.3 and r2 >= ridge - 0.05, (r2, ridge)


def test_checkpoint_round_trip(tmp_path):
    """zoo.load rebuilds the model from the file alone and predicts exactly as the trained model."""
    import zoo
    from zoo.data.tables import Wine
    from zoo.fit import fit
    from zoo.models.mlp import MLP
    from zoo.training.config import validate

    cfg = validate({"model": {"name": "mlp", "hidden": [16]}, "data": {"name": "wine"},
                    "trainer": {"max_epochs": 2, "enable_progress_bar": False}, "logger": False,
                    "run": {"dir": str(tmp_path), "name": "wine"}})
    results = fit(cfg)
    path = results["best_ckpt"]
    raw = torch.load(path, weights_only=True)  # plain containers only
    assert raw["zoo"]["model"] == "mlp" and raw["zoo"]["config"]["data"]["name"] == "wine"
    assert isinstance(raw["hyper_parameters"]["spec"], dict)

    model = zoo.load(path)
    assert not model.training
    x, _ = Wine().split("test")
    lightning_model = MLP.load_from_checkpoint(path).eval()
    with torch.no_grad():
        assert torch.equal(model(x), lightning_model(x))
        probs = model.predict_step(x)
    assert torch.allclose(probs.sum(1), torch.ones(len(x)))


def train_ddp(tmp_path, fast_path: str, port: int) -> tuple[dict, dict, str]:
    """Train iris_mlp with `strategy=ddp` on 2 CPU processes over gloo, in a subprocess (Lightning relaunches
    the module); return each rank's final weights and counts (tests/rank_runner.py) and the run's stdout."""
    ranks, run = tmp_path / f"{fast_path}-ranks", tmp_path / fast_path
    ranks.mkdir()
    proc = run_cli("tests.rank_runner", str(ranks), "--", "--config", str(EXP / "iris_mlp.yaml"), f"run.dir={run}",
                   *QUIET, "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=3",
                   f"fast_path={fast_path}", env={"MASTER_PORT": str(port)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (torch.load(ranks / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    return rank0, rank1, proc.stdout


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """`strategy=ddp` with 2 gloo processes through the fast path: both ranks end with the same weights,
    the same as the ordinary loop's (fast_path=off) bit for bit, and share one run dir."""
    port = 29500 + os.getpid() % 1000
    rank0, rank1, out = train_ddp(tmp_path, "auto", port)
    assert "zoo: fast path on:" in out
    assert rank0["chunked_batches"] > 0 and rank1["chunked_batches"] == rank0["chunked_batches"]
    assert rank0["global_step"] == rank1["global_step"] == 9  # 3 epochs of 3 batches per rank
    ordinary, _, out = train_ddp(tmp_path, "off", port + 1)
    assert "zoo: fast path off: fast_path=off" in out and ordinary["chunked_batches"] == 0
    assert ordinary["global_step"] == 9
    for k, v in rank0["state_dict"].items():
        assert torch.equal(v, rank1["state_dict"][k]), f"{k} differs between the ranks"
        assert torch.equal(v, ordinary["state_dict"][k]), f"{k} differs from the ordinary loop's"
    import zoo

    (run_dir,) = (tmp_path / "auto" / "iris_mlp").iterdir()  # both ranks share one run dir
    results = json.loads((run_dir / "results.json").read_text())
    assert zoo.load(results["best_ckpt"]).spec.modality == "tabular"


def test_quiet_fit_prints_nothing_but_trains(tmp_path, capfd):
    """fit(cfg, verbose=False), for notebooks and library use: no progress bar, no Lightning or fast-path lines."""
    from zoo.fit import fit, resolve

    cfg, _ = resolve([str(EXP / "iris_mlp.yaml")], ["trainer.max_epochs=2", "logger=csv", f"run.dir={tmp_path}"])
    result = fit(cfg, verbose=False)
    out, err = capfd.readouterr()
    assert os.path.isfile(result["best_ckpt"]) and result["test"]["test/acc"] > 0
    for noise in ("GPU available", "fast path", "Epoch", "it/s", "Restoring states"):
        assert noise not in out + err, (noise, out, err)


def test_epoch_totals_sum_device_values_and_host_counts_once_an_epoch():
    """`Totals` adds each step's values in place (tensors in float64, batch sizes on the host) and hands the
    epoch's sums to torchmetrics once: they are the exact sums, and the next epoch starts from nothing."""
    from zoo.models.metrics import Totals

    totals = Totals(3)
    assert totals.epoch_sums() is None  # no batch yet, e.g. limit_val_batches=0
    steps = [(torch.tensor(0.1) * 64, 64, torch.tensor(60)), (torch.tensor(0.3) * 16, 16, torch.tensor(9))]
    for loss_sum, count, correct in steps:
        totals.add(loss_sum, count, correct)
    sums = totals.epoch_sums()
    assert sums.dtype == torch.float64
    assert sums.tolist() == [float(steps[0][0]) + float(steps[1][0]), 80.0, 69.0]
    assert totals.epoch_sums() is None
    totals.add(torch.tensor(2.0), 4, 0)
    assert totals.epoch_sums().tolist() == [2.0, 4.0, 0.0]


@pytest.mark.parametrize("data", ["digits", "names_gender", "names"])
def test_evaluation_reads_a_split_in_few_equal_batches_unless_told(data):
    """Validation and test read up to 4 training batches at a time, in passes of equal size; a language model
    keeps batch_size (its logits dominate memory); data.eval_batch_size overrides both. Training is untouched."""
    import math

    from zoo.registry import DATA

    dm = DATA.build(data, batch_size=16)
    assert dm.train_dataloader().batch_size == 16
    for loader, split in ((dm.val_dataloader(), "val"), (dm.test_dataloader(), "test")):
        n = len(dm.split(split)[1])
        sizes = [len(y) for _, y in loader]
        assert sum(sizes) == n
        if dm.spec.task == "language_modeling":
            assert loader.batch_size == 16
        else:
            assert len(sizes) == math.ceil(n / 64) and max(sizes) - min(sizes) <= len(sizes), (n, sizes)
    told = DATA.build(data, batch_size=16, eval_batch_size=5)
    assert told.val_dataloader().batch_size == 5 and told.train_dataloader().batch_size == 16


def test_evaluation_batches_grow_only_while_they_hold_few_input_values():
    """Up to 4 training batches a pass while those hold at most 65,536 input values, fewer beyond, down to one
    (larger batches of large inputs are slower per sample): the 8x8 digits at batch 16 read 64 at a time,
    at 300 three batches, at 600 one; resized to 28x28 (MNIST's shape), one batch of 64."""
    import math

    from zoo.registry import DATA

    def passes_of(most: int, n: int = 10_000) -> int:
        return math.ceil(n / math.ceil(n / most))  # equal passes of at most `most`

    for size, batch, most in ((8, 16, 64), (8, 300, 900), (8, 600, 600), (28, 64, 64), (28, 16, 64)):
        dm = DATA.build("digits", size=size, batch_size=batch)
        assert dm.eval_batch(10_000) == passes_of(most), (size, batch)
    assert DATA.build("digits", size=28, batch_size=64, eval_batch_size=512).eval_batch(10_000) == 512
