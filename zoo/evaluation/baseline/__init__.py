"""Classical baselines fitted on exactly the splits zoo trains on: `zoo baseline --data NAME`, and
`python -m zoo.fit ... --baseline` (or `run.baseline: true`), which puts them beside the network.

A baseline is a class registered by name in `BASELINES` that declares the (modality, task) pairs
it fits, as a model does; `fit_baselines(datamodule)` runs every baseline that fits the data's
kind, so a new dataset gets the baselines of its kind the day it is registered.

- base.py: `Baseline`, the `BASELINES` registry, `fit_baselines`, the scoring (the network's own
  torchmetrics), and the references of every task: the majority class and the train mean;
- arrays.py: images and tables: logistic or ridge regression and a random forest (scikit-learn);
- text.py: text classification: character and word TF-IDF features with a logistic regression;
- ngram.py: language modeling: add-k smoothed unigram, bigram and trigram models.

Built-ins are imported here explicitly; plugins register through the `zoo.baselines` entry point.
May import models/ (for the metrics), data/ and the contracts, never training/, hub/ or cli/.
"""

from zoo.evaluation.baseline import arrays, ngram, text  # noqa: F401  (each registers its baselines)
from zoo.evaluation.baseline.base import (
    BASELINES,
    Baseline,
    SklearnBaseline,
    baselines_for,
    check_baselines,
    fit_baselines,
)

__all__ = ["BASELINES", "Baseline", "SklearnBaseline", "baselines_for", "check_baselines", "fit_baselines"]
