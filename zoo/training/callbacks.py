"""The callbacks of a zoo run, built from the `callbacks` config section by `build_callbacks`.

- the fast path (zoo/training/fastpath.py): several optimizer steps per Lightning loop iteration,
  first in the list, and the progress bar that follows it (`ChunkProgressBar`);
- checkpoints (zoo/training/checkpoint.py), exact resume (zoo/training/resume.py);
- `FiniteLoss`: a NaN or infinite training loss stops the run with one line, before bad weights
  are saved;
- `Samples`: a model that can show what it learned implements `make_samples() -> dict[str, value]`,
  where a value is an image batch (B, C, H, W) in [0, 1], a list of strings, or a 2-D table
  tensor; `Samples` writes them under `run_dir/samples/` (PNG grid, .txt, .csv) and forwards them
  to TensorBoard or W&B when those loggers are active. Models never touch files or loggers;
- the sample-quality evaluator of generative models (zoo/evaluation/quality.py), the learning-rate
  monitor and early stopping.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only

from zoo.errors import ZooError
from zoo.evaluation.quality import SampleQuality, feature_comparison
from zoo.training.checkpoint import checkpoint_callbacks
from zoo.training.fastpath import FastPath
from zoo.training.resume import ResumeState


def build_callbacks(cb: dict[str, Any], model: Any, run_dir: Path, saved: dict[str, Any], resume: ResumeState, *,
                    fast_path: str = "auto", has_logger: bool = True, progress_bar: bool = True,
                    verbose: bool = True) -> list[L.Callback]:
    """Return the callbacks of a run from the `callbacks` section `cb`: the fast path, checkpoints
    (holding `saved`, the config as a run saves it, and `resume`'s state), exact resume, the NaN
    guard, samples, the validation of the final weights, and as asked the chunk-aware progress bar,
    the LR monitor and early stopping; a generative model gets the sample-quality evaluator too."""
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor

    samples, guard, final = Samples(cb["samples_every_n_epochs"]), FiniteLoss(), FinalValidation()
    c, es = cb["checkpoint"], cb["early_stopping"]
    monitor = monitor_and_mode(model, c["monitor"], c["mode"])
    stop_monitor = monitor_and_mode(model, es["monitor"] or monitor[0], es["mode"])
    checkpoints = checkpoint_callbacks(c, monitor, run_dir, saved, resume, guard)
    # The fast path first: the callbacks after it see each chunk's last batch in on_train_batch_end.
    callbacks = [FastPath(fast_path, verbose), *checkpoints, samples, resume, guard, final]
    if progress_bar:
        callbacks.append(ChunkProgressBar())
    if callable(getattr(model, "sample", None)):
        callbacks.append(SampleQuality())
    if cb["lr_monitor"] and has_logger:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if es["enabled"]:
        callbacks.append(EarlyStopping(monitor=stop_monitor[0], mode=stop_monitor[1], patience=es["patience"],
                                       min_delta=es["min_delta"]))
    return callbacks


def monitor_and_mode(model: Any, monitor: str | None, mode: str | None) -> tuple[str, str]:
    """Return the metric a callback watches and the mode in which it improves: the model's choice
    (`monitor()`) unless the config names one, and the mode its `epoch_metrics` declares for it."""
    default_monitor, default_mode = model.monitor()
    monitor = monitor or default_monitor
    declared = type(model).epoch_metrics(model.spec.modality, model.spec.task)
    return monitor, mode or declared.get(monitor, default_mode if monitor == default_monitor else "min")


class TrainingDiverged(ZooError):
    """The loss became NaN or infinite; the message says where and which checkpoint is still good."""


class FinalValidation(L.Callback):
    """Validate the final weights when training stops between two validations; `step` is the global
    step of the last validation (None before any).

    Lightning validates at epoch ends (or every `val_check_interval`), so a run that
    `trainer.max_steps` ends inside an epoch would report, in best.ckpt, results.json and the printed
    table, a state several hundred steps old. Lightning validates whenever it is asked to stop, so
    this asks it to on the last step; the checkpoint callbacks then save from that validation.
    (`max_time` and early stopping already stop that way.)
    """

    fast_path_safe = True  # it acts at max_steps, where a fast-path chunk ends

    def __init__(self) -> None:
        self.step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.step = trainer.global_step


class FiniteLoss(L.Callback):
    """Raise `TrainingDiverged` when a training loss is NaN or infinite; weights from it are never saved.

    On the CPU every loss is checked before its backward, so bad gradients never reach the
    weights. On an accelerator, reading a flag back every step would make the device wait for
    Python at each step (docs/transformers.md has the cost), so the flag is accumulated on the
    device and read every `check_every` steps and before every checkpoint is written (the
    checkpoint hook calls `check`): training stops within `check_every` steps, and a checkpoint
    never holds the bad weights.
    """

    def __init__(self, check_every: int | None = None) -> None:
        self.check_every = check_every
        self._bad: torch.Tensor | None = None  # any non-finite loss since the last check (on the device)
        self._since = 0  # the first step not yet checked

    def on_before_backward(self, trainer: L.Trainer, pl_module: Any, loss: torch.Tensor) -> None:
        every = self.check_every or (1 if loss.device.type == "cpu" else 50)
        if every == 1 and self._bad is None and loss.numel() == 1 and trainer.world_size == 1:
            # Checked at once anyway: one read of the loss rather than four tensor ops and a read.
            if not math.isfinite(loss.item()):
                self._bad, self._since = torch.tensor(True), trainer.global_step
                self.check(trainer, loss)
            return
        bad = ~torch.isfinite(loss.detach()).all()
        if self._bad is None:
            self._bad, self._since = bad, trainer.global_step
        else:
            self._bad |= bad
        if (trainer.global_step + 1 - self._since) >= every:
            self.check(trainer, loss)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer, loss: torch.Tensor | None = None) -> None:
        """Read the flag (one host sync) and raise if a non-finite loss was seen since the last check."""
        if self._bad is None:
            return
        bad, since = bool(self._bad), self._since
        self._bad = None
        if trainer.world_size > 1:  # every rank must stop together, or the others hang in all-reduce
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        run_dir = Path(trainer.default_root_dir)
        last = run_dir / "checkpoints" / "last.ckpt"
        step = trainer.global_step
        where = f"step {step}" if since == step else f"a step between {since} and {step}"
        value = f" ({loss.detach().float().mean().item()})" if loss is not None and since == step else ""
        lower = f"optim.lr={trainer.lightning_module.optim.get('lr', 1e-3) / 10:.3g}"
        if last.is_file():  # the resume applies a new lr to the restored optimizer and schedule
            advice = (f"last good checkpoint: {last}). Continue it with a lower learning rate: "
                      f"zoo fit --resume {run_dir} {lower} (or add trainer.gradient_clip_val=1.0)")
        else:
            advice = f"no checkpoint was saved yet). Start again with a lower learning rate ({lower}) or " \
                     "trainer.gradient_clip_val=1.0"
        raise TrainingDiverged(f"Non-finite loss{value} at epoch {trainer.current_epoch}, {where}: training "
                               f"stopped ({advice}")


class Samples(L.Callback):
    """Every `every_n_epochs` validation epochs, log the model's `make_samples()` output."""

    def __init__(self, every_n_epochs: int = 1) -> None:
        self.every_n_epochs = every_n_epochs

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not hasattr(pl_module, "make_samples") or trainer.sanity_checking or self.every_n_epochs < 1:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs and not trainer.fast_dev_run:
            return
        was_training = pl_module.training  # False here when Lightning calls it, in the validation loop
        if was_training:
            pl_module.eval()
        with torch.no_grad():
            samples = pl_module.make_samples()
        if was_training:
            pl_module.train()
        out = Path(trainer.default_root_dir) / "samples"
        for name, value in samples.items():
            path = out / f"{name}_epoch{trainer.current_epoch:03d}"
            log_sample(trainer, f"samples/{name}", value, path, pl_module)
            if is_table(value, pl_module):
                compare_with_test(trainer, value, path.with_name(path.name + "_vs_test.csv"), pl_module)


def is_table(value: Any, pl_module: Any) -> bool:
    """Return True for generated rows of a tabular model (a 2-D tensor as wide as its features)."""
    spec = getattr(pl_module, "spec", None)
    return (isinstance(value, torch.Tensor) and value.dim() == 2 and spec is not None
            and spec.modality == "tabular" and value.shape[1] == spec.input_shape[0])


def compare_with_test(trainer: L.Trainer, rows: torch.Tensor, path: Path, pl_module: Any) -> Path | None:
    """Write per-feature mean, std and KS distance of generated rows against the test split; return the file."""
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None or not hasattr(datamodule, "split"):
        return None
    table = feature_comparison(rows, datamodule.split("test")[0], pl_module.spec.feature_names)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()} for r in table)
    return path


def log_sample(trainer: L.Trainer, tag: str, value: Any, path: Path, pl_module: Any = None) -> Path:
    """Write one sample to disk (PNG, TXT or CSV by its kind) and to every active logger; return the file."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    path.parent.mkdir(parents=True, exist_ok=True)
    step = trainer.fit_loop.epoch_loop._batches_that_stepped  # the step Lightning logs the epoch's metrics at
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        path = save_image_grid(value, path.with_suffix(".png"))
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                from torchvision.utils import make_grid

                logger.experiment.add_image(tag, make_grid(value.float().cpu(), nrow=grid_rows(len(value))), step)
            elif isinstance(logger, WandbLogger):
                logger.log_image(key=tag, images=[str(path)], step=step)
    elif isinstance(value, torch.Tensor):
        names = getattr(getattr(pl_module, "spec", None), "feature_names", None)
        path = save_table(value, path.with_suffix(".csv"), names)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                cols = list(names or [f"x{i}" for i in range(value.shape[1])])
                logger.log_table(key=tag, columns=cols, data=value[:100].tolist(), step=step)
    else:
        texts = [str(t) for t in value]
        path = path.with_suffix(".txt")
        path.write_text("\n".join(texts) + "\n")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(tag, "\n\n".join(texts), step)
            elif isinstance(logger, WandbLogger):
                logger.log_text(key=tag, columns=["sample"], data=[[t] for t in texts], step=step)
    return path


def grid_rows(n: int) -> int:
    """Return the number of images per row that makes a near-square grid."""
    return max(1, int(n**0.5 + 0.5))


def save_image_grid(images: torch.Tensor, path: Path) -> Path:
    """Save an image batch in [0, 1] as one PNG grid and return its path."""
    from torchvision.utils import save_image

    save_image(images.float().cpu().clamp(0, 1), path, nrow=grid_rows(len(images)), padding=1, pad_value=0.5)
    return path


def save_table(rows: torch.Tensor, path: Path, names: Any = None) -> Path:
    """Save a (N, F) tensor as CSV with a header row and return its path."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(names) if names else [f"x{i}" for i in range(rows.shape[1])])
        writer.writerows(rows.cpu().tolist())
    return path


class ChunkProgressBar(TQDMProgressBar):
    """Lightning's progress bar, placed by the loop's own batch index rather than the hook's argument,
    which inside a chunk names the chunk's first batch."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.fit_loop.epoch_loop.batch_idx)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if trainer.state.fn == "fit":
            batch_idx = trainer.fit_loop.epoch_loop.val_loop.batch_progress.current.ready - 1
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
