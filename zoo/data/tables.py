"""Tabular datasets that ship inside scikit-learn: no download, loaded in milliseconds."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from zoo.bounds import OpenFraction, PositiveInt
from zoo.data.base import ArrayDataModule
from zoo.registry import DATA

__all__ = ["ArrayDataModule", "BreastCancer", "Diabetes", "Iris", "SklearnTable", "Wine"]  # ArrayDataModule: its old home


class SklearnTable(ArrayDataModule):
    """A table from `sklearn.datasets.load_<name>`; features are standardised by the model."""

    loader: ClassVar[str]

    def __init__(self, *, batch_size: PositiveInt = 32, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.15, test_fraction: OpenFraction = 0.2,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)

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
