"""The FID bar of `digits_diffusion`: its longer recipe against the shipped `digits_gan`, on the same judge and split.

The CI test trains configs/experiment/digits_diffusion.yaml as shipped and asserts the confidence and
class bars; beating the GAN's FID takes longer than CI allows, so this script trains the same recipe
for more epochs (`--epochs`), trains `digits_gan` as shipped, and prints both sets of test metrics:
1,000 fixed-seed samples of each against the 360 test digits, in the feature space of the one
cached digits judge (zoo/evaluation/quality.py). It ends with one JSON line.

    python scripts/diffusion_quality.py                 # 100 epochs: about 8 minutes on one CPU core, the GAN 2 more
    python scripts/diffusion_quality.py --epochs 150 --skip-gan
    python scripts/diffusion_quality.py --accelerator gpu
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("fid", "kid", "confident", "classes", "judge_acc", "confident_real")


def train(experiment: str, runs: str, overrides: list[str]) -> tuple[dict, float]:
    """Train configs/experiment/<experiment>.yaml with `overrides`; return its test metrics and wall seconds."""
    from zoo.fit import fit, resolve

    cfg, _ = resolve([str(ROOT / "configs" / "experiment" / f"{experiment}.yaml")],
                     [f"run.dir={runs}", "logger=null", "trainer.enable_progress_bar=false", *overrides])
    start = time.perf_counter()
    results = fit(cfg)
    return {k.removeprefix("test/"): v for k, v in results["test"].items()}, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="epochs of the longer digits_diffusion recipe")
    parser.add_argument("--skip-gan", action="store_true", help="only train the diffusion model")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    common = [f"trainer.accelerator={args.accelerator}", "trainer.devices=1", f"seed={args.seed}"]
    out = {}
    with tempfile.TemporaryDirectory() as runs:
        runs_plan = [("digits_diffusion", [f"trainer.max_epochs={args.epochs}"])]
        if not args.skip_gan:
            runs_plan.append(("digits_gan", []))
        for name, extra in runs_plan:
            test, seconds = train(name, runs, [*common, *extra])
            out[name] = {**{k: round(test[k], 4) for k in METRICS if k in test}, "seconds": round(seconds, 1)}
            print(f"{name} {' '.join(extra)}: " + ", ".join(f"{k} {v}" for k, v in out[name].items()), flush=True)
    if "digits_gan" in out:
        out["diffusion_fid_below_gan"] = out["digits_diffusion"]["fid"] < out["digits_gan"]["fid"]
    print(json.dumps({"epochs": args.epochs, **out}))


if __name__ == "__main__":
    main()
