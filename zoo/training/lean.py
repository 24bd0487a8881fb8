"""Lightning's and torch's bookkeeping without the work that changes nothing: for the fast path
(zoo/training/fastpath.py), result collections without the device walk of every `self.log` and
the default profiler without a context made at every hook; for every run (zoo.fit), torch without
its failing NVML probe at every optimizer step.

Each `self.log(name, value)` ends in `_ResultCollection.log`, which calls `.to(value.device)` on the
metric that stores `name` (Lightning 2.6, logger_connector/result.py). `_ResultMetric.to` rebuilds
its whole `__dict__` with `apply_to_collection`: every container of the torchmetrics `Metric` it is
(hook dicts, defaults, reductions) is copied, its metadata dataclasses are deep-copied, and the
tensors go through `Tensor.to`. When the metric is already on that device, `Tensor.to` returns each
tensor as it is, so the walk only swaps containers for equal copies: about 0.3 ms of host Python per
call, seven calls per epoch for a zoo classifier's epoch metrics.

`lean_results` makes the loops' collections skip that walk where it would change nothing. A logged
tensor's metric knows its device (`_DeviceDtypeModuleMixin.device`, which every move updates), and
all its tensors are made on it: its states and defaults at creation and by each move, each update
from the states it adds to, each reset from the defaults. Asked onto another device, or holding a
logged `Metric` object rather than a tensor, it moves as Lightning's do. The values, their
reductions, callback_metrics and what the loggers receive are the same either way
(tests/test_fastpath.py compares them with Lightning's own collections and the ordinary loop's).

Lightning also wraps each hook it calls, some two hundred an epoch, in `trainer.profiler.profile(...)`.
The default profiler (`PassThroughProfiler`) records nothing, yet its `profile` is a generator-based
context manager that calls its empty `start` and `stop`; `lean_profiler` makes it hand out one
shared empty context instead.
"""

from __future__ import annotations

import ctypes
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import lightning as L
import torch
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultCollection, _ResultMetric

NOTHING = nullcontext()  # reusable: it holds no state


class LeanResultMetric(_ResultMetric):
    """A logged tensor whose move to the device it is already on does nothing (see the module doc)."""

    def to(self, *args: Any, **kwargs: Any) -> _ResultMetric:
        if self.is_tensor and len(args) == 1 and not kwargs and isinstance(args[0], torch.device) \
                and args[0] == self.device:
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


class LeanPassThroughProfiler(PassThroughProfiler):
    """Lightning's default profiler, which records nothing, handing out one shared empty context."""

    def profile(self, action_name: str) -> AbstractContextManager:
        return NOTHING


def lean_profiler(trainer: L.Trainer, on: bool) -> None:
    """Make the Trainer's default profiler lean (on) or Lightning's own again (off), in place; any other
    profiler is left as it is."""
    profiler = trainer.profiler
    if on and type(profiler) is PassThroughProfiler:
        profiler.__class__ = LeanPassThroughProfiler
    elif not on and type(profiler) is LeanPassThroughProfiler:
        profiler.__class__ = PassThroughProfiler


def skip_failing_nvml_probe() -> None:
    """Stop torch probing for NVIDIA's NVML library at every optimizer step on a machine that has none.

    Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 at import, so that asking for a GPU cannot
    poison forked processes. With that variable, a CUDA build of torch on a machine without
    NVIDIA's driver tries to load NVML again at every `torch.cuda.is_available()`, and torch's
    optimizers ask at every step: about 0.25 ms of CPU per step here (the default pip wheel is a
    CUDA build). Without NVML there is no GPU state that a fork could poison, so the check goes
    back to torch's default.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1" or not torch.version.cuda:
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"
