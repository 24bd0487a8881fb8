"""Text from files for language modeling: `text_file` (running text cut into blocks, or one example per line).
Text classification from files is `text_csv` (zoo/data/text_csv.py).

Tokenizers (`tokenizer: char | bpe | wordpiece | word | <local folder with tokenizer.json>`) are trained
on the train split only and stored in the DataSpec (see zoo/data/tokenizer.py).
"""

from __future__ import annotations

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
        tokenizer: char, bpe, wordpiece, word, or a local folder with a Hugging Face tokenizer.json.
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
                 batch_size: PositiveInt = 64, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.1, test_fraction: OpenFraction = 0.1,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
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
