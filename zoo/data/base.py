"""ZooDataModule: the base every zoo dataset shares, with an in-memory fast path.

A subclass implements `load_splits()`, returning train/val/test tensors and a DataSpec. The
base serves them with `InMemoryLoader`: tensors are moved to the training device once and
shuffled by index there, so small data needs no DataLoader workers and no per-batch copies.
Data may be stored in a compact form (uint8 images) and turned into model inputs batch by batch
on the device by the module's `batch_transform()`, which is also where augmentation happens.
`ArrayDataModule` goes one step further for data held as numpy arrays: a subclass returns the
arrays and gets stratified splits and train-split statistics.

Constructor arguments are keyword-only primitives whose bounds live in their type hints
(zoo.bounds), checked here for every subclass, as models check theirs.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Iterator
from typing import ClassVar

import lightning as L
import numpy as np
import torch

from zoo.bounds import OpenFraction, PositiveInt, check_bounds
from zoo.errors import ConfigError
from zoo.spec import DataSpec

Split = tuple[torch.Tensor, torch.Tensor]
SPLITS = ("train", "val", "test")
EVAL_BATCHES = 4  # training batches per evaluation batch, unless data.eval_batch_size says (ZooDataModule.eval_batch)
EVAL_INPUT_VALUES = 2**16  # ... while an evaluation batch holds no more input values than this
# (stored batch, generator) -> model inputs. The generator is given for training batches only and
# is seeded per batch, so augmentation is random but reproducible; None means "no randomness".
BatchTransform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


class InMemoryLoader:
    """Batches `(x, y)` from tensors, shuffled by a per-epoch seed and sharded over DDP ranks.

    Lightning only injects a DistributedSampler into real DataLoaders, so this loader shards by
    rank itself; every rank gets the same number of training batches. Seeding the shuffle by
    (seed, epoch) makes the data order reproducible and a resumed run exact. A `transform` runs on
    each batch where the data lives; a shuffled (training) batch gets a generator seeded by
    (seed, epoch, rank, batch index), so augmentation replays exactly on resume too.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
        drop_uneven: bool = False,
        consumed: Callable[[], int] = lambda: 0,
        transform: BatchTransform | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.transform = transform
        self.batch_size = batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, epoch
        self.rank, self.world_size = rank, world_size
        n = len(x)
        # Training drops the tail so every rank has equal work; evaluation keeps every sample.
        self.per_rank = n // world_size if drop_uneven else len(range(rank, n, world_size))
        self.drop_single = drop_uneven  # a last batch of one sample breaks BatchNorm in training
        self.consumed = consumed  # batches of this epoch already trained on (from the trainer)
        self.resume_at: dict[str, int] | None = None

    def state_dict(self) -> dict[str, int]:
        """Return the position in the epoch; Lightning stores it in each checkpoint for a mid-epoch resume."""
        # The trainer counts what was trained on; the loader's own count runs ahead by the prefetched batch.
        return {"epoch": self.epoch(), "batches": self.consumed()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next pass over this epoch skip the batches a checkpoint already trained on."""
        self.resume_at = dict(state)

    def __len__(self) -> int:
        n = math.ceil(self.per_rank / self.batch_size)
        if self.drop_single and n > 1 and self.per_rank % self.batch_size == 1:
            n -= 1
        return n

    def batch_indices(self, device: torch.device) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (batch index, sample indices on `device`) for this epoch and rank, from the resume point."""
        n = len(self.y)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch())
            order = torch.randperm(n, generator=g).to(device)
        else:
            order = torch.arange(n, device=device)
        order = order[self.rank :: self.world_size][: self.per_rank]
        start = 0
        if self.resume_at is not None and self.resume_at["epoch"] == self.epoch():
            start = self.resume_at["batches"]
        self.resume_at = None
        for i in range(start, len(self)):
            yield i, order[i * self.batch_size : (i + 1) * self.batch_size]

    def apply_transform(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Return batch `i` as model inputs: `transform` with a per-batch generator in training, without in evaluation."""
        if self.transform is None:
            return x
        g = None
        if self.shuffle:
            g = torch.Generator(device=x.device)
            g.manual_seed((((self.seed * 100_003 + self.epoch()) * 1_000_003 + i) * 1009 + self.rank) % (1 << 63))
        return self.transform(x, g)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i, idx in self.batch_indices(self.x.device):
            yield self.apply_transform(i, self.x[idx]), self.y[idx]


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int, stratify: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Return deterministic, disjoint train/val/test index arrays (stratified when labels are given)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
    strat_rest = stratify[rest] if stratify is not None else None
    val_size = val_fraction / (1 - test_fraction)
    train, val = train_test_split(rest, test_size=val_size, random_state=seed, stratify=strat_rest)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


class ZooDataModule(L.LightningDataModule):
    """Base DataModule: deterministic splits, a DataSpec, and in-memory loaders.

    Subclasses take only primitive keyword arguments, call `super().__init__(...)`, and
    implement `load_splits()`. Downloads, if any, go in `prepare_data()`. The class declares the
    `modality` and `task` of its data, so compatibility is known without loading anything.

    Data whose kind depends on its arguments (a CSV whose target column decides the task, shards
    of any dataset) overrides `kinds()` (every kind it can have: what `zoo list`, the README
    matrix and the registry-driven tests read) and `kind(**kwargs)` (the kind those constructor
    arguments give, answered cheaply: what zoo.fit checks against the model before loading).
    """

    modality: ClassVar[str]
    task: ClassVar[str]

    @classmethod
    def kinds(cls) -> tuple[tuple[str, str], ...]:
        """Return every (modality, task) this data can have."""
        return ((cls.modality, cls.task),)

    @classmethod
    def kind(cls, **kwargs) -> tuple[str, str]:
        """Return the (modality, task) of the data these constructor arguments describe, without loading it."""
        return cls.modality, cls.task

    def __init__(self, *, batch_size: PositiveInt = 64, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.15,
                 test_fraction: OpenFraction = 0.2, seed: int = 0) -> None:
        super().__init__()
        self.check_arguments(inspect.currentframe())
        if val_fraction + test_fraction >= 1:
            raise ConfigError("data.val_fraction + data.test_fraction must be below 1")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self._splits: dict[str, Split] | None = None
        self._spec: DataSpec | None = None
        self._device_splits: dict[str, Split] = {}

    def check_arguments(self, frame) -> None:
        """Check the constructor arguments against the bounds in the type hints (zoo.bounds), as
        ZooModel.save_hyperparameters does for models. `frame` is this base's `__init__`; the
        subclasses' constructors are the frames that called it through `super().__init__`.
        """
        hints: dict = {}
        for cls in reversed(type(self).__mro__):
            if "__init__" in vars(cls) and issubclass(cls, ZooDataModule):
                try:
                    hints.update(typing.get_type_hints(cls.__init__, include_extras=True))
                except (NameError, TypeError):  # hints that only a type checker can resolve: nothing to check
                    pass
        values: dict = {}
        while frame is not None and frame.f_code.co_name == "__init__":
            values = {**frame.f_locals, **values}  # the outermost (most derived) constructor wins
            frame = frame.f_back
        check_bounds({k: v for k, v in hints.items() if k in values}, values, "data.")

    # -- subclass API -------------------------------------------------------------------------
    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        """Return {"train"|"val"|"test": (x, y)} CPU tensors and the DataSpec describing them."""
        raise NotImplementedError

    # -- public -------------------------------------------------------------------------------
    @property
    def spec(self) -> DataSpec:
        """The DataSpec of this data (loads the data on first use)."""
        self._ensure_loaded()
        return self._spec

    def split(self, name: str) -> Split:
        """Return the (x, y) tensors of split `name` on the CPU, as the model reads them (not augmented)."""
        self._ensure_loaded()
        x, y = self._splits[name]
        transform = self.batch_transform()
        return (x if transform is None else transform(x, None)), y

    def batch_transform(self) -> BatchTransform | None:
        """Return what turns stored batches into model inputs on the device (None: they are served as stored)."""
        return None

    def setup(self, stage: str | None = None) -> None:
        self._ensure_loaded()

    def eval_batch(self, n: int) -> int:
        """Return the batch size that validation, test and prediction read `n` samples (of one rank) in.

        `data.eval_batch_size` when it is set. By default, in passes of equal size of at most k training
        batches: k = EVAL_BATCHES (4) where k batches hold at most EVAL_INPUT_VALUES (65,536) input
        values, fewer down to 1 where they would hold more. Each pass costs host work whatever its
        size, which is most of an evaluation of small inputs (the 8x8 digits: 2 ms an epoch less at
        4 batches a pass). Larger inputs gain nothing from it, and their larger batches are slower
        for each sample once their activations leave the CPU's caches: the CNN [32, 64] evaluated
        9,000 28x28 images in 3.3 s at 250 a batch and in 5.4 s at 1,000 (1 thread).
        Language modelling keeps `batch_size`: its batch x length x vocabulary logits dominate memory.
        """
        if self.eval_batch_size:
            return self.eval_batch_size
        if self.spec.task == "language_modeling" or n <= 0:
            return self.batch_size
        values = math.prod(self.spec.input_shape or (1,))  # input values of one sample
        k = max(1, min(EVAL_BATCHES, EVAL_INPUT_VALUES // (self.batch_size * values)))
        passes = math.ceil(n / (k * self.batch_size))
        return math.ceil(n / passes)

    def train_dataloader(self) -> InMemoryLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> InMemoryLoader:
        return self._loader("val")

    def test_dataloader(self) -> InMemoryLoader:
        return self._loader("test")

    def predict_dataloader(self) -> InMemoryLoader:
        return self._loader("test")

    # -- internals ----------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._splits is None:
            self._splits, self._spec = self.load_splits()
            declared = self.kinds()
            assert (self._spec.modality, self._spec.task) in declared, f"spec disagrees with {declared}"

    def _loader(self, split: str, shuffle: bool = False) -> InMemoryLoader:
        self._ensure_loaded()
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        key = f"{split}@{device}"
        if key not in self._device_splits:
            x, y = self._splits[split]  # as stored (e.g. uint8): batch_transform converts each batch on the device
            self._device_splits[key] = (x.to(device), y.to(device))
        x, y = self._device_splits[key]
        return InMemoryLoader(x, y, self.loader_batch_size(len(y), shuffle), **self.loader_options(shuffle))

    def loader_batch_size(self, n: int, shuffle: bool) -> int:
        """Return the batch size of a loader over `n` samples: `batch_size` for training, else `eval_batch`
        of this rank's share."""
        if shuffle:
            return self.batch_size
        trainer = self.trainer
        return self.eval_batch(math.ceil(n / (trainer.world_size if trainer is not None else 1)))

    def loader_options(self, shuffle: bool) -> dict:
        """Return InMemoryLoader's keyword arguments for this trainer: order, sharding, resume and transform."""
        trainer = self.trainer
        return dict(
            shuffle=shuffle,
            seed=self.seed,
            epoch=(lambda: trainer.current_epoch) if trainer is not None else (lambda: 0),
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            drop_uneven=shuffle,
            consumed=(lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed) if trainer else (lambda: 0),
            transform=self.batch_transform(),
        )


def check_finite(x: np.ndarray, y: np.ndarray, name: str) -> None:
    """Refuse NaN or infinite features or targets with one line: they would poison the train-split
    statistics and every loss, silently."""
    for what, values in (("features", x), ("targets", y)):
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            raise ConfigError(f"data '{name}': {int(bad.sum())} of {len(values)} rows have NaN or infinite {what} "
                              f"(the first is row {int(bad.argmax())}); drop or fill them first")


def train_stats(x: np.ndarray, axis: tuple[int, ...]) -> tuple[list[float], list[float]]:
    """Return per-feature (or per-channel) mean and std over `axis`, std floored to avoid division by 0."""
    return x.mean(axis=axis).tolist(), np.maximum(x.std(axis=axis), 1e-6).tolist()


def spec_from_arrays(x: np.ndarray, y: np.ndarray, train: np.ndarray, modality: str, task: str,
                     **fields) -> DataSpec:
    """Return a DataSpec whose statistics come from the train rows of `x` and `y` only."""
    axis = (0, 2, 3) if modality == "image" else (0,)
    mean, std = train_stats(x[train], axis)
    if task == "regression":
        y2 = y.reshape(len(y), -1)
        fields.update(target_dim=y2.shape[1], target_mean=y2[train].mean(0).tolist(),
                      target_std=np.maximum(y2[train].std(0), 1e-6).tolist())
    return DataSpec(modality=modality, task=task, input_shape=tuple(x.shape[1:]),
                    input_mean=tuple(mean), input_std=tuple(std), **fields)


class ArrayDataModule(ZooDataModule):
    """Data held as numpy arrays: subclasses implement `load_arrays()`; splits are stratified."""

    modality: ClassVar[str] = "tabular"
    task: ClassVar[str] = "classification"

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        """Return raw features, targets, and extra DataSpec fields (class_names, feature_names)."""
        raise NotImplementedError

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        x, y, fields = self.load_arrays()
        x = x.astype(np.float32)
        classification = self.task == "classification"
        y = y.astype(np.int64) if classification else y.astype(np.float32).reshape(len(y), -1)
        check_finite(x, y, getattr(self, "registry_name", type(self).__name__))
        if classification:
            fields.setdefault("num_classes", int(y.max()) + 1)
        idx = split_indices(len(x), self.val_fraction, self.test_fraction, self.seed,
                            stratify=y if classification else None)
        spec = spec_from_arrays(x, y, idx["train"], self.modality, self.task, **fields)
        splits = {name: (torch.from_numpy(x[i]), torch.from_numpy(y[i])) for name, i in idx.items()}
        return splits, spec


def label_order(values: list[str]) -> list[str]:
    """Return the class names: integers in numeric order, anything else sorted as text."""
    unique = set(values)
    if all(v.lstrip("-").isdigit() for v in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def can_stratify(labels: np.ndarray, val_fraction: float, test_fraction: float) -> bool:
    """Return True when every class can be in every split (sklearn's own requirement for stratifying)."""
    smallest_split = len(labels) * min(val_fraction, test_fraction)
    return bool(np.bincount(labels).min() >= 3 and smallest_split >= labels.max() + 1)
