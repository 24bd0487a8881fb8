"""The fast path (zoo/training/fastpath.py): the results of Lightning's ordinary loop, bit for bit on the CPU.

Each equivalence case trains the same config twice, `fast_path=off` and `fast_path=on`, and compares
what a user can see: weights, optimizer and scheduler states, Lightning's loop state, the steps at
which checkpoints were written, every row of metrics.csv (the LR monitor's included) and the
val/test results. Timings are the benchmark's business (scripts/bench_overhead.py), never a test's.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

import zoo.training.callbacks
from tests.conftest import ROOT
from zoo.errors import ConfigError
from zoo.fit import fit, resolve
from zoo.training.fastpath import FastPath

BUILD = zoo.training.callbacks.build_callbacks

QUIET = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1"]


class Saves(L.Callback):
    """Record the global step of every checkpoint the run writes."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.steps.append(trainer.global_step)


def train(tmp_path: Path, experiment: str, mode: str, overrides: list[str], monkeypatch) -> dict:
    """Train in-process; return the results with the run's FastPath and checkpoint-save steps."""
    made: list = []

    def recording(*args, **kwargs):
        made.extend([*BUILD(*args, **kwargs), Saves()])
        return made

    monkeypatch.setattr(zoo.training.callbacks, "build_callbacks", recording)
    cfg, _ = resolve([str(ROOT / "configs" / "experiment" / f"{experiment}.yaml")],
                     [*QUIET, f"run.dir={tmp_path / mode}", f"fast_path={mode}", *overrides])
    results = fit(cfg)
    (fast,), (saves,) = [[cb for cb in made if isinstance(cb, kind)] for kind in (FastPath, Saves)]
    return {**results, "fast": fast, "saves": saves.steps}


def assert_same_checkpoint(a: Path, b: Path) -> None:
    ca, cb = (torch.load(p, weights_only=True) for p in (a, b))
    assert (ca["epoch"], ca["global_step"]) == (cb["epoch"], cb["global_step"])
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    for k, v in ca["state_dict"].items():
        assert torch.equal(v, cb["state_dict"][k]), f"weights {k} differ"
    for sa, sb in zip(ca["optimizer_states"][0]["state"].values(), cb["optimizer_states"][0]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa), "optimizer states differ"
    assert ca["lr_schedulers"] == cb["lr_schedulers"]  # the same number of scheduler steps
    assert ca["loops"] == cb["loops"]  # Lightning's progress counters, loader position included
    assert ca["zoo"]["logs"] == cb["zoo"]["logs"]


# (experiment, overrides, whether the chunk's batches take the direct calls or Lightning's own optimisation loop)
CASES = [
    # cosine warm-up scheduler, LR monitor, CSV logs, best/last checkpoints, dropout: the shipped recipe
    pytest.param("digits_cnn", ["trainer.max_epochs=3"], True, id="recipe"),
    # every event inside an epoch: logs every 3 steps, checkpoints every 5, validation every 7 batches;
    # clipping under bf16 autocast
    pytest.param("digits_cnn", ["trainer.max_epochs=2", "trainer.log_every_n_steps=3", "trainer.val_check_interval=7",
                                "callbacks.checkpoint.every_n_train_steps=5", "trainer.gradient_clip_val=0.05",
                                "trainer.precision=bf16-mixed"], True, id="events"),
    # accumulation over 3 batches, max_steps mid-epoch, validation by a global batch count across epochs
    pytest.param("digits_cnn", ["trainer.max_steps=17", "trainer.accumulate_grad_batches=3", "trainer.log_every_n_steps=2",
                                "trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=25",
                                "trainer.gradient_clip_algorithm=value", "trainer.gradient_clip_val=0.01"], False,
                 id="accumulate"),
    # a regression task (per-batch MSE/MAE/R2 updates) with early stopping
    pytest.param("diabetes_mlp", ["trainer.max_epochs=4", "trainer.log_every_n_steps=4",
                                  "callbacks.early_stopping.enabled=true", "callbacks.early_stopping.patience=1"], True,
                 id="regression"),
]


def assert_same_run(ordinary: dict, fast: dict, out: str, direct: bool) -> None:
    """Require the two runs (fast_path=off, fast_path=on) to have left the same things behind."""
    assert "zoo: fast path off: fast_path=off" in out
    assert "zoo: fast path on: optimizer steps run in chunks" in out and "forced" not in out
    assert ordinary["fast"].batches == 0 and fast["fast"].batches > 0, "the fast path ran batches inside chunks"
    assert fast["fast"]._direct == direct

    run_a, run_b = Path(ordinary["run_dir"]), Path(fast["run_dir"])
    for name in ("last.ckpt", "best.ckpt"):
        assert_same_checkpoint(run_a / "checkpoints" / name, run_b / "checkpoints" / name)
    assert fast["saves"] == ordinary["saves"]  # checkpoints at the same steps
    rows = (run_b / "metrics.csv").read_text()
    assert rows == (run_a / "metrics.csv").read_text()  # every row and column
    header = rows.splitlines()[0].split(",")
    assert "train/loss_step" in header  # step logs were written
    assert any(k.startswith("lr-AdamW") for k in header)  # the LR monitor's learning rates
    assert (fast["val"], fast["test"]) == (ordinary["val"], ordinary["test"])
    assert (fast["val_step"], fast["best_step"]) == (ordinary["val_step"], ordinary["best_step"])


@pytest.mark.parametrize("experiment,overrides,direct", CASES)
def test_fast_path_gives_the_ordinary_loops_results(experiment, overrides, direct, tmp_path, monkeypatch, capsys):
    ordinary = train(tmp_path, experiment, "off", overrides, monkeypatch)
    fast = train(tmp_path, experiment, "on", overrides, monkeypatch)
    assert_same_run(ordinary, fast, capsys.readouterr().out, direct)


def test_augmented_images_decoded_from_files_give_the_same_results(tmp_path, monkeypatch, capsys):
    """Augmentation runs per batch inside the loader (a generator seeded by seed, epoch, rank and batch
    index), and image_folder decodes files through a DataLoader: batches the fast path pulls from
    Lightning's fetcher are the ones the ordinary loop gets, so it stays on and changes nothing."""
    from zoo.data.image_folder import ImageFolder

    data = ImageFolder.example(tmp_path / "images")
    overrides = [f"data.path={data['path']}", "data.image_size=16", "data.in_memory=false", "data.num_workers=0",
                 "data.augment=flip_crop_cutout", "data.batch_size=4", "model.channels=[8,16]", "trainer.max_epochs=2",
                 "trainer.log_every_n_steps=4"]
    ordinary = train(tmp_path, "image_folder_cnn", "off", overrides, monkeypatch)
    fast = train(tmp_path, "image_folder_cnn", "on", overrides, monkeypatch)
    assert_same_run(ordinary, fast, capsys.readouterr().out, True)


def test_fast_path_is_the_default(tmp_path, monkeypatch, capsys):
    run = train(tmp_path, "iris_mlp", "auto", ["trainer.max_epochs=2"], monkeypatch)
    assert run["fast"].train and run["fast"].val and run["fast"].batches > 0
    assert "zoo: fast path on:" in capsys.readouterr().out


class EveryBatch(L.Callback):
    """A user callback that wants every batch."""

    def __init__(self) -> None:
        self.calls = 0

    def on_train_batch_end(self, *args) -> None:
        self.calls += 1


class DeclaredSafe(EveryBatch):
    """A user callback whose batch hooks may run once per chunk, as it declares."""

    fast_path_safe = True


@pytest.mark.parametrize("mode,kind", [("auto", EveryBatch), ("on", EveryBatch), ("auto", DeclaredSafe)])
def test_a_callback_with_batch_hooks_switches_it_off_unless_forced_or_declared(mode, kind, tmp_path, monkeypatch,
                                                                                capsys):
    spy = kind()
    monkeypatch.setattr(zoo.training.callbacks, "build_callbacks", lambda *a, **k: [*BUILD(*a, **k), spy])
    cfg, _ = resolve([str(ROOT / "configs" / "experiment" / "iris_mlp.yaml")],
                     [*QUIET, f"run.dir={tmp_path}", "trainer.max_epochs=2", f"fast_path={mode}"])
    fit(cfg)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("zoo: fast path")]
    if kind is DeclaredSafe:
        assert len(lines) == 1 and lines[0].startswith("zoo: fast path on:") and "forced" not in lines[0]
        assert 0 < spy.calls < 12  # once per chunk
    elif mode == "auto":
        assert lines == ["zoo: fast path off: callback EveryBatch runs on_train_batch_end at every batch"]
        assert spy.calls == 12  # 2 epochs of 6 batches
    else:
        assert len(lines) == 1 and "forced although callback EveryBatch runs on_train_batch_end" in lines[0]
        assert 0 < spy.calls < 12  # once per chunk


def test_manual_optimisation_falls_back_and_cannot_be_forced(capsys):
    from zoo.data.images import Digits
    from zoo.registry import MODELS

    data = Digits(batch_size=32)
    gan = MODELS.build("gan", spec=data.spec.to_dict())

    def fit_gan(mode: str) -> None:
        trainer = L.Trainer(max_steps=2, accelerator="cpu", callbacks=[FastPath(mode)], logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0)
        trainer.fit(gan, datamodule=data)

    fit_gan("auto")
    assert "zoo: fast path off: model 'gan' optimises manually in its training_step" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"^fast_path=on cannot run: model 'gan' optimises manually in its "
                                          r"training_step; use fast_path=auto or off$"):
        fit_gan("on")


def test_streamed_data_falls_back(capsys):
    """A loader other than zoo's in-memory one (a DataLoader, litdata's streaming loader) keeps the ordinary loop."""
    from torch.utils.data import DataLoader, TensorDataset

    from zoo.registry import MODELS
    from zoo.spec import DataSpec

    spec = DataSpec(modality="tabular", task="classification", input_shape=(4,), num_classes=3)
    model = MODELS.build("mlp", spec=spec.to_dict(), hidden=[8])
    data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randint(0, 3, (32,))), batch_size=8)
    fast = FastPath()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", callbacks=[fast], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    assert "zoo: fast path off: the train loader (DataLoader) streams its data" in capsys.readouterr().out
    assert not fast.train and trainer.global_step == 4


@pytest.mark.parametrize("value,expected", [("auto", "auto"), ("on", "on"), ("off", "off"), ("true", "on"),
                                            ("false", "off")])
def test_fast_path_setting(value, expected):
    cfg, _ = resolve([], ["model.name=mlp", "data.name=iris", f"fast_path={value}"])
    assert cfg["fast_path"] == expected


@pytest.mark.parametrize("override,match", [("fast_path=of", "Unknown fast_path 'of'. Did you mean 'off'"),
                                            ("fastpath=on", "Unknown key 'fastpath'. Did you mean 'fast_path'")])
def test_fast_path_typos(override, match):
    with pytest.raises(ConfigError, match=match):
        resolve([], ["model.name=mlp", "data.name=iris", override])


def test_non_finite_loss_inside_a_chunk_stops_before_bad_weights_are_saved(tmp_path, monkeypatch, capsys):
    from tests.test_resume import ARGS, poison_mlp_from_step, run_dir_under
    from zoo.fit import main
    from zoo.hub.pretrained import read_checkpoint

    poison_mlp_from_step(monkeypatch, 9)  # epoch 1 runs steps 6-11; 8-11 are one chunk (checkpoints every 4 steps)
    code = main([*ARGS[:-1], "logger=csv", f"run.dir={tmp_path}"])
    out, err = capsys.readouterr()
    assert code == 2 and "zoo: fast path on" in out
    assert err.strip().splitlines()[-1].startswith("error: Non-finite loss (nan) at epoch 1, step 9: training stopped")
    last = read_checkpoint(run_dir_under(tmp_path) / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 8
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_fused_adamw_keeps_gradient_clipping_under_bf16_mixed(monkeypatch):
    """Lightning refuses to clip for a fused optimizer under its AMP plugin, bf16 included; zoo clips with
    the plugin's own clip function, so the gradients the optimizer steps on equal the foreach run's."""
    from zoo.registry import MODELS
    from zoo.spec import DataSpec

    spec = DataSpec(modality="tabular", task="classification", input_shape=(4,), num_classes=3)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))

    def stepped_grads(fused: bool) -> list[list[torch.Tensor]]:
        torch.manual_seed(0)
        model = MODELS.build("mlp", spec=spec.to_dict(), hidden=[16], optim={"name": "adamw", "fused": fused})
        seen: list = []

        class Record(L.Callback):
            def on_train_start(self, trainer, pl_module) -> None:
                opt = trainer.optimizers[0]
                assert getattr(opt, "_step_supports_amp_scaling", False) == fused
                opt.register_step_post_hook(lambda o, *a: seen.append(  # the gradients the step used
                    [p.grad.clone() for g in o.param_groups for p in g["params"] if p.grad is not None]))

        from torch.utils.data import DataLoader, TensorDataset

        trainer = L.Trainer(max_steps=3, accelerator="cpu", precision="bf16-mixed", gradient_clip_val=0.05,
                            callbacks=[Record()], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)
        trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=16))
        return seen

    fused, foreach = stepped_grads(True), stepped_grads(False)
    assert len(fused) == len(foreach) == 3
    first = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in fused[0]]))
    assert first <= 0.05 * (1 + 1e-5), "the fused run's gradients were clipped"
    assert all(torch.equal(a, b) for a, b in zip(fused[0], foreach[0])), "the same clipped gradients at the first step"

    # Lightning's own route refuses this optimizer:
    from lightning.pytorch.plugins.precision import MixedPrecision

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))], fused=True)
    with pytest.raises(RuntimeError, match="does not allow for gradient clipping"):
        MixedPrecision("bf16-mixed", "cpu").clip_gradients(opt, 1.0)


class ProfilerSeen(L.Callback):
    """Record the Trainer's profiler class at each epoch start and at the end of training."""

    fast_path_safe = True

    def __init__(self) -> None:
        self.during: list[type] = []
        self.after: type | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.during.append(type(trainer.profiler))
        self.same_context = trainer.profiler.profile("a") is trainer.profiler.profile("b")

    def on_train_end(self, trainer, pl_module) -> None:  # after FastPath's, which comes first
        self.after = type(trainer.profiler)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_default_profiler_is_lean_only_while_the_fast_path_trains(tmp_path, monkeypatch, mode):
    """While the fast path trains, Lightning's default profiler hands out one shared empty context (lean.py);
    when training ends it is Lightning's own again, and the ordinary loop never changes it."""
    from lightning.pytorch.profilers import PassThroughProfiler

    from zoo.training.lean import LeanPassThroughProfiler

    seen = ProfilerSeen()
    monkeypatch.setattr(zoo.training.callbacks, "build_callbacks", lambda *a, **k: [*BUILD(*a, **k), seen])
    cfg, _ = resolve([str(ROOT / "configs" / "experiment" / "iris_mlp.yaml")],
                     [*QUIET, f"run.dir={tmp_path}", f"fast_path={mode}", "trainer.max_epochs=2", "logger=false"])
    fit(cfg)
    lean = mode == "on"
    assert seen.during == [LeanPassThroughProfiler if lean else PassThroughProfiler] * 2
    assert seen.same_context is lean and seen.after is PassThroughProfiler


def test_lean_results_log_the_same_values_and_still_move_between_devices():
    """The fast path's result collections (zoo/training/lean.py) skip the device walk of a `self.log`
    only where every tensor is already on the device: the logged values are Lightning's, and a metric
    asked onto another device (here the meta device) still moves there."""
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultCollection

    from zoo.training.lean import LeanResultMetric, lean_results

    plain, lean = _ResultCollection(training=False), _ResultCollection(training=False)
    lean_results(lean)
    for results in (plain, lean):
        for value in (1.0, 2.5, 4.0):
            results.log("validation_step", "val/loss", torch.tensor(value), on_epoch=True, batch_size=2)
            results.log("validation_step", "val/acc", torch.tensor(value / 8), prog_bar=True, on_epoch=True)
    assert all(type(m) is LeanResultMetric for m in lean.values())
    a, b = plain.metrics(on_step=False), lean.metrics(on_step=False)
    assert a.keys() == b.keys() and all(a[k].keys() == b[k].keys() for k in a)
    assert all(torch.equal(a[k][n], b[k][n]) if k != "pbar" else a[k][n] == b[k][n] for k in a for n in a[k])
    metric = lean["validation_step.val/loss"].to(torch.device("meta"))
    assert metric.value.device.type == metric.cumulated_batch_size.device.type == "meta"
