"""torchvision's datasets: `mnist`, `fashion_mnist`, `cifar10` and `cifar100`.

torchvision finds, downloads and checks the files (its mirrors, md5 sums and extraction); zoo
adds what a shared machine needs around it:

- `prepare_data()` is the only place that downloads, under a file lock (`<root>/.<name>.lock`),
  so DDP ranks and two runs at once download once; the others wait and find the files;
- a download lands in a temporary folder under the root and moves into place file by file only
  when torchvision has verified all of it: an interrupted download leaves no half-written file;
- offline, without the files: one line naming the folder, the files expected there and their URL.

The official test split is the test split; the validation split is a seeded, stratified
`val_fraction` of the official training split. Images stay uint8 on the training device and
become floats per batch, augmented there in training (`augment`, zoo/data/augment.py).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from zoo.bounds import OpenFraction, PositiveInt
from zoo.data.augment import ImageDataModule, image_spec
from zoo.data.base import Split
from zoo.errors import ZooError
from zoo.registry import DATA
from zoo.spec import DataSpec

DOWNLOAD_ERRORS = (OSError, RuntimeError, EOFError, tarfile.TarError)  # URLError and BadGzipFile are OSErrors
# What torchvision's readers raise on files that exist but are not what they claim (MNIST's idx files
# have no checksum): a bad magic number, a short file, a pickle that is not CIFAR's.
READ_ERRORS = (AssertionError, ValueError, TypeError, KeyError, OSError, EOFError, pickle.UnpicklingError)


class TorchvisionImages(ImageDataModule):
    """Base of the torchvision datasets: `source` names the class in `torchvision.datasets`."""

    source: ClassVar[str]

    def __init__(self, *, root: str | None = None, download: bool = True, augment: str = "none",
                 batch_size: PositiveInt = 128, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.1, seed: int = 0) -> None:
        super().__init__(augment=augment, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, seed=seed)
        self.root, self.download = root, download

    # -- where the files are (read from torchvision's own class attributes) --------------------
    def torchvision_class(self) -> type:
        """Return the torchvision dataset class that reads and downloads these files."""
        import torchvision.datasets

        return getattr(torchvision.datasets, self.source)

    def root_path(self) -> Path:
        """Return the root folder: `root`, else $ZOO_HOME/data."""
        from zoo.data.download import cache_dir

        return Path(self.root).expanduser() if self.root else cache_dir() / "data"

    def folder(self) -> Path:
        """Return the folder torchvision reads the files from."""
        raise NotImplementedError

    def expected_files(self) -> list[str]:
        """Return the names of the files torchvision reads in `folder()`."""
        raise NotImplementedError

    def archives(self) -> list[Path]:
        """Return where torchvision looks for the downloaded archives, which it checks before downloading."""
        raise NotImplementedError

    def source_url(self) -> str:
        """Return where the files can be downloaded by hand."""
        raise NotImplementedError

    # -- download ----------------------------------------------------------------------------------
    def open(self, train: bool, root: Path | None = None, download: bool = False) -> Any | None:
        """Return torchvision's dataset for a split, or None when its files are absent or fail its checks."""
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints progress on stdout
                return self.torchvision_class()(str(root or self.root_path()), train=train, download=download)
        except RuntimeError as e:
            if download or "download=True" not in str(e):  # torchvision's "not found or corrupted"
                raise
            return None
        except READ_ERRORS as e:
            if download:
                raise
            raise ZooError(f"{self.registry_name}: cannot read the files in {self.folder()} "
                           f"({type(e).__name__}: {' '.join(str(e).split()) or 'malformed file'})") from None

    def prepare_data(self) -> None:
        if self.open(train=False) is not None:
            return
        if not self.download:
            raise self.missing("data.download=false")
        root = self.root_path()
        root.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        with FileLock(root / f".{self.registry_name}.lock"):
            if self.open(train=False) is None:  # another process may have fetched it while we waited
                self.fetch(root)

    def fetch(self, root: Path) -> None:
        """Download (or extract the user's archives) into a temporary folder, then move the verified files in."""
        staging = Path(tempfile.mkdtemp(prefix=f".{self.registry_name}-", dir=root))
        try:
            for archive in self.archives():  # archives the user put there: torchvision checks their md5
                if archive.is_file():
                    target = staging / archive.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(archive, target)
                    except OSError:
                        shutil.copy2(archive, target)
            try:  # torchvision's progress bars show on stderr; a failure is one line, below
                self.open(train=False, root=staging, download=True)
            except (*DOWNLOAD_ERRORS, *READ_ERRORS) as e:
                raise self.missing(" ".join(str(e).split()) or type(e).__name__) from None
            for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                dest = root / path.relative_to(staging)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def missing(self, reason: str) -> ZooError:
        """Return the one-line error for files that are absent (or fail torchvision's checks) and cannot be fetched."""
        archives = self.archives()
        where = "there" if {a.parent for a in archives} == {self.folder()} else f"in {archives[0].parent}"
        return ZooError(f"{self.registry_name}: the {self.source} files are not in {self.folder()} (or fail "
                        f"torchvision's checks) and were not downloaded ({reason}). Put "
                        f"{', '.join(self.expected_files())} there, or {', '.join(a.name for a in archives)} "
                        f"{where}, from {self.source_url()}")

    # -- splits ------------------------------------------------------------------------------------
    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        from sklearn.model_selection import train_test_split

        loaded = {}
        for name, train in (("train", True), ("test", False)):
            ds = self.open(train=train)
            if ds is None:
                raise self.missing("call prepare_data() first" if self.download else "data.download=false")
            loaded[name] = (as_images(ds.data), torch.as_tensor(ds.targets, dtype=torch.long), list(ds.classes))
        (x, y, classes), (xt, yt, _) = loaded["train"], loaded["test"]
        try:
            train, val = train_test_split(np.arange(len(y)), test_size=self.val_fraction, random_state=self.seed,
                                          stratify=y.numpy())
        except ValueError as e:  # too few images for a stratified validation split
            raise ZooError(f"{self.registry_name}: cannot cut a stratified validation split of {self.val_fraction} "
                           f"from {len(y)} training images: {e}") from None
        train, val = torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(val))
        splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (xt, yt)}
        return splits, image_spec(splits["train"][0], classes)


def as_images(data: Any) -> torch.Tensor:
    """Return torchvision's `.data` as a uint8 (N, C, H, W) tensor: MNIST holds (N, H, W), CIFAR (N, H, W, C)."""
    x = torch.as_tensor(data)
    return x.unsqueeze(1).contiguous() if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


# -- the families -------------------------------------------------------------------------------


class MNISTFamily(TorchvisionImages):
    """Datasets in the MNIST idx format, read from `<root>/<source>/raw/`."""

    def folder(self) -> Path:
        return self.root_path() / self.source / "raw"

    def expected_files(self) -> list[str]:
        return [name.removesuffix(".gz") for name, _ in self.torchvision_class().resources]

    def archives(self) -> list[Path]:
        return [self.folder() / name for name, _ in self.torchvision_class().resources]

    def source_url(self) -> str:
        return self.torchvision_class().mirrors[0]

    @classmethod
    def example(cls, root: str | Path) -> dict:
        """Write a tiny dataset in the real idx format (digits upscaled to 28x28) under `root`; return its kwargs."""
        x, y = digits_images(28, 1)
        write_mnist(Path(root) / cls.source / "raw", (x[:40], y[:40]), (x[40:60], y[40:60]))
        return {"root": str(root), "download": False, "val_fraction": 0.25, "batch_size": 16}


class CIFARFamily(TorchvisionImages):
    """Datasets in the CIFAR python-pickle format, read from `<root>/<base_folder>/`, md5-checked by torchvision.

    Args:
        verify: check the files against torchvision's published md5 sums; `false` accepts files in
            the CIFAR format that you wrote yourself (a subset, other images). Downloads are always checked.
    """

    def __init__(self, *, root: str | None = None, download: bool = True, verify: bool = True, augment: str = "none",
                 batch_size: PositiveInt = 128, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.1, seed: int = 0) -> None:
        super().__init__(root=root, download=download, augment=augment, batch_size=batch_size,
                         eval_batch_size=eval_batch_size, val_fraction=val_fraction, seed=seed)
        self.verify = verify

    def torchvision_class(self) -> type:
        cls = super().torchvision_class()
        if self.verify:
            return cls
        unverified = {  # torchvision skips the md5 check of a file whose md5 is None
            "train_list": [[name, None] for name, _ in cls.train_list],
            "test_list": [[name, None] for name, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        }
        return type(cls.__name__, (cls,), unverified)

    def folder(self) -> Path:
        return self.root_path() / self.torchvision_class().base_folder

    def expected_files(self) -> list[str]:
        cls = self.torchvision_class()
        return [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]

    def archives(self) -> list[Path]:
        return [self.root_path() / self.torchvision_class().filename]

    def source_url(self) -> str:
        return self.torchvision_class().url

    @classmethod
    def example(cls, root: str | Path) -> dict:
        """Write a tiny dataset in the real CIFAR format (digits as 3x32x32) under `root`; return its kwargs."""
        x, y = digits_images(32, 3)
        write_cifar(root, cls.source, (x[:40], y[:40]), (x[40:60], y[40:60]))
        return {"root": str(root), "download": False, "verify": False, "val_fraction": 0.25, "batch_size": 16}


@DATA.register("mnist")
class MNIST(MNISTFamily):
    """MNIST handwritten digits: 60k + 10k grey 28x28 images, 10 classes (torchvision; downloaded once, ~12 MB)."""

    source = "MNIST"


@DATA.register("fashion_mnist")
class FashionMNIST(MNISTFamily):
    """Fashion-MNIST (Zalando): 60k + 10k grey 28x28 images of clothing, 10 classes (torchvision, ~30 MB)."""

    source = "FashionMNIST"


@DATA.register("cifar10")
class CIFAR10(CIFARFamily):
    """CIFAR-10: 50k + 10k colour 32x32 images, 10 classes (torchvision; downloaded once, ~170 MB)."""

    source = "CIFAR10"


@DATA.register("cifar100")
class CIFAR100(CIFARFamily):
    """CIFAR-100: 50k + 10k colour 32x32 images, 100 fine classes (torchvision; downloaded once, ~169 MB)."""

    source = "CIFAR100"


# -- writing the real formats (examples and tests) ----------------------------------------------


def digits_images(size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's 1,797 digits as uint8 (N, size, size, channels) images and their labels."""
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float().div(16).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).repeat(1, 1, 1, channels)
    return x.numpy(), bunch.target.astype(np.int64)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array in the idx format of MNIST (gzip-compressed when `path` ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def write_mnist(folder: str | Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                gz: bool = False) -> list[Path]:
    """Write (N, 28, 28[, 1]) uint8 images and labels as the four MNIST idx files in `folder`; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for prefix, (x, y) in (("train", train), ("t10k", test)):
        x = np.asarray(x)
        for kind, array, dims in (("images", x.reshape(x.shape[:3]), 3), ("labels", np.asarray(y), 1)):
            paths.append(folder / f"{prefix}-{kind}-idx{dims}-ubyte{'.gz' if gz else ''}")
            write_idx(paths[-1], array)
    return paths


def write_cifar(root: str | Path, source: str, train: tuple[np.ndarray, np.ndarray],
                test: tuple[np.ndarray, np.ndarray], class_names: list[str] | None = None) -> Path:
    """Write (N, 32, 32, 3) uint8 images and labels as CIFAR-10 or CIFAR-100 python batches; return their folder."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, source)
    folder = Path(root) / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    fine = cls.meta["key"] == "fine_label_names"  # CIFAR-100 labels its batches fine_labels / coarse_labels
    n_classes = 100 if fine else 10
    names = class_names or [f"class_{i}" for i in range(n_classes)]

    def batch(x: np.ndarray, y: np.ndarray) -> dict:
        data = np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)).reshape(len(x), -1)  # rows of R, G, B planes
        labels = [int(v) for v in y]
        return {"data": data, "fine_labels": labels, "coarse_labels": [v % 20 for v in labels]} if fine \
            else {"data": data, "labels": labels}

    parts = np.array_split(np.arange(len(train[1])), len(cls.train_list))
    for (name, _), idx in zip(cls.train_list, parts):
        (folder / name).write_bytes(pickle.dumps(batch(train[0][idx], train[1][idx])))
    (folder / cls.test_list[0][0]).write_bytes(pickle.dumps(batch(*test)))
    meta = {cls.meta["key"]: names}
    if fine:
        meta["coarse_label_names"] = [f"superclass_{i}" for i in range(20)]
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps(meta))
    return folder
