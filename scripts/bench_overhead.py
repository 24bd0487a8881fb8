"""Overhead of zoo over a hand-written PyTorch loop: same CNN, same digits data, same epochs.

    python scripts/bench_overhead.py [--epochs 20] [--repeats 5] [--batch-sizes 64 256] [--device cpu]

Each repeat runs the hand loop and `zoo.fit` back to back (paired, alternating order), each
training from the same initial weights with one CPU thread, and each doing the same work per
epoch: a shuffled pass over the train split with AdamW, a validation pass that computes loss and
accuracy, and a checkpoint of model + optimizer written atomically (temp file, then rename).
zoo's time is `trainer.fit` as `zoo.fit` runs it (in-memory loader, metrics, last.ckpt and
best.ckpt, CSV logging); its test pass is excluded, as is the hand loop's setup.
Prints the median ratio zoo/hand per batch size. Targets: <= 1.03 at 256, <= 1.08 at 64.
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
    from zoo.optim import build_optimizer

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
    from zoo.config import validate
    from zoo.fit import fit

    cfg = validate({
        "model": {"name": "cnn", "channels": [32, 64]},
        "data": {"name": "digits", "batch_size": batch_size},
        "optim": {"name": "adamw", "lr": lr},
        "trainer": {"max_epochs": epochs, "accelerator": device, "devices": 1, "enable_progress_bar": False,
                    "num_sanity_val_steps": 0},
        "run": {"dir": root, "name": "bench"},
    })
    return fit(cfg)["fit_seconds"]


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
    device = "gpu" if args.device == "cuda" else args.device
    print(f"digits CNN, {args.epochs} epochs, {args.repeats} paired repeats, 1 thread, device {args.device}")
    for bs in args.batch_sizes:
        ratios, hands, zoos = [], [], []
        with tempfile.TemporaryDirectory() as root:
            zoo_fit(1, bs, args.lr, device, root)  # warm-up: imports, allocator, first-call costs
            hand_loop(CNN(dm.spec.to_dict(), channels=[32, 64]), splits, 1, bs, args.lr, args.device, root)
            for r in range(args.repeats):
                torch.manual_seed(r)
                model = CNN(dm.spec.to_dict(), channels=[32, 64])
                if r % 2:
                    z = zoo_fit(args.epochs, bs, args.lr, device, root)
                    h = hand_loop(model, splits, args.epochs, bs, args.lr, args.device, root)
                else:
                    h = hand_loop(model, splits, args.epochs, bs, args.lr, args.device, root)
                    z = zoo_fit(args.epochs, bs, args.lr, device, root)
                hands.append(h)
                zoos.append(z)
                ratios.append(z / h)
        print(f"batch {bs:4d}: hand {statistics.median(hands):.3f}s  zoo {statistics.median(zoos):.3f}s  "
              f"ratio zoo/hand median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
