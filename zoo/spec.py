"""DataSpec: everything a model needs to know about its data, as a frozen, serialisable record,
and the readers of the tokenizer that a token spec carries.

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
