"""`zoo baseline --data NAME`: classical scikit-learn models on exactly the splits zoo trains on.

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


def fit_baselines(datamodule: Any) -> dict[str, dict[str, float]]:
    """Return {model: {"test/<metric>": value}} for baselines fitted on the datamodule's train split."""
    spec = datamodule.spec
    if spec.modality == "tokens" or spec.task == "language_modeling":
        raise ZooError("Baselines cover image and tabular classification/regression, not token data")
    x_train, y_train = (t.numpy() for t in datamodule.split("train"))
    mean, std = x_train.reshape(len(x_train), -1).mean(0), x_train.reshape(len(x_train), -1).std(0) + 1e-6
    prep = lambda x: (x.reshape(len(x), -1) - mean) / std  # noqa: E731
    y_train = y_train.reshape(len(y_train), -1).squeeze(1) if y_train.ndim > 1 and y_train.shape[1] == 1 else y_train
    out = {}
    for name, est in baseline_models(spec.task, datamodule.seed).items():
        est.fit(prep(x_train), y_train)
        result = {}
        for split in ("val", "test"):
            x, y = (t.numpy() for t in datamodule.split(split))
            y = y.reshape(len(y), -1).squeeze(1) if y.ndim > 1 and y.shape[1] == 1 else y
            result.update({f"{split}/{k}": float(v) for k, v in scores(spec.task, y, est.predict(prep(x))).items()})
        out[name] = result
    return out


def run_baseline(data: str, overrides: list[str]) -> dict[str, dict[str, float]]:
    """Fit and print the baselines for a registered dataset (with data.key=value overrides)."""
    from rich.console import Console
    from rich.table import Table

    from zoo.cli import datamodule_for

    datamodule = datamodule_for({"data": {"name": data}}, overrides)
    results = fit_baselines(datamodule)
    metrics = sorted({k for r in results.values() for k in r}, key=lambda k: (k.split("/")[0] != "val", k))
    table = Table(title=f"baselines on '{data}' (same splits as zoo, seed {datamodule.seed})", title_justify="left")
    table.add_column("model")
    for m in metrics:
        table.add_column(m, justify="right")
    for name, r in results.items():
        table.add_row(name, *[f"{r[m]:.4f}" for m in metrics])
    Console().print(table)
    return results
