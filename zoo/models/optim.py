"""Optimizers and learning-rate schedules built from the `optim` config block.

    optim: {name: adamw, lr: 1e-3, weight_decay: 0.01, scheduler: {name: cosine, warmup_steps: 100}}

`OptimConfig` is both the schema of that block (zoo/training/config.py checks configs against it)
and the defaults that `build_optimizer` fills in. It lives here, beside the builders, because a
model builds its own optimizer in `configure_optimizers` (Lightning's hook), from its `optim`
hyper-parameters, also when it is loaded and trained without zoo.fit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from zoo.bounds import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Probability
from zoo.errors import choose

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "linear", "step", "onecycle")


@dataclass
class SchedulerConfig:
    name: str = "none"  # none | cosine | linear | step | onecycle
    warmup_steps: NonNegativeInt = 0
    min_lr_ratio: Fraction = 0.0  # cosine/linear decay floor, as a fraction of lr
    step_size: PositiveInt = 1000  # step: decay every this many optimizer steps
    gamma: PositiveFloat = 0.1


@dataclass
class OptimConfig:
    name: str = "adamw"  # adam | adamw | sgd
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    betas: list[Probability] = field(default_factory=lambda: [0.9, 0.999])
    eps: PositiveFloat = 1e-8
    momentum: Probability = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    fused: bool | None = None  # adam/adamw: one fused kernel per step; None: fused for CUDA parameters
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


def param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split parameters so that biases, norms and embeddings' 1-D params get no weight decay."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(module: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Return the optimizer named by `cfg["name"]` over `module`'s parameters (OptimConfig's defaults fill gaps)."""
    cfg = {**dataclasses.asdict(OptimConfig()), **cfg}
    name = choose("optimizer", cfg["name"], OPTIMIZERS)
    groups = param_groups(module, cfg["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"])
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    fused = cfg["fused"]
    if fused is None:  # the fused kernel on the GPU (fewer launches); the CPU keeps the default (foreach) kernel
        fused = any(p.is_cuda for g in groups for p in g["params"])
    return cls(groups, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"], fused=fused or None)


def lr_factor(step: int, total: int, name: str, warmup: int, min_ratio: float, step_size: int, gamma: float) -> float:
    """Return the multiplier of the base learning rate at optimizer step `step` (linear warm-up first)."""
    if step < warmup:
        return (step + 1) / warmup
    if name == "step":
        return gamma ** ((step - warmup) // max(step_size, 1))
    progress = min(1.0, (step - warmup) / max(total - warmup, 1))
    if name == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if name == "linear":
        return min_ratio + (1 - min_ratio) * (1 - progress)
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], total_steps: int) -> dict | None:
    """Return a Lightning `lr_scheduler` dict stepping every optimizer step, or None for `name: none`."""
    sched = {**dataclasses.asdict(SchedulerConfig()), **cfg}
    name = choose("scheduler", sched["name"], SCHEDULERS)
    if name == "none" and not sched["warmup_steps"]:
        return None
    if name == "onecycle":
        max_lrs = [g["lr"] for g in optimizer.param_groups]
        pct = sched["warmup_steps"] / total_steps if sched["warmup_steps"] else 0.3
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lrs, total_steps=total_steps, pct_start=min(max(pct, 0.01), 0.99)
        )
    else:
        args = (total_steps, name, sched["warmup_steps"], sched["min_lr_ratio"], sched["step_size"], sched["gamma"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, *args))
    return {"scheduler": scheduler, "interval": "step", "frequency": 1}


#: `optim` keys a resumed run may change: applied to the optimizers restored from the checkpoint
#: (`retune`). The others (the optimizer's kind, betas, eps, momentum, the schedule) shape the
#: state being restored, so a resume refuses to change them.
RETUNABLE = ("lr", "weight_decay")


def retune(optimizers: list[torch.optim.Optimizer], schedulers: list[Any], old: dict[str, Any],
           new: dict[str, Any]) -> None:
    """Apply a changed lr or weight decay to optimizers (built by `build_optimizer`) and schedulers
    restored from a checkpoint, keeping their state.

    A new lr scales every learning rate the optimizer and its schedule hold (`lr`, and the
    `initial_lr` / `max_lr` / `min_lr` / `base_lrs` that warm-up, cosine and one-cycle schedules
    start from) by new / old, so the schedule continues from the same point at the new level, as a
    run started with that lr would be at this step. A new weight decay goes to the first parameter
    group, the one `param_groups` decays.
    """
    old, new = {**dataclasses.asdict(OptimConfig()), **old}, {**dataclasses.asdict(OptimConfig()), **new}
    ratio = new["lr"] / old["lr"]
    for optimizer in optimizers:
        for i, group in enumerate(optimizer.param_groups):
            for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                if key in group:
                    group[key] *= ratio
            if i == 0:
                group["weight_decay"] = new["weight_decay"]
    for scheduler in schedulers:
        if hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [lr * ratio for lr in scheduler.base_lrs]
        scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
