"""Pretrained weights by name, and `zoo.load(name_or_path)`.

    model = zoo.load("cnn-digits")                      # a card in the pretrained registry
    model = zoo.load("runs/.../checkpoints/best.ckpt")  # a Lightning checkpoint
    model = zoo.load("weights.safetensors")             # weights exported by zoo

A card (zoo/hub/weights/<name>.yaml) names the model and data, the metrics the weights reach, the
exact recipe that trained them, the license, and `weights: {uri, sha256, format: safetensors}`.
The uri is `package://FILE` (shipped inside zoo), `file://`, `https://` or `hf://REPO/FILE`.
Downloads are cached under $ZOO_HOME/weights and verified by sha256 on every load, so after
the first fetch loading works offline. The safetensors metadata carries the model name and
hyper-parameters, so a weights file rebuilds its model with no config.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from zoo.data.download import cache_dir, cached, download, sha256_of
from zoo.errors import ConfigError, ZooError, did_you_mean
from zoo.registry import MODELS

CARDS_DIR = Path(__file__).parent / "weights"
CARD_KEYS = {"name", "model", "data", "description", "metrics", "recipe", "weights", "license"}


@cache
def cards() -> dict[str, dict[str, Any]]:
    """Return every pretrained card shipped with zoo, by name."""
    import yaml

    out = {}
    for path in sorted(CARDS_DIR.glob("*.yaml")):
        card = yaml.safe_load(path.read_text())
        missing = CARD_KEYS - set(card)
        if missing:
            raise ZooError(f"Pretrained card {path} lacks {', '.join(sorted(missing))}")
        out[card["name"]] = card
    return out


def card(name: str) -> dict[str, Any]:
    """Return the card called `name`, or raise with the close matches and all names."""
    available = cards()
    if name not in available:
        names = sorted(available)
        raise ConfigError(f"Unknown pretrained model or file '{name}'.{did_you_mean(name, names)} "
                          f"Available: {', '.join(names)}")
    return available[name]


def weights_path(name: str, progress: bool = True) -> Path:
    """Return the local, sha256-verified weights file of a card, fetching it into the cache if needed."""
    w = card(name)["weights"]
    uri, sha = w["uri"], w["sha256"]
    scheme = urlparse(uri).scheme
    what = f"The weights file of '{name}'"
    if scheme == "package":  # shipped inside zoo: nothing to fetch again, the installation itself is damaged
        return cached(CARDS_DIR / uri[len("package://"):], None, what=what, sha256=sha,
                      fix="they ship inside the zoo package, so reinstall it (pip install --force-reinstall zoo)")
    if scheme == "hf":
        from huggingface_hub import hf_hub_download

        owner, repo, filename = uri[len("hf://"):].split("/", 2)  # hf://owner/repo/path/in/repo
        path = Path(hf_hub_download(f"{owner}/{repo}", filename, cache_dir=cache_dir() / "hf"))
        return cached(path, None, what=what, sha256=sha, fix=f"delete it and run `zoo fetch {name}` again")
    return download(uri, cache_dir() / "weights" / f"{name}-{sha[:12]}.safetensors", sha256=sha, progress=progress)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Return a zoo checkpoint dict loaded with `weights_only=True`, or raise a one-line ZooError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"Checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ZooError(
            f"Cannot read checkpoint {path}: the file is corrupt or not a torch checkpoint ({type(e).__name__})"
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt.get("zoo", {}) or "hyper_parameters" not in ckpt:
        raise ZooError(f"{path} is not a zoo checkpoint (no model name and hyper-parameters in it); a checkpoint "
                       "written by a plain lightning.Trainer loads with ModelClass.load_from_checkpoint(path)")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> Any:
    """Return the registered model rebuilt from a checkpoint dict, in eval mode."""
    cls = MODELS.get(ckpt["zoo"]["model"])
    model = rebuild(cls, ckpt["hyper_parameters"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ZooError(f"Checkpoint weights do not fit model '{cls.registry_name}': {str(e).splitlines()[0]}") from None
    return model.eval()


def rebuild(cls: type, hparams: dict[str, Any], source: str | Path = "the checkpoint") -> Any:
    """Return `cls(**hparams)`, or a one-line ZooError when the stored hyper-parameters do not build one."""
    try:
        return cls(**hparams)
    except ZooError:
        raise
    except (TypeError, ValueError, KeyError) as e:
        raise ZooError(f"The hyper-parameters in {source} do not build a '{cls.registry_name}' "
                       f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); was it written by another zoo version?") from None


def load_checkpoint(path: str | Path) -> Any:
    """Return the model stored in a zoo checkpoint file, in eval mode, with no config or data needed."""
    return model_from_checkpoint(read_checkpoint(path))


def save_weights(model: Any, path: str | Path) -> str:
    """Write a model's weights and rebuild metadata to a safetensors file; return its sha256."""
    from safetensors.torch import save_model

    meta = {"model": model.registry_name, "hyper_parameters": dict(model.hparams) | {"spec": model.spec.to_dict()}}
    save_model(model, str(path), metadata={"zoo": json.dumps(meta)})
    Path(path).chmod(0o644)
    return sha256_of(path)


def load_weights(path: str | Path) -> Any:
    """Return the model stored in a zoo safetensors file, in eval mode."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("zoo", "null"))
    except (SafetensorError, OSError, ValueError) as e:
        raise ZooError(f"Cannot read weights {path}: corrupt or not a safetensors file ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) or not isinstance(
            meta.get("hyper_parameters"), dict):
        raise ZooError(f"{path} has no zoo metadata (model name and hyper-parameters); zoo.load reads weights "
                       "saved by zoo (zoo.hub.pretrained.save_weights)")
    model = rebuild(MODELS.get(meta["model"]), meta["hyper_parameters"], path)
    try:
        load_model(model, str(path))
    except RuntimeError as e:
        raise ZooError(f"Weights in {path} do not fit model '{meta['model']}': {str(e).splitlines()[0]}") from None
    return model.eval()


def load_with_config(name_or_path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Return (model in eval mode, the config it was trained with, or {}) for a path or a card name."""
    path = Path(name_or_path)
    if path.is_file():
        if path.suffix == ".safetensors":
            return load_weights(path), {}
        ckpt = read_checkpoint(path)
        return model_from_checkpoint(ckpt), ckpt["zoo"].get("config", {})
    if path.suffix in (".ckpt", ".safetensors") or len(path.parts) > 1:
        raise ZooError(f"Checkpoint not found: {path}")
    return load_weights(weights_path(str(name_or_path))), card(str(name_or_path))["recipe"]


def load(name_or_path: str | Path) -> Any:
    """Return a zoo model in eval mode from a pretrained name, a `.ckpt` checkpoint or a `.safetensors` file."""
    return load_with_config(name_or_path)[0]
