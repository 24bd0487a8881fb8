"""Built-in datasets, imported explicitly so that each registers itself."""

from zoo.data import images, names, tables, text  # noqa: F401
from zoo.data.base import InMemoryLoader, ZooDataModule

__all__ = ["InMemoryLoader", "ZooDataModule"]
