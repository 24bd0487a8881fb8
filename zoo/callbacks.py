"""Callbacks that work with any logger: samples written to the run dir and sent to the loggers.

A model that can show what it learned implements `make_samples() -> dict[str, value]`, where
a value is an image batch (B, C, H, W) in [0, 1], a list of strings, or a 2-D table tensor.
`Samples` writes them under `run_dir/samples/` (PNG grid, .txt, .csv) and forwards them to
TensorBoard or W&B when those loggers are active. Models never touch files or loggers.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only


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
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            samples = pl_module.make_samples()
        pl_module.train(was_training)
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
    from zoo.quality import feature_comparison

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


class SaveConfig(L.Callback):
    """Store the resolved run config inside every checkpoint, so `zoo test --ckpt` needs nothing else."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("zoo", {})["config"] = self.cfg
