"""Variational autoencoder: conv or MLP encoder/decoder, Gaussian latent, Bernoulli or Gaussian likelihood.

The loss is the negative ELBO in nats per sample, -ELBO = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)),
with the KL weighted by `beta` and ramped up from 0 over `kl_warmup_steps` during training.
Validation and test report the true (beta = 1) bound, so checkpoints compare across settings.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from zoo.bounds import NonNegativeFloat, NonNegativeInt, PositiveInt, Widths
from zoo.errors import ConfigError, choose
from zoo.models.generative import GenerativeModel, conv_down, conv_up, halvings, mlp
from zoo.registry import MODELS

LIKELIHOODS = ("auto", "bernoulli", "gaussian")
TERMS = ("loss", "elbo", "recon", "kl")
TERM_MODES = {"loss": "min", "elbo": "max", "recon": "min", "kl": "min"}


class Encoder(nn.Module):
    """x (and one-hot labels) -> (mu, logvar) of q(z | x)."""

    def __init__(self, body: nn.Module, width: int, num_labels: int, latent_dim: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(width + num_labels, 2 * latent_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x).flatten(1)  # (B, width)
        if cond is not None:
            h = torch.cat([h, cond], 1)
        mu, logvar = self.head(h).chunk(2, dim=1)  # (B, latent) each
        return mu, logvar.clamp(-12, 8)


@MODELS.register("vae")
class VAE(GenerativeModel):
    """Variational autoencoder (conv for images, MLP for tables), optionally conditional on the class.

    Args:
        latent_dim: size of the Gaussian latent z.
        arch: auto (conv for images, mlp for tables), conv or mlp.
        channels: conv channels of the encoder (stride-2 each); the decoder mirrors them.
        hidden: hidden widths of the MLP encoder; the decoder mirrors them.
        likelihood: auto (bernoulli for images in [0, 1], gaussian for tables), bernoulli or gaussian.
            The gaussian decoder predicts standardised means with a learned per-feature scale.
        beta: weight of the KL term in the training loss (beta-VAE); 1 is the plain ELBO.
        kl_warmup_steps: ramp the KL weight linearly from 0 to beta over this many steps.
        conditional: condition encoder and decoder on one-hot class labels (classification data only).
    """

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        latent_dim: PositiveInt = 16,
        arch: str = "auto",
        channels: Widths = (32, 64),
        hidden: list[PositiveInt] = (256, 128),
        likelihood: str = "auto",
        beta: NonNegativeFloat = 1.0,
        kl_warmup_steps: NonNegativeInt = 0,
        conditional: bool = False,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim, arch=arch, conditional=conditional)
        self.save_hyperparameters()
        likelihood = choose("likelihood", likelihood, LIKELIHOODS)
        if likelihood == "auto":
            likelihood = "bernoulli" if self.spec.modality == "image" else "gaussian"
        if likelihood == "bernoulli" and self.spec.modality != "image":
            raise ConfigError("likelihood 'bernoulli' needs values in [0, 1] (images); tables use 'gaussian'")
        self.likelihood, self.latent_dim = likelihood, latent_dim
        self.beta, self.kl_warmup_steps = beta, kl_warmup_steps
        k, shape = self.num_labels, self.spec.input_shape
        if self.arch == "conv":
            sizes = halvings(shape[1:], len(channels))
            c_last, (h, w) = channels[-1], sizes[-1]
            self.encoder = Encoder(conv_down(shape[0], list(channels), nn.SiLU), c_last * h * w, k, latent_dim)
            self.decoder = nn.Sequential(
                nn.Linear(latent_dim + k, c_last * h * w), nn.SiLU(), nn.Unflatten(1, (c_last, h, w)),
                conv_up(list(channels), sizes, shape[0], nn.SiLU),  # (B, C, H, W) logits or means
            )
        else:
            hidden = list(hidden)
            self.encoder = Encoder(nn.Sequential(nn.Flatten(), mlp([self.data_dim, *hidden], nn.SiLU), nn.SiLU()),
                                   hidden[-1], k, latent_dim)
            self.decoder = nn.Sequential(mlp([latent_dim + k, *reversed(hidden), self.data_dim], nn.SiLU),
                                         nn.Unflatten(1, tuple(shape)))
        # Gaussian likelihood: one learned log-scale per feature (pixel), in standardised units.
        self.log_scale = nn.Parameter(torch.zeros(shape)) if likelihood == "gaussian" else None
        self.metrics = nn.ModuleDict({f"{s}_{t}": torchmetrics.MeanMetric() for s in ("train", "val", "test")
                                      for t in TERMS})
        self._preview: tuple[torch.Tensor, torch.Tensor] | None = None  # a val batch for the samples (not state)

    # -- the model ---------------------------------------------------------------------------------
    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """Return what the encoder reads and the likelihood scores: [0, 1] pixels or standardised values."""
        return x.float() if self.likelihood == "bernoulli" else self.standardize(x.float())

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar) of q(z | x) for raw inputs `x` (images in [0, 1] or raw table rows)."""
        return self.encoder(self.model_input(x), self.one_hot(labels))

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return the decoder's output for latents `z`: pixel logits or standardised means."""
        cond = self.one_hot(labels)
        return self.decoder(z if cond is None else torch.cat([z, cond], 1))

    def mean_of(self, out: torch.Tensor) -> torch.Tensor:
        """Return E[x | z] on the data's scale from decoder outputs."""
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else self.to_data(out)

    def neg_log_likelihood(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return -log p(x | z) in nats per sample, (B,)."""
        if self.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(out, target, reduction="none")
        else:
            nll = 0.5 * ((target - out) / self.log_scale.exp()) ** 2 + self.log_scale + 0.5 * math.log(2 * math.pi)
        return nll.flatten(1).sum(1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Return the per-sample reconstruction NLL and KL (nats) of raw inputs `x`."""
        target = self.model_input(x)
        mu, logvar = self.encoder(target, self.one_hot(labels))
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation: gradients flow to mu, logvar
        out = self.decode(z, labels)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return {"recon": self.neg_log_likelihood(out, target), "kl": kl}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return the decoder mean at z = mu(x): reconstructions on the data's scale."""
        mu, _ = self.encode(x.to(self.device), labels)
        return self.mean_of(self.decode(mu, labels))

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Return `n` samples: decoder means for images in [0, 1], draws from p(x | z) for raw-scale tables."""
        labels = self.sample_labels(n, labels)
        out = self.decode(self.noise(n, self.latent_dim, generator=generator), labels)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(out)  # the mean image: binarised draws of grey digits look like noise
        eps = self.noise(*out.shape, generator=generator)
        return self.to_data(out + eps * self.log_scale.exp())

    @torch.no_grad()
    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return decoder means along the straight line between mu(x0) and mu(x1): (B * steps, ...), row-major."""
        mu0, _ = self.encode(x0.to(self.device), labels)
        mu1, _ = self.encode(x1.to(self.device), labels)
        t = torch.linspace(0, 1, steps, device=self.device).view(1, steps, 1)
        z = (mu0.unsqueeze(1) * (1 - t) + mu1.unsqueeze(1) * t).flatten(0, 1)  # (B * steps, latent)
        lab = labels.repeat_interleave(steps) if labels is not None else None
        return self.mean_of(self.decode(z, lab))

    # -- training ----------------------------------------------------------------------------------
    def kl_weight(self) -> float:
        """Return the KL weight now: beta, ramped up linearly over the first kl_warmup_steps."""
        if self.kl_warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, (self.global_step + 1) / self.kl_warmup_steps)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        terms = self(x, y if self.conditional else None)
        recon, kl = terms["recon"].mean(), terms["kl"].mean()
        weight = self.kl_weight() if stage == "train" else 1.0
        loss = recon + weight * kl
        values = {"loss": loss, "elbo": -(recon + kl), "recon": recon, "kl": kl}
        for name, value in values.items():
            self.metrics[f"{stage}_{name}"].update(value.detach(), len(x))
        if stage == "train" and self.logs_this_step():
            self.log("train/loss_step", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        return loss

    @classmethod
    def epoch_metrics(cls, modality: str, task: str) -> dict[str, str]:
        return {f"{stage}/{t}": TERM_MODES[t] for stage in ("train", "val") for t in TERMS}

    def _log_epoch(self, stage: str) -> None:
        for name in TERMS:
            metric = self.metrics[f"{stage}_{name}"]
            if metric.update_called:
                self.log(f"{stage}/{name}", metric.compute(), prog_bar=stage == "val" and name == "elbo")
                metric.reset()

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            self._preview = batch  # real images for the reconstruction grid
        self._shared_step(batch, "val")

    def make_samples(self) -> dict[str, torch.Tensor]:
        """Return samples, plus for images originals beside their reconstructions and an interpolation."""
        out = super().make_samples()
        if self.spec.modality != "image" or self._preview is None:
            return out
        x, y = self._preview
        x, y = x[:32], (y[:32] if self.conditional else None)
        recon = self.reconstruct(x, y)
        out["reconstructions"] = torch.stack([x.float(), recon], 1).flatten(0, 1)  # original, recon, ...
        if len(x) >= 16 and not self.conditional:
            out["interpolation"] = self.interpolate(x[:8], x[8:16], steps=8)
        return out
