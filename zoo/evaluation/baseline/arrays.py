"""Baselines for images and tables: every pixel or column is one feature, standardised with the
train split's statistics (as the networks standardise their inputs), then scikit-learn.

Logistic regression (classes) or ridge regression (values) show what a linear model gets; a
random forest of 200 trees what a strong model without gradient descent gets.
"""

from __future__ import annotations

from typing import Any

from zoo.evaluation.baseline.base import BASELINES, SklearnBaseline

ARRAYS = ("image", "tabular")


@BASELINES.register("logistic_regression")
class LogisticRegression(SklearnBaseline):
    """A linear classifier on the standardised features (scikit-learn's defaults: L2, C = 1)."""

    supports = frozenset((m, "classification") for m in ARRAYS)

    def estimator(self) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


@BASELINES.register("ridge_regression")
class RidgeRegression(SklearnBaseline):
    """Least squares with an L2 penalty (alpha = 1) on the standardised features."""

    supports = frozenset((m, "regression") for m in ARRAYS)

    def estimator(self) -> Any:
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))


@BASELINES.register("random_forest")
class RandomForest(SklearnBaseline):
    """200 trees, seeded with the data's seed: a classifier or a regressor as the task says."""

    supports = frozenset((m, t) for m in ARRAYS for t in ("classification", "regression"))

    def estimator(self) -> Any:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if self.spec.task == "classification" else RandomForestRegressor
        return cls(n_estimators=200, random_state=self.seed)
