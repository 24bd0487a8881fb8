"""A model measured on its data's test split: what `zoo test` prints and what a pretrained card records.

    metrics, n = evaluate(model, cfg)       # cfg: the run config (or a card's recipe) that names the data

The data comes from the config's `data` section (with `data.key=value` overrides) and must give
the very DataSpec the model was trained on (same split, same statistics, same tokenizer).
Generative models get the `SampleQuality` evaluator, as in zoo.fit. The global RNG is seeded with
the config's seed inside a fork, so the few metrics that draw random numbers (KID's subsets) come
out the same every time: `scripts/train_pretrained.py` writes a card's metrics with this function,
and tests/test_pretrained.py re-measures them with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from zoo.errors import ZooError
from zoo.training.config import datamodule_for


def evaluate(model: Any, cfg: dict[str, Any], overrides: Sequence[str] = (), accelerator: str = "cpu"
             ) -> tuple[dict[str, float], int]:
    """Return (test metrics, number of test samples) of `model` on the data that `cfg` names."""
    from zoo.evaluation.quality import SampleQuality

    datamodule = datamodule_for(cfg, list(overrides))
    if datamodule.spec.to_dict() != model.spec.to_dict():
        raise ZooError("The data's spec differs from the model's (different split, preprocessing or tokenizer?)")
    callbacks = [SampleQuality()] if callable(getattr(model, "sample", None)) else []
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator=accelerator, devices=1, callbacks=callbacks)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        results = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return {k: float(v) for k, v in sorted(results.items())}, len(datamodule.split("test")[0])
