"""What the generative models (VAE, GAN, diffusion) share: conv stacks that fit any image size,
labels for conditional models, the raw <-> model scale of tables, and EMA weights.

A generative model's "model space" is [0, 1] pixels for images and standardised features for
tables; `sample()` returns images in [0, 1] or table rows on the data's raw scale. The quality of
those samples (FID, KID, MMD, ...) is measured by `zoo.evaluation.quality.SampleQuality`, an
evaluator that zoo.fit and `zoo test` attach with the run's data: the model only samples.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError, ZooError, choose
from zoo.models.base import ZooModel

ARCHS = ("auto", "conv", "mlp")


def halvings(size: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """Return [(H, W), (ceil(H/2), ceil(W/2)), ...]: the sizes after each stride-2 convolution."""
    sizes = [tuple(size)]
    for _ in range(n):
        sizes.append(tuple(math.ceil(s / 2) for s in sizes[-1]))
    return sizes


def conv_down(c_in: int, channels: list[int], act: type[nn.Module], norm: bool = False) -> nn.Sequential:
    """Return stride-2 3x3 convolutions, each halving the image (rounding up)."""
    layers: list[nn.Module] = []
    for c_out in channels:
        layers.append(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=not norm))
        layers += [nn.BatchNorm2d(c_out)] if norm else []
        layers.append(act())
        c_in = c_out
    return nn.Sequential(*layers)


def conv_up(channels: list[int], sizes: list[tuple[int, int]], c_out: int, act: type[nn.Module],
            norm: bool = False, resize: bool = False) -> nn.Sequential:
    """Return upsampling convolutions mirroring `conv_down`, growing back to `sizes[0]`, then a 3x3 output conv.

    `channels` are the encoder's channels (the decoder walks them backwards). Transposed
    convolutions pick output_padding 2n or 2n-1 so that odd sizes such as 7 -> 14 -> 28 or
    2 -> 4 -> 8 come out exactly; `resize` uses nearest upsampling to the exact size + a 3x3
    conv instead, which avoids the checkerboard pattern of stride-2 transposed convolutions.
    """
    chans = [*reversed(channels), channels[0]]
    layers: list[nn.Module] = []
    for i in range(len(channels)):
        small, big = sizes[len(channels) - i], sizes[len(channels) - i - 1]
        if resize:
            layers += [nn.Upsample(size=big, mode="nearest"),
                       nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=not norm)]
        else:
            pad = tuple(b - (2 * s - 1) for s, b in zip(small, big))
            layers.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 3, stride=2, padding=1, output_padding=pad,
                                             bias=not norm))
        layers += [nn.BatchNorm2d(chans[i + 1])] if norm else []
        layers.append(act())
    layers.append(nn.Conv2d(channels[0], c_out, 3, padding=1))
    return nn.Sequential(*layers)


def mlp(sizes: list[int], act: type[nn.Module], norm: bool = False) -> nn.Sequential:
    """Return Linear layers through `sizes` with an activation after every hidden layer."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b)] if norm else []
            layers.append(act())
    return nn.Sequential(*layers)


def ema_decay_at(decay: float, n: int, warmup: bool) -> float:
    """Return the EMA decay after `n` updates: `decay`, or with `warmup` min(decay, (1 + n) / (10 + n)).

    The warmup (TensorFlow's ExponentialMovingAverage with num_updates) keeps a high decay from
    holding the random initial weights in the average for hundreds of epochs.
    """
    return min(decay, (1 + n) / (10 + n)) if warmup else decay


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """Move `ema`'s parameters towards `net`'s by a factor 1 - decay; copy its buffers (BatchNorm statistics)."""
    for p_ema, p in zip(ema.parameters(), net.parameters()):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema.buffers(), net.buffers()):
        b_ema.copy_(b)


class GenerativeModel(ZooModel):
    """Base of `vae`, `gan` and `diffusion`: image or tabular data of any task; conditional on class labels."""

    supports = frozenset({("image", "*"), ("tabular", "*")})
    #: True when checkpoints are picked by the quality of samples scored on the validation split
    #: (the evaluator logs it under `monitor()`'s name), rather than by a loss the model logs itself
    val_score_from_samples: ClassVar[bool] = False

    def __init__(self, spec: Any, optim: dict[str, Any] | None, *, arch: str, conditional: bool) -> None:
        super().__init__(spec, optim)
        arch = choose("arch", arch, ARCHS)
        self.arch = ("conv" if self.spec.modality == "image" else "mlp") if arch == "auto" else arch
        if self.arch == "conv" and self.spec.modality != "image":
            raise ConfigError(f"arch 'conv' needs image data; '{self.spec.modality}' data uses arch 'mlp' (or 'auto')")
        if conditional and self.spec.task != "classification":
            raise ConfigError(
                f"conditional=true needs class labels, but this data's task is '{self.spec.task}'; "
                "use conditional=false or a classification data set"
            )
        self.conditional = conditional
        self.num_labels = int(self.spec.num_classes) if conditional else 0
        self.data_dim = math.prod(self.spec.input_shape)

    # -- labels and scales -----------------------------------------------------------------------
    def one_hot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Return one-hot labels for a conditional model, None for an unconditional one."""
        return F.one_hot(labels.long(), self.num_labels).float() if self.conditional else None

    def sample_labels(self, n: int, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Return the labels to generate for: the given ones, else classes in turn (0, 1, ..., k-1, 0, ...)."""
        if not self.conditional:
            if labels is not None:
                raise ZooError(f"This '{self.registry_name}' is unconditional: it cannot generate chosen labels")
            return None
        if labels is None:
            labels = torch.arange(n) % self.num_labels
        labels = torch.as_tensor(labels, dtype=torch.long).flatten()
        if len(labels) != n or labels.min() < 0 or labels.max() >= self.num_labels:
            raise ZooError(f"labels must be {n} class ids between 0 and {self.num_labels - 1}")
        return labels.to(self.device)

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """Return model-space values on the data's scale: clamped pixels, or raw-scale table rows."""
        if self.spec.modality == "image":
            return x.clamp(0, 1)
        return x * self.input_std + self.input_mean

    def noise(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return standard normal noise on the model's device (drawn on the CPU when a generator is given)."""
        if generator is None:
            return torch.randn(*shape, device=self.device)
        return torch.randn(*shape, generator=generator).to(self.device)

    def sample(self, n: int, labels: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Return `n` samples: (n, C, H, W) images in [0, 1] or (n, F) raw-scale table rows."""
        raise NotImplementedError

    # -- samples for the Samples callback ----------------------------------------------------------
    def sample_grid(self) -> torch.Tensor:
        """Return a fixed-seed image grid batch; a conditional model gets one row per class."""
        g = torch.Generator().manual_seed(0)
        if self.conditional and self.num_labels <= 16:
            k = self.num_labels
            per_row = max(k, 8)
            return self.sample(k * per_row, torch.arange(k * per_row) // per_row, generator=g)
        return self.sample(64, generator=g)

    def make_samples(self) -> dict[str, torch.Tensor]:
        """Return {"samples": an image batch or 500 raw-scale table rows} for the Samples callback."""
        if self.spec.modality == "image":
            return {"samples": self.sample_grid()}
        return {"samples": self.sample(500, generator=torch.Generator().manual_seed(0))}
