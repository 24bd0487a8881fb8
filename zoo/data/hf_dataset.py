"""`hf_dataset`: any dataset that Hugging Face `datasets` opens, by hub name or local path.

    data: {name: hf_dataset, path: stanfordnlp/imdb, tokenizer: all-minilm-l6-v2}          # the hub
    data: {name: hf_dataset, path: reviews/}           # a folder of train.parquet, test.csv, ... files
    data: {name: hf_dataset, path: saved/}             # a folder written by Dataset(Dict).save_to_disk

Columns map to the three tasks it serves: text classification (`text_column`, `label_column`),
language modeling (`text_column`, `task: language_modeling`) and image classification
(`image_column`, `label_column`). Splits map by name (`train_split`, `val_split`, `test_split`); a
split the dataset lacks is carved at random (seeded, stratified) out of the train split. Text goes
through zoo's tokenizers (trained on the train split) or a pretrained one, such as the MiniLM's.

The data is read into memory, as the other built-in datasets are; for more than fits, write it as
shards with `zoo prepare --data hf_dataset ... --out DIR` and train with `data.name=streaming`.
Hub downloads go to Hugging Face's own cache; with HF_HUB_OFFLINE=1 only cached or local data opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch

from zoo.bounds import OpenFraction, PositiveInt, Range
from zoo.data.base import Split, ZooDataModule, can_stratify, label_order, spec_from_arrays
from zoo.data.text import UNITS, line_splits, stream_splits
from zoo.data.text_csv import classification_splits
from zoo.errors import ConfigError, ZooError, choose, did_you_mean, first_line
from zoo.registry import DATA
from zoo.spec import DataSpec

TASKS = ("classification", "language_modeling")
VAL_NAMES = ("validation", "valid", "val", "dev")  # what val_split=auto looks for


def open_dataset(path: str, config: str | None, revision: str | None) -> Any:
    """Return the `datasets.DatasetDict` at a hub name or local path, or raise a one-line error."""
    import datasets

    local = Path(path).expanduser()
    saved = local.is_dir() and any((local / f).is_file() for f in ("dataset_dict.json", "state.json"))
    try:
        if saved:  # written by save_to_disk: load_dataset refuses these folders
            ds = datasets.load_from_disk(str(local))
        else:
            ds = datasets.load_dataset(str(local) if local.exists() else path, config, revision=revision)
    except (ConnectionError, FileNotFoundError) as e:
        hint = " (HF_HUB_OFFLINE is set: only cached or local datasets open)" if is_offline() else ""
        raise ZooError(f"Cannot open Hugging Face dataset '{path}'{hint}: {first_line(e)}") from None
    except ValueError as e:  # an unknown config name, bad data files
        raise ZooError(f"Cannot open Hugging Face dataset '{path}': {first_line(e)}") from None
    return ds if isinstance(ds, datasets.DatasetDict) else datasets.DatasetDict({"train": ds})


def is_offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def carve(rows: np.ndarray, fraction: float, seed: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Return (kept, carved) row numbers: `fraction` of `rows` taken at random (seeded, stratified by labels)."""
    from sklearn.model_selection import train_test_split

    kept, carved = train_test_split(rows, test_size=fraction, random_state=seed, stratify=labels)
    return np.sort(kept), np.sort(carved)


@DATA.register("hf_dataset")
class HFDataset(ZooDataModule):
    """Any Hugging Face dataset (hub name or local folder): text or image classification, or text LM.

    Args:
        path: a hub dataset name (stanfordnlp/imdb), a folder of data files (parquet, csv, json), or a
            folder written by save_to_disk.
        config: the dataset's configuration name, if it has several (glue: sst2).
        revision: a hub revision (branch, tag or commit) to pin.
        task: classification or language_modeling.
        text_column: the column of text (text classification and language modeling).
        image_column: the column of images (image classification); set, it makes the data images.
        label_column: the column of labels (classification); a ClassLabel keeps its names.
        train_split: the dataset's split to train on.
        val_split: the split to validate on; auto: validation, valid, val or dev if the dataset has one;
            null (or a split it lacks, under auto): val_fraction of the train split, carved at random.
        test_split: the split to test on; auto: test if the dataset has one; null: test_fraction of train.
        tokenizer: char, bpe, wordpiece, a local folder with tokenizer.json, or all-minilm-l6-v2.
        vocab_size: target vocabulary of bpe / wordpiece.
        max_length: longest text in tokens (classification), the context length (language modeling).
        unit: language modeling over running text (stream, rows joined) or one example per row (line).
        image_size: resize images to this square size (needed when they differ in size).
        channels: 1 (grey) or 3 (RGB); default: as the first image is.
    """

    def __init__(self, *, path: str, config: str | None = None, revision: str | None = None,
                 task: str = "classification", text_column: str = "text", image_column: str | None = None,
                 label_column: str = "label", train_split: str = "train", val_split: str | None = "auto",
                 test_split: str | None = "auto", tokenizer: str = "char", vocab_size: PositiveInt = 2000,
                 max_length: Annotated[int, Range(2)] = 128, unit: str = "stream", image_size: PositiveInt | None = None,
                 channels: PositiveInt | None = None, batch_size: PositiveInt = 32,
                 eval_batch_size: PositiveInt | None = None, val_fraction: OpenFraction = 0.1,
                 test_fraction: OpenFraction = 0.1, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        self.modality, self.task = self.kind(task=task, image_column=image_column)
        self.path, self.config, self.revision = path, config, revision
        self.text_column, self.image_column, self.label_column = text_column, image_column, label_column
        self.split_names = {"train": train_split, "val": val_split, "test": test_split}
        self.tokenizer, self.vocab_size, self.max_length = tokenizer, vocab_size, max_length
        self.unit = choose("data.unit", unit, UNITS)
        if channels not in (None, 1, 3):
            raise ConfigError(f"data.channels must be 1 or 3, got {channels}")
        self.image_size, self.channels = image_size, channels

    @classmethod
    def kinds(cls) -> tuple[tuple[str, str], ...]:
        return ("tokens", "classification"), ("tokens", "language_modeling"), ("image", "classification")

    @classmethod
    def kind(cls, *, task: str = "classification", image_column: str | None = None, **_: Any) -> tuple[str, str]:
        """Return the kind the column mapping gives: images with an image column, else tokens; the task as given."""
        task = choose("data.task", task, TASKS)
        if image_column and task != "classification":
            raise ConfigError("Images (data.image_column) serve classification only: set data.task=classification")
        return ("image" if image_column else "tokens"), task

    # -- which rows go where --------------------------------------------------------------------
    def resolve_splits(self, ds: Any) -> dict[str, Any]:
        """Return {"train"|"val"|"test": the dataset split it reads}; a split the mapping leaves out is
        carved at random (seeded, stratified by label when every class can be) out of train."""
        available = list(ds)
        parts = {}
        for role, name in self.split_names.items():
            if name == "auto":
                candidates = {"train": (), "val": VAL_NAMES, "test": ("test",)}[role]
                name = next((c for c in candidates if c in available), None)
            if name is not None and name not in available:
                raise ConfigError(f"Dataset '{self.path}' has no split '{name}' (data.{role}_split)."
                                  f"{did_you_mean(name, available)} Splits: {', '.join(available)}")
            if name is not None:
                parts[role] = ds[name]
        if "train" not in parts:
            raise ConfigError(f"data.train_split is required. Splits of '{self.path}': {', '.join(available)}")
        return parts

    def check_columns(self, parts: dict[str, Any]) -> None:
        """Raise ConfigError, with a did-you-mean, for a mapped column that a split lacks."""
        used = [self.image_column or self.text_column] + ([self.label_column] if self.task == "classification" else [])
        for role, part in parts.items():
            for name in used:
                if name not in part.column_names:
                    cols = part.column_names
                    raise ConfigError(f"The {role} split of '{self.path}' has no column '{name}'."
                                      f"{did_you_mean(name, cols)} Columns: {', '.join(cols)}")

    def label_codes(self, parts: dict[str, Any]) -> tuple[Any, list[str]]:
        """Return a function from a split to its label codes, and the class names (a ClassLabel's, else
        the sorted values found in the splits)."""
        import datasets

        col = self.label_column
        feature = parts["train"].features[col]
        if isinstance(feature, datasets.ClassLabel):
            class_names = list(feature.names)

            def codes(part: Any) -> np.ndarray:
                return np.asarray(part[col], dtype=np.int64)
        else:
            class_names = label_order(sorted({str(v).strip() for part in parts.values() for v in part[col]}))
            index = {c: i for i, c in enumerate(class_names)}

            def codes(part: Any) -> np.ndarray:
                return np.array([index[str(v).strip()] for v in part[col]], dtype=np.int64)
        for role, part in parts.items():
            y = codes(part)
            if len(y) and y.min() < 0:
                raise ZooError(f"The {role} split of '{self.path}' has unlabelled rows (label {y.min()}): map "
                               f"data.{role}_split to a labelled split, or set it to null to carve one from train")
        if len(class_names) < 2:
            raise ZooError(f"'{col}' of '{self.path}' has one class ({class_names}): nothing to tell apart")
        return codes, class_names

    # -- loading --------------------------------------------------------------------------------
    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        parts = self.resolve_splits(open_dataset(self.path, self.config, self.revision))
        self.check_columns(parts)
        codes, class_names = self.label_codes(parts) if self.task == "classification" else (None, None)
        train, n = parts["train"], len(parts["train"])
        for role, fraction in (("test", self.test_fraction), ("val", self.val_fraction)):
            if role not in parts:
                share = fraction * n / len(train)  # a fraction of the whole train split, as the argument says
                y = codes(train) if codes else None
                strat = y if y is not None and can_stratify(y, share, share) else None
                kept, carved = carve(np.arange(len(train)), share, self.seed, strat)
                parts[role], train = train.select(carved), train.select(kept)
        parts["train"] = train
        order = ("train", "val", "test")
        offsets = np.cumsum([0] + [len(parts[s]) for s in order])
        idx = {s: np.arange(offsets[i], offsets[i + 1]) for i, s in enumerate(order)}
        y = np.concatenate([codes(parts[s]) for s in order]) if codes else None
        if self.modality == "image":
            return self.image_splits([img for s in order for img in parts[s][self.image_column]], y, idx, class_names)
        texts = [str(t) for s in order for t in parts[s][self.text_column]]
        if self.task == "classification":
            return classification_splits(texts, y, idx, class_names, self.tokenizer, self.vocab_size, self.max_length)
        if self.unit == "line":
            return line_splits(self.tokenizer, texts, idx, self.vocab_size, self.max_length)
        pieces = {s: [(texts[i], True, True) for i in idx[s]] for s in order}  # each row is a whole document
        return stream_splits(self.tokenizer, pieces, self.vocab_size, self.max_length, self.max_length)

    def image_splits(self, images: list[Any], y: np.ndarray, idx: dict[str, np.ndarray], class_names: list[str]
                     ) -> tuple[dict[str, Split], DataSpec]:
        """Return image classification splits: images as (N, C, H, W) float32 in [0, 1], and their spec."""
        from PIL import Image

        first = images[0]
        channels = self.channels or (1 if first.mode in ("1", "L", "I", "I;16", "F") else 3)
        mode = "L" if channels == 1 else "RGB"
        size = (self.image_size, self.image_size) if self.image_size else first.size
        x = np.empty((len(images), channels, size[1], size[0]), dtype=np.float32)
        for i, img in enumerate(images):
            img = img.convert(mode)
            if img.size != size:
                if not self.image_size:
                    raise ZooError(f"Images of '{self.path}' differ in size ({first.size} and {img.size}): "
                                   f"set data.image_size to resize them")
                img = img.resize(size, Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
            x[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
        train = idx["train"]
        spec = spec_from_arrays(x, y, train, "image", "classification", num_classes=len(class_names),
                                class_names=tuple(class_names))
        splits = {s: (torch.from_numpy(x[i]), torch.from_numpy(y[i])) for s, i in idx.items()}
        return splits, spec

    @classmethod
    def example(cls, root: Path, kind: tuple[str, str] | None = None) -> dict:
        """Write a small real dataset under `root` as Hugging Face stores them and return kwargs: film reviews
        saved with save_to_disk (text classification), first names as parquet files (language modeling,
        one per row), or scikit-learn's digits as PNG images in parquet files (image classification)."""
        import datasets

        from zoo.data.names import names_by_gender
        from zoo.data.text_csv import example_reviews

        root.mkdir(parents=True, exist_ok=True)
        modality, task = kind or ("tokens", "classification")
        if modality == "tokens" and task == "classification":
            rows = example_reviews()
            ds = datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [lab for _, lab in rows]})
            ds = ds.class_encode_column("label").train_test_split(test_size=0.25, seed=0, stratify_by_column="label")
            ds.save_to_disk(str(root / "reviews"))
            return {"path": str(root / "reviews"), "batch_size": 16}
        folder = root / ("names" if modality == "tokens" else "digits")
        folder.mkdir(exist_ok=True)
        if modality == "tokens":
            all_names = names_by_gender()[0][::10]  # every 10th of the ~5.2k names
            for split, rows in (("train", all_names[::2]), ("test", all_names[1::2])):
                datasets.Dataset.from_dict({"text": rows}).to_parquet(str(folder / f"{split}.parquet"))
            return {"path": str(folder), "task": "language_modeling", "unit": "line", "max_length": 16}
        from PIL import Image
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = [Image.fromarray((img * 255 / 16).astype(np.uint8)) for img in digits.images[:400]]
        ds = datasets.Dataset.from_dict({"image": images, "label": digits.target[:400].tolist()})
        ds = ds.cast_column("image", datasets.Image())
        ds.select(range(300)).to_parquet(str(folder / "train.parquet"))
        ds.select(range(300, 400)).to_parquet(str(folder / "test.parquet"))
        return {"path": str(folder), "image_column": "image", "batch_size": 32}
