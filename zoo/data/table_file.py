"""`csv`: tabular data from a CSV, TSV or Parquet file, preprocessed with what the train split shows.

    python -m zoo.fit --config configs/experiment/csv_mlp.yaml data.path=houses.csv data.target=price

What happens to the file, in order:

1. pandas reads it (pyarrow for Parquet) and types each column: numbers are numeric, anything with
   text (or bool) is categorical; `categorical` forces a column categorical (zip codes, coded classes);
2. rows with no target value are dropped, with a warning;
3. the task is `task`, else classification for a text, bool or integer target with at most
   `max_classes` distinct values, regression otherwise (`infer_task`);
4. a seeded train/val/test split, stratified for classification;
5. fitted on the train rows only: the fill of missing values (median, most frequent category), the
   categories (one-hot of the `max_categories` most frequent, the rest "other"; or ordinal codes),
   and, on the encoded train features, the mean and std that models standardise with.

The results of step 5 travel in the DataSpec (`spec.table`, read by `zoo.spec.encode_table`, and
`spec.input_mean`/`input_std`), so a checkpoint predicts on raw rows with no config and no data.
The task is known before loading: `kind()` reads the target column alone.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from zoo.bounds import OpenFraction, PositiveInt
from zoo.data.base import Split, ZooDataModule, can_stratify, label_order, spec_from_arrays, split_indices
from zoo.errors import ConfigError, ZooError, choose, did_you_mean
from zoo.registry import DATA
from zoo.spec import OTHER, DataSpec, category_key, encode_table, numeric_value, table_features

TASKS = ("classification", "regression")
ENCODINGS = ("onehot", "ordinal")
FORMATS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".parquet": None, ".pq": None}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
DEFAULT_TARGET = "progression"


def table_suffix(path: Path) -> str:
    """Return the format suffix of a table file (`.csv` for `houses.csv.gz`), or raise for other files."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in FORMATS:
        raise ZooError(f"{path} is not a CSV, TSV or Parquet file: zoo reads {', '.join(FORMATS)} "
                       f"(CSV and TSV also compressed: {', '.join(COMPRESSIONS)})")
    return suffixes[-1]


def read_frame(path: str | Path, sep: str | None = None, columns: list[str] | None = None) -> Any:
    """Return a table file as a pandas DataFrame (only `columns` if given), or raise a one-line error."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"data.path not found: {path}")
    suffix = table_suffix(path)
    if FORMATS[suffix] is None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            frame = pq.read_table(path, columns=columns).to_pandas()
        except (pa.ArrowInvalid, OSError) as e:
            raise ZooError(f"{path} is not a readable Parquet file ({str(e).splitlines()[0]})") from None
    else:
        try:
            frame = pd.read_csv(path, sep=sep or FORMATS[suffix], usecols=columns, skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise ZooError(f"{path} is empty") from None
        except pd.errors.ParserError as e:
            detail = str(e).strip().splitlines()[-1].split("C error: ")[-1]  # "Expected 2 fields in line 3, saw 3"
            raise ZooError(f"{path} cannot be parsed as {'TSV' if suffix != '.csv' else 'CSV'}: {detail}") from None
        except UnicodeDecodeError as e:
            raise ZooError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}): is it really a CSV file?") from None
    if len(frame) == 0:
        raise ZooError(f"{path} has a header but no rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def column_names(path: Path, sep: str | None) -> list[str]:
    """Return the column names of a table file, reading only its header (or Parquet schema)."""
    if FORMATS[table_suffix(path)] is None:
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a non-Parquet file
            raise ZooError(f"{path} is not a readable Parquet file ({str(e).splitlines()[0]})") from None
    import pandas as pd

    try:
        return [str(c).strip() for c in pd.read_csv(path, sep=sep or FORMATS[table_suffix(path)], nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise ZooError(f"{path} is empty") from None
    except UnicodeDecodeError as e:
        raise ZooError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}): is it really a CSV file?") from None


def require_columns(path: Path, available: list[str], wanted: list[str], what: str) -> None:
    """Raise ConfigError for the first name in `wanted` that is not a column, with a did-you-mean."""
    for name in wanted:
        if name not in available:
            raise ConfigError(f"{path} has no column '{name}' ({what}).{did_you_mean(name, available)} "
                              f"Columns: {', '.join(available)}")


def default_frame() -> Any:
    """Return scikit-learn's diabetes table in its raw units (age in years, sex coded 1/2, bmi, blood
    pressure, six serum measurements) with its target, a one-year disease progression score, named
    `progression`: the data of `csv` when no path is given."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame.rename(columns={"target": DEFAULT_TARGET})


def check_parsed(path: Any, name: str, values: Any) -> None:
    """Raise when a text column is numbers but for a few values (`1,234`, `$12`): a typo, not a category."""
    present = [v for v in values.tolist() if category_key(v) is not None]
    bad = []
    for i, v in enumerate(present):
        try:
            numeric_value(v)
        except (TypeError, ValueError):
            bad.append((i, v))
    if present and bad and len(bad) <= 0.1 * len(present):
        raise ZooError(f"Column '{name}' of {path} holds numbers, but {bad[0][1]!r} and {len(bad) - 1} other values "
                       f"are not numbers: fix them, or list the column in data.categorical to read it as categories")


def is_numeric(values: Any) -> bool:
    """Return True for a pandas column of numbers (bool is categorical)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def infer_task(values: Any, max_classes: int) -> str:
    """Return the task a target column asks for: classification for text, bool or at most `max_classes`
    distinct integer values (integral floats count: pandas reads integers with gaps as floats)."""
    values = values.dropna()
    if not is_numeric(values):
        return "classification"
    integral = bool(np.all(np.mod(values.to_numpy(dtype=np.float64), 1) == 0))
    return "classification" if integral and values.nunique() <= max_classes else "regression"


@lru_cache(maxsize=32)
def _file_task(path: str, stamp: tuple[int, int], target: str, sep: str | None, max_classes: int) -> str:
    p = Path(path)
    require_columns(p, column_names(p, sep), [target], "data.target")
    values = read_frame(p, sep, columns=[target])[target]
    check_parsed(p, target, values)
    return infer_task(values, max_classes)


def fit_column(name: str, values: Any, categorical: bool, encoding: str, max_categories: int) -> dict[str, Any]:
    """Return the preprocessing of one raw column fitted on its train values (see zoo.spec.encode_table)."""
    if not categorical:
        numbers = values.to_numpy(dtype=np.float64)
        median = float(np.nanmedian(numbers)) if np.isfinite(numbers).any() else 0.0
        return {"name": name, "type": "numeric", "fill": median}
    keys = [k for k in map(category_key, values.tolist()) if k is not None]
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    by_count = sorted(counts, key=lambda k: (-counts[k], k))
    fill = by_count[0] if by_count else OTHER
    if encoding == "ordinal":
        return {"name": name, "type": "categorical", "encoding": "ordinal", "fill": fill,
                "categories": label_order(by_count)}
    kept = by_count[:max_categories]
    return {"name": name, "type": "categorical", "encoding": "onehot", "fill": fill,
            "categories": label_order(kept), "other": len(by_count) > len(kept)}


@DATA.register("csv")
class CSVTable(ZooDataModule):
    """Tabular data from a CSV, TSV or Parquet file: any target column, categorical and missing values.

    With no path, the data is scikit-learn's diabetes table in raw units (target `progression`).
    Preprocessing (imputation, one-hot or ordinal codes, scaling) is fitted on the train split and
    stored in the DataSpec, so `zoo predict --ckpt CKPT rows.csv` reads raw rows.

    Args:
        path: a .csv, .tsv or .parquet file (CSV/TSV may be compressed: .gz, .zip, ...).
        target: the column to predict (required with a path).
        task: classification or regression; default: inferred from the target column.
        features: the columns to learn from; default: all but the target and `drop`.
        drop: columns to leave out (ids, leaks).
        categorical: columns to read as categories although they hold numbers (zip codes, codes).
        encoding: onehot or ordinal, for categorical columns.
        max_categories: one-hot keeps this many most frequent train values; rarer ones share an "other" column.
        max_classes: an integer target with at most this many distinct values is a classification target.
        sep: the field delimiter (default: ',' for .csv, a tab for .tsv).
    """

    modality: ClassVar[str] = "tabular"

    def __init__(self, *, path: str | None = None, target: str | None = None, task: str | None = None,
                 features: list[str] | None = None, drop: list[str] | None = None,
                 categorical: list[str] | None = None, encoding: str = "onehot",
                 max_categories: PositiveInt = 20, max_classes: PositiveInt = 20, sep: str | None = None,
                 batch_size: PositiveInt = 32, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.15, test_fraction: OpenFraction = 0.2,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        self.path, self.target, self.sep = path, target, sep
        self.task = choose("data.task", task, TASKS) if task else None  # None: inferred when loading
        self.features, self.drop, self.categorical = features, list(drop or []), list(categorical or [])
        self.encoding = choose("data.encoding", encoding, ENCODINGS)
        self.max_categories, self.max_classes = max_categories, max_classes

    @classmethod
    def kinds(cls) -> tuple[tuple[str, str], ...]:
        return tuple(("tabular", t) for t in TASKS)

    @classmethod
    def kind(cls, *, path: str | None = None, target: str | None = None, task: str | None = None,
             max_classes: int = 20, sep: str | None = None, **_: Any) -> tuple[str, str]:
        """Return ("tabular", task): `task` when given, else inferred from the target column alone."""
        if task:
            return "tabular", choose("data.task", task, TASKS)
        if path is None:
            return "tabular", infer_task(default_frame()[target or DEFAULT_TARGET], max_classes)
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"data.path not found: {p}")
        if not target:
            raise ConfigError(f"data.target is required: the column of {p} to predict. "
                              f"Columns: {', '.join(column_names(p, sep))}")
        stat = p.stat()
        return "tabular", _file_task(str(p.resolve()), (stat.st_mtime_ns, stat.st_size), target, sep, max_classes)

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        where = Path(self.path).expanduser() if self.path else "the diabetes table"
        _, task = self.kind(path=self.path, target=self.target, task=self.task, max_classes=self.max_classes,
                            sep=self.sep)
        frame = read_frame(where, self.sep) if self.path else default_frame()
        target = self.target or DEFAULT_TARGET
        columns = list(frame.columns)
        require_columns(where, columns, [target], "data.target")
        require_columns(where, columns, [*(self.features or []), *self.drop, *self.categorical], "data.features, "
                        "data.drop or data.categorical")
        missing = frame[target].map(category_key).isna().to_numpy()
        if missing.any():
            warnings.warn(f"{where}: dropped {int(missing.sum())} rows with no '{target}' value", stacklevel=2)
            frame = frame[~missing].reset_index(drop=True)
        features = [c for c in (self.features or columns) if c != target and c not in self.drop]
        if not features:
            raise ConfigError(f"No feature columns left in {where} besides the target '{target}'")
        for name in [target, *features]:
            if name not in self.categorical and not is_numeric(frame[name]):
                check_parsed(where, name, frame[name])
        self.task = task
        y, fields = self.targets(frame[target], task, where, target)
        stratify = task == "classification" and can_stratify(y, self.val_fraction, self.test_fraction)
        idx = split_indices(len(y), self.val_fraction, self.test_fraction, self.seed, stratify=y if stratify else None)
        train = frame.iloc[idx["train"]]
        table = {"target": target, "columns": [
            fit_column(c, train[c], c in self.categorical or not is_numeric(frame[c]), self.encoding,
                       self.max_categories) for c in features]}
        x = encode_table(table, frame)
        spec = spec_from_arrays(x, y, idx["train"], "tabular", task, feature_names=tuple(table_features(table)),
                                table=json.dumps(table), **fields)
        splits = {name: (torch.from_numpy(x[i]), torch.from_numpy(y[i])) for name, i in idx.items()}
        return splits, spec

    def targets(self, values: Any, task: str, where: Any, name: str) -> tuple[np.ndarray, dict[str, Any]]:
        """Return the target array (class codes or float values) and the DataSpec fields it gives."""
        if task == "classification":
            keys = [category_key(v) for v in values.tolist()]
            classes = label_order(keys)
            if len(classes) < 2:
                raise ZooError(f"The target '{name}' of {where} has one class ({classes[0]!r}): there is nothing "
                               f"to tell apart; pick another data.target")
            codes = {c: i for i, c in enumerate(classes)}
            return np.array([codes[k] for k in keys], dtype=np.int64), {"class_names": tuple(classes),
                                                                         "num_classes": len(classes)}
        if not is_numeric(values):
            raise ZooError(f"data.task=regression needs a numeric target; '{name}' of {where} holds text such as "
                           f"{values.iloc[0]!r}")
        y = values.to_numpy(dtype=np.float32).reshape(-1, 1)
        if np.unique(y).size < 2:
            raise ZooError(f"The target '{name}' of {where} has one value ({float(y[0, 0])!r}): there is nothing to learn")
        return y, {}

    @classmethod
    def example(cls, root: Path, kind: tuple[str, str] | None = None) -> dict:
        """Write a real table as a CSV under `root` and return kwargs: Fisher's iris with the species as
        text (classification), or the diabetes table in raw units (regression)."""
        root.mkdir(parents=True, exist_ok=True)
        if kind is not None and kind[1] == "regression":
            path = root / "diabetes.csv"
            default_frame().to_csv(path, index=False)
            return {"path": str(path), "target": DEFAULT_TARGET}
        from sklearn.datasets import load_iris

        bunch = load_iris(as_frame=True)
        frame = bunch.data.assign(species=[str(bunch.target_names[t]) for t in bunch.target])
        path = root / "iris.csv"
        frame.to_csv(path, index=False)
        return {"path": str(path), "target": "species", "batch_size": 16}
