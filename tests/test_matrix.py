"""The model x data matrix, generated from the registry: every supported pair trains one batch
(`fast_dev_run`), every unsupported pair raises the compatibility error before any training.

A dataset whose kind depends on its arguments (csv, hf_dataset, streaming) is in the matrix once
per kind it can have (`kinds()`), each time on an example of that kind (`example(root, kind)`).
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import FAST_TRAINER
from zoo.errors import IncompatibleError
from zoo.fit import fit
from zoo.registry import DATA, MODELS, check_compatible, data_kind, data_kinds
from zoo.training.config import build_data_and_model, validate

CASES = [(d, kind) for d in DATA.names() for kind in data_kinds(d)]
PAIRS = [(m, d, kind) for m in MODELS.names() for d, kind in CASES]


def case_id(data: str, kind: tuple[str, str]) -> str:
    return data if len(data_kinds(data)) == 1 else f"{data}-{kind[0]}-{kind[1]}"


@pytest.fixture(scope="session")
def examples(tmp_path_factory):
    """Examples written once per session, by (dataset, kind): file-based datasets describe a tiny
    runnable example of themselves."""
    cache: dict = {}

    def config(name: str, kind: tuple[str, str]) -> dict:
        cls = DATA.get(name)
        if not hasattr(cls, "example"):
            return {"name": name}
        if (name, kind) not in cache:
            root = tmp_path_factory.mktemp(f"example-{name}")
            cache[name, kind] = cls.example(root, kind) if len(cls.kinds()) > 1 else cls.example(root)
        return {"name": name, **cache[name, kind]}

    return config


@pytest.mark.parametrize("model,data,kind", PAIRS, ids=[f"{m}-{case_id(d, k)}" for m, d, k in PAIRS])
def test_pair(model, data, kind, examples, tmp_path):
    data_cfg = examples(data, kind)
    assert data_kind(data, data_cfg) == kind, "the example is not of the kind it stands for"
    cfg = {
        "model": {"name": model},
        "data": data_cfg,
        "trainer": {**FAST_TRAINER, "fast_dev_run": True},
        "logger": False,
        "run": {"dir": str(tmp_path / "runs")},
    }
    if not MODELS.get(model).supports_data(*kind):
        with pytest.raises(IncompatibleError, match=f"Models for '{data}'"):
            check_compatible(model, data, data_cfg)
        with pytest.raises(IncompatibleError):
            build_data_and_model(validate(cfg))
        return
    cfg = validate(cfg)
    cfg["run"]["name"] = f"{data}_{model}"
    results = fit(cfg)
    assert results["test"], "the test split produced no metrics"
    declared = {k for k in MODELS.get(model).epoch_metrics(*kind) if k.startswith("val/")}
    assert declared <= set(results["val"]), f"declared but not logged: {declared - set(results['val'])}"
    assert all(torch.isfinite(torch.tensor(v)) for v in results["test"].values()), results["test"]


@pytest.mark.parametrize("name,kind", CASES, ids=[case_id(d, k) for d, k in CASES])
def test_data_contract(name, kind, examples):
    """Splits are deterministic for a seed, disjoint in size, non-empty, and match the spec."""
    cfg = examples(name, kind)
    cfg.pop("name")
    a, b = DATA.build(name, **cfg), DATA.build(name, **cfg)
    for dm in (a, b):
        dm.prepare_data()
        dm.setup("fit")
    spec = a.spec
    assert (spec.modality, spec.task) == kind == data_kind(name, cfg)
    for split in ("train", "val", "test"):
        (xa, ya), (xb, yb) = a.split(split), b.split(split)
        assert len(xa) > 0 and len(xa) == len(ya)
        assert torch.equal(xa, xb) and torch.equal(ya, yb), f"{split} split is not deterministic"
        assert tuple(xa.shape[1:]) == tuple(spec.input_shape)
    x, y = next(iter(a.train_dataloader()))
    assert len(x) == len(y) <= a.batch_size
