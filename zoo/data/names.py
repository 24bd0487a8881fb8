"""First names from the `names` package (US census lists, embedded): a character LM and a gender classifier.

The package ships `dist.male.first` and `dist.female.first`; each line is
`NAME  frequency  cumulative-frequency  rank`, upper case, frequency in percent of that gender.
Names are lower-cased and deduplicated (about 5.2k unique); a name in both files appears once.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from zoo.bounds import OpenFraction, PositiveInt
from zoo.data.base import Split, ZooDataModule, split_indices
from zoo.registry import DATA
from zoo.spec import DataSpec

GENDERS = ("female", "male")


def read_census(gender: str) -> dict[str, float]:
    """Return {lower-case name: frequency in percent} from the `names` package's first-name file."""
    import names

    path = Path(names.__file__).parent / f"dist.{gender}.first"
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts:
            out[parts[0].lower()] = float(parts[1])
    return out


def names_by_gender() -> tuple[list[str], np.ndarray]:
    """Return the sorted unique first names and a label per name (0 female, 1 male).

    About 330 names are in both files (e.g. "jordan"). Each gets the gender in which it is more
    frequent: frequencies are percentages within each gender and the two populations are of
    similar size, so this is the likelier gender for a person with that name. A tie goes to female.
    """
    female, male = read_census("female"), read_census("male")
    all_names = sorted(set(female) | set(male))
    labels = np.array([int(male.get(n, 0.0) > female.get(n, 0.0)) for n in all_names], dtype=np.int64)
    return all_names, labels


class NamesBase(ZooDataModule):
    """Shared loading: names, labels, deterministic splits and a lower-casing char tokenizer (train only)."""

    modality: ClassVar[str] = "tokens"

    def __init__(self, *, batch_size: PositiveInt = 64, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.1, test_fraction: OpenFraction = 0.2,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)

    def names_splits(self, stratify: bool):
        """Return (names, labels, split indices, tokenizer trained on the train names, context length T)."""
        from zoo.data.tokenizer import char_tokenizer

        all_names, labels = names_by_gender()
        idx = split_indices(len(all_names), self.val_fraction, self.test_fraction, self.seed,
                            stratify=labels if stratify else None)
        tok = char_tokenizer([all_names[i] for i in idx["train"]], lowercase=True)
        T = max(map(len, all_names)) + 1  # <bos> + name (LM inputs) and name + <eos> (LM targets)
        return all_names, labels, idx, tok, T


@DATA.register("names")
class Names(NamesBase):
    """Character-level language modeling of ~5.2k first names, as in makemore.

    A name is `<bos> e m m a <eos>`, padded with `<pad>` to T + 1 tokens; x is the first T
    tokens and y the last T (x shifted by one), so the model learns where names start and end.
    Padding positions in y are ignored by the loss (`spec.pad_id`).
    """

    task: ClassVar[str] = "language_modeling"

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        from zoo.data.text import line_sequences
        from zoo.data.tokenizer import special_id

        all_names, _, idx, tok, T = self.names_splits(stratify=False)
        splits = {k: line_sequences(tok, [all_names[j] for j in i], T) for k, i in idx.items()}
        spec = DataSpec(modality="tokens", task=self.task, input_shape=(T,), vocab_size=tok.get_vocab_size(),
                        pad_id=special_id(tok, "pad"), tokenizer=tok.to_str())
        return splits, spec


@DATA.register("names_gender")
class NamesGender(NamesBase):
    """Female/male classification of first names from their characters (stratified splits).

    The classes are unbalanced (most names are female): `zoo baseline --data names_gender` scores
    the majority class and TF-IDF logistic regressions on these splits. Names in both census
    files are labelled by frequency (see `names_by_gender`).
    """

    task: ClassVar[str] = "classification"

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        from zoo.data.tokenizer import encode_padded, special_id

        all_names, labels, idx, tok, T = self.names_splits(stratify=True)
        T -= 1  # no <bos>/<eos> for a classifier: the longest name fits exactly
        pad = special_id(tok, "pad")
        x = encode_padded(tok, all_names, T, pad)
        y = torch.from_numpy(labels)
        splits = {k: (x[torch.from_numpy(i)], y[torch.from_numpy(i)]) for k, i in idx.items()}
        spec = DataSpec(modality="tokens", task=self.task, input_shape=(T,), num_classes=2, class_names=GENDERS,
                        vocab_size=tok.get_vocab_size(), pad_id=pad, tokenizer=tok.to_str())
        return splits, spec
