"""`csv`: tables from CSV, TSV and Parquet files, preprocessing fitted on the train split and carried
by the checkpoint, raw-row prediction, baselines on the same splits, and the one-line errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import FAST_TRAINER
from zoo.data.base import split_indices
from zoo.errors import ConfigError, ZooError
from zoo.registry import DATA, data_kind

CITIES = ["lyon", "nantes", "paris", "rennes"]


def houses(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A table of houses: numbers, a category, a bool, missing values, and a price that depends on them."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 200, n).round(1)
    rooms = rng.integers(1, 7, n)
    city = rng.choice(CITIES, n)
    garden = rng.random(n) < 0.4
    price = 2.0 * area + 15 * rooms + np.select([city == "paris", city == "lyon"], [150, 60], 0) + 30 * garden
    frame = pd.DataFrame({"id": np.arange(n), "area": area, "rooms": rooms, "city": city, "garden": garden,
                          "price": (price + rng.normal(0, 5, n)).round(2)})
    frame.loc[rng.choice(n, 20, replace=False), "area"] = np.nan
    frame.loc[rng.choice(n, 15, replace=False), "city"] = None
    return frame


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "houses.csv"
    houses().to_csv(path, index=False)
    return path


def build(**kwargs):
    dm = DATA.build("csv", **kwargs)
    dm.prepare_data()
    return dm


def test_types_imputation_and_encoding_are_fitted_on_train_only(table, tmp_path):
    dm = build(path=str(table), target="price", drop=["id"])
    spec = dm.spec
    assert (spec.modality, spec.task) == ("tabular", "regression") == data_kind("csv", {"path": str(table),
                                                                                        "target": "price"})
    assert spec.feature_names == ("area", "rooms", *[f"city={c}" for c in CITIES], "garden=False", "garden=True")
    raw = houses()
    train = split_indices(len(raw), 0.15, 0.2, 0)["train"]  # the split zoo makes (regression: not stratified)
    columns = {c["name"]: c for c in json.loads(spec.table)["columns"]}
    assert columns["area"]["fill"] == pytest.approx(np.nanmedian(raw["area"].to_numpy()[train]))
    assert columns["area"]["fill"] != pytest.approx(np.nanmedian(raw["area"]))  # the whole file would differ
    assert columns["city"]["fill"] == raw["city"].iloc[train].mode()[0]
    x_train, y_train = dm.split("train")
    assert torch.isfinite(x_train).all() and x_train.shape[1] == len(spec.feature_names)
    assert np.allclose(spec.input_mean, x_train.mean(0).numpy(), atol=1e-5)  # scaling from the train rows
    assert spec.target_mean[0] == pytest.approx(float(y_train.mean()), rel=1e-5)
    city = x_train[:, 2:6]
    assert torch.equal(city.sum(1), torch.ones(len(city)))  # one-hot, missing values take the train's most frequent

    parquet = tmp_path / "houses.parquet"
    houses().to_parquet(parquet)
    other = build(path=str(parquet), target="price", drop=["id"])
    assert other.spec == spec
    for split in ("train", "val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(other.split(split), dm.split(split)))

    ordinal = build(path=str(table), target="price", drop=["id"], encoding="ordinal", categorical=["rooms"])
    assert ordinal.spec.feature_names == ("area", "rooms", "city", "garden")
    assert set(ordinal.split("train")[0][:, 2].tolist()) == {0.0, 1.0, 2.0, 3.0}


@pytest.mark.parametrize("target,task,expected", [
    ("rooms", None, "classification"),      # few integers
    ("garden", None, "classification"),     # bool
    ("city", None, "classification"),       # text
    ("area", None, "regression"),           # floats
    ("rooms", "regression", "regression"),  # data.task decides
])
def test_task_is_inferred_from_the_target_or_given(table, target, task, expected):
    kwargs = {"path": str(table), "target": target, **({"task": task} if task else {})}
    assert data_kind("csv", kwargs) == ("tabular", expected)
    spec = build(**kwargs).spec
    assert spec.task == expected
    if target == "city":
        assert spec.class_names == tuple(CITIES) and not any(n.startswith("city=") for n in spec.feature_names)


def test_raw_rows_predict_as_in_training_from_the_checkpoint_alone(table, tmp_path, capsys):
    """A trained checkpoint reads raw rows (any column order, extra columns, missing and unseen values)."""
    import zoo
    from zoo.cli.main import main
    from zoo.fit import fit
    from zoo.training.config import validate

    cfg = validate({"model": {"name": "mlp", "hidden": [32], "norm": "none"},
                    "data": {"name": "csv", "path": str(table), "target": "price", "drop": ["id"]},
                    "optim": {"lr": 1e-2}, "trainer": {**FAST_TRAINER, "max_epochs": 40}, "logger": False,
                    "run": {"dir": str(tmp_path / "runs"), "name": "houses"}})
    results = fit(cfg)
    assert results["test"]["test/r2"] > 0.9, results["test"]  # the price is learnable from the columns
    model = zoo.load(results["best_ckpt"])

    dm = build(path=str(table), target="price", drop=["id"])
    raw = houses()
    test_rows = raw.iloc[split_indices(len(raw), 0.15, 0.2, 0)["test"]]
    shuffled = test_rows[["price", "garden", "city", "id", "rooms", "area"]]  # other order, target included
    rows = tmp_path / "new_rows.csv"
    shuffled.to_csv(rows, index=False)
    out = tmp_path / "pred.csv"
    assert main(["predict", "--ckpt", results["best_ckpt"], str(rows), "--output", str(out)]) == 0
    predicted = [float(r["y0"]) for r in csv.DictReader(out.open())]
    with torch.no_grad():
        expected = model.predict_step(dm.split("test")[0])[:, 0]
        from_frame = model.predict_step(model.encode_rows(pd.read_csv(rows)))[:, 0]
    assert np.allclose(predicted, expected.numpy(), atol=1e-3)
    assert torch.allclose(from_frame, expected, atol=1e-4)

    rows.write_text("area,rooms,city,garden\n,3,marseille,True\n95.5,2,,False\n")  # missing and unseen values
    capsys.readouterr()  # what fit printed
    assert main(["predict", "--ckpt", results["best_ckpt"], str(rows)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    rows.write_text("area,rooms,garden\n95.5,2,False\n")
    assert main(["predict", "--ckpt", results["best_ckpt"], str(rows)]) == 2
    assert "no column 'city'" in capsys.readouterr().err


def test_baseline_runs_on_the_same_splits(table, capsys):
    from zoo.cli.evaluate import run_baseline
    from zoo.evaluation.baseline import fit_baselines

    results = run_baseline("csv", [f"data.path={table}", "data.target=rooms", "data.drop=[id]"])
    assert results == fit_baselines(build(path=str(table), target="rooms", drop=["id"]))
    assert "logistic_regression" in capsys.readouterr().out


def test_default_is_the_diabetes_table_in_raw_units():
    dm = build()
    assert dm.spec.task == "regression" and dm.spec.feature_names[:3] == ("age", "sex", "bmi")
    assert len(dm.split("train")[0]) + len(dm.split("val")[0]) + len(dm.split("test")[0]) == 442
    assert dm.spec.input_mean[0] > 40  # ages in years, not scikit-learn's scaled copy


def write(tmp_path, name: str, content: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


@pytest.mark.parametrize("case,match", [
    ("missing_target", r"has no column 'prise' \(data.target\). Did you mean 'price'\? Columns: id, area"),
    ("empty", r"empty.csv is empty"),
    ("header_only", r"has a header but no rows"),
    ("unparsable", r"Column 'area' of .* holds numbers, but '12,5' and 0 other values are not numbers"),
    ("one_class", r"The target 'kind' of .* has one class \('house'\)"),
    ("not_a_table", r"houses.xlsx is not a CSV, TSV or Parquet file"),
    ("bad_parquet", r"fake.parquet is not a readable Parquet file"),
    ("binary_csv", r"bin.csv is not UTF-8 text"),
    ("ragged", r"ragged.csv cannot be parsed as CSV: Expected 2 fields in line 3, saw 3"),
    ("no_target", r"data.target is required: the column of .* to predict. Columns: id, area"),
])
def test_bad_files_fail_in_one_line(case, match, table, tmp_path):
    kwargs = {"target": "price"}
    if case == "missing_target":
        kwargs |= {"path": str(table), "target": "prise"}
    elif case == "no_target":
        kwargs = {"path": str(table)}
    elif case == "empty":
        kwargs["path"] = write(tmp_path, "empty.csv", "")
    elif case == "header_only":
        kwargs["path"] = write(tmp_path, "head.csv", "area,price\n")
    elif case == "unparsable":
        kwargs["path"] = write(tmp_path, "comma.csv", "area,price\n" + "".join(f"{i}.5,{i}\n" for i in range(20))
                               + "12,5,3\n".replace("12,5,3", '"12,5",3'))
    elif case == "one_class":
        kwargs = {"path": write(tmp_path, "one.csv", "area,kind\n1,house\n2,house\n3,house\n"), "target": "kind"}
    elif case == "not_a_table":
        kwargs["path"] = write(tmp_path, "houses.xlsx", "PK\x03\x04")
    elif case == "bad_parquet":
        kwargs["path"] = write(tmp_path, "fake.parquet", "area,price\n1,2\n")
    elif case == "binary_csv":
        kwargs["path"] = write(tmp_path, "bin.csv", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00\x91\x92")
    elif case == "ragged":
        kwargs["path"] = write(tmp_path, "ragged.csv", "area,price\n1,2\n3,4,5\n")
    with pytest.raises((ZooError, ConfigError), match=match) as e:
        build(**kwargs).spec  # noqa: B018
    assert "\n" not in str(e.value)


def test_cli_error_is_one_line(tmp_path, capsys):
    from zoo.fit import main

    path = write(tmp_path, "one.csv", "area,kind\n1,house\n2,house\n3,house\n")
    code = main(["--config", "configs/experiment/csv_mlp.yaml", f"data.path={path}", "data.target=kinds",
                 f"run.dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and "Did you mean 'kind'?" in err[0]
    assert not (tmp_path / "csv_mlp").exists(), "nothing is written for a run that cannot start"
