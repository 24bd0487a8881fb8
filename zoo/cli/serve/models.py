"""What `zoo serve` does with models, with no Gradio in it: kinds, the loaded models, and each action.

Every action takes a `Loaded` model and plain inputs (numbers, strings, numpy images) and returns
plain outputs ({label: probability} for Gradio's Label, text, uint8 image arrays, pandas frames),
and raises ZooError for anything the user can fix, which the page shows as a message.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.errors import ZooError

# kind id -> the label of its tab ("gan": any model that only samples, the diffusion model too)
KINDS = {"image": "Image classifier", "lm": "Language model", "text": "Text classifier",
         "tabular": "Tabular model", "vae": "VAE", "gan": "GAN and diffusion"}


def kind_of(model: Any) -> str:
    """Return the kind id of a model: what its tab on the page lets you do with it."""
    spec = model.spec
    if callable(getattr(model, "sample", None)):
        return "vae" if callable(getattr(model, "reconstruct", None)) else "gan"  # any other sampler: a sample grid
    if spec.modality == "tokens":
        return "lm" if spec.task == "language_modeling" else "text"
    if spec.modality == "image" and spec.task == "classification":
        return "image"
    if spec.modality == "tabular":
        return "tabular"
    raise ZooError(f"zoo serve has no page for a {spec.modality} {spec.task} model ('{model.registry_name}')")


@dataclass
class Loaded:
    """A model opened on the page, with what its card shows."""

    name: str  # what was opened: a pretrained name or a file path
    model: Any
    kind: str
    config: dict[str, Any]  # the training config ({} for a bare weights file)
    card: dict[str, Any] | None  # the pretrained card, for a pretrained name
    metrics: dict[str, float]  # the card's metrics, or the run's test metrics beside a checkpoint
    _test: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def test_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the (x, y) test split of the model's data, built from its training config (cached)."""
        if self._test is None:
            from zoo.training.config import datamodule_for

            if not self.config:
                raise ZooError(f"{self.name} holds no training config, so its test data is unknown")
            self._test = datamodule_for(self.config, []).split("test")
        return self._test


def open_model(name_or_path: str) -> Loaded:
    """Return a loaded model from a pretrained name or a .ckpt/.safetensors path, or raise ZooError."""
    from zoo.hub.pretrained import cards, load_with_config

    name = (name_or_path or "").strip()
    if not name:
        raise ZooError("Give a checkpoint path or a pretrained name to open")
    model, config = load_with_config(name)
    path = Path(name)
    card = None if path.is_file() else cards().get(name)
    metrics = dict(card["metrics"]) if card else run_metrics(path)
    return Loaded(name, model, kind_of(model), config, card, metrics)


def run_metrics(ckpt: Path) -> dict[str, float]:
    """Return the test metrics of the run a checkpoint belongs to (RUN_DIR/checkpoints/X.ckpt), or {}."""
    results = ckpt.parent.parent / "results.json"
    try:
        return dict(json.loads(results.read_text()).get("test") or {})
    except (OSError, ValueError):
        return {}


class Shelf:
    """The models the server has open, by name; shared by every browser tab (it is one user's local page)."""

    def __init__(self) -> None:
        self._models: dict[str, Loaded] = {}
        self._lock = threading.Lock()

    def open(self, name: str) -> Loaded:
        """Load `name` (again, if it was open: the file may have changed) and keep it; return it."""
        loaded = open_model(name)
        with self._lock:
            self._models[loaded.name] = loaded
        return loaded

    def get(self, name: str | None) -> Loaded | None:
        with self._lock:
            return self._models.get(name or "")

    def names(self, kind: str) -> list[str]:
        """Return the names of the open models of a kind, in the order they were opened."""
        with self._lock:
            return [n for n, m in self._models.items() if m.kind == kind]


def card_markdown(m: Loaded) -> str:
    """Return the model card of a loaded model as Markdown: what it is, its data, size and metrics."""
    spec, model = m.model.spec, m.model
    params = sum(p.numel() for p in model.parameters())
    data = (m.card or {}).get("data") or (m.config.get("data") or {}).get("name") or "unknown data"
    lines = [f"**{m.name}**: `{model.registry_name}` on `{data}` ({spec.modality} {spec.task}), "
             f"{params:,} parameters"]
    if m.card:
        lines.append(f"{m.card.get('description', '')}. License: {m.card.get('license', 'unknown')}")
    if m.metrics:
        lines.append("Test metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(m.metrics.items())))
    return "\n\n".join(lines)


# -- image classifiers: a drawing or an uploaded image in, class probabilities out ----------------------


def image_batch(image: np.ndarray | None, spec: Any, margin: float = 0.05) -> torch.Tensor:
    """Return a (1, C, H, W) batch in [0, 1] from a drawing or photo (H x W x 3 or 4 uint8, any size).

    The picture is laid on white. For one-channel models (digits, MNIST: bright ink on black) the
    ink is 1 - brightness, cropped to its bounding box, centred in a square with a small margin,
    shrunk by area averaging, and scaled so that the darkest stroke is 1, as the datasets' digits are.
    Colour models get the whole picture, resized.
    """
    from PIL import Image

    if image is None:
        raise ZooError("Draw something first (or upload an image)")
    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
    c, h, w = spec.input_shape
    if c == 3:
        x = torch.from_numpy(np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0)
        return x.permute(2, 0, 1)[None]
    ink = 1.0 - np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    ys, xs = np.nonzero(ink > 0.1)
    if len(ys) == 0:
        raise ZooError("The canvas is empty: draw a digit first")
    crop = ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    side = int(max(crop.shape) * (1 + 2 * margin)) + 1
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[top: top + crop.shape[0], left: left + crop.shape[1]] = crop
    x = F.interpolate(torch.from_numpy(square)[None, None], size=(h, w), mode="area")
    return x / x.max().clamp_min(1e-6)


def class_probabilities(model: Any, x: torch.Tensor) -> dict[str, float]:
    """Return {class name: probability} of the first input of a batch."""
    with torch.no_grad():
        p = model.predict_step(x)[0].float()
    names = model.spec.class_names or [str(i) for i in range(len(p))]
    return {str(n): float(v) for n, v in zip(names, p)}


def classify_image(m: Loaded, image: Any) -> dict[str, float]:
    """Return the class probabilities of a drawing (Gradio's sketchpad value) or an image array."""
    if isinstance(image, dict):  # the sketchpad's value: background, layers and their composite
        image = image.get("composite")
    return class_probabilities(m.model, image_batch(image, m.model.spec))


# -- text: language models and text classifiers ----------------------------------------------------------


def generate_text(m: Loaded, prompt: str, n: int, temperature: float, top_k: int, max_new_tokens: int,
                  seed: int) -> str:
    """Return `n` generated texts, one per line (top_k 0: no top-k cut)."""
    texts = m.model.generate(prompt or "", n=int(n), temperature=float(temperature),
                             top_k=int(top_k) or None, max_new_tokens=int(max_new_tokens), seed=int(seed))
    return "\n".join(texts)


def classify_text(m: Loaded, text: str) -> dict[str, float]:
    """Return the label probabilities of one text."""
    if not (text or "").strip():
        raise ZooError("Type a text to classify")
    return class_probabilities(m.model, m.model.encode_text([text]))


# -- tables ------------------------------------------------------------------------------------------


def feature_fields(spec: Any) -> list[tuple[str, float]]:
    """Return (feature name, train-split mean) for each input of a tabular model: the form's fields."""
    n = spec.input_shape[0]
    names = list(spec.feature_names or [f"x{i}" for i in range(n)])
    means = list(spec.input_mean or [0.0] * n)
    return [(name, round(float(mean), 4)) for name, mean in zip(names, means)]


def predict_rows(m: Loaded, frame: Any) -> tuple[dict[str, float] | str, Any]:
    """Return (the first row's class probabilities or values, a DataFrame of every row's prediction)."""
    import pandas as pd

    spec, names = m.model.spec, [name for name, _ in feature_fields(m.model.spec)]
    frame = pd.DataFrame(frame)
    if frame.empty:
        raise ZooError("Give at least one row of features")
    if frame.shape[1] != len(names):
        raise ZooError(f"Expected {len(names)} columns ({', '.join(names)}), got {frame.shape[1]}")
    try:
        x = torch.tensor(frame.astype(float).to_numpy(), dtype=torch.float32)
    except (TypeError, ValueError):
        raise ZooError(f"Every feature value must be a number ({', '.join(names)})") from None
    if torch.isnan(x).any():
        raise ZooError("Fill in every feature value")
    with torch.no_grad():
        pred = m.model.predict_step(x).float()
    if spec.task == "classification":
        classes = [str(c) for c in (spec.class_names or range(pred.shape[1]))]
        table = pd.DataFrame(pred.double().numpy().round(4), columns=[f"p_{c}" for c in classes])
        table.insert(0, "prediction", [classes[i] for i in pred.argmax(1).tolist()])
        return dict(zip(classes, pred[0].tolist())), table
    table = pd.DataFrame(pred.double().numpy().round(4), columns=[f"y{i}" for i in range(pred.shape[1])])
    return ", ".join(f"{c} = {v:.4g}" for c, v in table.iloc[0].items()), table


# -- generative models: samples, reconstructions, interpolation ----------------------------------------


def image_grid(images: torch.Tensor, nrow: int | None = None, min_side: int = 384) -> np.ndarray:
    """Return an (H, W, 3) uint8 grid of (B, C, H, W) images in [0, 1], enlarged (nearest) to at least `min_side`."""
    from torchvision.utils import make_grid

    from zoo.training.callbacks import grid_rows

    grid = make_grid(images.float().cpu().clamp(0, 1), nrow=nrow or grid_rows(len(images)), padding=1, pad_value=0.5)
    scale = max(1, -(-min_side // max(grid.shape[1:])))  # rounded up
    grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def table(rows: torch.Tensor, spec: Any) -> Any:
    """Return generated table rows as a pandas DataFrame named by the spec's features."""
    import pandas as pd

    names = list(spec.feature_names or [f"x{i}" for i in range(rows.shape[1])])
    return pd.DataFrame(rows.detach().cpu().double().numpy().round(4), columns=names)


def labels_for(m: Loaded, n: int, label: str | None) -> torch.Tensor | None:
    """Return the class ids to generate for a conditional model ('any': the classes in turn), else None."""
    if not getattr(m.model, "conditional", False) or label in (None, "", "any"):
        return None
    names = list(m.model.spec.class_names or [str(i) for i in range(m.model.spec.num_classes)])
    if label not in names:
        raise ZooError(f"Unknown class '{label}'. Available: {', '.join(names)}")
    return torch.full((int(n),), names.index(label), dtype=torch.long)


def samples(m: Loaded, n: int, seed: int, label: str | None = None) -> Any:
    """Return `n` samples: an image grid (uint8 array) or a table (DataFrame)."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        x = m.model.sample(int(n), labels_for(m, n, label), generator=g)
    return image_grid(x) if m.model.spec.modality == "image" else table(x, m.model.spec)


def reconstructions(m: Loaded, n: int, start: int = 0) -> Any:
    """Return test inputs beside their VAE reconstructions: a grid of pairs, or a table of pairs of rows."""
    x, y = m.test_split()
    x, y = x[int(start): int(start) + int(n)], y[int(start): int(start) + int(n)]
    if len(x) == 0:
        raise ZooError(f"The test split has {len(m.test_split()[0])} items; start below that")
    labels = y if getattr(m.model, "conditional", False) else None
    recon = m.model.reconstruct(x, labels).cpu()
    if m.model.spec.modality == "image":
        return image_grid(torch.stack([x.float(), recon], 1).flatten(0, 1), nrow=8)
    frame = table(torch.stack([x.float(), recon], 1).flatten(0, 1), m.model.spec)
    frame.insert(0, "row", [f"{i} {kind}" for i in range(len(x)) for kind in ("test", "reconstruction")])
    return frame


def interpolation(m: Loaded, first: int, second: int, t: float, steps: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Return (the decoded image at fraction t between two test images' latents, the strip of `steps` images)."""
    if m.model.spec.modality != "image":
        raise ZooError("Latent interpolation is drawn for image VAEs")
    x, y = m.test_split()
    for i in (first, second):
        if not 0 <= int(i) < len(x):
            raise ZooError(f"Test image numbers go from 0 to {len(x) - 1}, got {int(i)}")
    pair, labels = x[[int(first), int(second)]].float(), None
    if getattr(m.model, "conditional", False):
        labels = y[[int(first)]]
    with torch.no_grad():
        mu0, _ = m.model.encode(pair[:1], labels)
        mu1, _ = m.model.encode(pair[1:], labels)
        z = mu0 * (1 - float(t)) + mu1 * float(t)
        at_t = m.model.mean_of(m.model.decode(z, labels))
        strip = m.model.interpolate(pair[:1], pair[1:], steps=steps, labels=labels)
    ends = torch.cat([pair[:1], strip.cpu(), pair[1:]])
    return image_grid(at_t, min_side=192), image_grid(ends, nrow=len(ends), min_side=768)
