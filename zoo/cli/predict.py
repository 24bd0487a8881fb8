"""`zoo predict --ckpt CKPT FILE ...`: predictions on CSV rows, image files or text lines, as CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import torch

from zoo.data.text import read_text
from zoo.errors import ZooError


def cmd_predict(args: argparse.Namespace) -> int:
    from zoo.hub.pretrained import load

    predict_files(load(args.ckpt), args.inputs, args.output)
    return 0


def read_table(path: Path, spec: Any) -> torch.Tensor:
    """Return model inputs from a table file.

    For a model trained on a file (`csv` data) the file holds raw rows with named columns (CSV, TSV or
    Parquet), preprocessed as the spec says; otherwise it is feature values, with an optional header
    row of feature names.
    """
    if spec.table:
        from zoo.data.table_file import read_frame
        from zoo.spec import encode_table

        try:
            return torch.from_numpy(encode_table(spec.table, read_frame(path)))
        except ValueError as e:
            raise ZooError(f"{path}: {e}") from None
    rows = list(csv.reader(read_text(path).splitlines()))
    rows = [r for r in rows if r]
    if rows and spec.feature_names and [c.strip() for c in rows[0]] == list(spec.feature_names):
        rows = rows[1:]
    n = spec.input_shape[0]
    try:
        data = [[float(v) for v in r] for r in rows]
    except ValueError as e:
        raise ZooError(f"{path}: every value must be a number ({e})") from None
    bad = [i + 1 for i, r in enumerate(data) if len(r) != n]
    if bad:
        raise ZooError(f"{path}: expected {n} values per row, row {bad[0]} has {len(data[bad[0] - 1])}")
    return torch.tensor(data, dtype=torch.float32).view(-1, n)


def read_images(paths: list[Path], spec: Any) -> torch.Tensor:
    """Return image files as a (N, C, H, W) batch in [0, 1], converted and resized to the spec's shape,
    exactly as `image_folder` reads its training images."""
    from zoo.data.image_folder import read_image

    c, h, w = spec.input_shape
    return torch.stack([read_image(path, (h, w), c).float() / 255.0 for path in paths])


def read_inputs(model: Any, paths: list[str]) -> tuple[torch.Tensor, list[str]]:
    """Return the model's input batch built from files, and a row label for each input."""
    files = [Path(p) for p in paths]
    for f in files:
        if not f.is_file():
            raise ZooError(f"Input file not found: {f}")
    spec = model.spec
    if spec.modality == "tabular":
        x = torch.cat([read_table(f, spec) for f in files])
        labels = [str(i) for i in range(len(x))]
    elif spec.modality == "image":
        x, labels = read_images(files, spec), [str(f) for f in files]
    elif hasattr(model, "encode_text"):
        labels = [line for f in files for line in read_text(f).splitlines() if line.strip()]
        x = model.encode_text(labels) if labels else torch.empty(0)
    else:
        raise ZooError(f"zoo predict does not support {spec.modality} inputs for model '{model.registry_name}'")
    if len(x) == 0:
        raise ZooError(f"{', '.join(map(str, files))}: no {'rows' if spec.modality == 'tabular' else 'lines'} to predict on")
    if x.is_floating_point() and not torch.isfinite(x).all():
        row = int((~torch.isfinite(x.flatten(1))).any(1).float().argmax())
        raise ZooError(f"{labels[row] if spec.modality == 'image' else f'input row {row + 1}'} holds NaN or infinite "
                       "values; a prediction from them would be meaningless")
    return x, labels


@torch.no_grad()
def predict_files(model: Any, paths: list[str], output: str | None = None) -> list[list[Any]]:
    """Predict on input files and write a CSV (input, prediction, per-class probabilities or values)."""
    if not hasattr(model, "to_prediction"):
        raise ZooError(f"Model '{model.registry_name}' does not predict; use `zoo sample` for generative models")
    x, labels = read_inputs(model, paths)
    pred = model.predict_step(x)
    spec = model.spec
    if spec.task == "classification":
        names = list(spec.class_names or range(spec.num_classes))
        header = ["input", "prediction", *[f"p_{n}" for n in names]]
        rows = [[lab, names[int(p.argmax())], *[f"{v:.4f}" for v in p.tolist()]] for lab, p in zip(labels, pred)]
    else:
        header = ["input", *[f"y{i}" for i in range(pred.shape[1])]]
        rows = [[lab, *[f"{v:.4f}" for v in p.tolist()]] for lab, p in zip(labels, pred)]
    with open(output, "w", newline="") if output else _stdout() as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return rows


class _stdout:
    def __enter__(self):
        return sys.stdout

    def __exit__(self, *exc):
        return False
