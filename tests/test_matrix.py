"""The model x data matrix, generated from the registry: every supported pair trains one batch
(`fast_dev_run`), every unsupported pair raises the compatibility error before any training."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import FAST_TRAINER
from zoo.errors import IncompatibleError
from zoo.fit import build_data_and_model, fit
from zoo.registry import DATA, MODELS, check_compatible, data_kind
from zoo.training.config import validate

PAIRS = [(m, d) for m in MODELS.names() for d in DATA.names()]


def data_config(name: str, tmp_path) -> dict:
    """Config for a dataset; file-based datasets describe a tiny runnable example of themselves."""
    cls = DATA.get(name)
    example = cls.example(tmp_path) if hasattr(cls, "example") else {}
    return {"name": name, **example}


@pytest.mark.parametrize("model,data", PAIRS, ids=[f"{m}-{d}" for m, d in PAIRS])
def test_pair(model, data, tmp_path):
    cfg = {
        "model": {"name": model},
        "data": data_config(data, tmp_path),
        "trainer": {**FAST_TRAINER, "fast_dev_run": True},
        "logger": False,
        "run": {"dir": str(tmp_path / "runs")},
    }
    if not MODELS.get(model).supports_data(*data_kind(data)):
        with pytest.raises(IncompatibleError, match=f"Models for '{data}'"):
            check_compatible(model, data)
        with pytest.raises(IncompatibleError):
            build_data_and_model(validate(cfg))
        return
    cfg = validate(cfg)
    cfg["run"]["name"] = f"{data}_{model}"
    results = fit(cfg)
    assert results["test"], "the test split produced no metrics"
    declared = {k for k in MODELS.get(model).epoch_metrics(*data_kind(data)) if k.startswith("val/")}
    assert declared <= set(results["val"]), f"declared but not logged: {declared - set(results['val'])}"
    assert all(torch.isfinite(torch.tensor(v)) for v in results["test"].values()), results["test"]


@pytest.mark.parametrize("name", DATA.names())
def test_data_contract(name, tmp_path):
    """Splits are deterministic for a seed, disjoint in size, non-empty, and match the spec."""
    cfg = data_config(name, tmp_path)
    cfg.pop("name")
    a, b = DATA.build(name, **cfg), DATA.build(name, **cfg)
    for dm in (a, b):
        dm.prepare_data()
        dm.setup("fit")
    spec = a.spec
    assert (spec.modality, spec.task) == data_kind(name)
    for split in ("train", "val", "test"):
        (xa, ya), (xb, yb) = a.split(split), b.split(split)
        assert len(xa) > 0 and len(xa) == len(ya)
        assert torch.equal(xa, xb) and torch.equal(ya, yb), f"{split} split is not deterministic"
        assert tuple(xa.shape[1:]) == tuple(spec.input_shape)
    x, y = next(iter(a.train_dataloader()))
    assert len(x) == len(y) <= a.batch_size
