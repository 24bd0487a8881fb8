"""`zoo sample --ckpt CKPT`: text (or MIDI, for a music LM) from a language model, images or table
rows from a generative model (`--steps` and `--guidance` for a diffusion model)."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError


def cmd_sample(args: argparse.Namespace) -> int:
    from zoo.hub.pretrained import load

    sample(load(args.ckpt), n=args.n, out=args.out, prompt=args.prompt, temperature=args.temperature,
           top_k=args.top_k, label=args.label, max_new_tokens=args.max_new_tokens, seed=args.seed,
           steps=args.steps, guidance=args.guidance)
    return 0


MIDI = (".mid", ".midi")


def write_tunes(texts: list[str], out: Path) -> list[Path]:
    """Write generated note tokens as MIDI: `out` for one tune, `<stem>_01.mid`, ... for several; return the files."""
    from zoo.data.music import write_midi

    if len(texts) == 1:
        paths = [out]
    else:
        paths = [out.with_name(f"{out.stem}_{i:02d}{out.suffix}") for i in range(1, len(texts) + 1)]
    for text, path in zip(texts, paths):
        write_midi(text, path)
    return paths


@torch.no_grad()
def sample(model: Any, n: int, out: str | None = None, *, prompt: str = "", temperature: float = 1.0,
           top_k: int | None = None, label: int | None = None, max_new_tokens: int | None = None,
           seed: int = 0, steps: int | None = None, guidance: float | None = None) -> Any:
    """Generate `n` samples: text (or MIDI files) from a language model, images or table rows from a
    generative model; `steps` and `guidance` set a diffusion model's sampling steps and guidance scale."""
    if n < 1:
        raise ZooError(f"-n must be at least 1, got {n}")
    torch.manual_seed(seed)
    if hasattr(model, "generate"):
        return sample_text(model, n, out, prompt=prompt, temperature=temperature, top_k=top_k,
                           max_new_tokens=max_new_tokens, steps=steps, guidance=guidance)
    if not hasattr(model, "sample"):
        raise ZooError(f"Model '{model.registry_name}' cannot generate; `zoo sample` needs a language model or a "
                       "generative model (vae, gan, diffusion)")
    from zoo.training.callbacks import save_image_grid, save_table

    image = model.spec.modality == "image"
    path = Path(out or ("samples.png" if image else "samples.csv"))
    if image and path.suffix.lower() != ".png":
        raise ZooError(f"Image samples are written as a PNG grid; use --out NAME.png, not {path}")
    labels = None
    if label is not None:
        k = model.spec.num_classes or 0
        if not getattr(model, "conditional", False):
            raise ZooError(f"--label needs a conditional model; this '{model.registry_name}' is unconditional")
        if not 0 <= label < k:
            raise ZooError(f"--label must be between 0 and {k - 1}")
        labels = torch.full((n,), label, dtype=torch.long)
    options = {k: v for k, v in (("steps", steps), ("guidance_scale", guidance)) if v is not None}
    if any(k not in inspect.signature(model.sample).parameters for k in options):
        raise ZooError(f"--steps and --guidance apply to diffusion models, not to this '{model.registry_name}'")
    if guidance is not None and not model.conditional:
        raise ZooError(f"--guidance needs a conditional model; this '{model.registry_name}' is unconditional")
    # A CPU generator: the same seed gives the same samples on any device.
    samples = model.sample(n, labels=labels, generator=torch.Generator().manual_seed(seed), **options)
    if image:
        save_image_grid(samples, path)
    else:
        save_table(samples, path, model.spec.feature_names)
    print(f"wrote {n} samples to {path}")
    return samples


def sample_text(model: Any, n: int, out: str | None, *, prompt: str, temperature: float, top_k: int | None,
                max_new_tokens: int | None, steps: int | None, guidance: float | None) -> list[str]:
    """Generate `n` texts from a language model: printed, written to a text file, or, from a music LM, to MIDI."""
    if steps is not None or guidance is not None:
        raise ZooError("--steps and --guidance apply to diffusion models; a language model takes --temperature "
                       "and --top-k")
    midi = out is not None and Path(out).suffix.lower() in MIDI
    if midi:
        from zoo.data.music import is_music_vocabulary

        if not is_music_vocabulary(model.tokenizer):
            raise ZooError(f"--out {Path(out).name} writes MIDI from a model trained on note tokens (data 'chorales'); "
                           f"this '{model.registry_name}' has another vocabulary: use --out NAME.txt")
    texts = model.generate(prompt, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k)
    if midi:
        paths = write_tunes(texts, Path(out))
        print(f"wrote {len(paths)} MIDI file{'s' if len(paths) > 1 else ''}: {', '.join(map(str, paths))}")
    elif out:
        Path(out).write_text("\n".join(texts) + "\n")
    else:
        print("\n".join(texts))
    return texts
