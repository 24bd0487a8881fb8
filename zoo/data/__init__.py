"""Datasets: one `LightningDataModule` per data family, registered by name, and what they need.

- base.py: `ZooDataModule` (deterministic splits, a DataSpec, the in-memory loader) and
  `ArrayDataModule` (data held as numpy arrays);
- augment.py: uint8 images served from the device, augmentation presets, `ImageDataModule`;
- one file per data family: images.py (digits), vision.py (torchvision's MNIST, Fashion-MNIST,
  CIFAR-10/100), image_folder.py (your images), tables.py, table_file.py (csv), names.py, text.py, text_csv.py,
  hf_dataset.py (Hugging Face datasets), streaming.py (litdata shards of any of them);
- tokenizer.py: tokenizers trained on a train split (their readers are in zoo.spec);
- download.py: atomic, resumable, sha256-checked, locked downloads, and zoo's cache folder.

Built-ins are imported here explicitly, so that each registers itself. May import the contracts
(registry, spec, errors, bounds) only: never models/, training/, evaluation/, hub/ or cli/.
"""

from zoo.data import (  # noqa: F401
    hf_dataset,
    image_folder,
    images,
    names,
    streaming,
    table_file,
    tables,
    text,
    text_csv,
    vision,
)
from zoo.data.base import ArrayDataModule, InMemoryLoader, ZooDataModule

__all__ = ["ArrayDataModule", "InMemoryLoader", "ZooDataModule"]
