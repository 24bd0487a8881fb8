"""The fast path's logging: Lightning's result collections without the device walk of every `self.log`.

Each `self.log(name, value)` ends in `_ResultCollection.log`, which calls `.to(value.device)` on the
metric that stores `name` (Lightning 2.6, logger_connector/result.py). `_ResultMetric.to` rebuilds
its whole `__dict__` with `apply_to_collection`: every container of the torchmetrics `Metric` it is
(hook dicts, defaults, reductions) is copied, its metadata dataclasses are deep-copied, and the
tensors go through `Tensor.to`. When every tensor in it is already on that device, `Tensor.to`
returns each one as it is, so the walk only swaps containers for equal copies: about 0.3 ms of
host Python per call, seven calls per epoch for a zoo classifier's epoch metrics.

`lean_results` makes the loops' collections skip that walk where it would change nothing: their
metrics check, read-only, that every tensor they hold is on the device, and otherwise move as
Lightning's do. The values, their reductions, callback_metrics and what the loggers receive are
the same objects and numbers either way (tests/test_fastpath.py compares them with the ordinary
loop's).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultCollection, _ResultMetric
from torchmetrics import Metric

# Types that most of a metric's attributes have, tested first: the check runs at every `self.log`.
ATOMS = frozenset((bool, int, float, str, type(None), torch.device, torch.dtype))
DICTS = frozenset((dict, OrderedDict))


def on_device(data: Any, device: torch.device) -> bool:
    """Return True when every tensor in `data` is on `device` and it holds no torchmetrics `Metric` (one
    would be moved with its own `.to`), looking where `apply_to_collection` looks: mappings,
    sequences and dataclass fields."""
    kind = type(data)
    if kind in ATOMS:
        return True
    if kind in DICTS:
        return all(on_device(v, device) for v in data.values())
    if isinstance(data, torch.Tensor):
        return data.device == device
    if isinstance(data, Metric):
        return False
    if isinstance(data, Mapping):
        return all(on_device(v, device) for v in data.values())
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return all(on_device(v, device) for v in data)
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return all(on_device(getattr(data, f.name), device) for f in dataclasses.fields(data) if f.init)
    return True


class LeanResultMetric(_ResultMetric):
    """A logged value whose move to the device it is already on does nothing (see the module doc)."""

    def to(self, *args: Any, **kwargs: Any) -> _ResultMetric:
        if len(args) == 1 and not kwargs and isinstance(args[0], torch.device) and on_device(self.__dict__, args[0]):
            return self
        return super().to(*args, **kwargs)


class LeanResults(_ResultCollection):
    """A loop's result collection whose metrics are `LeanResultMetric`s."""

    def __setitem__(self, key: str, metric: Any) -> None:
        if type(metric) is _ResultMetric:  # created by `_ResultCollection.log` for a name logged the first time
            metric.__class__ = LeanResultMetric
        super().__setitem__(key, metric)


def lean_results(*results: _ResultCollection) -> None:
    """Make these result collections, and the metrics already in them, lean (in place: the loops and the
    logger connector keep their references)."""
    for collection in results:
        if type(collection) is _ResultCollection:
            collection.__class__ = LeanResults
        for metric in collection.values():
            if type(metric) is _ResultMetric:
                metric.__class__ = LeanResultMetric
