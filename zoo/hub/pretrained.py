"""Pretrained weights by name, and `zoo.load(name_or_path)`.

    model = zoo.load("cnn-digits")                      # a card in the pretrained registry
    model = zoo.load("runs/.../checkpoints/best.ckpt")  # a Lightning checkpoint
    model = zoo.load("weights.safetensors")             # weights exported by zoo

A card (zoo/hub/cards.py) names the model and data, the metrics the weights reach, the exact
recipe that trained them, and `weights: {uri, sha256, format: safetensors}`. The uri is one of:

- `package://FILE`: shipped inside zoo (zoo/hub/weights/FILE);
- `https://...` (or `http://`, `file://`): downloaded by zoo.data.download (resumed with HTTP Range,
  a progress bar, sha256-checked, renamed into place atomically) into
  $ZOO_HOME/weights/NAME-<sha256[:12]>.safetensors;
- `hf://OWNER/REPO[@REVISION]/PATH`: fetched by `huggingface_hub.hf_hub_download` into the Hub's own
  cache, so HF_TOKEN, HF_HUB_CACHE and HF_HUB_OFFLINE apply.

Every load checks the sha256, so after the first fetch loading works offline, and `zoo verify`
(`verify_cache`) re-hashes what is cached and removes what is bad.

Loading never unpickles: weights are safetensors, whose metadata holds the model's registry name
and hyper-parameters (JSON), and `.ckpt` files are read with `torch.load(weights_only=True)`,
which refuses any pickle that would import or call code. A card or a weights file can only name
registered models; there is no import path anywhere.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from zoo.data.download import cache_dir, cached, download, sha256_of
from zoo.errors import ZooError
from zoo.hub.cards import CARDS_DIR, card, cards  # noqa: F401  (re-exported: the cards' home)
from zoo.registry import MODELS


def cached_path(name: str) -> Path:
    """Return where the weights of a downloaded (`https://`, `file://`) card live in zoo's cache."""
    return cache_dir() / "weights" / f"{name}-{card(name)['weights']['sha256'][:12]}.safetensors"


def hf_location(uri: str) -> tuple[str, str, str | None]:
    """Return (repo id, file path in the repo, revision or None) of `hf://owner/repo[@revision]/path`."""
    parts = uri[len("hf://"):].split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ZooError(f"Bad weights uri {uri!r}: expected hf://OWNER/REPO[@REVISION]/PATH/IN/REPO")
    owner, repo, filename = parts
    repo, _, revision = repo.partition("@")
    return f"{owner}/{repo}", filename, revision or None


def hf_weights(uri: str) -> Path:
    """Return the local path of an `hf://` file, through the Hugging Face Hub's cache, token and offline mode."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, filename, revision = hf_location(uri)
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, library_name="zoo"))
    except LocalEntryNotFoundError:
        raise ZooError(f"Cannot fetch {uri}: it is not in the Hugging Face cache and the Hub cannot be reached "
                       "(offline, HF_HUB_OFFLINE=1, or no network)") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise ZooError(f"Cannot fetch {uri}: {str(e).splitlines()[0]}") from None


def weights_path(name: str, progress: bool | None = None) -> Path:
    """Return the local, sha256-verified weights file of a card, fetching it into the cache if needed."""
    w = card(name)["weights"]
    uri, sha = w["uri"], w["sha256"]
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https", "file"):
        return download(uri, cached_path(name), sha256=sha, progress=progress)  # verified before it lands
    what = f"The weights file of '{name}'"
    if scheme == "hf":  # in the Hub's own cache, which zoo does not rewrite: checked, and named when bad
        return cached(hf_weights(uri), None, what=what, sha256=sha,
                      fix="run `zoo verify` to remove it, then fetch again")
    # shipped inside zoo: nothing to fetch again, the installation itself is damaged
    return cached(CARDS_DIR / uri[len("package://"):], None, what=what, sha256=sha,
                  fix="they ship inside the zoo package, so reinstall it (pip install --force-reinstall zoo)")


def verify_cache() -> list[tuple[Path, str | None]]:
    """Re-hash every cached weights file; remove the bad ones. Return (path, None if good else why it was bad).

    zoo's own cache ($ZOO_HOME/weights) names each file NAME-<first 12 hex of its sha256>, so every
    file there is checked, even one no card names any more (against the card's full sha256 when
    one does). `hf://` weights are checked in the Hugging Face cache, where a bad file is removed
    with the blob it links to.
    """
    expected = {cached_path(n).name: c["weights"]["sha256"] for n, c in cards().items()
                if urlparse(c["weights"]["uri"]).scheme in ("http", "https", "file")}
    found: list[tuple[Path, str]] = []
    for path in sorted((cache_dir() / "weights").glob("*.safetensors")):
        match = re.search(r"-([0-9a-f]{12})\.safetensors$", path.name)
        if match:  # a name of zoo's own scheme: anything else in the folder is not zoo's to judge
            found.append((path, expected.get(path.name, match.group(1))))
    for c in cards().values():
        if c["weights"]["uri"].startswith("hf://"):
            from huggingface_hub import try_to_load_from_cache

            repo_id, filename, revision = hf_location(c["weights"]["uri"])
            hit = try_to_load_from_cache(repo_id, filename, revision=revision)
            if isinstance(hit, str):
                found.append((Path(hit), c["weights"]["sha256"]))
    report: list[tuple[Path, str | None]] = []
    for path, sha in found:
        digest = sha256_of(path)
        if digest.startswith(sha):
            report.append((path, None))
            continue
        why = f"sha256 {digest[:12]}... is not the expected {sha[:12]}..."
        blob = path.resolve()
        path.unlink()
        if blob != path:  # the Hub's snapshot entry is a link to a blob: remove the bytes too
            blob.unlink(missing_ok=True)
        report.append((path, why))
    return report


# -- reading files, pickle-free -------------------------------------------------------------------


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Return a zoo checkpoint dict loaded with `weights_only=True`, or raise a one-line ZooError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"Checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        culprit = re.search(r"GLOBAL (\S+)", str(e))
        if culprit:  # the restricted unpickler stopped at an import it does not allow
            raise ZooError(f"Refused to load {path}: unpickling it would import {culprit.group(1)}, which could "
                           "run code; zoo reads checkpoints with torch.load(weights_only=True) only") from None
        raise ZooError(f"Cannot read checkpoint {path}: the file is corrupt or not a torch checkpoint") from None
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


def weights_metadata(path: str | Path) -> dict[str, Any]:
    """Return the {"model", "hyper_parameters"} that a zoo safetensors file carries (JSON, never code)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("zoo", "null"))
    except (SafetensorError, OSError, ValueError) as e:
        raise ZooError(f"Cannot read weights {path}: corrupt or not a safetensors file ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) \
            or not isinstance(meta.get("hyper_parameters"), dict):
        raise ZooError(f"{path} has no zoo metadata (model name and hyper-parameters); zoo.load reads weights "
                       "saved by zoo (zoo.hub.pretrained.save_weights)")
    return meta


def load_weights(path: str | Path, pretrained: bool = True) -> Any:
    """Return the model stored in a zoo safetensors file, in eval mode (freshly initialised if not `pretrained`)."""
    from safetensors.torch import load_model

    meta = weights_metadata(path)
    model = rebuild(MODELS.get(meta["model"]), meta["hyper_parameters"], path)
    if pretrained:
        try:
            load_model(model, str(path))
        except RuntimeError as e:
            raise ZooError(f"Weights in {path} do not fit model '{meta['model']}': {str(e).splitlines()[0]}") from None
    return model.eval()


def load_pretrained(name: str, pretrained: bool = True, progress: bool | None = None) -> Any:
    """Return the model of a card, in eval mode: its weights fetched and verified (or, not `pretrained`, fresh)."""
    model = load_weights(weights_path(name, progress=progress), pretrained=pretrained)
    if model.registry_name != card(name)["model"]:
        raise ZooError(f"The weights of '{name}' hold a '{model.registry_name}' model, but its card says "
                       f"'{card(name)['model']}'")
    return model


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
    return load_pretrained(str(name_or_path)), card(str(name_or_path))["recipe"]


def load(name_or_path: str | Path) -> Any:
    """Return a zoo model in eval mode from a pretrained name, a `.ckpt` checkpoint or a `.safetensors` file."""
    return load_with_config(name_or_path)[0]


def export_card(source: str | Path, model: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """Return the card that goes beside exported weights: the pretrained card, else one from the file itself.

    A run's best checkpoint takes its test metrics from the run's results.json."""
    from zoo.hub.cards import checkpoint_card

    path = Path(source)
    if not path.is_file():
        return card(str(source))
    results = path.parent.parent / "results.json"
    run = json.loads(results.read_text()) if results.is_file() else {}
    tested = run.get("best_ckpt") and Path(run["best_ckpt"]).resolve() == path.resolve()
    metrics = run.get("test", {}) if tested else {}
    return checkpoint_card(str(source), model, cfg, {k: round(float(v), 4) for k, v in metrics.items()},
                           sha256_of(path))
