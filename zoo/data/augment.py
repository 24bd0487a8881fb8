"""Image batches on the device: uint8 storage, augmentation presets, and `ImageDataModule`.

Images are stored as uint8 (C, H, W), 4x smaller than floats, and moved to the training device
once. Each batch becomes floats in [0, 1] there (the model then standardises them with the
train-split statistics in the DataSpec), and training batches are augmented on the way, as whole
batches with plain tensor ops:

    none              no augmentation
    crop              pad by side/8 with zeros, then a random crop back to the size (translation)
    flip_crop         crop, and a horizontal flip half the time (the standard CIFAR recipe)
    flip_crop_cutout  flip_crop, then one square of side/2 set to the train mean (DeVries & Taylor 2017)

Each image gets its own random parameters. The randomness comes from the generator the loader
passes in, seeded per batch by (seed, epoch, rank, batch index) (zoo/data/base.py), so a run
replays exactly, resumed or not, and a different seed gives different batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F

from zoo.bounds import OpenFraction, PositiveInt
from zoo.data.base import ZooDataModule
from zoo.errors import choose
from zoo.spec import DataSpec

AUGMENTATIONS = {
    "none": (),
    "crop": ("crop",),
    "flip_crop": ("crop", "flip"),
    "flip_crop_cutout": ("crop", "flip", "cutout"),
}


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    """Return each image of `x` (B, C, H, W) zero-padded by `pad` and cropped back at a random offset."""
    b, _, h, w = x.shape
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b, 1, 1), generator=g, device=x.device)
    rows = dy + torch.arange(h, device=x.device).view(1, h, 1)  # (B, H, 1)
    cols = dx + torch.arange(w, device=x.device).view(1, 1, w)  # (B, 1, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    padded = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # (B, H + 2p, W + 2p, C)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Return `x` with each image flipped left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=g, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def cutout(x: torch.Tensor, size: int, fill: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Return `x` with one `size` x `size` square per image (centre anywhere, clipped at the border) set to `fill`."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), generator=g, device=x.device) - size // 2
    cx = torch.randint(0, w, (b, 1, 1), generator=g, device=x.device) - size // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (rows >= cy) & (rows < cy + size) & (cols >= cx) & (cols < cx + size)  # (B, H, W)
    return torch.where(hole.unsqueeze(1), fill.to(x.device, x.dtype).view(1, -1, 1, 1), x)


class Augment:
    """A batch transform: uint8 (B, C, H, W) -> floats in [0, 1], augmented when given a generator."""

    def __init__(self, preset: str, fill: Sequence[float] | None = None) -> None:
        self.ops = AUGMENTATIONS[choose("augment", preset, AUGMENTATIONS)]
        self.fill = torch.tensor(fill if fill is not None else [0.5], dtype=torch.float32)

    def __call__(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        side = min(x.shape[-2:])
        if g is not None and "crop" in self.ops:
            x = random_crop(x, max(1, side // 8), g)
        if g is not None and "flip" in self.ops:
            x = random_flip(x, g)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        if g is not None and "cutout" in self.ops:
            x = cutout(x, max(1, side // 2), self.fill, g)
        return x.contiguous()


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Return per-channel mean and std of uint8 images (N, C, H, W) in [0, 1] units, in chunks (no float copy)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].to(torch.float64).div_(255)
        total += part.sum((0, 2, 3))
        squares += part.square().sum((0, 2, 3))
    n = len(x) * x.shape[2] * x.shape[3]
    mean = total / n
    std = (squares / n - mean.square()).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean.tolist(), std.tolist()


def image_spec(x_train: torch.Tensor, class_names: Sequence[str]) -> DataSpec:
    """Return the DataSpec of uint8 classification images whose statistics come from the train split `x_train`."""
    mean, std = channel_stats(x_train)
    return DataSpec(modality="image", task="classification", input_shape=tuple(x_train.shape[1:]),
                    num_classes=len(class_names), class_names=tuple(class_names),
                    input_mean=tuple(mean), input_std=tuple(std))


class ImageDataModule(ZooDataModule):
    """Classification images stored as uint8 and served from the device, augmented per batch (`augment`).

    Subclasses implement `load_splits()` returning uint8 (N, C, H, W) splits and `image_spec(...)`.
    `split(name)` returns the model's inputs, floats in [0, 1]; the loaders convert batch by batch.
    """

    modality: ClassVar[str] = "image"
    task: ClassVar[str] = "classification"

    def __init__(self, *, augment: str = "none", batch_size: PositiveInt = 64, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.15,
                 test_fraction: OpenFraction = 0.2, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        self.augment = choose("augment", augment, AUGMENTATIONS)

    def batch_transform(self) -> Augment:
        return Augment(self.augment, fill=self.spec.input_mean)
