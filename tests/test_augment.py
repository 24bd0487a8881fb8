"""Augmentation presets on the device (zoo/data/augment.py): what each op does, seeded batches that
repeat under the same seed and differ under another, evaluation batches left alone, and an exact
resume of an augmented run."""

from __future__ import annotations

import pytest
import torch

from zoo.data.augment import AUGMENTATIONS, Augment, cutout, random_crop, random_flip
from zoo.data.base import InMemoryLoader
from zoo.data.vision import MNIST
from zoo.errors import ConfigError


def images(n: int = 16, c: int = 3, size: int = 12) -> torch.Tensor:
    return torch.randint(1, 256, (n, c, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_is_a_translation_within_the_padding():
    x = images()
    out = random_crop(x, 2, gen(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = []
    for i in range(len(x)):
        match = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(out[i], padded[i, :, dy:dy + 12, dx:dx + 12])]
        assert match, f"image {i} is not a shifted copy"
        shifts.append(match[0])
    assert len(set(shifts)) > 1, "every image got the same shift: parameters must be per image"


def test_flip_and_cutout_act_per_image():
    x = images()
    out = random_flip(x, gen(0))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    assert all(f or torch.equal(o, xi) for f, o, xi in zip(flipped, out, x)) and 0 < sum(flipped) < len(x)
    xf = x.float() / 255
    fill = torch.tensor([0.1, 0.2, 0.3])
    holes = cutout(xf, 6, fill, gen(0))
    for i in range(len(x)):
        changed = (holes[i] != xf[i]).any(0)  # (H, W)
        assert 0 < changed.sum() <= 36  # one square of side 6, clipped at the border
        assert torch.equal(holes[i][:, changed], fill.view(3, 1).expand(3, int(changed.sum())))


def test_presets_are_seeded_and_evaluation_is_plain():
    x = images()
    for name in AUGMENTATIONS:
        aug = Augment(name, fill=[0.5, 0.5, 0.5])
        assert torch.equal(aug(x, None), x.float() / 255)  # no generator: no randomness
        assert torch.equal(aug(x, gen(3)), aug(x, gen(3)))
        if name != "none":
            assert not torch.equal(aug(x, gen(3)), aug(x, gen(4)))
    with pytest.raises(ConfigError, match="Unknown augment 'flipcrop'. Did you mean 'flip_crop'"):
        MNIST(augment="flipcrop")


def epoch_batches(dm) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in dm.train_dataloader()]


def test_same_seed_same_batches_other_seed_other_batches(tmp_path):
    kwargs = {**MNIST.example(tmp_path), "augment": "flip_crop_cutout", "batch_size": 16}
    a, b, c = MNIST(**kwargs), MNIST(**kwargs), MNIST(**kwargs, seed=1)
    ba, bb, bc = epoch_batches(a), epoch_batches(b), epoch_batches(c)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(ba, bb))
    assert not any(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(ba, bc))
    assert not torch.equal(ba[0][0], a.split("train")[0][:16]), "training batches are augmented"
    val = torch.cat([x for x, _ in a.val_dataloader()])
    assert torch.equal(val, a.split("val")[0]), "evaluation batches are not"


def test_loader_resumed_mid_epoch_replays_the_same_augmented_batches():
    x, y = images(40), torch.arange(40)
    make = lambda: InMemoryLoader(x, y, 8, shuffle=True, seed=5, epoch=lambda: 2,  # noqa: E731
                                  transform=Augment("flip_crop_cutout", [0.5] * 3))
    full = list(make())
    resumed = make()
    resumed.load_state_dict({"epoch": 2, "batches": 3})
    rest = list(resumed)
    assert len(rest) == len(full) - 3
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[3:], rest))


class Crash(Exception):
    pass


def test_augmented_run_resumed_mid_epoch_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    """Crash before step 4 of epoch 0 (of 7 per epoch), resume from step 3's last.ckpt, compare the weights."""
    import lightning as L

    import zoo.training.callbacks
    from zoo.data.vision import digits_images, write_mnist
    from zoo.fit import fit, resolve

    x, y = digits_images(28, 1)
    write_mnist(tmp_path / "data" / "MNIST" / "raw", (x[:120], y[:120]), (x[120:180], y[120:180]))
    args = [f"data.root={tmp_path / 'data'}", "data.download=false", "data.augment=flip_crop_cutout",
            "data.batch_size=16", "model.channels=[4,8]", "model.dropout=0.2", "trainer.max_epochs=2",
            "trainer.accelerator=cpu", "trainer.devices=1", "trainer.enable_progress_bar=false", "logger=false",
            "callbacks.checkpoint.every_n_train_steps=3"]
    config = "configs/experiment/mnist_cnn.yaml"
    whole, _ = resolve([config], [*args, f"run.dir={tmp_path / 'whole'}"])
    reference = torch.load(fit(whole)["run_dir"] + "/checkpoints/last.ckpt", weights_only=True)

    class CrashAtStep(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 3:
                raise Crash

    build = zoo.training.callbacks.build_callbacks
    monkeypatch.setattr(zoo.training.callbacks, "build_callbacks", lambda *a, **k: [*build(*a, **k), CrashAtStep()])
    cut, _ = resolve([config], [*args, f"run.dir={tmp_path / 'cut'}"])
    with pytest.raises(Crash):
        fit(cut)
    monkeypatch.undo()
    (run_dir,) = (tmp_path / "cut" / "mnist_cnn").iterdir()
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    cfg, resume_dir = resolve([], [], resume=str(run_dir))
    fit(cfg, resume_dir)
    got = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["global_step"] == reference["global_step"] == 14
    for key, value in reference["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), f"{key} differs from the uninterrupted run"
