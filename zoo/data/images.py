"""Image datasets: scikit-learn's embedded 8x8 digits."""

from __future__ import annotations

import numpy as np

from zoo.bounds import OpenFraction, PositiveInt
from zoo.data.base import ArrayDataModule
from zoo.registry import DATA


@DATA.register("digits")
class Digits(ArrayDataModule):
    """UCI handwritten digits: 1,797 grey 8x8 images (ink in [0, 1]), 10 classes. Ships with scikit-learn."""

    modality = "image"

    def __init__(self, *, batch_size: PositiveInt = 64, val_fraction: OpenFraction = 0.15, test_fraction: OpenFraction = 0.2,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.images[:, None, :, :] / 16.0  # (N, 1, 8, 8), pixel values 0..16 -> [0, 1]
        return x, bunch.target, {"class_names": tuple(str(c) for c in range(10))}
