"""Architectures: one `LightningModule` per file, registered by name, and what they share.

- base.py: `ZooModel` (spec, optimizer, standardisation, compatibility) and `TaskModel` (the
  loss, metrics and steps of classification, regression and language modeling);
- metrics.py: the torchmetrics of each task; optim.py: optimizers and schedules from `optim`;
- text.py: `TextModel`, generation and text encoding for models that read tokens;
- generative.py: what the VAE, the GAN and the diffusion model share;
- one file per architecture: mlp, cnn, rnn, transformer, hf (Hugging Face backbones), vae, gan,
  diffusion.

Built-ins are imported here explicitly, so that each registers itself. May import the contracts
(registry, spec, errors, bounds) only: never data/ (the DataSpec is the only contract between
the two), training/, evaluation/, hub/ or cli/.
"""

from zoo.models import cnn, diffusion, gan, hf, mlp, rnn, transformer, vae  # noqa: F401
from zoo.models.base import TaskModel, ZooModel

__all__ = ["TaskModel", "ZooModel"]
