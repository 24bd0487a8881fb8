"""Classical scikit-learn models on exactly the splits zoo trains on (`zoo baseline --data NAME`).

A learner sees what a neural network buys over logistic/ridge regression and a random forest.
Features are standardised with train-split statistics, as the zoo models do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import ZooError


def baseline_models(task: str, seed: int) -> dict[str, Any]:
    """Return the scikit-learn estimators compared for a task."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "classification":
        return {"logistic_regression": LogisticRegression(max_iter=2000),
                "random_forest": RandomForestClassifier(n_estimators=200, random_state=seed)}
    return {"ridge_regression": Ridge(alpha=1.0),
            "random_forest": RandomForestRegressor(n_estimators=200, random_state=seed)}


def scores(task: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None) -> dict[str, float]:
    """Return the metrics zoo reports for this task (acc/precision/recall/f1 or mse/mae/r2)."""
    from sklearn import metrics as M

    if task == "classification":
        return {"acc": M.accuracy_score(y, pred),
                "precision": M.precision_score(y, pred, average="macro", zero_division=0),
                "recall": M.recall_score(y, pred, average="macro", zero_division=0),
                "f1": M.f1_score(y, pred, average="macro", zero_division=0)}
    return {"mse": M.mean_squared_error(y, pred), "mae": M.mean_absolute_error(y, pred), "r2": M.r2_score(y, pred)}


def flat(x: np.ndarray) -> np.ndarray:
    """Return rows as 2-D features; a single regression target as 1-D."""
    x = x.reshape(len(x), -1)
    return x[:, 0] if x.shape[1] == 1 else x


def fit_baselines(datamodule: Any) -> dict[str, dict[str, float]]:
    """Return {model: {"<split>/<metric>": value}} for baselines fitted on the datamodule's train split."""
    spec = datamodule.spec
    if spec.modality == "tokens" or spec.task == "language_modeling":
        raise ZooError("Baselines cover image and tabular classification/regression, not token data")
    splits = {s: tuple(t.numpy() for t in datamodule.split(s)) for s in ("train", "val", "test")}
    x_train = splits["train"][0].reshape(len(splits["train"][0]), -1)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6  # standardise with train statistics, as the models do

    def features(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1) - mean) / std

    out = {}
    for name, est in baseline_models(spec.task, datamodule.seed).items():
        est.fit(features(splits["train"][0]), flat(splits["train"][1]) if spec.task == "regression" else splits["train"][1])
        result = {}
        for split in ("val", "test"):
            x, y = splits[split]
            y = flat(y) if spec.task == "regression" else y
            result.update({f"{split}/{k}": float(v) for k, v in scores(spec.task, y, est.predict(features(x))).items()})
        out[name] = result
    return out
