"""Pretrained cards: what each shipped model is, read from YAML and rendered as text or Markdown.

A card (zoo/hub/weights/<name>.yaml) is data, never code: every key is one of `CARD_KEYS`,
`model` and `data` are registry names, the recipe is a config that zoo.training.config validates,
and the weights are `{uri, sha256, format: safetensors}`. Hand-written fields (description,
data_source, limits, license) are kept when `scripts/train_pretrained.py NAME` retrains an entry;
the others (metrics, sizes, weights) it measures and writes.

This module needs only yaml, never torch, so `zoo list pretrained` and `zoo info NAME` answer
without importing Lightning:

    card_text(card("cnn-digits"))        # what `zoo info cnn-digits` prints
    card_markdown(card("cnn-digits"))    # the README.md written beside exported weights
"""

from __future__ import annotations

import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, ZooError, did_you_mean

CARDS_DIR = Path(__file__).parent / "weights"
#: every key a card has; a card with another key (or without one of these) is refused
CARD_KEYS = ("name", "model", "data", "description", "data_source", "limits", "license", "modality", "task",
             "input_shape", "classes", "num_params", "test_samples", "metrics", "weights", "recipe")
WEIGHT_KEYS = {"uri", "sha256", "format"}
SCHEMES = ("package", "file", "https", "http", "hf")
#: the metrics a one-line listing shows, in this order, when a card has them
HEADLINE = ("test/acc", "test/f1", "test/ppl", "test/elbo", "test/fid", "test/confident", "test/cond_acc",
            "test/recon_acc", "test/mmd", "test/ks")
#: Hugging Face task tags by (modality, task); generative models by modality
HF_TASKS = {("image", "classification"): "image-classification", ("tabular", "classification"): "tabular-classification",
            ("tabular", "regression"): "tabular-regression", ("tokens", "classification"): "text-classification",
            ("tokens", "language_modeling"): "text-generation", "image": "unconditional-image-generation"}
GENERATIVE = ("vae", "gan")


def check_card(card: Any, where: str) -> dict[str, Any]:
    """Return `card` if it has exactly the card keys with the right shapes, else raise a one-line ZooError."""
    if not isinstance(card, dict):
        raise ZooError(f"Pretrained card {where} is not a mapping")
    missing, extra = set(CARD_KEYS) - set(card), set(card) - set(CARD_KEYS)
    if missing or extra:
        parts = [f"lacks {', '.join(sorted(missing))}"] if missing else []
        parts += [f"has unknown keys {', '.join(sorted(extra))}"] if extra else []
        raise ZooError(f"Pretrained card {where} {' and '.join(parts)} (a card holds only: {', '.join(CARD_KEYS)})")
    w = card["weights"]
    if not isinstance(w, dict) or set(w) != WEIGHT_KEYS:
        raise ZooError(f"Pretrained card {where}: weights must be {{uri, sha256, format}}, got {w!r}")
    if w["format"] != "safetensors":
        raise ZooError(f"Pretrained card {where}: weights format must be safetensors (pickle-free), got {w['format']!r}")
    scheme = str(w["uri"]).split("://", 1)[0] if "://" in str(w["uri"]) else ""
    if scheme not in SCHEMES:
        raise ZooError(f"Pretrained card {where}: unsupported weights uri {w['uri']!r}; use one of "
                       f"{', '.join(s + '://' for s in SCHEMES)}")
    recipe = card["recipe"]
    if not isinstance(recipe, dict) or (recipe.get("model") or {}).get("name") != card["model"] \
            or (recipe.get("data") or {}).get("name") != card["data"]:
        raise ZooError(f"Pretrained card {where}: the recipe must train model '{card['model']}' on data '{card['data']}'")
    return card


@cache
def cards() -> dict[str, dict[str, Any]]:
    """Return every pretrained card shipped with zoo, by name (checked by `check_card`)."""
    import yaml

    out = {}
    for path in sorted(CARDS_DIR.glob("*.yaml")):
        card = check_card(yaml.safe_load(path.read_text()), str(path))
        if card["name"] != path.stem:
            raise ZooError(f"Pretrained card {path} is named '{card['name']}'; a card's name is its file name")
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


def matching(pattern: str = "*") -> list[dict[str, Any]]:
    """Return the cards whose name matches a shell-style wildcard, by name."""
    return [c for n, c in cards().items() if fnmatch.fnmatchcase(n, pattern)]


def entry_point(name: str) -> str:
    """Return the Python name of a card's torch.hub entry point: `cnn-digits` -> `cnn_digits`."""
    return name.replace("-", "_")


# -- what a card says --------------------------------------------------------------------------


def headline(card: dict[str, Any]) -> dict[str, float]:
    """Return the card's main metrics (see HEADLINE); all but the losses when it has none of them."""
    keys = ("test/loss", "test/ppl") if card["task"] == "language_modeling" else HEADLINE  # loss: nats per token
    out = {k: card["metrics"][k] for k in keys if k in card["metrics"]}
    return out or {k: v for k, v in card["metrics"].items() if not k.endswith("loss")}


def kind(card: dict[str, Any]) -> str:
    """Return what the model does: "generate text", "generate images", "generate rows", "classify ..." or "regress"."""
    if card["model"] in GENERATIVE:
        return "generate images" if card["modality"] == "image" else "generate rows"
    if card["task"] == "language_modeling":
        return "generate text"
    return {"classification": f"classify {card['modality']}", "regression": "regress"}[card["task"]]


def conditional(card: dict[str, Any]) -> bool:
    return bool(card["recipe"]["model"].get("conditional"))


def inputs(card: dict[str, Any]) -> str:
    """Return one line on the raw inputs the model reads (what `predict_step` and exported files take)."""
    shape = "x".join(str(s) for s in card["input_shape"])
    if card["model"] in GENERATIVE:
        latent = card["recipe"]["model"].get("latent_dim")
        return f"Gaussian noise z ({latent} values){' and a class label' if conditional(card) else ''}"
    if card["modality"] == "image":
        return f"images of shape {shape}, pixel values in [0, 1] (standardised inside the model)"
    if card["modality"] == "tabular":
        return f"rows of {card['input_shape'][0]} raw feature values (standardised inside the model)"
    return f"token ids of up to {card['input_shape'][0]} tokens, from the tokenizer inside the weights"


def outputs(card: dict[str, Any]) -> str:
    """Return one line on what the model returns."""
    if card["model"] in GENERATIVE:
        what = f"{'x'.join(str(s) for s in card['input_shape'])} images in [0, 1]" if card["modality"] == "image" \
            else f"rows of {card['input_shape'][0]} features on the data's raw scale"
        return f"samples: {what}"
    if card["task"] == "language_modeling":
        return "next-token probabilities at every position; `generate` samples text"
    if card["task"] == "classification":
        return f"probabilities of the {len(card['classes'])} classes: {', '.join(map(str, card['classes']))}"
    return "predicted values on the target's raw scale"


def usage(card: dict[str, Any]) -> tuple[str, str]:
    """Return (Python snippet, shell snippet) that use the model."""
    uri, k = card["weights"]["uri"], kind(card)
    name = card["name"] if "://" in uri else uri  # a card of zoo's, or a checkpoint file's
    lines = ["import zoo", "", f'model = zoo.load("{name}")   # in eval mode']
    if k == "generate text":
        lines.append('print(model.generate("ma", n=5, temperature=0.8))')
        shell = f"zoo sample --ckpt {name} -n 10 --prompt ma --temperature 0.8"
    elif k == "generate images":
        if conditional(card):
            lines += ["import torch", "", "images = model.sample(10, labels=torch.arange(10))   # one of each class"]
            shell = f"zoo sample --ckpt {name} -n 64 --label 3 --out threes.png"
        else:
            lines.append("images = model.sample(64)   # (64, C, H, W) in [0, 1]")
            shell = f"zoo sample --ckpt {name} -n 64 --out grid.png"
    elif k == "generate rows":
        lines.append("rows = model.sample(500)   # raw-scale table rows")
        shell = f"zoo sample --ckpt {name} -n 500 --out rows.csv"
    elif card["modality"] == "tokens":
        lines.append('probs = model.predict_step(model.encode_text(["emma", "noah"]))')
        shell = f"zoo predict --ckpt {name} names.txt   # one text per line"
    elif card["modality"] == "image":
        lines += ["import torch", "", f"probs = model.predict_step(torch.rand(4, {', '.join(map(str, card['input_shape']))}))"]
        shell = f"zoo predict --ckpt {name} digit.png"
    else:
        lines += ["import torch", "", f"probs = model.predict_step(torch.tensor(rows))   # (N, {card['input_shape'][0]}) raw values"]
        shell = f"zoo predict --ckpt {name} rows.csv"
    shell += f"\nzoo export --ckpt {name} --format onnx {name}-onnx/"
    return "\n".join(lines), shell


def test_split(card: dict[str, Any]) -> str:
    """Return which data the card's metrics were measured on."""
    n = card.get("test_samples")
    return f"the test split ({n:,} samples, as the recipe splits the data)" if n else "the test split"


def recipe_yaml(card: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(card["recipe"], sort_keys=False, default_flow_style=None, width=100).rstrip()


def listing_line(card: dict[str, Any], width: int = 0) -> str:
    """Return the one-line summary of `zoo list pretrained`."""
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in headline(card).items())
    return f"{card['name']:<{width}}  {card['model']} on {card['data']}: {metrics}"


def card_text(card: dict[str, Any]) -> str:
    """Return the plain-text card that `zoo info NAME` prints."""
    import textwrap

    python, shell = usage(card)
    metrics = "\n".join(f"  {k:<18} {v:g}" for k, v in card["metrics"].items()) or "  none recorded"
    indent = lambda text: "\n".join(f"  {line}" if line else "" for line in text.splitlines())  # noqa: E731
    field = lambda key, text: textwrap.fill(text, 100, initial_indent=f"{key:<10}", subsequent_indent=" " * 10)  # noqa: E731
    return "\n".join([
        textwrap.fill(f"pretrained '{card['name']}': {card['description']}", 100),
        "",
        field("model:", f"{card['model']} ({card['num_params']:,} parameters), {kind(card)}"),
        field("data:", f"{card['data']}: {card['data_source']}"),
        field("inputs:", inputs(card)),
        field("outputs:", outputs(card)),
        field("weights:", f"{card['weights']['uri']} (safetensors, sha256 {card['weights']['sha256'][:16]}...)"),
        field("license:", card["license"]),
        "",
        f"metrics on {test_split(card)}:",
        metrics,
        "",
        "limits:",
        textwrap.fill(card["limits"].strip(), 100, initial_indent="  ", subsequent_indent="  "),
        "",
        "usage:",
        indent(python),
        "",
        indent(shell),
        "",
        f"recipe (`python scripts/train_pretrained.py {card['name']}` retrains it):",
        indent(recipe_yaml(card)),
    ])


def card_markdown(card: dict[str, Any]) -> str:
    """Return the card as a Hugging Face model card: YAML front matter (license, tags, model-index), then Markdown."""
    import yaml

    python, shell = usage(card)
    task = HF_TASKS.get(card["modality"]) if card["model"] in GENERATIVE else HF_TASKS.get((card["modality"], card["task"]))
    results = {"dataset": {"name": card["data"], "type": card["data"], "split": "test"},
               "metrics": [{"name": k, "type": k.split("/", 1)[1], "value": v} for k, v in card["metrics"].items()]}
    if task:
        results = {"task": {"type": task}, **results}
    front = {"license": card["license"].split()[0].lower(), "library_name": "zoo",
             "tags": ["zoo", "pytorch-lightning", card["model"], card["modality"]], "datasets": [card["data"]],
             **({"pipeline_tag": task} if task else {}),
             "model-index": [{"name": card["name"], "results": [results]}]}
    table = "\n".join(f"| {k} | {v:g} |" for k, v in card["metrics"].items())
    return "\n".join([
        "---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
        f"# {card['name']}", "",
        card["description"], "",
        "## Model details", "",
        f"- **Architecture:** zoo `{card['model']}` ({card['num_params']:,} parameters)",
        f"- **Task:** {kind(card)}",
        f"- **Inputs:** {inputs(card)}",
        f"- **Outputs:** {outputs(card)}",
        f"- **Weights:** `{card['weights']['uri']}` (safetensors, sha256 `{card['weights']['sha256']}`)",
        f"- **License:** {card['license']}", "",
        "## How to use", "",
        "```python", python, "```", "",
        "```bash", shell, "```", "",
        "## Limitations", "",
        card["limits"].strip(), "",
        "## Training data", "",
        f"`{card['data']}`: {card['data_source']}", "",
        "## Training procedure", "",
        f"The exact config, as `python scripts/train_pretrained.py {card['name']}` runs it:", "",
        "```yaml", recipe_yaml(card), "```", "",
        "## Evaluation results", "",
        f"On {test_split(card)}:", "",
        *(["| metric | value |", "|---|---|", table] if table else ["None recorded."]), "",
    ])


def markdown_table() -> str:
    """Return the README's table of pretrained entries and their main metrics."""
    rows = ["| name | model | data | test metrics | parameters |", "|---|---|---|---|---|"]
    for c in cards().values():
        metrics = ", ".join(f"{k.split('/', 1)[1]} {v:.4g}" for k, v in headline(c).items())
        rows.append(f"| `{c['name']}` | {c['model']} | {c['data']} | {metrics} | {c['num_params']:,} |")
    return "\n".join(rows)


# -- cards written by zoo ------------------------------------------------------------------------


def model_facts(model: Any) -> dict[str, Any]:
    """Return the card fields that a model states about itself: modality, task, input shape, classes, size."""
    spec = model.spec
    classes = list(spec.class_names) if spec.class_names else \
        ([str(i) for i in range(spec.num_classes)] if spec.num_classes else None)
    return {"modality": spec.modality, "task": spec.task, "input_shape": list(spec.input_shape),
            "classes": classes, "num_params": sum(p.numel() for p in model.parameters())}


def checkpoint_card(source: str, model: Any, cfg: dict[str, Any], metrics: dict[str, float], sha256: str
                    ) -> dict[str, Any]:
    """Return a card for a model that has none (a checkpoint or weights file): what the file itself says."""
    data = (cfg.get("data") or {}).get("name", "unknown")
    return {
        "name": (cfg.get("run") or {}).get("name") or Path(source).stem, "model": model.registry_name, "data": data,
        "description": f"A zoo `{model.registry_name}` trained on `{data}`, exported from `{Path(source).name}`.",
        "data_source": f"see `zoo info {data}`", "license": "other",
        "limits": "Not stated: this model comes from a checkpoint, not from a pretrained card, so its limits "
                  "have not been written down.",
        **model_facts(model), "test_samples": None, "metrics": metrics,
        "weights": {"uri": Path(source).name, "sha256": sha256, "format": Path(source).suffix.lstrip(".")},
        "recipe": cfg,
    }
