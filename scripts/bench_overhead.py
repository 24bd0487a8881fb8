"""Overhead of zoo over a hand-written PyTorch loop: same CNN, same data, same epochs, two datasets.

    python scripts/bench_overhead.py [--datasets digits mnist] [--epochs 20] [--mnist-epochs 1]
                                     [--repeats 5] [--mnist-repeats N] [--batch-sizes 64 256]
                                     [--device cpu] [--root DIR] [--calls]

Datasets: scikit-learn's digits (1,797 8x8 images: 19 steps an epoch at batch 64, so per-epoch
costs weigh), and MNIST-shaped synthetic tensors (60,000 random 1x28x28 images, 10 random
classes; the values only matter for timing). Both split 65/15/20 into train/val/test, as zoo does.

Four contenders, each doing the same work per epoch: a shuffled pass over the train split with
AdamW, a validation pass that computes loss and accuracy, and a checkpoint of model + optimizer
written atomically (temp file, then rename):

- hand: a plain PyTorch loop over the same tensors;
- fast: `zoo.fit` as a user runs it (the fast path on, its default here; in-memory loader,
  metrics, last.ckpt and best.ckpt, CSV logging); its time is `trainer.fit`'s, test excluded;
- ordinary: the same `zoo.fit` with `fast_path=off`, one Lightning loop iteration per batch;
- floor: the least a Lightning Trainer can do for the same work, one iteration per batch: a bare
  LightningModule around the same CNN and loader, no logger, no metric objects, no callbacks but
  one `trainer.save_checkpoint` per epoch.

Each repeat runs all four back to back with one CPU thread, rotating which goes first (paired
repeats), after untimed warm-up runs. Each run is timed twice: wall time, and the CPU time of this
process, which other processes on a shared machine disturb less (they still share its caches). For
zoo and the floor both cover `Trainer.fit` only (not zoo's test pass), for the hand loop its
epochs. The script prints the machine's load average, the median times and the median of the
per-repeat ratios (with min and max), and ends with one JSON line of the median ratios. Targets for
fast/hand on the CPU: MNIST-shaped <= 1.03 at batch 256 and <= 1.05 at batch 64, digits <= 1.10 at
batch 64.

The checkpoints and logs go to a folder in RAM (/dev/shm where there is one; `--root DIR` to time on
another disk). On this project's ext4 disk an atomic rename now and then waits for the file system's
journal, tens of milliseconds and more, whoever renames (the hand loop's renames took 0.7 ms at the
median, 17 ms on average), and those stalls, not the loops, then decide a run's ratio. In RAM the
same work is done (every file is written and renamed) without them.

`--calls` counts instead of timing: the Python function calls and calls into C that each contender
makes per epoch (`sys.setprofile`; over `--epochs` and half as many, so that per-run costs
cancel), and their ratios to the hand loop's. Host work counted this way is the same on every run
and no other process disturbs it, so it shows what a change to the per-batch or per-epoch work
saves when timings on a shared machine cannot (the ratios move by 10% between runs there). It
ends with one JSON line of the counts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CONTENDERS = ("hand", "fast", "ordinary", "floor")
FIT_TIMES: list[tuple[float, float]] = []  # (wall, CPU) seconds of every Trainer.fit call (time_trainer_fit)
FIT_CALLS: list[int] = []  # function calls of every Trainer.fit call while COUNTING is set (--calls)
COUNTING = False


def count_calls(fn, *args, **kwargs) -> tuple[object, int]:
    """Return (fn's result, the number of Python function calls and calls into C it made), counted with
    `sys.setprofile`: a measure of host work that other processes on the machine cannot disturb."""
    n = 0

    def profile(frame, event, arg) -> None:
        nonlocal n
        if event == "call" or event == "c_call":
            n += 1

    sys.setprofile(profile)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.setprofile(None)
    return result, n


def time_trainer_fit() -> None:
    """Make every `lightning.Trainer.fit` call record its wall and CPU time (CPU time: this process's, all
    threads; less sensitive than wall time to other processes on a shared machine)."""
    import lightning as L

    fit = L.Trainer.fit

    def timed(self, *args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            if COUNTING:
                result, calls = count_calls(fit, self, *args, **kwargs)
                FIT_CALLS.append(calls)
                return result
            return fit(self, *args, **kwargs)
        finally:
            if self.strategy.root_device.type == "cuda":
                torch.cuda.synchronize()
            FIT_TIMES.append((time.perf_counter() - start, time.process_time() - cpu))

    L.Trainer.fit = timed
RATIOS = ("fast/hand", "ordinary/hand", "floor/hand", "fast/floor", "ordinary/fast")


def register_mnist_shaped() -> None:
    """Register `mnist_shaped`: 60,000 random 1x28x28 images and labels (a benchmark-only dataset)."""
    from zoo.data.base import ArrayDataModule
    from zoo.registry import DATA

    @DATA.register("mnist_shaped")
    class MNISTShaped(ArrayDataModule):
        """60,000 random 1x28x28 images in [0, 1) with random labels of 10 classes (timing only)."""

        modality = "image"

        def load_arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
            rng = np.random.default_rng(self.seed)
            x = rng.random((60_000, 1, 28, 28), dtype=np.float32)
            return x, rng.integers(0, 10, 60_000), {"class_names": tuple(str(c) for c in range(10))}


def hand_loop(model: torch.nn.Module, splits: dict, epochs: int, batch_size: int, lr: float, device: str,
              root: str) -> tuple[float, float]:
    """Train with a plain PyTorch loop; return its (wall, CPU) time in seconds."""
    from zoo.models.optim import build_optimizer

    ckpt = Path(root) / "hand.ckpt"
    model = model.to(device)
    opt = build_optimizer(model, {"name": "adamw", "lr": lr})
    (x, y), (xv, yv) = [tuple(t.to(device) for t in splits[s]) for s in ("train", "val")]
    start, cpu = time.perf_counter(), time.process_time()
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
    return time.perf_counter() - start, time.process_time() - cpu


def zoo_fit(data: str, epochs: int, batch_size: int, lr: float, device: str, root: str,
            fast_path: str) -> tuple[float, float]:
    """Train with `zoo.fit` as a user runs it (progress bar off); return trainer.fit's (wall, CPU) time."""
    from zoo.fit import fit
    from zoo.training.config import validate

    cfg = validate({
        "model": {"name": "cnn", "channels": [32, 64]},
        "data": {"name": data, "batch_size": batch_size},
        "optim": {"name": "adamw", "lr": lr},
        "trainer": {"max_epochs": epochs, "accelerator": "gpu" if device == "cuda" else device, "devices": 1,
                    "enable_progress_bar": False, "num_sanity_val_steps": 0},
        "run": {"dir": root, "name": "bench"},
        "fast_path": fast_path,
    })
    fit(cfg)
    return FIT_TIMES[-1]


def lightning_floor(model: torch.nn.Module, splits: dict, epochs: int, batch_size: int, lr: float, device: str,
                    root: str) -> tuple[float, float]:
    """Train with a bare Lightning Trainer doing the hand loop's work; return trainer.fit's (wall, CPU) time."""
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
            trainer.save_checkpoint(Path(root) / "floor.ckpt", weights_only=False)

    (x, y), (xv, yv) = [tuple(t.to(device) for t in splits[s]) for s in ("train", "val")]
    trainer = L.Trainer(max_epochs=epochs, accelerator="gpu" if device == "cuda" else device, devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[SaveEachEpoch()])
    train = InMemoryLoader(x, y, batch_size, shuffle=True, epoch=lambda: trainer.current_epoch, drop_uneven=True)
    trainer.fit(Bare(), train, InMemoryLoader(xv, yv, batch_size))
    return FIT_TIMES[-1]


def bench(data: str, epochs: int, batch_size: int, repeats: int, args: argparse.Namespace) -> dict[str, dict]:
    """Time the four contenders on one dataset and batch size; print and return their medians."""
    from zoo.models.cnn import CNN
    from zoo.registry import DATA

    dm = DATA.build(data, batch_size=batch_size)
    splits = {s: dm.split(s) for s in ("train", "val")}

    def fresh_cnn(seed: int, on: str = data) -> CNN:
        torch.manual_seed(seed)  # the same initial weights for every contender of a repeat
        spec = dm.spec if on == data else DATA.build(on).spec
        return CNN(spec.to_dict(), channels=[32, 64])

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="zoo-bench-", dir=args.root) as root:
        runs = {
            "hand": lambda r, e: hand_loop(fresh_cnn(r), splits, e, batch_size, args.lr, args.device, root),
            "fast": lambda r, e: zoo_fit(data, e, batch_size, args.lr, args.device, root, "auto"),
            "ordinary": lambda r, e: zoo_fit(data, e, batch_size, args.lr, args.device, root, "off"),
            "floor": lambda r, e: lightning_floor(fresh_cnn(r), splits, e, batch_size, args.lr, args.device, root),
        }
        # Warm-up, untimed: imports and first-call costs on the digits (one epoch each), then one hand-loop
        # epoch on this data for the kernels' first use at its shapes.
        warm_splits = {s: DATA.build("digits").split(s) for s in ("train", "val")} if data != "digits" else splits
        for name in CONTENDERS:
            if name in ("fast", "ordinary"):
                with contextlib.redirect_stdout(io.StringIO()):
                    zoo_fit("digits", 1, batch_size, args.lr, args.device, root, "auto" if name == "fast" else "off")
            elif name == "floor":
                lightning_floor(fresh_cnn(0, "digits"), warm_splits, 1, batch_size, args.lr, args.device, root)
        hand_loop(fresh_cnn(0), splits, 1, batch_size, args.lr, args.device, root)
        if args.calls:
            print(f"{data} batch {batch_size}:")
            return {"calls_per_epoch": calls_per_epoch(runs, epochs)}
        for r in range(repeats):
            for name in CONTENDERS[r % 4:] + CONTENDERS[: r % 4]:  # rotate who goes first
                with contextlib.redirect_stdout(io.StringIO()) as out:
                    times[name].append(runs[name](r, epochs))
                said = [line for line in out.getvalue().splitlines() if line.startswith("zoo: fast path")]
                if r == 0 and said:  # say once which loop zoo's runs took
                    print(*said, sep="\n")
    out: dict[str, dict] = {}
    for clock, i in (("wall", 0), ("cpu", 1)):
        res: dict[str, dict[str, float]] = {"median_s": {k: statistics.median(t[i] for t in v) for k, v in times.items()}}
        for pair in RATIOS:
            a, b = pair.split("/")
            rs = [x[i] / y[i] for x, y in zip(times[a], times[b])]
            res[pair] = {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}
        out[clock] = res
        secs = "  ".join(f"{k} {v:.3f}s" for k, v in res["median_s"].items())
        print(f"{data} batch {batch_size} ({clock} time): {secs}  load {os.getloadavg()[0]:.2f}")
        for pair in RATIOS:
            r = res[pair]
            print(f"    {pair:14s} median {r['median']:.3f} (min {r['min']:.3f}, max {r['max']:.3f})")
    return out


def calls_per_epoch(runs: dict, epochs: int) -> dict[str, float]:
    """Count each contender's function calls per epoch (Trainer.fit only for zoo and the floor, the whole
    call for the hand loop) over `epochs` (at least 2) and over half as many, so that per-run costs cancel; print
    them and their ratios to the hand loop's."""
    global COUNTING
    short = max(1, epochs // 2)
    epochs = max(epochs, short + 1)
    out: dict[str, float] = {}
    for name, run in runs.items():
        counts = []
        for e in (short, epochs):
            with contextlib.redirect_stdout(io.StringIO()):
                if name == "hand":
                    counts.append(count_calls(run, 0, e)[1])
                else:
                    COUNTING = True
                    try:
                        run(0, e)
                    finally:
                        COUNTING = False
                    counts.append(FIT_CALLS[-1])
        out[name] = (counts[1] - counts[0]) / (epochs - short)
    print("    calls per epoch: " + "  ".join(f"{k} {v:,.0f}" for k, v in out.items()))
    print("    ratios to hand:  " + "  ".join(f"{k} {v / out['hand']:.3f}" for k, v in out.items() if k != "hand"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=("digits", "mnist"), default=["digits", "mnist"])
    parser.add_argument("--epochs", type=int, default=20, help="epochs on the digits")
    parser.add_argument("--mnist-epochs", type=int, default=1, help="epochs on the MNIST-shaped tensors")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mnist-repeats", type=int, default=None,
                        help="paired repeats on the MNIST-shaped tensors (default: --repeats); each takes about 2 "
                             "minutes on one CPU thread, a digits repeat about 10 s")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--root", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="folder for the runs' checkpoints and logs (default: /dev/shm, in RAM, where it exists)")
    parser.add_argument("--calls", action="store_true",
                        help="count function calls per epoch (host work, deterministic) instead of timing")
    args = parser.parse_args()
    if args.root is not None and not os.path.isdir(args.root):
        parser.error(f"--root {args.root}: no such folder")
    torch.set_num_threads(1)

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):  # the latter sets its own level
        logging.getLogger(name).setLevel(logging.ERROR)
    register_mnist_shaped()
    time_trainer_fit()
    files_in = args.root or tempfile.gettempdir()
    print(f"CNN [32, 64], {args.repeats} paired repeats ({args.mnist_repeats or args.repeats} on MNIST-shaped), "
          f"1 thread, device {args.device}, files in {files_in}, "
          f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    results: dict[str, dict] = {}
    repeats_of: dict[str, int] = {}
    for data in args.datasets:
        epochs = args.epochs if data == "digits" else args.mnist_epochs
        repeats = args.repeats if data == "digits" or args.mnist_repeats is None else args.mnist_repeats
        name = "digits" if data == "digits" else "mnist_shaped"
        print(f"-- {name}, {epochs} epochs")
        results[name] = {str(bs): bench(name, epochs, bs, repeats, args) for bs in args.batch_sizes}
        repeats_of[name] = repeats
    if args.calls:
        print(json.dumps({"bench": "overhead_calls", "device": args.device, "calls_per_epoch": {
            name: {bs: {k: round(v) for k, v in r["calls_per_epoch"].items()} for bs, r in per.items()}
            for name, per in results.items()}}))
        return
    summary = {clock: {name: {bs: {pair: round(r[clock][pair]["median"], 4) for pair in RATIOS} for bs, r in per.items()}
                       for name, per in results.items()} for clock in ("wall", "cpu")}
    print(json.dumps({"bench": "overhead", "device": args.device, "repeats": repeats_of, "files_in": files_in,
                      "load_average": [round(x, 2) for x in os.getloadavg()], "median_ratios": summary}))


if __name__ == "__main__":
    main()
