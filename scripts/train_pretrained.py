"""Train (or retrain) a pretrained entry from its card's recipe and write its weights and card.

    python scripts/train_pretrained.py cnn-digits                  # retrain from zoo/hub/weights/cnn-digits.yaml
    python scripts/train_pretrained.py cnn-digits --out /tmp/cards # ... into another folder, the package untouched
    python scripts/train_pretrained.py gan-digits --measure        # re-measure the shipped weights, no training
    python scripts/train_pretrained.py vit-digits --config configs/experiment/digits_vit.yaml \\
        --description "..." --data-source "..." --limits "..."     # a new entry from an experiment config

Writes OUT/NAME.safetensors and OUT/NAME.yaml (OUT defaults to zoo/hub/weights/). The card keeps
its hand-written fields (description, data source, limits, license) and gets fresh metrics,
sizes and sha256. The metrics are measured on the saved weights by zoo.training.evaluate, the
very function with which tests/test_pretrained.py re-measures every card. Run it with
OMP_NUM_THREADS=1: a CPU training is then repeatable, and the recipes are sized for one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from zoo.data.download import sha256_of
from zoo.errors import ZooError, user_errors
from zoo.fit import fit, resolve
from zoo.hub.cards import CARD_KEYS, CARDS_DIR, check_card, model_facts
from zoo.hub.pretrained import load_checkpoint, load_weights, save_weights
from zoo.training.config import validate
from zoo.training.evaluate import evaluate

LICENSE = "MIT (the weights, trained by zoo); the data keeps its own license (see data_source)"
WRITTEN_BY_HAND = ("description", "data_source", "limits", "license")


def recipe_and_card(args: argparse.Namespace) -> tuple[dict, dict]:
    """Return the validated recipe and the existing card's hand-written fields, updated from the flags."""
    card_path = CARDS_DIR / f"{args.name}.yaml"
    old = yaml.safe_load(card_path.read_text()) if card_path.is_file() else {}
    if args.config:
        cfg, _ = resolve(args.config, args.overrides)
    elif old:
        cfg = validate(old["recipe"])
    else:
        raise ZooError(f"No card {card_path}: a new entry needs --config (an experiment YAML) and its texts")
    texts = {k: getattr(args, k) or old.get(k) for k in WRITTEN_BY_HAND}
    texts["license"] = texts["license"] or LICENSE
    missing = [k for k, v in texts.items() if not v]
    if missing:
        raise ZooError(f"A new card needs {', '.join('--' + k.replace('_', '-') for k in missing)}")
    return cfg, texts


def train(name: str, cfg: dict, texts: dict, out: Path) -> dict:
    """Train `cfg`, save the best weights as OUT/NAME.safetensors, measure them and write OUT/NAME.yaml."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = {**cfg, "run": {**cfg["run"], "dir": tmp}, "logger": [],
                   "trainer": {**cfg["trainer"], "enable_progress_bar": False}}
        results = fit(run_cfg)
        model = load_checkpoint(results["best_ckpt"])
    weights = out / f"{name}.safetensors"
    staged = out / f".{weights.name}.tmp"  # then renamed: a reader never sees half a file
    save_weights(model, staged)
    os.replace(staged, weights)
    return write_card(name, cfg, texts, weights, time.perf_counter() - start)


def write_card(name: str, cfg: dict, texts: dict, weights: Path, seconds: float) -> dict:
    """Measure the weights file with the card's recipe and write the card beside it."""
    out = weights.parent
    model = load_weights(weights)
    sha = sha256_of(weights)
    metrics, n = evaluate(model, cfg)  # what the test suite re-measures, from the saved file
    card = {"name": name, "model": cfg["model"]["name"], "data": cfg["data"]["name"], **texts,
            **model_facts(model), "test_samples": n, "metrics": {k: round(v, 4) for k, v in metrics.items()},
            "weights": {"uri": f"package://{weights.name}", "sha256": sha, "format": "safetensors"}, "recipe": cfg}
    card = check_card({k: card[k] for k in CARD_KEYS}, name)
    card_path = out / f"{name}.yaml"
    tmp_card = card_path.with_name(f".{card_path.name}.tmp")
    tmp_card.write_text(yaml.safe_dump(card, sort_keys=False, width=100))
    os.replace(tmp_card, card_path)
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB, {card['num_params']:,} parameters) and "
          f"{card_path} (trained in {seconds:.0f} s): {card['metrics']}")
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the entry's name, e.g. cnn-digits")
    parser.add_argument("--config", action="append", default=[], help="experiment YAML (a new entry)")
    parser.add_argument("--out", type=Path, default=CARDS_DIR, help="folder for NAME.safetensors and NAME.yaml")
    parser.add_argument("--measure", action="store_true",
                        help="do not train: re-measure the shipped weights and rewrite the card's metrics")
    for key in WRITTEN_BY_HAND:
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None, help=f"card text: {key}")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of --config")
    args = parser.parse_args(argv)
    with user_errors() as boundary:
        cfg, texts = recipe_and_card(args)
        if args.measure:  # e.g. after the judge's recipe changed: the weights stay, the metrics are new
            write_card(args.name, cfg, texts, CARDS_DIR / f"{args.name}.safetensors", 0.0)
        else:
            train(args.name, cfg, texts, args.out)
        return 0
    return boundary.code


if __name__ == "__main__":
    sys.exit(main())
