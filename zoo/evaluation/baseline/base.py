"""The baseline contract, its registry and the dispatch by (modality, task).

    @BASELINES.register("bigram")
    class Bigram(NGram): supports = frozenset({("tokens", "language_modeling")}) ...

    fit_baselines(datamodule)  ->  {"bigram": {"val/loss": 2.39, "val/ppl": ..., "test/loss": ..., ...}, ...}

Every baseline receives the numpy `(x, y)` of the datamodule's own train and val splits (the
ones the network trains and validates on), fits on train, may tune one knob on val, and is
scored on val and test with the metric names, and for classification and regression the very
torchmetrics, that the network logs (zoo/models/metrics.py, zoo/models/base.py TaskModel).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from zoo.errors import IncompatibleError, ZooError
from zoo.registry import MODELS, Registry, data_kind
from zoo.spec import MODALITIES, DataSpec

Split = tuple[np.ndarray, np.ndarray]

BASELINES = Registry("baseline", builtins="zoo.evaluation.baseline", group="zoo.baselines")


class Baseline:
    """A classical model fitted on a train split, tuned on val where it has a knob, scored like the network.

    Subclasses declare `supports`, the (modality, task) pairs they fit, and implement `fit` and
    `evaluate`. The constructor takes the data's DataSpec and the data's seed.
    """

    supports: ClassVar[frozenset[tuple[str, str]]] = frozenset()
    registry_name: ClassVar[str]

    def __init__(self, spec: DataSpec, *, seed: int = 0) -> None:
        self.spec, self.seed = spec, seed

    def fit(self, train: Split, val: Split) -> Baseline:
        """Fit on the train split's (x, y); `val` is for choosing a hyper-parameter, never for fitting. Return self."""
        raise NotImplementedError

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Return {metric: value} on one split, named as the network names them (acc, f1, mse, loss, ppl ...)."""
        raise NotImplementedError


class SklearnBaseline(Baseline):
    """A baseline that is one scikit-learn estimator predicting classes or values from `inputs(x)`."""

    def estimator(self) -> Any:
        """Return a fresh, unfitted scikit-learn estimator (or pipeline)."""
        raise NotImplementedError

    def inputs(self, x: np.ndarray) -> Any:
        """Return what the estimator reads: here one flat row of features per example."""
        return x.reshape(len(x), -1)

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Return class indices, or regression targets as scikit-learn wants them (1-D for one target)."""
        if self.spec.task != "regression":
            return y
        y = y.reshape(len(y), -1)
        return y[:, 0] if y.shape[1] == 1 else y

    def fit(self, train: Split, val: Split) -> SklearnBaseline:
        self.model = self.estimator().fit(self.inputs(train[0]), self.targets(train[1]))
        return self

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return task_scores(self.spec, y, self.model.predict(self.inputs(x)))


def task_scores(spec: DataSpec, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Return the network's val/test metrics for predicted classes or values, from the same torchmetrics."""
    import torch

    from zoo.models.metrics import build_metrics

    metrics = build_metrics(spec)
    target, preds = torch.as_tensor(y), torch.as_tensor(pred)
    if spec.task == "regression":  # as TaskModel feeds them: (N, target_dim) floats on the targets' scale
        target, preds = target.reshape(len(target), -1).float(), preds.reshape(len(preds), -1).float()
    metrics.update(preds, target)
    return {k: float(v) for k, v in metrics.compute().items()}


# -- the reference of every task: what a model that ignores its input scores -----------------------


@BASELINES.register("majority")
class Majority(SklearnBaseline):
    """The most frequent class of the train split, whatever the input."""

    supports = frozenset((m, "classification") for m in MODALITIES)

    def estimator(self) -> Any:
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy="prior")


@BASELINES.register("mean")
class Mean(SklearnBaseline):
    """The mean target of the train split, whatever the input."""

    supports = frozenset((m, "regression") for m in MODALITIES)

    def estimator(self) -> Any:
        from sklearn.dummy import DummyRegressor

        return DummyRegressor(strategy="mean")


# -- dispatch ----------------------------------------------------------------------------------------


def baselines_for(modality: str, task: str) -> list[str]:
    """Return the names of the registered baselines that fit data of this modality and task."""
    return [n for n in BASELINES.names() if (modality, task) in BASELINES.get(n).supports]


def covered_kinds() -> str:
    """Return the data kinds some baseline fits, as 'image classification, tabular regression, ...'."""
    kinds = {kind for n in BASELINES.names() for kind in BASELINES.get(n).supports}
    return ", ".join(f"{m} {t}" for m, t in sorted(kinds))


def check_baselines(model: str, data: str, config: dict[str, Any] | None = None) -> None:
    """Raise IncompatibleError when no baseline can stand beside `model` trained on `data` (run.baseline);
    `config` is the data section, for data whose kind depends on its arguments."""
    modality, task = data_kind(data, config)
    if not baselines_for(modality, task):
        raise IncompatibleError(f"No baseline fits '{data}' ({modality} {task}). Baselines cover: {covered_kinds()}")
    # A generative model declares ("image", "*"): it learns the data itself, not the task the baselines score.
    if (modality, task) not in MODELS.get(model).supports:
        learners = [m for m in MODELS.names() if (modality, task) in MODELS.get(m).supports]
        raise IncompatibleError(
            f"run.baseline puts baselines beside a model trained on the data's task, but '{model}' generates "
            f"'{data}' instead of learning its {task}. Models that learn it: {', '.join(learners) or 'none'}"
        )


def fit_baselines(datamodule: Any, names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Return {baseline: {"val/<metric>": value, "test/<metric>": value}} for every baseline of the data's
    kind (or the given `names`), each fitted on the datamodule's train split."""
    spec = datamodule.spec
    fitting = baselines_for(spec.modality, spec.task)
    if not fitting:
        raise ZooError(f"No baseline fits {spec.modality} {spec.task} data. Baselines cover: {covered_kinds()}")
    for name in names or []:
        if name not in fitting:
            BASELINES.get(name)  # an unknown name: the registry's error, with the close matches
            raise IncompatibleError(f"Baseline '{name}' does not fit {spec.modality} {spec.task} data. "
                                    f"Baselines that do: {', '.join(fitting)}")
    splits = {s: tuple(t.numpy() for t in datamodule.split(s)) for s in ("train", "val", "test")}
    out = {}
    for name in names or fitting:
        baseline = BASELINES.build(name, spec=spec, seed=getattr(datamodule, "seed", 0))
        baseline.fit(splits["train"], splits["val"])
        out[name] = {f"{s}/{k}": float(v) for s in ("val", "test") for k, v in baseline.evaluate(*splits[s]).items()}
    return out
