"""DataSpec: everything a model needs to know about its data, as a frozen, serialisable record,
and the readers of what a spec carries: the tokenizer of token data, the column preprocessing of
tables read from files.

A contract: it imports nothing of zoo, and both models/ and data/ build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MODALITIES = ("image", "tabular", "tokens")
TASKS = ("classification", "regression", "language_modeling")


@dataclass(frozen=True)
class DataSpec:
    """What a DataModule exposes and a model is built from.

    input_shape is (C, H, W) for images, (F,) for tables and (T,) for tokens (the context length).
    input_mean/input_std are statistics of the *train* split (per channel or per feature): models
    standardise raw inputs with them, so a checkpoint predicts on raw data with no DataModule.
    target_mean/target_std do the same for regression targets.
    For tokens, `tokenizer` is the serialised tokenizer (a `tokenizers` JSON string), so that
    generation and prediction work from the checkpoint alone.
    For tables read from files, `table` is the preprocessing of the raw columns as JSON (which
    columns, how each is imputed and encoded, fitted on the train split; see `encode_table`), so
    that raw rows become the model's inputs with nothing but the checkpoint.
    """

    modality: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    target_dim: int | None = None
    vocab_size: int | None = None
    pad_id: int | None = None
    tokenizer: str | None = None
    feature_names: tuple[str, ...] | None = None
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None
    table: str | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        # Normalise sequences to tuples so that specs compare equal after a dict round trip.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))

    @property
    def output_dim(self) -> int:
        """Return the width of the prediction head: classes, targets or vocabulary."""
        if self.task == "classification":
            return int(self.num_classes)
        if self.task == "regression":
            return int(self.target_dim)
        return int(self.vocab_size)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as plain lists and scalars (safe for YAML and `torch.load(weights_only=True)`)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | DataSpec) -> DataSpec:
        """Build a spec from `to_dict()` output (or return a spec unchanged)."""
        if isinstance(d, DataSpec):
            return d
        return cls(**d)


# -- the tokenizer a token DataSpec carries ------------------------------------------------------
# Both sides of the contract read `DataSpec.tokenizer`: data (zoo/data/tokenizer.py trains and
# serialises it) and models (generation, text input), so these readers live with the spec.

# Names that tokenizers use for the same roles, tried in order.
ROLE_TOKENS = {
    "pad": ("<pad>", "[PAD]", "<|pad|>"),
    "bos": ("<bos>", "<s>", "[CLS]", "<|endoftext|>"),
    "eos": ("<eos>", "</s>", "[SEP]", "<|endoftext|>"),
    "unk": ("<unk>", "[UNK]"),
}


def load_tokenizer(json_str: str) -> Any:
    """Return the `tokenizers.Tokenizer` serialised in a DataSpec (`tokenizer.to_str()`)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json_str)
    tok.encode_special_tokens = True  # not part of the JSON: a literal "<pad>" in user text stays text
    return tok


def special_id(tok: Any, role: str) -> int | None:
    """Return the id of the pad, bos, eos or unk token of `tok`, or None if it has none."""
    for token in ROLE_TOKENS[role]:
        i = tok.token_to_id(token)
        if i is not None:
            return i
    return None


def encode(tok: Any, text: str) -> list[int]:
    """Return the token ids of `text`, without special tokens (for language modeling and prompts)."""
    return tok.encode(text, add_special_tokens=False).ids


def encode_padded(tok: Any, texts: Sequence[str], length: int, pad_id: int) -> Any:
    """Return a (N, length) int64 tensor of texts encoded for classification.

    A pretrained tokenizer adds its own special tokens (BERT: [CLS] ... [SEP]); texts are cut to
    `length` tokens and padded with `pad_id` on the right.
    """
    import torch

    tok = load_tokenizer(tok.to_str())  # a copy: truncation settings must not leak into the spec
    tok.enable_truncation(max_length=length)
    tok.no_padding()
    out = torch.full((len(texts), length), pad_id, dtype=torch.long)
    for i, e in enumerate(tok.encode_batch(list(texts))):
        out[i, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
    return out


def decode(tok: Any, ids: Iterable[int]) -> str:
    """Return the text of token ids, dropping special tokens."""
    return tok.decode(list(ids), skip_special_tokens=True)


# -- the raw-table preprocessing a tabular DataSpec may carry --------------------------------------
# zoo/data/table_file.py fits it on the train split and encodes the splits with `encode_table`; a
# checkpoint's `zoo predict rows.csv` (and `TaskModel.encode_rows`) encode raw rows with the same code.
#
#   {"target": "price", "columns": [
#       {"name": "area", "type": "numeric", "fill": 81.5},                        -> 1 feature
#       {"name": "city", "type": "categorical", "encoding": "onehot", "fill": "paris",
#        "categories": ["lyon", "paris"], "other": true},                           -> 3: =lyon, =paris, =<other>
#       {"name": "grade", "type": "categorical", "encoding": "ordinal", "fill": "b",
#        "categories": ["a", "b", "c"]}]}                                          -> 1: 0, 1, 2 (3: other)
#
# Missing values take `fill` (the train median, or the most frequent train category). A category
# not in `categories` (rare in train, or never seen) is "other": the last one-hot column when
# `other` is true (else all zeros), code len(categories) for ordinal.

OTHER = "<other>"


def category_key(value: Any) -> str | None:
    """Return a categorical value as the text it is compared by, or None when it is missing.

    The same number compares equal however a reader typed it: 3, 3.0 and "3" are all "3".
    """
    if value is None or value != value:  # None, NaN (and pandas' NA, which is not equal to itself)
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def numeric_value(value: Any) -> float | None:
    """Return a value as a float, None when it is missing; raise ValueError for text that is no number."""
    if value is None or value != value:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    return float(value)


def table_features(table: dict[str, Any]) -> list[str]:
    """Return the names of the features `encode_table` makes: `area`, `city=lyon`, `city=<other>`, ..."""
    names: list[str] = []
    for col in table["columns"]:
        if col["type"] == "numeric" or col["encoding"] == "ordinal":
            names.append(col["name"])
        else:
            names += [f"{col['name']}={c}" for c in col["categories"]]
            names += [f"{col['name']}={OTHER}"] if col["other"] else []
    return names


def encode_table(table: str | dict[str, Any], frame: Any) -> Any:
    """Return raw table rows as a (N, F) float32 array of model inputs, preprocessed as `table` says.

    `table` is a DataSpec's `table` (JSON or dict); `frame` is a pandas DataFrame or a mapping from
    column name to values. Columns the table does not use (the target, ids) are ignored. A missing
    column, or text where a number belongs, raises ValueError with a one-line message.
    """
    import json

    import numpy as np

    table = json.loads(table) if isinstance(table, str) else table
    blocks = []
    for col in table["columns"]:
        name = col["name"]
        if name not in frame:
            raise ValueError(f"no column '{name}' (the model reads: {', '.join(c['name'] for c in table['columns'])})")
        values = np.asarray(frame[name])
        if col["type"] == "numeric" and values.dtype.kind in "biuf":  # already numbers: no per-value parsing
            out = values.astype(np.float64)
            out[np.isnan(out)] = col["fill"]
            blocks.append(out[:, None])
            continue
        values = values.tolist()
        if col["type"] == "numeric":
            out = np.empty(len(values), dtype=np.float64)
            for i, v in enumerate(values):
                try:
                    x = numeric_value(v)
                except (TypeError, ValueError):
                    raise ValueError(f"column '{name}', row {i + 1}: {v!r} is not a number") from None
                out[i] = col["fill"] if x is None else x
            blocks.append(out[:, None])
            continue
        codes = {c: i for i, c in enumerate(col["categories"])}
        other = len(codes)
        idx = np.array([codes.get(category_key(v) or col["fill"], other) for v in values], dtype=np.int64)
        if col["encoding"] == "ordinal":
            blocks.append(idx[:, None].astype(np.float64))
        else:
            width = other + (1 if col["other"] else 0)
            onehot = np.zeros((len(values), width + 1))  # a spare last column takes unseen values when other is off
            onehot[np.arange(len(values)), idx] = 1.0
            blocks.append(onehot[:, :width])
    n = len(frame[table["columns"][0]["name"]]) if table["columns"] else 0
    return np.concatenate(blocks, axis=1).astype(np.float32) if blocks else np.zeros((n, 0), np.float32)
