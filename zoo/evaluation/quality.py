"""Quality metrics for generative models, computed offline against a data set's real rows, and the
evaluator (`SampleQuality`) that zoo.fit and `zoo test` attach to every generative model's run.

Images are judged by a small CNN classifier that zoo trains itself on the same data's train
split (`judge_for`): its penultimate features feed torchmetrics' FID and KID (no Inception
download), and its softmax says how many samples look like a confident digit and how many
classes they cover. The judge trains deterministically (fixed seed, fixed recipe) and is cached
in zoo's cache folder (`$ZOO_HOME/judges/`, zoo.data.download.cache_dir) keyed by a hash of the
training data, so every evaluation of the same data uses the very same judge; like every cache
entry it is checked by sha256 when read, and trained again when the file is corrupt.

Tables are compared directly, on features standardised with the train split's statistics:
an unbiased RBF-kernel MMD² and the mean per-feature Kolmogorov-Smirnov distance.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from zoo.data.download import cache_dir, cached
from zoo.errors import ZooError

# Bump when the judge's architecture or training changes, so stale cached judges are not reused.
JUDGE_RECIPE = "cnn32-64-bn/onecycle3e-3/epochs40/bs64/noise0.05-joint/seed0/v4"
CONFIDENCE = 0.9
OUTLIER_WEIGHT = 0.05


# -- the judge: a classifier trained by zoo on the same data -------------------------------------


class Judge(nn.Module):
    """A small CNN classifier; `forward` returns its penultimate features, as torchmetrics expects."""

    num_features = 64

    def __init__(self, in_shape: list[int], num_classes: int, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.config = {"in_shape": list(in_shape), "num_classes": num_classes, "mean": mean, "std": std}
        c, h, w = in_shape
        layers: list[nn.Module] = []
        size = min(h, w)
        for c_out in (32, self.num_features):
            layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            if size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(self.num_features, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x.float() - self.mean) / self.std)  # (B, C, H, W) in [0, 1] -> (B, 64)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Return class probabilities for images in [0, 1]."""
        return self.head(self(x)).softmax(-1)


def _outliers(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Return a batch of non-images (uniform noise) shaped like `x`."""
    return torch.rand(x.shape, generator=g).to(x.device)


def train_judge(x: torch.Tensor, y: torch.Tensor, num_classes: int, device: torch.device | str = "cpu",
                epochs: int = 40, batch_size: int = 64) -> Judge:
    """Return a Judge trained on images `x` in [0, 1] with labels `y`, deterministically (seed 0)."""
    x, y = x.float(), y.long()
    std, mean = torch.std_mean(x, dim=(0, 2, 3))
    # Trainer.test runs under inference mode; the judge may be trained from inside it.
    with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        judge = Judge(list(x.shape[1:]), num_classes, mean.tolist(), std.clamp_min(1e-6).tolist()).to(device)
        g = torch.Generator().manual_seed(0)
        opt = torch.optim.Adam(judge.parameters(), lr=3e-3)
        steps = epochs * -(-len(x) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
        judge.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), batch_size):
                idx = order[i : i + batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                xb = x[idx].to(device)
                # Outlier exposure: non-digits should get a flat softmax, so that "confident" means
                # "looks like a real sample" and not merely "is far from every decision boundary".
                # Real and outlier images share one batch: BatchNorm's running statistics must
                # describe the batches it normalised in training, or eval-mode accuracy drops.
                logits = judge.head(judge(torch.cat([xb, _outliers(xb, g)])))
                n = len(xb)
                loss = F.cross_entropy(logits[:n], y[idx].to(device)) - OUTLIER_WEIGHT * logits[n:].log_softmax(-1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return judge.eval().requires_grad_(False)


def data_key(*tensors: torch.Tensor) -> str:
    """Return a short sha256 of tensors' bytes and the judge recipe (the judge's cache key)."""
    h = hashlib.sha256(JUDGE_RECIPE.encode())
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def judge_for(datamodule: Any, device: torch.device | str = "cpu") -> Judge | None:
    """Return the cached judge for an image classification DataModule (training it once), else None.

    The cache entry is checked like every other (zoo.data.download.cached): a truncated or altered
    file is trained again, not loaded, and one that still cannot be read is named in the error.
    """
    spec = getattr(datamodule, "spec", None)
    if spec is None or spec.modality != "image" or spec.task != "classification" or not hasattr(datamodule, "split"):
        return None
    x, y = datamodule.split("train")
    made: list[Judge] = []

    def make(part: Path) -> None:
        judge = train_judge(x, y, spec.num_classes, device)
        state_dict = {k: v.cpu() for k, v in judge.state_dict().items()}
        torch.save({"config": judge.config, "state_dict": state_dict, "recipe": JUDGE_RECIPE}, part)
        made.append(judge)

    path = cached(cache_dir() / "judges" / f"{data_key(x, y)}.pt", make, what="The judge cached for this data")
    if made:
        return made[0]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        with torch.random.fork_rng(devices=[]):  # its random init is overwritten: leave the global RNG as it was,
            judge = Judge(**state["config"])     # as a judge trained afresh (in its own fork) does
        judge.load_state_dict(state["state_dict"])
    except Exception as e:  # noqa: BLE001 - verified bytes that still do not load: name the file
        raise ZooError(f"Cannot read the judge cached at {path} ({type(e).__name__}); delete it to train it again") from None
    return judge.to(device).eval().requires_grad_(False)


@torch.no_grad()
def accuracy(judge: Judge, x: torch.Tensor, y: torch.Tensor) -> float:
    """Return the fraction of images `x` that the judge labels as `y`."""
    return float((judge.classify(x).argmax(-1) == y.to(x.device)).float().mean())


# -- images ------------------------------------------------------------------------------------


@torch.no_grad()
def frechet_distance(features: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> float:
    """Return FID between two image batches in [0, 1], in the feature space of `features`."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=features, normalize=True, reset_real_features=False).to(real.device)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


@torch.no_grad()
def image_quality(judge: Judge, real: torch.Tensor, fake: torch.Tensor,
                  fake_labels: torch.Tensor | None = None) -> dict[str, float]:
    """Return FID, KID, confident fraction, classes covered (and conditional accuracy) of `fake` vs `real`.

    confident: share of samples whose top class has probability >= 0.9; classes: how many
    distinct classes those confident samples fall into; cond_acc: share of samples judged as the
    label they were generated for.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = real.float(), fake.float().clamp(0, 1)
    out = {"fid": frechet_distance(judge, real, fake)}
    subset = min(100, len(real), len(fake))
    if subset >= 2:
        kid = KernelInceptionDistance(feature=judge, subset_size=subset, subsets=50, normalize=True).to(real.device)
        kid.update(real, real=True)
        kid.update(fake, real=False)
        out["kid"] = float(kid.compute()[0])
    probs = judge.classify(fake)
    conf, pred = probs.max(-1)
    confident = conf >= CONFIDENCE
    out["confident"] = float(confident.float().mean())
    out["classes"] = float(pred[confident].unique().numel())
    if fake_labels is not None:
        out["cond_acc"] = float((pred == fake_labels.to(pred.device)).float().mean())
    return out


# -- tables ------------------------------------------------------------------------------------


def ks_per_feature(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return the two-sample Kolmogorov-Smirnov statistic of each column of (N, F) `a` vs (M, F) `b`."""
    a, b = a.double(), b.double()
    out = []
    for j in range(a.shape[1]):
        sa, sb = a[:, j].sort().values, b[:, j].sort().values
        grid = torch.cat([sa, sb])
        cdf_a = torch.searchsorted(sa, grid, right=True) / len(sa)
        cdf_b = torch.searchsorted(sb, grid, right=True) / len(sb)
        out.append((cdf_a - cdf_b).abs().max())
    return torch.stack(out).float()


def mmd2(a: torch.Tensor, b: torch.Tensor, scales: tuple[float, ...] = (0.5, 1.0, 2.0)) -> float:
    """Return the unbiased MMD² of two (N, F) samples with a sum of RBF kernels.

    Bandwidths are `scales` times the median pairwise distance in `b` (the real data), so the
    value does not depend on the units of the features.
    """
    a, b = a.double().flatten(1), b.double().flatten(1)
    d_bb = torch.cdist(b, b)
    median = d_bb[d_bb > 0].median().clamp_min(1e-6)

    def k(d: torch.Tensor) -> torch.Tensor:
        return sum(torch.exp(-(d**2) / (2 * (s * median) ** 2)) for s in scales)

    n, m = len(a), len(b)
    k_aa, k_bb, k_ab = k(torch.cdist(a, a)), k(d_bb), k(torch.cdist(a, b))
    term_a = (k_aa.sum() - k_aa.diagonal().sum()) / (n * (n - 1))
    term_b = (k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
    return float(term_a + term_b - 2 * k_ab.mean())


def table_quality(fake: torch.Tensor, real: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> dict[str, float]:
    """Return {"mmd", "ks"} of raw-scale rows `fake` vs `real`, both standardised with train `mean`/`std`."""
    fake = (fake.float().cpu() - mean.cpu()) / std.cpu()
    real = (real.float().cpu() - mean.cpu()) / std.cpu()
    return {"mmd": mmd2(fake, real), "ks": float(ks_per_feature(fake, real).mean())}


def gaussian_baseline(n: int, mean: torch.Tensor, std: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Return `n` raw-scale rows from independent per-feature Gaussians fitted to the train split."""
    g = torch.Generator().manual_seed(seed)
    mean, std = mean.cpu().flatten(), std.cpu().flatten()
    return mean + std * torch.randn(n, len(mean), generator=g)


def feature_comparison(fake: torch.Tensor, real: torch.Tensor, names: Any = None) -> list[dict[str, Any]]:
    """Return one row per feature: sample and test mean/std and their KS distance (raw scale)."""
    fake, real = fake.float().cpu(), real.float().cpu().flatten(1)
    ks = ks_per_feature(fake, real)
    names = list(names) if names else [f"x{j}" for j in range(fake.shape[1])]
    return [
        {"feature": names[j], "sample_mean": float(fake[:, j].mean()), "test_mean": float(real[:, j].mean()),
         "sample_std": float(fake[:, j].std()), "test_std": float(real[:, j].std()), "ks": float(ks[j])}
        for j in range(fake.shape[1])
    ]


# -- the evaluator -------------------------------------------------------------------------------


class SampleQuality(L.Callback):
    """Score a generative model's samples against the real batches the trainer feeds it.

    The model (a `zoo.models.generative.GenerativeModel`) only samples; this callback holds the
    data, the judge and the metrics, so no model touches a datamodule or a cache:

    - validation, for a model with `val_score_from_samples` (the GAN): one score under the name
      `monitor()` gives, which picks the best checkpoint: FID in the judge's feature space for
      images (`val/fid`), MMD to the validation rows for tables (`val/mmd`);
    - test: `test/fid`, `kid`, `confident`, `classes` (and `cond_acc` for a conditional model),
      `judge_acc`, `confident_real` and `recon_acc` (models that reconstruct) for images;
      `test/mmd` and `ks` for tables, beside a Gaussian baseline (`*_gaussian`) and the floor that
      the train rows themselves reach (`*_train`).

    The data is the trainer's DataModule (`trainer.fit` / `trainer.test(..., datamodule=...)`): its
    train split trains the judge, and its batches are what the samples are scored against. Under
    DDP each rank scores its shard; the logged value is their mean.
    """

    def __init__(self, samples: int = 1000) -> None:
        self.samples = samples  # drawn at test time
        self.datamodule: Any = None
        self._real: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._judge: Judge | None = None

    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        if trainer.datamodule is not self.datamodule:  # another DataModule: another judge
            self.datamodule, self._judge = trainer.datamodule, None

    # -- collecting the real batches -------------------------------------------------------------
    def _keep(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        self._real.setdefault(stage, []).append((x.detach(), y.detach()))

    def _take(self, stage: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        batches = self._real.pop(stage, [])
        if not batches:
            return None
        return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if getattr(pl_module, "val_score_from_samples", False):
            self._keep("val", batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep("test", batch)

    # -- the judge -------------------------------------------------------------------------------
    def judge(self, trainer: L.Trainer, device: torch.device) -> Judge | None:
        """Return the judge for this data (trained once, then cached), or None: unlabelled data, or fast_dev_run."""
        if trainer.fast_dev_run:  # checks the plumbing: no judge training, pixel features instead
            return None
        if self._judge is None and self.datamodule is not None:
            self._judge = judge_for(self.datamodule, device)
        return self._judge.to(device) if self._judge is not None else None

    def features(self, trainer: L.Trainer, pl_module: Any) -> nn.Module:
        """Return the judge as a feature extractor, else the pixels average-pooled to at most 8x8 per channel."""
        judge = self.judge(trainer, pl_module.device)
        if judge is not None:
            return judge
        # FID needs a covariance of the features: on raw 32x32 RGB pixels that is 3072 x 3072, slow to
        # decompose and rank-deficient for a thousand samples. Pooling leaves 8x8 digits as they are.
        c, h, w = pl_module.spec.input_shape
        pixels = nn.Sequential(nn.AdaptiveAvgPool2d((min(h, 8), min(w, 8))), nn.Flatten())
        pixels.num_features = c * min(h, 8) * min(w, 8)  # what torchmetrics reads to size its statistics
        return pixels

    # -- scores ----------------------------------------------------------------------------------
    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        real = self._take("val")
        if real is None:
            return
        x, y = real
        fake = pl_module.sample(len(x), y.cpu() if pl_module.conditional else None,
                                generator=torch.Generator().manual_seed(1))
        if pl_module.spec.modality == "tabular":
            score = table_quality(fake, x, pl_module.input_mean, pl_module.input_std)["mmd"]
        else:
            score = frechet_distance(self.features(trainer, pl_module), x.float(), fake)
        pl_module.log(pl_module.monitor()[0], score, prog_bar=True, sync_dist=True)

    @torch.no_grad()
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        real = self._take("test")
        if real is None:
            return
        was_training = pl_module.training
        pl_module.eval()
        metrics = self.test_metrics(trainer, pl_module, *real)
        pl_module.train(was_training)
        for name, value in metrics.items():
            pl_module.log(f"test/{name}", float(value), sync_dist=True)

    def test_metrics(self, trainer: L.Trainer, model: Any, real_x: torch.Tensor, real_y: torch.Tensor) -> dict:
        """Return the test metrics of `self.samples` fixed-seed samples of `model` against the real test rows."""
        g = torch.Generator().manual_seed(0)
        n = min(self.samples, len(real_x)) if trainer.fast_dev_run else self.samples  # fast_dev_run: plumbing only
        labels = None
        if model.conditional:  # generate in the real data's class proportions
            labels = real_y[torch.randint(len(real_y), (n,), generator=g)].cpu()
        fake = model.sample(n, labels, generator=g)
        mean, std = model.input_mean, model.input_std
        if model.spec.modality == "tabular":
            out = table_quality(fake, real_x, mean, std)
            base = gaussian_baseline(self.samples, mean, std)
            out.update({f"{k}_gaussian": v for k, v in table_quality(base, real_x, mean, std).items()})
            if hasattr(self.datamodule, "split"):  # what real rows score: the floor set by the test split's size
                train_x = self.datamodule.split("train")[0]
                out.update({f"{k}_train": v for k, v in table_quality(train_x, real_x, mean, std).items()})
            return out
        judge = self.judge(trainer, model.device)
        if judge is None:  # no labelled train split to train a judge on
            return {"fid_pixels": frechet_distance(self.features(trainer, model), real_x.float(), fake)}
        out = image_quality(judge, real_x, fake, labels)
        out["judge_acc"] = accuracy(judge, real_x, real_y)  # how far the judge itself can be trusted
        out["confident_real"] = float((judge.classify(real_x).max(-1).values >= CONFIDENCE).float().mean())
        if hasattr(model, "reconstruct"):  # the share of test reconstructions the judge labels correctly
            recon = model.reconstruct(real_x, real_y if model.conditional else None)
            out["recon_acc"] = accuracy(judge, recon, real_y)
        return out
