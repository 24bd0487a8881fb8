"""Tokens/s of zoo (the Lightning Trainer as `zoo.fit` drives it) against a hand-written PyTorch loop.

Both train the same zoo `transformer` LM (same init, same batches, same optimizer, same precision
and compile setting) on byte-level tokens of Python's embedded pydoc topics. Repeats are paired
(zoo then hand, alternating the order) and the script prints the median zoo/hand step-time ratio;
on a CUDA GPU it also prints the model FLOPs utilisation (MFU), with FLOPs per token estimated as
6N + 12 * n_layer * d_model * T (weights forward+backward, plus attention scores; nanoGPT's rule).

    python scripts/bench_lm.py                                   # CPU, tiny preset, fp32
    python scripts/bench_lm.py --preset gpt2-124m --compile      # GPU: bf16-mixed, flash SDPA
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from typing import Any

import torch
import torch.nn.functional as F

PRESETS: dict[str, dict[str, int]] = {
    # T = context, B = batch size, V = vocabulary (bytes; GPT-2 pads 50257 up to 50304)
    "tiny": {"T": 64, "d_model": 64, "n_layer": 2, "n_head": 2, "V": 256, "B": 16, "steps": 30, "warmup": 5},
    "small": {"T": 256, "d_model": 384, "n_layer": 6, "n_head": 6, "V": 256, "B": 32, "steps": 20, "warmup": 5},
    "gpt2-124m": {"T": 1024, "d_model": 768, "n_layer": 12, "n_head": 12, "V": 50304, "B": 32, "steps": 50,
                  "warmup": 10},
}
# Dense bf16 tensor-core peaks (FLOP/s) by GPU name; --peak-tflops overrides.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "4090": 165e12}


def token_blocks(T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x, y) blocks of T byte tokens of pydoc's topics, y = x shifted by one."""
    from pydoc_data.topics import topics

    data = torch.tensor(list("\n".join(topics.values()).encode()), dtype=torch.long)
    n = (len(data) - 1) // T
    return data[: n * T].view(n, T), data[1 : n * T + 1].view(n, T)


def build_model(p: dict[str, int]) -> Any:
    """Return a zoo transformer LM of the preset's shape, deterministically initialised."""
    from zoo.registry import MODELS
    from zoo.spec import DataSpec

    torch.manual_seed(0)
    spec = DataSpec(modality="tokens", task="language_modeling", input_shape=(p["T"],), vocab_size=p["V"])
    optim = {"name": "adamw", "lr": 6e-4, "weight_decay": 0.1, "betas": [0.9, 0.95]}
    return MODELS.build("transformer", spec=spec.to_dict(), d_model=p["d_model"], n_layer=p["n_layer"],
                        n_head=p["n_head"], dropout=0.0, bias=False, optim=optim)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class StepTimer:
    """A Lightning callback that times the steps after `warmup` (synchronising the GPU at both ends).

    It marks the start in `on_before_zero_grad` (after the forward of step `warmup`, where the hand
    loop marks it too): a per-step hook, so that the fast path's chunks (several steps per loop
    iteration) keep running while it times them.
    """

    def __init__(self, warmup: int, device: torch.device) -> None:
        import lightning as L

        outer = self

        class _CB(L.Callback):
            def on_before_zero_grad(self, trainer, pl_module, optimizer):
                if trainer.global_step == warmup:
                    sync(device)
                    outer.t0 = time.perf_counter()

            def on_train_end(self, trainer, pl_module):
                sync(device)
                outer.t1 = time.perf_counter()

        self.callback = _CB()
        self.t0 = self.t1 = 0.0


def run_zoo(model: Any, loader: Any, p: dict[str, int], args: argparse.Namespace, device: torch.device) -> float:
    """Train through a Lightning Trainer set up as zoo.fit does; return seconds for the timed steps.

    Its per-step work is zoo.fit's: the fast path (zoo/training/fastpath.py), the CSV logger and the
    non-finite-loss guard. Checkpoints and validation are left out of both loops (at 124M parameters
    a save would dominate the timing).
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from zoo.training.callbacks import FiniteLoss
    from zoo.training.fastpath import FastPath

    timer = StepTimer(p["warmup"], device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(accelerator=device.type, devices=1, precision=args.precision,
                            max_steps=p["warmup"] + p["steps"], gradient_clip_val=args.clip, logger=CSVLogger(tmp),
                            callbacks=[FastPath(), timer.callback, FiniteLoss()], enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=tmp, limit_val_batches=0)
        trainer.fit(model, train_dataloaders=loader)
    return timer.t1 - timer.t0


def run_hand(model: Any, loader: Any, p: dict[str, int], args: argparse.Namespace, device: torch.device) -> float:
    """Train with a plain PyTorch loop (autocast, backward, clip, step); return seconds for the timed steps."""
    from zoo.models.optim import build_optimizer

    def forward_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    if args.compile:  # forward and loss in one graph, as nanoGPT's model does (and zoo's compile_for_training)
        forward_loss = torch.compile(forward_loss)
    optimizer = build_optimizer(model, model.optim)
    bf16 = args.precision == "bf16-mixed"
    step, t0 = 0, 0.0
    while step < p["warmup"] + p["steps"]:
        for x, y in loader:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = forward_loss(x, y)
            if step == p["warmup"]:  # after the forward, as zoo's StepTimer
                sync(device)
                t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            step += 1
            if step == p["warmup"] + p["steps"]:
                break
    sync(device)
    return time.perf_counter() - t0


def mfu(n_params: int, p: dict[str, int], tokens_per_s: float, peak: float | None) -> tuple[float, float | None]:
    """Return (achieved FLOP/s, MFU or None when the peak is unknown); n_params excludes position vectors."""
    flops_per_token = 6 * n_params + 12 * p["n_layer"] * p["d_model"] * p["T"]
    achieved = flops_per_token * tokens_per_s
    return achieved, (achieved / peak if peak else None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: tiny on CPU, gpt2-124m on GPU")
    parser.add_argument("--repeats", type=int, default=3, help="paired zoo/hand repeats")
    parser.add_argument("--steps", type=int, help="timed steps per run (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--precision", default=None, help="32-true or bf16-mixed (default: bf16-mixed on GPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (model.compile=true)")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient clipping norm (0 = off)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s for MFU (default by GPU)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          (args.device if args.device != "auto" else "cpu"))
    p = dict(PRESETS[args.preset or ("gpt2-124m" if device.type == "cuda" else "tiny")])
    p["steps"] = args.steps or p["steps"]
    p["B"] = args.batch_size or p["B"]
    args.precision = args.precision or ("bf16-mixed" if device.type == "cuda" else "32-true")
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    from zoo.data.base import InMemoryLoader
    from zoo.training.loggers import quiet_lightning

    quiet_lightning()
    x, y = token_blocks(p["T"])
    x, y = x.to(device), y.to(device)
    loader = InMemoryLoader(x, y, p["B"], shuffle=True, seed=0, drop_uneven=True)
    zoo_model = build_model(p)
    hand_model = copy.deepcopy(zoo_model).to(device)
    n_params = zoo_model.num_params()
    if args.compile:  # as zoo.fit does for model.compile=true (the hand loop compiles its own forward + loss)
        zoo_model.compile_for_training()
    tokens = p["steps"] * p["B"] * p["T"]
    print(f"device={device} preset={args.preset or 'default'} params={n_params / 1e6:.2f}M T={p['T']} B={p['B']} "
          f"precision={args.precision} compile={args.compile} steps={p['steps']} (+{p['warmup']} warm-up)")
    ratios, zoo_tps, hand_tps = [], [], []
    if args.compile:  # an untimed round first: compilation and autotuning stay out of the figures
        run_zoo(zoo_model, loader, p, args, device)
        run_hand(hand_model, loader, p, args, device)
    for r in range(args.repeats):
        order = ("zoo", "hand") if r % 2 == 0 else ("hand", "zoo")  # alternate to cancel drift
        secs = {}
        for which in order:
            fn, model = (run_zoo, zoo_model) if which == "zoo" else (run_hand, hand_model)
            secs[which] = fn(model, loader, p, args, device)
        ratios.append(secs["zoo"] / secs["hand"])
        zoo_tps.append(tokens / secs["zoo"])
        hand_tps.append(tokens / secs["hand"])
        print(f"repeat {r}: zoo {zoo_tps[-1]:,.0f} tok/s ({secs['zoo'] / p['steps'] * 1e3:.1f} ms/step)  "
              f"hand {hand_tps[-1]:,.0f} tok/s ({secs['hand'] / p['steps'] * 1e3:.1f} ms/step)  ratio {ratios[-1]:.3f}")
    print(f"median tokens/s: zoo {statistics.median(zoo_tps):,.0f}  hand {statistics.median(hand_tps):,.0f}")
    print(f"median ratio zoo/hand (step time): {statistics.median(ratios):.3f}")
    # MFU on every device, through the same code: the GPU's name picks its peak (a CPU has none; --peak-tflops sets one)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else next((v for k, v in PEAK_BF16.items() if k in name), None)
    utils = {}
    for label, tps in (("zoo", statistics.median(zoo_tps)), ("hand", statistics.median(hand_tps))):
        achieved, util = mfu(n_params, p, tps, peak)
        utils[label] = None if util is None else round(util, 4)
        util_s = f"MFU {util * 100:.1f}%" if util is not None else "MFU unknown (no peak for this device: --peak-tflops)"
        print(f"{label}: {achieved / 1e12:.3f} TFLOP/s on {name}: {util_s}")
    summary = {"bench": "lm", "device": name, "preset": args.preset or "default", "precision": args.precision,
               "compile": args.compile, "batch": p["B"], "T": p["T"], "params_m": round(n_params / 1e6, 2),
               "tokens_per_s": {"zoo": round(statistics.median(zoo_tps)), "hand": round(statistics.median(hand_tps))},
               "mfu": utils, "zoo/hand": round(statistics.median(ratios), 4)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
