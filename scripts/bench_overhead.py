"""Overhead of zoo over a hand-written PyTorch loop: same CNN, same digits data, same epochs.

    python scripts/bench_overhead.py [--epochs 20] [--repeats 5] [--batch-sizes 64 256] [--device cpu]

Each repeat runs the hand loop, `zoo.fit` and the Lightning floor (below) back to back (paired,
rotating which goes first), with one CPU thread, each doing the same work per
epoch: a shuffled pass over the train split with AdamW, a validation pass that computes loss and
accuracy, and a checkpoint of model + optimizer written atomically (temp file, then rename).
zoo's time is `trainer.fit` as `zoo.fit` runs it (in-memory loader, metrics, last.ckpt and
best.ckpt, CSV logging); its test pass is excluded, as is the hand loop's setup.

A third contender, "floor", is the least a Lightning Trainer can do for the same work: a bare
LightningModule around the same CNN and loader, no logger, no metrics objects, no callbacks but
one `trainer.save_checkpoint` per epoch. floor/hand is what Lightning's own loop costs, which
no Lightning-based trainer can go below; zoo/floor is what zoo adds on top of it.

Prints the median ratios zoo/hand, floor/hand and zoo/floor per batch size.
Targets for zoo/hand: <= 1.03 at 256, <= 1.08 at 64.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def hand_loop(model: torch.nn.Module, splits: dict, epochs: int, batch_size: int, lr: float, device: str,
              root: str) -> float:
    """Train with a plain PyTorch loop; return the wall time in seconds."""
    from zoo.models.optim import build_optimizer

    ckpt = Path(root) / "hand.ckpt"

    model = model.to(device)
    opt = build_optimizer(model, {"name": "adamw", "lr": lr})
    (x, y), (xv, yv) = [tuple(t.to(device) for t in splits[s]) for s in ("train", "val")]
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        g = torch.Generator().manual_seed(epoch)
        order = torch.randperm(len(x), generator=g).to(device)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct, total = 0, 0.0
            for i in range(0, len(xv), batch_size):
                out = model(xv[i : i + batch_size])
                total += F.cross_entropy(out, yv[i : i + batch_size], reduction="sum").item()
                correct += (out.argmax(1) == yv[i : i + batch_size]).sum().item()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, ckpt.with_suffix(".tmp"))
        os.replace(ckpt.with_suffix(".tmp"), ckpt)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def zoo_fit(epochs: int, batch_size: int, lr: float, device: str, root: str) -> float:
    """Train with `zoo.fit` as a user runs it (progress bar off); return trainer.fit's wall time."""
    from zoo.fit import fit
    from zoo.training.config import validate

    cfg = validate({
        "model": {"name": "cnn", "channels": [32, 64]},
        "data": {"name": "digits", "batch_size": batch_size},
        "optim": {"name": "adamw", "lr": lr},
        "trainer": {"max_epochs": epochs, "accelerator": device, "devices": 1, "enable_progress_bar": False,
                    "num_sanity_val_steps": 0},
        "run": {"dir": root, "name": "bench"},
    })
    return fit(cfg)["fit_seconds"]


def lightning_floor(model: torch.nn.Module, splits: dict, epochs: int, batch_size: int, lr: float, device: str,
                    root: str) -> float:
    """Train with a bare Lightning Trainer doing the hand loop's work; return trainer.fit's wall time."""
    import lightning as L

    from zoo.data.base import InMemoryLoader
    from zoo.models.optim import build_optimizer

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            out = self.net(batch[0])
            self.val_sums += torch.stack([F.cross_entropy(out, batch[1], reduction="sum"), (out.argmax(1) == batch[1]).sum()])

        def on_validation_epoch_start(self) -> None:
            self.val_sums = torch.zeros(2, device=self.device)

        def on_validation_epoch_end(self) -> None:
            self.val_sums.tolist()  # the hand loop reads its sums back too

        def configure_optimizers(self):
            return build_optimizer(self, {"name": "adamw", "lr": lr})

    class SaveEachEpoch(L.Callback):
        def on_validation_end(self, trainer, pl_module) -> None:
            trainer.save_checkpoint(Path(root) / "floor.ckpt")

    (x, y), (xv, yv) = [tuple(t.to(device) for t in splits[s]) for s in ("train", "val")]
    trainer = L.Trainer(max_epochs=epochs, accelerator="gpu" if device == "cuda" else device, devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[SaveEachEpoch()])
    train = InMemoryLoader(x, y, batch_size, shuffle=True, epoch=lambda: trainer.current_epoch, drop_uneven=True)
    start = time.perf_counter()
    trainer.fit(Bare(), train, InMemoryLoader(xv, yv, batch_size))
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    from zoo.data.images import Digits
    from zoo.models.cnn import CNN

    dm = Digits()
    splits = {s: dm.split(s) for s in ("train", "val")}

    def fresh_cnn(seed: int) -> CNN:
        torch.manual_seed(seed)  # the same initial weights for every contender of a repeat
        return CNN(dm.spec.to_dict(), channels=[32, 64])

    device = "gpu" if args.device == "cuda" else args.device
    print(f"digits CNN, {args.epochs} epochs, {args.repeats} paired repeats, 1 thread, device {args.device}")
    for bs in args.batch_sizes:
        runs = {
            "hand": lambda r: hand_loop(fresh_cnn(r), splits, args.epochs, bs, args.lr, args.device, root),
            "zoo": lambda r: zoo_fit(args.epochs, bs, args.lr, device, root),
            "floor": lambda r: lightning_floor(fresh_cnn(r), splits, args.epochs, bs, args.lr, args.device, root),
        }
        times = {name: [] for name in runs}
        with tempfile.TemporaryDirectory() as root:
            zoo_fit(1, bs, args.lr, device, root)  # warm-up: imports, allocator, first-call costs
            hand_loop(fresh_cnn(0), splits, 1, bs, args.lr, args.device, root)
            lightning_floor(fresh_cnn(0), splits, 1, bs, args.lr, args.device, root)
            for r in range(args.repeats):
                order = list(runs)[r % 3:] + list(runs)[: r % 3]  # rotate who goes first
                for name in order:
                    times[name].append(runs[name](r))

        def ratio(a: str, b: str) -> str:
            rs = [x / y for x, y in zip(times[a], times[b])]
            return f"{statistics.median(rs):.3f} (min {min(rs):.3f}, max {max(rs):.3f})"

        print(f"batch {bs:4d}: hand {statistics.median(times['hand']):.3f}s  zoo {statistics.median(times['zoo']):.3f}s  "
              f"ratio zoo/hand median {ratio('zoo', 'hand')}\n"
              f"            floor {statistics.median(times['floor']):.3f}s  ratio floor/hand median {ratio('floor', 'hand')}  "
              f"zoo/floor median {ratio('zoo', 'floor')}")


if __name__ == "__main__":
    main()
