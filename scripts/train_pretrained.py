"""Train (or retrain) a pretrained card's weights and write its card: the recipe behind `zoo.load(NAME)`.

    python scripts/train_pretrained.py cnn-digits                      # retrain from the card's recipe
    python scripts/train_pretrained.py cnn-digits --config configs/experiment/digits_cnn.yaml [key=value ...]

Writes zoo/hub/weights/NAME.safetensors and zoo/hub/weights/NAME.yaml (recipe, test metrics, sha256).
tests/test_pretrained.py re-measures every card's metrics from the shipped weights.
"""

from __future__ import annotations

import argparse
import tempfile

import yaml

from zoo.fit import fit, resolve
from zoo.hub.pretrained import CARDS_DIR, load_with_config, save_weights
from zoo.training.config import validate

LICENSE = "MIT (weights trained by zoo); data license as given by its source"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--config", action="append", default=[], help="experiment YAML (new cards)")
    parser.add_argument("--description", default="")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    card_path = CARDS_DIR / f"{args.name}.yaml"
    if args.config:
        cfg, _ = resolve(args.config, args.overrides)
        old = {}
    else:
        old = yaml.safe_load(card_path.read_text())
        cfg = validate(old["recipe"])
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = {**cfg, "run": {**cfg["run"], "dir": tmp}, "logger": [],
                   "trainer": {**cfg["trainer"], "enable_progress_bar": False}}
        results = fit(run_cfg)
        model, _ = load_with_config(results["best_ckpt"])
        weights = CARDS_DIR / f"{args.name}.safetensors"
        sha = save_weights(model, weights)
    card = {
        "name": args.name,
        "model": cfg["model"]["name"],
        "data": cfg["data"]["name"],
        "description": args.description or old.get("description", ""),
        "metrics": {k: round(float(v), 4) for k, v in sorted(results["test"].items())},
        "license": old.get("license", LICENSE),
        "weights": {"uri": f"package://{weights.name}", "sha256": sha, "format": "safetensors"},
        "recipe": cfg,
    }
    card_path.write_text(yaml.safe_dump(card, sort_keys=False))
    print(f"wrote {weights} ({weights.stat().st_size / 1e3:.0f} kB) and {card_path}: {card['metrics']}")


if __name__ == "__main__":
    main()
