"""Image datasets: scikit-learn's embedded 8x8 digits, at their own size or upsampled."""

from __future__ import annotations

import numpy as np

from zoo.bounds import OpenFraction, PositiveInt
from zoo.data.base import ArrayDataModule
from zoo.registry import DATA


@DATA.register("digits")
class Digits(ArrayDataModule):
    """UCI handwritten digits: 1,797 grey 8x8 images (ink in [0, 1]), 10 classes. Ships with scikit-learn.

    Args:
        size: side of the images. 8 is the data as it is; other sizes are resized bilinearly
            (e.g. 16, or 28 for MNIST-sized shapes and work per step with embedded data).
    """

    modality = "image"

    def __init__(self, *, size: PositiveInt = 8, batch_size: PositiveInt = 64, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.15,
                 test_fraction: OpenFraction = 0.2, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        self.size = size

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.images[:, None, :, :] / 16.0  # (N, 1, 8, 8), pixel values 0..16 -> [0, 1]
        if self.size != 8:
            import torch
            import torch.nn.functional as F

            x = F.interpolate(torch.from_numpy(x).float(), size=(self.size, self.size), mode="bilinear",
                              align_corners=False).clamp(0, 1).numpy()
        return x, bunch.target, {"class_names": tuple(str(c) for c in range(10))}
