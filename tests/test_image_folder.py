"""`image_folder` on PNG and JPEG files the tests write: layouts, seeded splits, size and colour,
corrupt files, the streamed (DataLoader workers) path against the in-memory one, and a checkpoint
that predicts on raw files as it was trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data.image_folder import ImageFolder
from zoo.data.vision import digits_images
from zoo.errors import ConfigError, ZooError


def write_folder(root: Path, per_class: int = 10, classes: int = 3, size: int = 20, split: str = "") -> Path:
    """Write digits 0..classes-1 as RGB files, PNG and JPEG alternately, under root/[split/]digitK/."""
    x, y = digits_images(size, 3)
    for k in range(classes):
        folder = root / split / f"digit{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(y == k)[:per_class]):
            Image.fromarray(x[i]).save(folder / f"{j:03d}.{'png' if j % 2 == 0 else 'jpg'}")
    return root


def test_class_folders_give_seeded_stratified_splits(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=20)
    (root / "digit0" / "notes.txt").write_text("not an image: skipped by extension")
    a, b = ImageFolder(path=str(root), image_size=20), ImageFolder(path=str(root), image_size=20)
    sizes = {s: len(a.split(s)[1]) for s in ("train", "val", "test")}
    assert sizes == {"train": 39, "val": 9, "test": 12}
    for s in sizes:
        assert torch.equal(a.split(s)[0], b.split(s)[0]) and torch.equal(a.split(s)[1], b.split(s)[1])
        assert len(torch.unique(a.split(s)[1])) == 3  # stratified: every class in every split
    assert a.spec.class_names == ("digit0", "digit1", "digit2") and a.spec.input_shape == (3, 20, 20)
    other = ImageFolder(path=str(root), image_size=20, seed=1)
    assert not torch.equal(other.split("test")[0], a.split("test")[0])


def test_png_pixels_are_read_exactly_and_resized_and_grey_on_request(tmp_path):
    root = write_folder(tmp_path / "p", per_class=6, size=20)
    png = sorted(root.glob("digit1/*.png"))[0]
    dm = ImageFolder(path=str(root), image_size=20, val_fraction=0.2, test_fraction=0.3)
    rows = torch.cat([dm.split(s)[0] for s in ("train", "val", "test")])
    expected = torch.from_numpy(np.asarray(Image.open(png))).permute(2, 0, 1).float() / 255
    assert any(torch.equal(r, expected) for r in rows), "a PNG is read losslessly, RGB, in [0, 1]"
    grey = ImageFolder(path=str(root), image_size=12, grayscale=True, val_fraction=0.2, test_fraction=0.3)
    x, _ = grey.split("train")
    assert x.shape[1:] == (1, 12, 12) and grey.spec.input_shape == (1, 12, 12) and 0 <= x.min() and x.max() <= 1


def test_train_val_test_folders_are_used_and_missing_ones_cut_from_train(tmp_path):
    root = tmp_path / "split"
    for split, n in (("train", 12), ("val", 3), ("test", 4)):
        write_folder(root, per_class=n, split=split)
    dm = ImageFolder(path=str(root), image_size=16)
    assert {s: len(dm.split(s)[1]) for s in ("train", "val", "test")} == {"train": 36, "val": 9, "test": 12}
    only = tmp_path / "only"
    write_folder(only, per_class=12, split="train")
    write_folder(only, per_class=4, split="test")
    dm = ImageFolder(path=str(only), image_size=16, val_fraction=0.25)
    assert {s: len(dm.split(s)[1]) for s in ("train", "val", "test")} == {"train": 27, "val": 9, "test": 12}
    (only / "test" / "digit9").mkdir()
    with pytest.raises(ConfigError, match="class folders that train/ lacks: digit9"):
        ImageFolder(path=str(only)).setup()


@pytest.mark.parametrize("problem,match", [
    ("none", "image_folder needs data.path"),
    ("missing", "data.path is not a folder"),
    ("empty", "Couldn't find any class folder"),
    ("tiny", "Cannot cut stratified val and test splits"),
])
def test_bad_folders_are_one_line_errors(problem, match, tmp_path):
    path = {"none": None, "missing": str(tmp_path / "nope"), "empty": str(tmp_path), "tiny": None}[problem]
    if problem == "tiny":
        path = str(write_folder(tmp_path / "tiny", per_class=2))
    with pytest.raises(ConfigError, match=match) as e:
        ImageFolder(path=path).setup()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("in_memory", [True, False], ids=["in_memory", "streamed"])
def test_a_corrupt_image_is_named_in_one_line(in_memory, tmp_path):
    """Held in memory, decoding stops at setup; streamed, a DataLoader worker meets it in the test split."""
    root = tmp_path / "photos"
    for split, n in (("train", 8), ("test", 3)):
        write_folder(root, per_class=n, split=split)
    bad = root / "test" / "digit2" / "broken.jpg"
    good = next(root.glob("test/digit2/*.jpg")).read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # a truncated JPEG: the header reads, the pixels do not
    dm = ImageFolder(path=str(root), image_size=16, in_memory=in_memory, num_workers=1)
    with pytest.raises(ZooError) as e:
        dm.setup()
        assert not in_memory, "an in-memory folder decodes every file at setup"
        for _ in dm.test_dataloader():
            pass
    assert str(bad) in str(e.value) and "is not a readable image file" in str(e.value) and "\n" not in str(e.value)


def test_fit_stops_on_a_non_image_with_its_name(tmp_path, capsys):
    from zoo.fit import main

    root = write_folder(tmp_path / "photos")
    (root / "digit0" / "zz.png").write_bytes(b"this is not a PNG")
    code = main(["--config", "configs/experiment/image_folder_cnn.yaml", f"data.path={root}", "trainer.max_epochs=1",
                 f"run.dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and str(root / "digit0" / "zz.png") in err[-1], err
    assert "Traceback" not in "\n".join(err)


def test_streamed_batches_equal_the_in_memory_ones(tmp_path):
    """Worker processes decode the files; order, DDP shards, augmentation and resume are the in-memory loader's."""
    root = write_folder(tmp_path / "photos", per_class=12)
    kwargs = {"path": str(root), "image_size": 16, "augment": "flip_crop", "batch_size": 8}
    memory, streamed = ImageFolder(**kwargs, in_memory=True), ImageFolder(**kwargs, in_memory=False, num_workers=2)
    memory.setup(), streamed.setup()
    assert not memory.streamed() and streamed.streamed()
    assert memory.spec.input_mean == pytest.approx(streamed.spec.input_mean)  # all 25 train images < the sample
    for split in ("train", "val", "test"):
        a, b = getattr(memory, f"{split}_dataloader")(), getattr(streamed, f"{split}_dataloader")()
        for _ in range(2):  # two epochs: the streamed loader keeps its workers across epochs
            pairs = list(zip(a, b, strict=True))
            assert pairs and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in pairs)
    loader = streamed.train_dataloader()
    loader.load_state_dict({"epoch": 0, "batches": 1})
    assert torch.equal(next(iter(loader))[0], list(memory.train_dataloader())[1][0])


def test_checkpoint_predicts_on_raw_files_as_trained(tmp_path):
    """`zoo predict` reads files with the same resize and conversion as image_folder: identical probabilities."""
    from zoo.cli.predict import predict_files
    from zoo.fit import fit, resolve
    from zoo.hub.pretrained import load

    root = write_folder(tmp_path / "photos", per_class=10, size=24)
    cfg, _ = resolve(["configs/experiment/image_folder_cnn.yaml"], [
        f"data.path={root}", "data.image_size=16", "model.channels=[4,8]", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.enable_progress_bar=false", "logger=false",
        f"run.dir={tmp_path / 'runs'}"])
    model = load(fit(cfg)["best_ckpt"])
    files = sorted(str(p) for p in root.rglob("*.*"))
    dm = ImageFolder(path=str(root), image_size=16, val_fraction=0.15, test_fraction=0.2)
    dm.setup()
    rows = {r[0]: [float(v) for v in r[2:]] for r in predict_files(model, files, str(tmp_path / "out.csv"))}
    x, _ = dm.split("test")
    test_files = [p for p, _ in dm.list_files()[0]["test"]]
    with torch.no_grad():
        expected = model.predict_step(x)
    got = torch.tensor([rows[p] for p in test_files])
    assert torch.allclose(got, expected, atol=1e-4)  # the CSV has 4 decimals
