"""`image_folder`: your own images, in torchvision's ImageFolder layout.

    photos/cat/001.jpg  photos/dog/002.png ...                 seeded, stratified train/val/test splits
    photos/train/cat/... photos/val/... photos/test/...        the splits you made (val/ or test/ may be
                                                               missing: it is then cut from train/)

torchvision finds the classes and files (`find_classes`, `make_dataset`, its image extensions);
PIL decodes them. Every image is converted to RGB (or grey, `grayscale: true`) and resized to
`image_size` x `image_size` exactly as `zoo predict` resizes files, so a checkpoint predicts on
raw files the way it was trained. A file that cannot be decoded stops with an error naming it.

Data whose decoded uint8 pixels fit in `IN_MEMORY_BYTES` is decoded once (in threads) and served
from the training device like the built-in datasets. A larger folder (or `in_memory: false`) is
read by `FileLoader`: DataLoader worker processes decode each batch, and the batches come in the
same seeded order, with the same DDP sharding, mid-epoch resume and on-device augmentation as in
memory; its DataSpec statistics come from a seeded sample of `STATS_SAMPLE` train images.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from zoo.bounds import NonNegativeInt, OpenFraction, PositiveInt
from zoo.data.augment import ImageDataModule, channel_stats
from zoo.data.base import InMemoryLoader, Split, split_indices
from zoo.errors import ConfigError, ZooError
from zoo.registry import DATA
from zoo.spec import DataSpec

IN_MEMORY_BYTES = 4 << 30  # decoded uint8 pixels up to 4 GiB are held in memory (and on the device)
STATS_SAMPLE = 2048
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def read_image(path: str | Path, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Return an image file as a uint8 (channels, H, W) tensor resized to `size`; ZooError names an unreadable file."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.functional import pil_to_tensor, resize

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")  # decodes the whole file: truncation shows here
    except Image.DecompressionBombError as e:  # a small file that would decode to gigabytes
        raise ZooError(f"{path} is refused: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ZooError(f"{path} is not a readable image file ({type(e).__name__}: {' '.join(str(e).split())})") from None
    return resize(pil_to_tensor(img), list(size), antialias=True)


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded on demand (in DataLoader workers); an unreadable file yields its error message."""

    def __init__(self, paths: Sequence[str], size: int, channels: int) -> None:
        self.paths, self.size, self.channels = list(paths), size, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | str:
        try:
            return read_image(self.paths[i], (self.size, self.size), self.channels)
        except ZooError as e:  # a worker's exception would reach the user as a traceback: pass the line instead
            return str(e)

    def decode(self, indices: Sequence[int], threads: int = 1) -> torch.Tensor:
        """Return the images at `indices` as one uint8 (N, C, H, W) tensor, decoded in `threads` threads."""
        with ThreadPoolExecutor(max(1, threads)) as pool:
            return stack([img for img in pool.map(self.__getitem__, indices)])


def stack(images: list[torch.Tensor | str]) -> torch.Tensor:
    """Return decoded images as one batch, or raise the first unreadable file's error."""
    bad = next((img for img in images if isinstance(img, str)), None)
    if bad is not None:
        raise ZooError(bad)
    return torch.stack(images) if images else torch.zeros(0, dtype=torch.uint8)


def collate(images: list[torch.Tensor | str]) -> torch.Tensor | str:
    """Return a batch from DataLoader workers, or the first error message (raised in the main process)."""
    bad = next((img for img in images if isinstance(img, str)), None)
    return bad if bad is not None else torch.stack(images)


class BatchOrder:
    """The batch sampler a FileLoader's DataLoader reads: this epoch's lists of indices, set before each pass."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class FileLoader(InMemoryLoader):
    """InMemoryLoader's order, sharding, resume and augmentation, over files that DataLoader workers decode."""

    def __init__(self, files: ImageFiles, y: torch.Tensor, batch_size: int, *, device: torch.device,
                 num_workers: int, **options) -> None:
        super().__init__(files, y, batch_size, **options)
        self.device, self.num_workers = device, num_workers
        self.order, self.loader = BatchOrder(), None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader

        batches = list(self.batch_indices(torch.device("cpu")))
        self.order.batches = [idx.tolist() for _, idx in batches]
        if self.loader is None:  # kept across epochs: its persistent workers read `order` anew each pass
            self.loader = DataLoader(self.x, batch_sampler=self.order, num_workers=self.num_workers,
                                     collate_fn=collate, pin_memory=self.device.type == "cuda",
                                     persistent_workers=self.num_workers > 0)
        for (i, idx), x in zip(batches, self.loader):
            if isinstance(x, str):
                raise ZooError(x)
            yield self.apply_transform(i, x.to(self.device, non_blocking=True)), self.y[idx].to(self.device)


@DATA.register("image_folder")
class ImageFolder(ImageDataModule):
    """Image classification from a folder of class folders (torchvision's ImageFolder layout), PNG, JPEG and more.

    Args:
        path: the folder: class folders, or train/ (and optionally val/, test/) holding class folders.
        image_size: every image is resized to image_size x image_size pixels.
        grayscale: read images as one grey channel instead of RGB.
        in_memory: hold the decoded images in memory (default: when they take at most 4 GiB).
        num_workers: threads that decode a folder held in memory, or worker processes that decode
            batches of a larger one.
        augment: none, crop, flip_crop or flip_crop_cutout (zoo/data/augment.py), on the device.
    """

    def __init__(self, *, path: str | None = None, image_size: PositiveInt = 64, grayscale: bool = False,
                 in_memory: bool | None = None, num_workers: NonNegativeInt = 4, augment: str = "none",
                 batch_size: PositiveInt = 64, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.15, test_fraction: OpenFraction = 0.2,
                 seed: int = 0) -> None:
        super().__init__(augment=augment, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        self.path, self.image_size, self.grayscale = path, image_size, grayscale
        self.in_memory, self.num_workers = in_memory, num_workers
        self.files: dict[str, tuple[ImageFiles, torch.Tensor]] = {}

    @classmethod
    def example(cls, root: str | Path) -> dict:
        """Write 36 small digits as PNG and JPEG files in 3 class folders under `root`; return the kwargs."""
        from PIL import Image

        from zoo.data.vision import digits_images

        x, y = digits_images(24, 3)
        folder = Path(root) / "image_folder_example"
        for k in range(3):
            (folder / f"digit{k}").mkdir(parents=True, exist_ok=True)
            for j, i in enumerate(np.flatnonzero(y == k)[:12]):
                Image.fromarray(x[i]).save(folder / f"digit{k}" / f"{j}.{'png' if j % 2 else 'jpg'}")
        return {"path": str(folder), "image_size": 16, "num_workers": 0}

    # -- files and splits --------------------------------------------------------------------------
    def list_files(self) -> tuple[dict[str, list[tuple[str, int]]], list[str]]:
        """Return {split: [(path, class index)]} and the class names, cutting missing splits from train seededly."""
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        if not self.path:
            raise ConfigError("image_folder needs data.path: a folder of class folders, or of train/ val/ test/")
        root = Path(self.path).expanduser()
        if not root.is_dir():
            raise ConfigError(f"data.path is not a folder: {root}")
        given = {}  # the split folders present: train/, val/ (or valid/, validation/), test/
        for s, names in SPLIT_FOLDERS.items():
            found = next((root / n for n in names if (root / n).is_dir()), None)
            if found is not None:
                given[s] = found
        if given and "train" not in given:
            raise ConfigError(f"{root} has {'/ '.join(p.name for p in given.values())}/ but no train/ folder")
        try:
            classes, class_to_idx = find_classes(given.get("train", root))
            files = {s: make_dataset(str(d), class_to_idx, IMG_EXTENSIONS, allow_empty=s != "train")
                     for s, d in (given or {"train": root}).items()}
            for d in given.values():
                extra = sorted(set(find_classes(d)[0]) - set(classes))
                if extra:
                    raise ConfigError(f"{d} has class folders that train/ lacks: {', '.join(extra)}")
        except FileNotFoundError as e:
            raise ConfigError(f"{root}: {e}") from None
        missing = [s for s in ("val", "test") if s not in files]
        if missing:
            files.update(self.cut_from_train(files, missing))
        for s, items in files.items():
            if not items:
                raise ConfigError(f"The {s} split of {root} has no images (extensions: {', '.join(IMG_EXTENSIONS)})")
        return files, classes

    def cut_from_train(self, files: dict[str, list], missing: list[str]) -> dict[str, list]:
        """Return train (and the missing val/test splits) cut from the train files, stratified and seeded."""
        from sklearn.model_selection import train_test_split

        items = files["train"]
        labels = np.array([c for _, c in items])
        try:
            if len(missing) == 2:
                idx = split_indices(len(items), self.val_fraction, self.test_fraction, self.seed, stratify=labels)
            else:
                fraction = self.val_fraction if missing == ["val"] else self.test_fraction
                train, other = train_test_split(np.arange(len(items)), test_size=fraction, random_state=self.seed,
                                                stratify=labels)
                idx = {"train": np.sort(train), missing[0]: np.sort(other)}
        except ValueError as e:
            raise ConfigError(f"Cannot cut stratified {' and '.join(missing)} splits from {self.path}: {e} "
                              "(add images, or give train/ val/ test/ folders)") from None
        return {s: [items[i] for i in ix] for s, ix in idx.items()}

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        files, classes = self.list_files()
        channels = 1 if self.grayscale else 3
        for s, items in files.items():
            images = ImageFiles([p for p, _ in items], self.image_size, channels)
            self.files[s] = (images, torch.tensor([c for _, c in items], dtype=torch.long))
        n = sum(len(items) for items in files.values())
        in_memory = self.in_memory if self.in_memory is not None else n * channels * self.image_size**2 <= IN_MEMORY_BYTES
        if in_memory:
            splits = {s: (f.decode(range(len(f)), self.num_workers), y) for s, (f, y) in self.files.items()}
            stats = channel_stats(splits["train"][0])
        else:
            splits = {}
            images, _ = self.files["train"]
            g = torch.Generator().manual_seed(self.seed)
            sample = torch.randperm(len(images), generator=g)[:STATS_SAMPLE].sort().values.tolist()
            stats = channel_stats(images.decode(sample, self.num_workers))
        spec = DataSpec(modality="image", task="classification", input_shape=(channels, self.image_size, self.image_size),
                        num_classes=len(classes), class_names=tuple(classes), input_mean=tuple(stats[0]),
                        input_std=tuple(stats[1]))
        return splits, spec

    # -- serving -----------------------------------------------------------------------------------
    def streamed(self) -> bool:
        """Return True when the images are read from files batch by batch rather than held in memory."""
        self._ensure_loaded()
        return not self._splits

    def split(self, name: str) -> Split:
        """Return split `name` as floats in [0, 1] (a folder too large for memory is decoded whole here)."""
        if not self.streamed():
            return super().split(name)
        images, y = self.files[name]
        return self.batch_transform()(images.decode(range(len(images)), self.num_workers), None), y

    def _loader(self, split: str, shuffle: bool = False) -> InMemoryLoader:
        if not self.streamed():
            return super()._loader(split, shuffle)
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        images, y = self.files[split]
        return FileLoader(images, y, self.loader_batch_size(len(y), shuffle), device=device,
                          num_workers=self.num_workers,
                          **self.loader_options(shuffle))
