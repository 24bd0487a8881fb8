"""Training steps/s of zoo's conv GAN (DCGAN), conv VAE and diffusion U-Net on MNIST-sized images, GPU against CPU.

The images are scikit-learn's digits resized from 8x8 to 28x28 (bilinear, `digits` with `size: 28`), so the shapes and the
work per step are MNIST's while the data stays embedded. Each model trains through the Lightning
Trainer as `zoo.fit` drives it (in-memory loader on the device, no validation), first on the CPU
and then on the GPU when there is one, from the same initial weights; the first steps are warm-up.

    python scripts/bench_generative.py                       # CPU only, or CPU then GPU
    python scripts/bench_generative.py --devices cuda --steps 300
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from typing import Any

import torch


def mnist_sized_digits(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x, y): the 1,797 digits as (N, 1, size, size) ink in [0, 1], and their labels."""
    from zoo.data.images import Digits

    x, y, _ = Digits(size=size).load_arrays()
    return torch.from_numpy(x).float(), torch.from_numpy(y)


def build(name: str, size: int) -> Any:
    """Return the DCGAN (`gan`, arch conv), the conv `vae` or the `diffusion` U-Net for (1, size, size) digits."""
    from zoo.registry import MODELS
    from zoo.spec import DataSpec

    torch.manual_seed(0)
    spec = DataSpec(modality="image", task="classification", input_shape=(1, size, size), num_classes=10)
    if name == "gan":
        return MODELS.build("gan", spec=spec.to_dict(), arch="conv", channels=[64, 128], latent_dim=64,
                            optim={"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]})
    if name == "diffusion":  # the U-Net of configs/experiment/digits_diffusion.yaml
        return MODELS.build("diffusion", spec=spec.to_dict(), channels=[32, 64, 64], ema_decay=0.999,
                            optim={"name": "adamw", "lr": 2e-3})
    return MODELS.build("vae", spec=spec.to_dict(), channels=[32, 64], latent_dim=16,
                        optim={"name": "adamw", "lr": 1e-3})


def steps_per_second(model: Any, x: torch.Tensor, y: torch.Tensor, device: str, batch_size: int, warmup: int,
                     steps: int) -> float:
    """Train `warmup + steps` batches through a Lightning Trainer; return timed steps per second."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from zoo.data.base import InMemoryLoader

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    marks: dict[str, float] = {}

    class TimeAndStop(L.Callback):
        """Start the clock after `warmup` batches and stop after `warmup + steps` (a GAN batch is 2 optimizer steps)."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.fit_loop.total_batch_idx == warmup:
                sync()
                marks["t0"] = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.fit_loop.total_batch_idx + 1 >= warmup + steps:
                sync()
                marks["t1"] = time.perf_counter()
                trainer.should_stop = True

    loader = InMemoryLoader(x.to(device), y.to(device), batch_size, shuffle=True, seed=0, drop_uneven=True)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(accelerator=device, devices=1, max_epochs=-1, logger=CSVLogger(tmp),
                            callbacks=[TimeAndStop()], enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=tmp, limit_val_batches=0)
        trainer.fit(model, train_dataloaders=loader)
    return steps / (marks["t1"] - marks["t0"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gan", "vae", "diffusion"], choices=["gan", "vae", "diffusion"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    parser.add_argument("--size", type=int, default=28, help="image side (28 = MNIST)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="timed batches (default: 30 on CPU, 300 on GPU)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if args.threads:
        torch.set_num_threads(args.threads)

    from zoo.training.loggers import quiet_lightning

    quiet_lightning()
    x, y = mnist_sized_digits(args.size)
    print(f"{len(x)} digits at 1x{args.size}x{args.size}, batch {args.batch_size}, "
          f"CPU threads {torch.get_num_threads()}")
    rows = []
    for name in args.models:
        model = build(name, args.size)
        rates = {}
        for device in devices:
            steps = args.steps or (300 if device == "cuda" else 30)
            rates[device] = steps_per_second(copy.deepcopy(model), x, y, device, args.batch_size, args.warmup, steps)
            print(f"{name} on {device}: {rates[device]:.1f} steps/s ({steps} timed batches)")
        rows.append((name, rates))
    print("\nmodel   " + "".join(f"{d + ' steps/s':>16}" for d in devices) +
          ("   GPU/CPU" if {"cpu", "cuda"} <= set(devices) else ""))
    for name, rates in rows:
        line = f"{name:<8}" + "".join(f"{rates[d]:>16.1f}" for d in devices)
        if {"cpu", "cuda"} <= set(devices):
            line += f"   {rates['cuda'] / rates['cpu']:.1f}x"
        print(line)


if __name__ == "__main__":
    main()
