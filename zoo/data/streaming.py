"""`streaming`: any zoo dataset written as litdata shards, streamed from a folder or a cloud URL.

    zoo prepare --data digits --out shards/                           # write_shards below
    python -m zoo.fit --config ... data.name=streaming data.path=shards/     # or s3://bucket/shards

A shards folder holds one litdata optimized dataset per split (`train/`, `val/`, `test/`: chunk files
and an index.json) and `zoo.json`: the source's DataSpec, its data config and the split sizes. Each
sample is {"id": its row in the split, "x": input, "y": target}, exactly the source's split tensors.

Training reads them with litdata's StreamingDataset (shuffled by the seed and the epoch) through its
StreamingDataLoader: each DDP rank reads a disjoint part of every split (litdata shards by rank and
by worker), and the loader's position goes into every checkpoint, so a resume is exact mid-epoch.
Data on a cloud URL is fetched chunk by chunk into a local cache, of bounded size.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from zoo.bounds import NonNegativeInt, PositiveInt
from zoo.data.base import SPLITS, Split, ZooDataModule
from zoo.errors import ConfigError, ZooError
from zoo.registry import DATA, data_kinds
from zoo.spec import DataSpec

META = "zoo.json"
FORMAT = 1  # bump when the layout changes; readers refuse formats they do not know
REMOTE = ("s3://", "gs://", "r2://", "azure://", "hf://", "local:")  # what litdata streams from (local: for tests)


# -- writing: `zoo prepare` ---------------------------------------------------------------------


def _samples(bounds: tuple[int, int], x: torch.Tensor, y: torch.Tensor, order: torch.Tensor
             ) -> Iterator[dict[str, Any]]:
    for i in order[bounds[0] : bounds[1]].tolist():
        yield {"id": i, "x": x[i], "y": y[i]}


def write_shards(datamodule: Any, out: str | Path, *, source: dict[str, Any], chunk_bytes: str = "64MB",
                 workers: int = 1, overwrite: bool = False) -> dict[str, Any]:
    """Write a prepared DataModule's train/val/test splits and spec as litdata shards under `out`; return the meta.

    Rows are written in a seeded random order (each keeps its row number as "id"): litdata shuffles
    chunks, then windows of items within a chunk, so a split written in its stored order (sorted
    names, classes in blocks) would give batches drawn from a narrow, correlated stretch of it.
    Everything goes to a temporary folder beside `out`, renamed into place at the end, so an
    interrupted prepare leaves no half-written shards where a good folder was.
    """
    import litdata

    out = Path(out).expanduser()
    if str(out).startswith(REMOTE):
        raise ConfigError(f"zoo prepare writes to a local folder; upload it to {out} afterwards (e.g. aws s3 sync)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ZooError(f"{out} already exists and is not empty: remove it or pass --overwrite")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    spec = datamodule.spec
    sizes = {}
    # litdata runs its writers in worker processes; forked, they share the split tensors without a copy.
    # optimize sets the start method process-wide, so it is restored afterwards.
    previous = multiprocessing.get_start_method(allow_none=True)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    try:
        for split in SPLITS:
            x, y = datamodule.split(split)
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(getattr(datamodule, "seed", 0)))
            step = max(1, -(-len(x) // (workers * 4)))  # a few inputs per worker, for balance
            inputs = [(i, min(i + step, len(x))) for i in range(0, len(x), step)]
            litdata.optimize(functools.partial(_samples, x=x, y=y, order=order), inputs, output_dir=str(tmp / split),
                             chunk_bytes=chunk_bytes, num_workers=workers, verbose=False, start_method=method,
                             reorder_files=False)
            sizes[split] = len(x)
        meta = {"format": FORMAT, "spec": spec.to_dict(), "source": source, "sizes": sizes}
        (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        multiprocessing.set_start_method(previous, force=True)
    return meta


# -- reading ------------------------------------------------------------------------------------


def is_remote(path: str) -> bool:
    return str(path).startswith(REMOTE)


def default_cache(path: str) -> Path:
    """Return where chunks of a remote shards folder are cached: $ZOO_HOME/streaming/<hash of the URL>."""
    import hashlib

    from zoo.data.download import cache_dir

    return cache_dir() / "streaming" / hashlib.sha256(path.encode()).hexdigest()[:16]


def read_meta(path: str, cache_dir: str | None = None) -> dict[str, Any]:
    """Return the zoo.json of a shards folder or URL, or raise a one-line error naming what is missing."""
    if is_remote(path):
        from litdata.streaming.downloader import get_downloader

        local = Path(cache_dir or default_cache(path)) / META
        local.parent.mkdir(parents=True, exist_ok=True)
        local.unlink(missing_ok=True)  # the remote copy is the truth
        try:
            get_downloader(path, str(local.parent), []).download_file(f"{path.rstrip('/')}/{META}", str(local))
        except Exception as e:  # noqa: BLE001 - each cloud client raises its own kinds
            raise ZooError(f"Cannot read {path}/{META}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    else:
        local = Path(path).expanduser() / META
    if not local.is_file():
        raise ConfigError(f"No zoo shards at {path} ({META} missing): write them with "
                          f"`zoo prepare --data NAME --out {path}`")
    meta = json.loads(local.read_text())
    if meta.get("format") != FORMAT:
        raise ZooError(f"{path} holds shards of format {meta.get('format')}, this zoo reads format {FORMAT}: "
                       f"prepare them again")
    return meta


def to_batch(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (x, y) of a collated batch of samples (the ids are for tests and debugging)."""
    return batch["x"], batch["y"]


@functools.cache
def loader_class() -> type:
    """Return zoo's StreamingDataLoader (defined on first use: litdata is imported only when streaming)."""
    from litdata import StreamingDataLoader

    class ZooStreamingLoader(StreamingDataLoader):
        """litdata's StreamingDataLoader, yielding (x, y), whose saved position is what training consumed.

        Two fixes for exact resume under Lightning:
        - Lightning fetches one batch ahead, so when it checkpoints after batch k the loader has yielded
          k + 1; a resume from the loader's own count would skip a batch. As zoo's InMemoryLoader does,
          the position saved is the trainer's count of batches trained on (`consumed`).
        - After a resume, Lightning stops reading the resumed epoch once it has counted a full epoch's
          batches, so litdata's generator never runs to its end, where it would clear its `restore`
          flag, and the next epoch would replay the restored position (an empty epoch). A new pass
          after the restored one therefore clears the flag itself.
        """

        def __init__(self, *args: Any, consumed: Callable[[], int] | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.consumed = consumed
            self._passes_since_restore = 0

        def load_state_dict(self, obj: dict[str, Any]) -> None:
            super().load_state_dict(obj)
            self._passes_since_restore = 0

        def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            if self.restore and self._passes_since_restore > 0:
                self.restore = False  # the restored epoch was read; this pass is a new epoch
            self._passes_since_restore += 1
            for batch in super().__iter__():
                yield to_batch(batch)

        def state_dict(self) -> dict[str, Any]:
            if self.consumed is None:
                return super().state_dict()
            done = self.consumed() * self.batch_size  # samples trained on by this rank in this epoch
            return {"dataset": self.dataset.state_dict(done, self.num_workers, self.batch_size),
                    "current_epoch": self.current_epoch, "num_samples_yielded": done,
                    "latest_worker_idx": (self.consumed() - 1) % max(1, self.num_workers)}

    return ZooStreamingLoader


@DATA.register("streaming")
class Streaming(ZooDataModule):
    """Any zoo dataset as litdata shards (`zoo prepare`), streamed from a folder or a cloud URL.

    Args:
        path: a folder written by `zoo prepare`, or its copy at a URL litdata reads (s3://, gs://, r2://, ...).
        shuffle: shuffle the training samples (by seed and epoch; litdata shuffles chunks, then within them).
        num_workers: DataLoader worker processes (0 reads in the training process).
        cache_dir: where chunks of a remote path are cached (default $ZOO_HOME/streaming/...).
        max_cache_size: how much that cache may hold, e.g. 10GB.
    """

    def __init__(self, *, path: str, shuffle: bool = True, num_workers: NonNegativeInt = 0,
                 cache_dir: str | None = None, max_cache_size: str = "50GB", batch_size: PositiveInt = 64,
                 eval_batch_size: PositiveInt | None = None,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        self.path = path if is_remote(path) else str(Path(path).expanduser())
        self.shuffle, self.num_workers = shuffle, num_workers
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self._meta: dict[str, Any] | None = None
        self._materialized: dict[str, Split] = {}

    @classmethod
    def kinds(cls) -> tuple[tuple[str, str], ...]:
        """Every kind of the other registered datasets: any of them can be prepared as shards."""
        kinds = [k for d in DATA.names() if d != "streaming" for k in data_kinds(d)]
        return tuple(dict.fromkeys(kinds))

    @classmethod
    def kind(cls, *, path: str | None = None, cache_dir: str | None = None, **_: Any) -> tuple[str, str]:
        """Return the kind of the dataset the shards hold, from their zoo.json."""
        if not path:
            raise ConfigError("data.path is required: a folder written by `zoo prepare` (or its cloud URL)")
        spec = read_meta(path if is_remote(path) else str(Path(path).expanduser()), cache_dir)["spec"]
        return spec["modality"], spec["task"]

    @property
    def meta(self) -> dict[str, Any]:
        """The shards' zoo.json: spec, source config and split sizes."""
        if self._meta is None:
            self._meta = read_meta(self.path, self.cache_dir)
        return self._meta

    @property
    def spec(self) -> DataSpec:
        return DataSpec.from_dict(self.meta["spec"])

    def setup(self, stage: str | None = None) -> None:
        self.meta  # noqa: B018 - fail here, before training, when the shards are missing

    def dataset(self, split: str, shuffle: bool = False, drop_last: bool = False) -> Any:
        """Return litdata's StreamingDataset over one split."""
        from litdata import StreamingDataset

        cache = None
        if is_remote(self.path):
            cache = str(Path(self.cache_dir or default_cache(self.path)) / split)
        return StreamingDataset(f"{self.path.rstrip('/')}/{split}", cache_dir=cache, shuffle=shuffle,
                                drop_last=drop_last, seed=self.seed, max_cache_size=self.max_cache_size)

    def split(self, name: str) -> Split:
        """Return a whole split as (x, y) CPU tensors, in row order: for evaluators and baselines (it must fit in memory)."""
        if name not in self._materialized:
            items = sorted(self.dataset(name), key=lambda item: int(item["id"]))
            if not items:
                raise ZooError(f"The {name} split of {self.path} is empty")
            ys = [torch.as_tensor(item["y"]) for item in items]
            self._materialized[name] = (torch.stack([item["x"] for item in items]), torch.stack(ys))
        return self._materialized[name]

    def _loader(self, split: str, shuffle: bool = False) -> Any:
        trainer = self.trainer
        world = trainer.world_size if trainer is not None else 1
        n, batch_size, consumed = self.meta["sizes"][split], self.batch_size, None
        if shuffle:
            # Training drops the last partial batch: a batch of one breaks BatchNorm, and under DDP every
            # rank must run the same number of steps.
            if n < batch_size * world:
                raise ConfigError(f"The train split of {self.path} has {n} samples, fewer than data.batch_size x "
                                  f"devices = {batch_size * world}: lower data.batch_size")
            if trainer is not None:
                consumed = lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed  # noqa: E731
        else:
            # Evaluation reads every sample, in batches of `eval_batch`. litdata hands each rank whole batches
            # (the remainder to the last rank), so a split smaller than that x ranks is read in smaller batches.
            batch_size = min(self.loader_batch_size(n, shuffle=False), max(1, n // world))
        # Its own generator: a DataLoader otherwise draws each iterator's base seed from the global torch
        # RNG, and a resumed run, which makes one more iterator than the run it continues, would diverge.
        return loader_class()(self.dataset(split, shuffle=shuffle and self.shuffle, drop_last=shuffle),
                              batch_size=batch_size, num_workers=self.num_workers, drop_last=shuffle,
                              consumed=consumed, generator=torch.Generator().manual_seed(self.seed))

    @classmethod
    def example(cls, root: Path, kind: tuple[str, str] | None = None) -> dict:
        """Write shards of a small registered dataset of `kind` (default: digits) under `root`; return kwargs."""
        from zoo.registry import data_kind

        kind = kind or ("image", "classification")
        preferred = {("image", "classification"): "digits", ("tabular", "classification"): "iris",
                     ("tabular", "regression"): "diabetes", ("tokens", "classification"): "names_gender",
                     ("tokens", "language_modeling"): "names"}
        candidates = [d for d in DATA.names() if d != "streaming" and kind in data_kinds(d)]
        name = preferred.get(kind) if preferred.get(kind) in candidates else candidates[0]
        source_cls = DATA.get(name)
        kwargs = {}
        if hasattr(source_cls, "example"):
            kwargs = source_cls.example(root / name, kind) if len(source_cls.kinds()) > 1 else source_cls.example(root / name)
        assert data_kind(name, kwargs) == kind
        datamodule = source_cls(**kwargs)
        datamodule.prepare_data()
        out = root / f"{name}-shards"
        write_shards(datamodule, out, source={"name": name, **kwargs})
        return {"path": str(out), "batch_size": 32}
