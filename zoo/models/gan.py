"""Generative adversarial network: DCGAN-style conv nets for images, MLPs for tables.

Trained with Lightning's manual optimisation: one discriminator step per batch and one
generator step every `d_steps` batches. Losses: non-saturating (Goodfellow et al. 2014), hinge
(Miyato et al. 2018) or WGAN-GP (Gulrajani et al. 2017). A conditional GAN feeds one-hot labels
to the generator and uses a projection discriminator (Miyato & Koyama 2018).

A GAN has no validation loss, so checkpoints are picked by a sample-quality score on the
validation split: the Frechet distance in a judge classifier's feature space for images (val/fid)
and the MMD to the validation rows for tables (val/mmd). The model only samples; the score comes
from `zoo.evaluation.quality.SampleQuality`, which zoo.fit and `zoo test` attach with the data.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.bounds import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Probability, Widths
from zoo.errors import choose
from zoo.models.generative import GenerativeModel, conv_down, conv_up, halvings, mlp
from zoo.models.optim import OptimConfig, build_optimizer, build_scheduler
from zoo.registry import MODELS

LOSSES = ("nonsaturating", "hinge", "wgan-gp")


class LeakyReLU(nn.LeakyReLU):
    """LeakyReLU with DCGAN's slope of 0.2."""

    def __init__(self) -> None:
        super().__init__(0.2)


class MinibatchStd(nn.Module):
    """Append one feature: the mean std of the features across groups of `group` samples (ProGAN/StyleGAN).

    A discriminator that sees how varied a batch is can tell a mode-collapsed fake batch from a
    real one, so the generator is pushed to cover the data. Works on (B, F) and (B, C, H, W);
    a batch that `group` does not divide is one group.
    """

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        g = self.group if b % self.group == 0 else b
        std = (x.reshape(g, b // g, *x.shape[1:]).var(0, unbiased=False) + 1e-8).sqrt()  # (B/G, ...)
        s = std.flatten(1).mean(1).repeat(g)  # sample i belongs to group i % (B/G)
        return torch.cat([x, s.view(b, 1, *[1] * (x.dim() - 2)).expand(b, 1, *x.shape[2:])], 1)


class Generator(nn.Module):
    """(z, one-hot labels) -> model-space sample: [0, 1] images or standardised table rows."""

    def __init__(self, body: nn.Module, image: bool) -> None:
        super().__init__()
        self.body = body
        self.image = image

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = self.body(z if cond is None else torch.cat([z, cond], 1))
        return torch.sigmoid(h) if self.image else h


class Discriminator(nn.Module):
    """Model-space sample (and labels) -> one realness score per sample, (B,)."""

    def __init__(self, body: nn.Module, width: int, num_labels: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(width, 1)
        # Projection: the score gains <embed(y), h>, which ties the class to the features.
        self.embed = nn.Embedding(num_labels, width) if num_labels else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.body(x).flatten(1)  # (B, width)
        score = self.head(h).squeeze(1)
        if self.embed is not None:
            score = score + (self.embed(labels) * h).sum(1)
        return score


@MODELS.register("gan")
class GAN(GenerativeModel):
    """Generative adversarial network (DCGAN for images, MLP for tables), optionally class-conditional.

    Args:
        latent_dim: size of the generator's Gaussian input z.
        arch: auto (conv for images, mlp for tables), conv or mlp.
        channels: discriminator conv channels (stride-2 each); the generator mirrors them.
        hidden: hidden widths of the MLP discriminator; the generator mirrors them.
        loss: nonsaturating, hinge or wgan-gp.
        gp_weight: gradient-penalty weight for wgan-gp.
        d_steps: discriminator steps per generator step.
        d_lr_ratio: discriminator learning rate = optim.lr * d_lr_ratio.
        ema_decay: keep an exponential moving average of the generator for sampling (0 disables).
        ema_warmup: ramp the EMA decay up as min(ema_decay, (1 + n) / (10 + n)) after n generator
            steps (as TensorFlow's ExponentialMovingAverage with num_updates), so that a high
            decay does not keep the random initial weights in the average for hundreds of epochs.
        spectral_norm: spectral normalisation of the discriminator's layers (SN-GAN).
        minibatch_std: group size of a minibatch-standard-deviation feature before the
            discriminator's last layer (ProGAN), against mode collapse; 0 disables it.
        conditional: generate for chosen class labels (classification data only).
    """

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        latent_dim: PositiveInt = 32,
        arch: str = "auto",
        channels: Widths = (64, 128),
        hidden: list[PositiveInt] = (256, 256),
        loss: str = "nonsaturating",
        gp_weight: NonNegativeFloat = 10.0,
        d_steps: PositiveInt = 1,
        d_lr_ratio: PositiveFloat = 1.0,
        ema_decay: Probability = 0.0,
        ema_warmup: bool = False,
        spectral_norm: bool = False,
        minibatch_std: NonNegativeInt = 0,
        conditional: bool = False,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim, arch=arch, conditional=conditional)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.loss_name = choose("loss", loss, LOSSES)
        self.latent_dim, self.gp_weight, self.d_steps = latent_dim, gp_weight, d_steps
        self.d_lr_ratio, self.ema_decay, self.ema_warmup = d_lr_ratio, ema_decay, ema_warmup
        k, shape, image = self.num_labels, self.spec.input_shape, self.spec.modality == "image"
        # BatchNorm in D would mix real and fake statistics and breaks the gradient penalty; G keeps it.
        if self.arch == "conv":
            sizes = halvings(shape[1:], len(channels))
            c_last, (h, w) = channels[-1], sizes[-1]
            d_body = conv_down(shape[0], list(channels), LeakyReLU)
            if minibatch_std:  # the last conv reads the batch-std map as one more channel
                last = d_body[-2]
                d_body[-2] = nn.Conv2d(last.in_channels + 1, last.out_channels, last.kernel_size, last.stride,
                                       last.padding, bias=last.bias is not None)
                d_body.insert(len(d_body) - 2, MinibatchStd(minibatch_std))
            g_body = nn.Sequential(
                nn.Linear(latent_dim + k, c_last * h * w), nn.BatchNorm1d(c_last * h * w), nn.ReLU(),
                nn.Unflatten(1, (c_last, h, w)), conv_up(list(channels), sizes, shape[0], nn.ReLU, norm=True, resize=True),
            )
            width = c_last * h * w
        else:
            hidden = list(hidden)
            d_body = nn.Sequential(nn.Flatten(), mlp([self.data_dim, *hidden], LeakyReLU), LeakyReLU())
            if minibatch_std:  # the last linear layer reads the batch std as one more input
                last = d_body[1][-1]
                d_body[1][-1] = nn.Linear(last.in_features + 1, last.out_features, bias=last.bias is not None)
                d_body[1].insert(len(d_body[1]) - 1, MinibatchStd(minibatch_std))
            g_body = nn.Sequential(mlp([latent_dim + k, *reversed(hidden), self.data_dim], nn.ReLU, norm=True),
                                   nn.Unflatten(1, tuple(shape)))
            width = hidden[-1]
        self.generator = Generator(g_body, image)
        self.discriminator = Discriminator(d_body, width, k)
        if spectral_norm:  # SN-GAN: bound each layer's Lipschitz constant, which steadies D
            for module in self.discriminator.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(module)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if ema_decay else None

    val_score_from_samples = True

    def monitor(self) -> tuple[str, str]:
        return ("val/fid", "min") if self.spec.modality == "image" else ("val/mmd", "min")

    @classmethod
    def epoch_metrics(cls, modality: str, task: str) -> dict[str, str]:
        return {"val/fid": "min"} if modality == "image" else {"val/mmd": "min"}  # the losses are logged per step

    # -- sampling ----------------------------------------------------------------------------------
    def d_input(self, x: torch.Tensor) -> torch.Tensor:
        """Return what the discriminator reads for model-space `x`: standardised values."""
        return self.standardize(x) if self.spec.modality == "image" else x

    def real_input(self, x: torch.Tensor) -> torch.Tensor:
        """Return raw data (pixels in [0, 1] or raw table rows) in model space."""
        return x.float() if self.spec.modality == "image" else self.standardize(x.float())

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Return `n` samples (from the EMA generator when enabled): images in [0, 1] or raw-scale rows."""
        labels = self.sample_labels(n, labels)
        net = self.generator_ema if self.generator_ema is not None else self.generator
        return self.to_data(net(self.noise(n, self.latent_dim, generator=generator), self.one_hot(labels)))

    # -- losses ------------------------------------------------------------------------------------
    def d_loss(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Return the discriminator loss on model-space real and fake batches."""
        s_real = self.discriminator(self.d_input(real), labels)
        s_fake = self.discriminator(self.d_input(fake), labels)
        if self.loss_name == "nonsaturating":
            return F.softplus(-s_real).mean() + F.softplus(s_fake).mean()
        if self.loss_name == "hinge":
            return F.relu(1 - s_real).mean() + F.relu(1 + s_fake).mean()
        t = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
        mix = (t * real + (1 - t) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.discriminator(self.d_input(mix), labels).sum(), mix, create_graph=True)
        penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return s_fake.mean() - s_real.mean() + self.gp_weight * penalty

    def g_loss(self, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Return the generator loss on a model-space fake batch."""
        score = self.discriminator(self.d_input(fake), labels)
        return F.softplus(-score).mean() if self.loss_name == "nonsaturating" else -score.mean()

    # -- training ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        d_cfg = {**self.optim, "lr": self.optim.get("lr", OptimConfig.lr) * self.d_lr_ratio}
        opts = [build_optimizer(self.generator, self.optim), build_optimizer(self.discriminator, d_cfg)]
        total = self.trainer.estimated_stepping_batches
        scheds = [build_scheduler(o, self.optim.get("scheduler", {}), total) for o in opts]
        if scheds[0] is None:
            return opts
        return opts, scheds

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        x, y = batch
        labels = y.long() if self.conditional else None
        cond = self.one_hot(labels)
        real = self.real_input(x)

        self.toggle_optimizer(opt_d)
        with torch.no_grad():
            fake = self.generator(self.noise(len(x), self.latent_dim), cond)
        d_loss = self.d_loss(real, fake, labels)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        g_loss = None
        if (batch_idx + 1) % self.d_steps == 0:
            self.toggle_optimizer(opt_g)
            g_loss = self.g_loss(self.generator(self.noise(len(x), self.latent_dim), cond), labels)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            self.update_ema()
        scheds = self.lr_schedulers()  # manual optimisation: Lightning does not step them
        if scheds:
            g_sched, d_sched = scheds
            d_sched.step()
            if g_loss is not None:  # the generator's schedule follows its own steps
                g_sched.step()
        if batch_idx % self.trainer.log_every_n_steps == 0:
            self.log("train/d_loss", d_loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
            if g_loss is not None:
                self.log("train/g_loss", g_loss.detach(), prog_bar=True, on_step=True, on_epoch=False)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the EMA generator towards the trained one (buffers such as BatchNorm stats are copied)."""
        if self.generator_ema is None:
            return
        decay = self.ema_decay
        if self.ema_warmup:  # global_step counts both optimizers: d_steps + 1 steps per generator step
            n = self.global_step // (self.d_steps + 1)
            decay = min(decay, (1 + n) / (10 + n))
        for p_ema, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            p_ema.lerp_(p, 1 - decay)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    # -- validation and test: the evaluator scores samples against these batches ---------------------
    def validation_step(self, batch, batch_idx):
        """Nothing of the GAN's own: SampleQuality scores samples against the val batches (val/fid, val/mmd)."""

    def test_step(self, batch, batch_idx):
        """Nothing of the GAN's own: SampleQuality scores samples against the test batches."""
