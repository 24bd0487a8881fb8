"""Built-in architectures, imported explicitly so that each registers itself."""

from zoo.models import cnn, gan, hf, mlp, rnn, transformer, vae  # noqa: F401
from zoo.models.base import ZooModel

__all__ = ["ZooModel"]
