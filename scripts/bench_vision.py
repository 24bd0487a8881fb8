"""cifar10_resnet through zoo against a hand-written PyTorch loop: images/s on CIFAR-shaped data.

    python scripts/bench_vision.py [--n 50000] [--epochs 1] [--repeats 2] [--warmup 1] [--device cuda]
                                   [--precision 32|bf16-mixed] [--batch-size 128]

The data is synthetic (no download is possible on the GPU machines): `n` random uint8 3x32x32
images and labels, written once as CIFAR-10 python batches and read by the real `cifar10`
DataModule (`data.verify=false`), so zoo's side is exactly `python -m zoo.fit --config
configs/experiment/cifar10_resnet.yaml trainer.max_epochs=E`: ResNet-20, SGD with one-cycle,
uint8 images on the device, flip_crop augmentation per batch, a validation pass and the
checkpoints each epoch. zoo's time is `trainer.fit` (its test pass excluded).

The hand loop does the same work with the same pieces and no framework: the same network, the
same 45k / 5k split tensors on the device, the same `Augment` and per-batch float conversion,
SGD with the same one-cycle schedule, a validation pass (loss and accuracy read back) and one
checkpoint written atomically per epoch. Each repeat runs both, alternating who goes first,
after a one-epoch warm-up of each (cuDNN autotuning, allocator, imports).

Prints images/s of both (training images per second of wall time) and the time ratio zoo/hand,
then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CONFIG = "configs/experiment/cifar10_resnet.yaml"


def write_data(root: Path, n: int, seed: int = 0) -> None:
    """Write `n` random CIFAR-shaped images (and a test split of n/5) as CIFAR-10 python batches under `root`."""
    from zoo.data.vision import write_cifar

    rng = np.random.default_rng(seed)
    n_test = max(10, n // 5)
    x = rng.integers(0, 256, (n + n_test, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n + n_test) % 10  # every class present, so the stratified val split works at any n
    write_cifar(root, "CIFAR10", (x[:n], y[:n]), (x[n:], y[n:]))


def overrides(root: Path, epochs: int, device: str, precision: str, batch_size: int) -> list[str]:
    return [f"data.root={root}", "data.verify=false", "data.download=false", f"data.batch_size={batch_size}",
            f"trainer.max_epochs={epochs}", f"trainer.accelerator={device}", "trainer.devices=1",
            f"trainer.precision={precision}", "trainer.enable_progress_bar=false", "trainer.num_sanity_val_steps=0",
            "logger=false", f"run.dir={root / 'runs'}"]


def zoo_run(root: Path, epochs: int, device: str, precision: str, batch_size: int) -> float:
    """Train with zoo.fit on the cifar10_resnet recipe; return trainer.fit's wall time."""
    from zoo.fit import fit, resolve

    cfg, _ = resolve([CONFIG], overrides(root, epochs, device, precision, batch_size))
    return fit(cfg)["fit_seconds"]


def hand_loop(root: Path, epochs: int, device: str, precision: str, batch_size: int, seed: int) -> float:
    """Train the same network on the same tensors with a plain loop; return the wall time of the epochs."""
    from zoo.data.augment import Augment
    from zoo.fit import resolve
    from zoo.models.optim import build_optimizer
    from zoo.training.config import build_data_and_model

    cfg, _ = resolve([CONFIG], overrides(root, epochs, device, precision, batch_size))
    dm, model = build_data_and_model(cfg)  # zoo's DataModule only reads the files into tensors here
    torch.manual_seed(seed)
    dev = torch.device("cuda" if device == "gpu" else device)
    model = model.to(dev)
    (x, y), (xv, yv) = [tuple(t.to(dev) for t in dm._splits[s]) for s in ("train", "val")]
    augment = Augment(cfg["data"]["augment"], dm.spec.input_mean)
    opt = build_optimizer(model, cfg["optim"])
    steps_per_epoch = -(-len(x) // batch_size)  # the last, shorter batch too, as zoo's loader does
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                total_steps=epochs * steps_per_epoch)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    ckpt = root / "hand.ckpt"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch)).to(dev)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            g = torch.Generator(device=dev).manual_seed(epoch * 1_000_003 + i)
            with autocast:
                loss = F.cross_entropy(model(augment(x[idx], g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        sums = torch.zeros(2, device=dev)
        with torch.no_grad(), autocast:
            for i in range(0, len(xv), batch_size):
                out = model(augment(xv[i : i + batch_size], None))
                sums += torch.stack([F.cross_entropy(out.float(), yv[i : i + batch_size], reduction="sum"),
                                     (out.argmax(1) == yv[i : i + batch_size]).sum().float()])
        sums.tolist()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, ckpt.with_suffix(".tmp"))
        os.replace(ckpt.with_suffix(".tmp"), ckpt)
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="training images (CIFAR-10 has 50,000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs of each contender first")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    args = parser.parse_args()
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.device == "cpu":
        torch.set_num_threads(1)
    device = "gpu" if args.device == "cuda" else args.device
    run = {"zoo": lambda root, r: zoo_run(root, args.epochs, device, args.precision, args.batch_size),
           "hand": lambda root, r: hand_loop(root, args.epochs, device, args.precision, args.batch_size, r)}
    times: dict[str, list[float]] = {name: [] for name in run}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_data(root, args.n)
        train_images = args.n - round(0.1 * args.n)  # the recipe's val_fraction is 0.1
        per_epoch = train_images
        print(f"cifar10_resnet (ResNet-20, flip_crop), {args.n} synthetic 3x32x32 images, {args.epochs} epoch(s), "
              f"batch {args.batch_size}, precision {args.precision}, device {args.device}, {args.repeats} paired repeats")
        for _ in range(args.warmup):
            for name in run:
                run[name](root, 0)
        for r in range(args.repeats):
            for name in (list(run) if r % 2 == 0 else list(run)[::-1]):
                times[name].append(run[name](root, r))
    rate = {name: per_epoch * args.epochs / statistics.median(ts) for name, ts in times.items()}
    ratios = [z / h for z, h in zip(times["zoo"], times["hand"])]
    for name in run:
        print(f"{name:5s} {rate[name]:10,.0f} images/s  (median {statistics.median(times[name]):.2f} s)")
    print(f"ratio zoo/hand (time): median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(json.dumps({"bench": "vision", "model": "cifar10_resnet", "device": args.device,
                      "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                      "n": args.n, "epochs": args.epochs, "batch_size": args.batch_size, "precision": args.precision,
                      "zoo_images_per_s": round(rate["zoo"], 1), "hand_images_per_s": round(rate["hand"], 1),
                      "ratio_zoo_over_hand": round(statistics.median(ratios), 4)}))


if __name__ == "__main__":
    main()
