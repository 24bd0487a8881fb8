"""Tabular datasets that ship inside scikit-learn: no download, loaded in milliseconds."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from zoo.data.base import Split, ZooDataModule, split_indices
from zoo.registry import DATA
from zoo.spec import DataSpec


def train_stats(x: np.ndarray, axis: tuple[int, ...]) -> tuple[list[float], list[float]]:
    """Return per-feature (or per-channel) mean and std over `axis`, std floored to avoid division by 0."""
    return x.mean(axis=axis).tolist(), np.maximum(x.std(axis=axis), 1e-6).tolist()


def spec_from_arrays(x: np.ndarray, y: np.ndarray, train: np.ndarray, modality: str, task: str,
                     **fields) -> DataSpec:
    """Return a DataSpec whose statistics come from the train rows of `x` and `y` only."""
    axis = (0, 2, 3) if modality == "image" else (0,)
    mean, std = train_stats(x[train], axis)
    if task == "regression":
        y2 = y.reshape(len(y), -1)
        fields.update(target_dim=y2.shape[1], target_mean=y2[train].mean(0).tolist(),
                      target_std=np.maximum(y2[train].std(0), 1e-6).tolist())
    return DataSpec(modality=modality, task=task, input_shape=tuple(x.shape[1:]),
                    input_mean=tuple(mean), input_std=tuple(std), **fields)


class ArrayDataModule(ZooDataModule):
    """Data held as numpy arrays: subclasses implement `load_arrays()`; splits are stratified."""

    modality: ClassVar[str] = "tabular"
    task: ClassVar[str] = "classification"

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        """Return raw features, targets, and extra DataSpec fields (class_names, feature_names)."""
        raise NotImplementedError

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        x, y, fields = self.load_arrays()
        x = x.astype(np.float32)
        classification = self.task == "classification"
        y = y.astype(np.int64) if classification else y.astype(np.float32).reshape(len(y), -1)
        if classification:
            fields.setdefault("num_classes", int(y.max()) + 1)
        idx = split_indices(len(x), self.val_fraction, self.test_fraction, self.seed,
                            stratify=y if classification else None)
        spec = spec_from_arrays(x, y, idx["train"], self.modality, self.task, **fields)
        splits = {name: (torch.from_numpy(x[i]), torch.from_numpy(y[i])) for name, i in idx.items()}
        return splits, spec


class SklearnTable(ArrayDataModule):
    """A table from `sklearn.datasets.load_<name>`; features are standardised by the model."""

    loader: ClassVar[str]

    def __init__(self, *, batch_size: int = 32, val_fraction: float = 0.15, test_fraction: float = 0.2,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, self.loader)()
        fields = {"feature_names": tuple(str(f) for f in bunch.feature_names)}
        if self.task == "classification":
            fields["class_names"] = tuple(str(c) for c in bunch.target_names)
        return bunch.data, bunch.target, fields


@DATA.register("iris")
class Iris(SklearnTable):
    """Fisher's iris: 150 flowers, 4 measurements, 3 species."""

    loader = "load_iris"


@DATA.register("wine")
class Wine(SklearnTable):
    """UCI wine recognition: 178 wines, 13 chemical measurements, 3 cultivars."""

    loader = "load_wine"


@DATA.register("breast_cancer")
class BreastCancer(SklearnTable):
    """Wisconsin diagnostic breast cancer: 569 samples, 30 features, malignant or benign."""

    loader = "load_breast_cancer"


@DATA.register("diabetes")
class Diabetes(SklearnTable):
    """Diabetes progression: 442 patients, 10 features, a one-year disease progression score."""

    loader = "load_diabetes"
    task = "regression"
