"""`zoo sample --ckpt CKPT`: text from a language model, images or table rows from a generative model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError


def cmd_sample(args: argparse.Namespace) -> int:
    from zoo.hub.pretrained import load

    sample(load(args.ckpt), n=args.n, out=args.out, prompt=args.prompt, temperature=args.temperature,
           top_k=args.top_k, label=args.label, max_new_tokens=args.max_new_tokens, seed=args.seed)
    return 0


@torch.no_grad()
def sample(model: Any, n: int, out: str | None = None, *, prompt: str = "", temperature: float = 1.0,
           top_k: int | None = None, label: int | None = None, max_new_tokens: int | None = None,
           seed: int = 0) -> Any:
    """Generate `n` samples: text from a language model, images or table rows from a generative model."""
    from zoo.training.callbacks import save_image_grid, save_table

    if n < 1:
        raise ZooError(f"-n must be at least 1, got {n}")
    torch.manual_seed(seed)
    if hasattr(model, "generate"):
        texts = model.generate(prompt, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k)
        if out:
            Path(out).write_text("\n".join(texts) + "\n")
        else:
            print("\n".join(texts))
        return texts
    if not hasattr(model, "sample"):
        raise ZooError(f"Model '{model.registry_name}' cannot generate; `zoo sample` needs an LM, a VAE or a GAN")
    labels = None
    if label is not None:
        k = model.spec.num_classes or 0
        if not getattr(model, "conditional", False):
            raise ZooError(f"--label needs a conditional model; this '{model.registry_name}' is unconditional")
        if not 0 <= label < k:
            raise ZooError(f"--label must be between 0 and {k - 1}")
        labels = torch.full((n,), label, dtype=torch.long)
    samples = model.sample(n, labels=labels)
    if model.spec.modality == "image":
        path = Path(out or "samples.png")
        if path.suffix.lower() != ".png":
            raise ZooError(f"Image samples are written as a PNG grid; use --out NAME.png, not {path}")
        save_image_grid(samples, path)
    else:
        path = Path(out or "samples.csv")
        save_table(samples, path, model.spec.feature_names)
    print(f"wrote {n} samples to {path}")
    return samples
