"""The inference graphs that `zoo export` writes: each model as a module from the raw inputs its
Python API takes to what that API returns, with example inputs and the axes that may vary.

    classifier, regressor   x (raw, as `predict_step` takes it) -> predict_step(x)
                            images in [0, 1] and raw table rows are standardised inside the graph
                            with the train split's statistics; token ids come from tokenizer.json
    language model          x: ids (B, T) -> next-token probabilities (B, T, V); T varies up to the context
    VAE decoder             z (B, latent) [, labels (B,)] [, noise (B, F)] -> samples, as `sample()` draws them
    GAN generator           z (B, latent) [, labels (B,)] -> samples (from the EMA generator when it has one)

Inputs are passed by keyword, in the order above. `graph(model)` returns the module and example
inputs, or raises a one-line ZooError that says why the model cannot be exported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.errors import ZooError

BATCH = 3  # the example batch: neither 0 nor 1, which tracing would take for a constant


@dataclass
class Graph:
    """A module to trace, a maker of named example inputs, output names and which axes may vary."""

    module: nn.Module
    make_inputs: Callable[[int, int, torch.Generator], dict[str, torch.Tensor]]  # (batch, sequence, rng)
    outputs: list[str]
    axes: dict[str, dict[int, str]]  # input or output name -> {axis: "batch" | "sequence"}
    sequence: int | None = None  # the example sequence length; the longest allowed is `max_sequence`
    max_sequence: int | None = None
    about: str = ""  # one line on inputs and outputs, stored in the exported file

    def inputs(self, batch: int = BATCH, sequence: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
        """Return example inputs with this batch size (and sequence length, for a language model)."""
        return self.make_inputs(batch, sequence or self.sequence or 0, torch.Generator().manual_seed(seed))


class Predict(nn.Module):
    """Raw inputs -> what `predict_step` returns: class probabilities, raw-scale values, next-token probabilities."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.to_prediction(self.model(x))


class GANSample(nn.Module):
    """(z, labels) -> `GAN.sample` for that noise: the (EMA) generator, then the data's scale."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.net = model.generator_ema if model.generator_ema is not None else model.generator

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.to_data(self.net(z, self.model.one_hot(labels) if labels is not None else None))


class VAESample(nn.Module):
    """(z, labels, noise) -> `VAE.sample` for those draws: decoder means for images, mean + noise * scale for tables."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, noise: torch.Tensor | None = None
                ) -> torch.Tensor:
        out = self.model.decode(z, labels)
        if noise is None:
            return torch.sigmoid(out)
        return self.model.to_data(out + noise * self.model.log_scale.exp())


def graph(model: Any) -> Graph:
    """Return the inference graph of a zoo model, or raise a one-line ZooError saying why there is none."""
    if callable(getattr(model, "sample", None)):
        return sampler_graph(model)
    if not hasattr(model, "to_prediction"):
        raise ZooError(f"Model '{getattr(model, 'registry_name', type(model).__name__)}' has neither "
                       "predict_step outputs nor a sampler to export")
    spec = model.spec
    if spec.modality == "tokens":
        return token_graph(model)
    out = "probs" if spec.task == "classification" else "values"
    what = "class probabilities" if spec.task == "classification" else "values on the target's raw scale"
    if spec.modality == "image":
        def make(batch: int, _: int, g: torch.Generator) -> dict[str, torch.Tensor]:
            return {"x": torch.rand(batch, *spec.input_shape, generator=g)}
        about = f"x: images (batch, {', '.join(map(str, spec.input_shape))}) in [0, 1] -> {out}: {what}"
    else:
        mean, std = torch.tensor(spec.input_mean), torch.tensor(spec.input_std)

        def make(batch: int, _: int, g: torch.Generator) -> dict[str, torch.Tensor]:
            return {"x": mean + std * torch.randn(batch, *spec.input_shape, generator=g)}  # raw-scale rows
        about = f"x: raw rows (batch, {spec.input_shape[0]}) -> {out}: {what}"
    return Graph(Predict(model), make, [out], {"x": {0: "batch"}, out: {0: "batch"}}, about=about)


def token_graph(model: Any) -> Graph:
    """Return the graph of a model that reads token ids: a language model's T may vary, a classifier's is fixed."""
    spec = model.spec
    T, vocab = int(spec.input_shape[0]), int(spec.vocab_size)
    if spec.task == "language_modeling":
        def make(batch: int, seq: int, g: torch.Generator) -> dict[str, torch.Tensor]:
            return {"x": torch.randint(0, vocab, (batch, seq), generator=g)}
        axes = {"x": {0: "batch", 1: "sequence"}, "probs": {0: "batch", 1: "sequence"}}
        about = f"x: token ids (batch, sequence <= {T}) -> probs: next-token probabilities (batch, sequence, {vocab})"
        return Graph(Predict(model), make, ["probs"], axes, max(2, T // 2), T, about)
    pad = spec.pad_id if spec.pad_id is not None else 0

    def make(batch: int, _: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        x = torch.randint(0, vocab, (batch, T), generator=g)
        lengths = torch.randint(1, T + 1, (batch,), generator=g)
        return {"x": x.masked_fill(torch.arange(T) >= lengths[:, None], pad)}  # texts of any length, then padding
    about = f"x: token ids (batch, {T}), right-padded with {pad} -> probs: class probabilities"
    return Graph(Predict(model), make, ["probs"], {"x": {0: "batch"}, "probs": {0: "batch"}}, about=about)


def sampler_graph(model: Any) -> Graph:
    """Return the sampling graph of a VAE or GAN: noise (and labels) in, samples out."""
    name = model.registry_name
    if name == "gan":
        module: nn.Module = GANSample(model)
        noise = False
    elif name == "vae":
        module = VAESample(model)
        noise = model.likelihood == "gaussian"
    else:
        raise ZooError(f"Model '{name}' samples, but zoo knows no export graph for it (only vae and gan)")
    latent, k, shape = model.latent_dim, model.num_labels, tuple(model.spec.input_shape)

    def make(batch: int, _: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        inputs = {"z": torch.randn(batch, latent, generator=g)}
        if model.conditional:
            inputs["labels"] = torch.randint(0, k, (batch,), generator=g)
        if noise:
            inputs["noise"] = torch.randn(batch, *shape, generator=g)
        return inputs
    names = list(make(1, 0, torch.Generator()))
    what = "images in [0, 1]" if model.spec.modality == "image" else "rows on the data's raw scale"
    about = f"{', '.join(names)} -> samples: {what}"
    return Graph(module, make, ["samples"], {n: {0: "batch"} for n in [*names, "samples"]}, about=about)
