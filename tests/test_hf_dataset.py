"""`hf_dataset`: Hugging Face datasets from local folders (save_to_disk, parquet files), with column and
split mapping, zoo's or a pretrained tokenizer, and one-line errors, offline."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

from tests.conftest import FAST_TRAINER, ROOT
from zoo.errors import ConfigError, ZooError
from zoo.registry import DATA, data_kind


def reviews(n_per_class: int = 60) -> list[tuple[str, str]]:
    from zoo.data.text_csv import example_reviews

    rows = example_reviews()
    return [r for r in rows if r[1] == "positive"][:n_per_class] + [r for r in rows if r[1] == "negative"][:n_per_class]


@pytest.fixture
def saved(tmp_path):
    """Reviews as a DatasetDict with a ClassLabel, saved with save_to_disk: train 96, test 24."""
    rows = reviews()
    ds = datasets.Dataset.from_dict({"review": [t for t, _ in rows], "sentiment": [s for _, s in rows]})
    ds = ds.class_encode_column("sentiment").train_test_split(test_size=0.2, seed=0, stratify_by_column="sentiment")
    ds.save_to_disk(str(tmp_path / "saved"))
    return tmp_path / "saved"


@pytest.fixture
def parquet(tmp_path):
    """The same reviews as parquet files with text labels, split by file name, as on the hub."""
    rows = reviews()
    folder = tmp_path / "parquet"
    folder.mkdir()
    for split, part in (("train", rows[::2] + rows[1::4]), ("validation", rows[3::8]), ("test", rows[7::8])):
        datasets.Dataset.from_dict({"text": [t for t, _ in part], "label": [s for _, s in part]}).to_parquet(
            str(folder / f"{split}.parquet"))
    return folder


def build(**kwargs):
    dm = DATA.build("hf_dataset", **kwargs)
    dm.prepare_data()
    return dm


def test_text_classification_maps_columns_and_splits(saved, parquet):
    dm = build(path=str(saved), text_column="review", label_column="sentiment")
    spec = dm.spec
    assert (spec.modality, spec.task) == ("tokens", "classification") and spec.class_names == ("negative", "positive")
    sizes = {s: len(dm.split(s)[0]) for s in ("train", "val", "test")}
    assert sizes == {"train": 86, "val": 10, "test": 24}  # test: the dataset's own; val: 10% of its train, carved
    assert torch.bincount(dm.split("val")[1]).tolist() == [5, 5]  # stratified

    files = build(path=str(parquet))  # val_split=auto finds `validation`; text labels become sorted classes
    assert files.spec.class_names == ("negative", "positive")
    assert {s: len(files.split(s)[0]) for s in ("train", "val", "test")} == {"train": 90, "val": 15, "test": 15}
    carved = build(path=str(parquet), val_split=None, test_split=None)
    assert {s: len(carved.split(s)[0]) for s in ("train", "val", "test")} == {"train": 72, "val": 9, "test": 9}

    bert = build(path=str(saved), text_column="review", label_column="sentiment", tokenizer="all-minilm-l6-v2",
                 max_length=8)
    from zoo.spec import load_tokenizer

    tok = load_tokenizer(bert.spec.tokenizer)
    first = bert.split("train")[0][0]
    assert bert.spec.input_shape == (8,) and tok.id_to_token(int(first[0])) == "[CLS]"  # the model's own tokenizer


def test_language_modeling_streams_or_reads_rows(parquet):
    stream = build(path=str(parquet), task="language_modeling", max_length=32)
    x, y = stream.split("train")
    assert stream.spec.task == "language_modeling" and x.shape[1] == 32 and torch.equal(x[:, 1:], y[:, :-1])
    line = build(path=str(parquet), task="language_modeling", unit="line", max_length=128, tokenizer="bpe",
                 vocab_size=300)  # byte-level: every text round-trips, whatever the train split held
    x, y = line.split("test")
    assert len(x) == 15  # one example per row
    from zoo.spec import decode, load_tokenizer

    tok = load_tokenizer(line.spec.tokenizer)
    texts = set(datasets.load_dataset(str(parquet))["test"]["text"])
    assert {decode(tok, row) for row in x.tolist()} == texts


def test_image_classification_from_an_image_column(tmp_path):
    from zoo.data.hf_dataset import HFDataset

    kwargs = HFDataset.example(tmp_path, ("image", "classification"))
    assert data_kind("hf_dataset", kwargs) == ("image", "classification")
    dm = build(**kwargs)
    x, y = dm.split("train")
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    from sklearn.datasets import load_digits

    digits = load_digits()
    test_x, test_y = dm.split("test")
    assert torch.equal(test_y, torch.from_numpy(digits.target[300:400]))  # the test split file, in order
    assert np.allclose(test_x[:, 0].numpy() * 16, digits.images[300:400], atol=16 / 255 + 1e-6)
    resized = build(**kwargs, image_size=16, channels=3)
    assert resized.spec.input_shape == (3, 16, 16)


@pytest.mark.parametrize("kwargs,match", [
    ({"val_split": "valid"}, r"has no split 'valid' \(data.val_split\). Did you mean 'validation'\? Splits: train, "),
    ({"text_column": "txt"}, r"has no column 'txt'. Did you mean 'text'\?"),
    ({"label_column": "labels"}, r"has no column 'labels'. Did you mean 'label'\?"),
    ({"task": "regression"}, r"Unknown data.task 'regression'"),
    ({"image_column": "text", "task": "language_modeling"}, r"serve classification only"),
])
def test_mapping_errors_name_the_choices(parquet, kwargs, match):
    with pytest.raises((ConfigError, ZooError), match=match) as e:
        build(path=str(parquet), **kwargs).spec  # noqa: B018
    assert "\n" not in str(e.value)


def test_unlabelled_test_split_is_refused(tmp_path):
    rows = reviews(10)
    ds = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [int(s == "positive") for _, s in rows]}),
        "test": datasets.Dataset.from_dict({"text": ["a", "b"], "label": [-1, -1]}),  # as GLUE's test splits
    }).cast_column("label", datasets.ClassLabel(names=["negative", "positive"]))
    ds.save_to_disk(str(tmp_path / "glue_like"))
    with pytest.raises(ZooError, match=r"The test split of .* has unlabelled rows \(label -1\)"):
        build(path=str(tmp_path / "glue_like")).spec  # noqa: B018
    assert len(build(path=str(tmp_path / "glue_like"), test_split=None).split("test")[0]) == 2


def test_unknown_hub_name_offline_fails_at_once_in_one_line(tmp_path, capsys, monkeypatch):
    """With HF_HUB_OFFLINE=1 no connection is even tried (online, an unreachable hub is retried for ~20 s)."""
    import socket

    from zoo.fit import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tried = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: tried.append(args) or [])
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: tried.append(address))
    code = main(["--config", str(ROOT / "configs" / "experiment" / "imdb_minilm.yaml"), "data.path=nobody/no-such-set",
                 f"run.dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: Cannot open Hugging Face dataset 'nobody/no-such-set' (HF_HUB_OFFLINE is set")
    assert not tried, f"connections were attempted: {tried}"


@pytest.mark.slow
def test_imdb_minilm_recipe_learns_a_local_dataset(saved, tmp_path):
    """The imdb_minilm recipe, on reviews saved locally instead of IMDB: the MiniLM fine-tunes offline."""
    from zoo.fit import fit, resolve

    cfg, _ = resolve([str(ROOT / "configs" / "experiment" / "imdb_minilm.yaml")], [
        f"data.path={saved}", "data.text_column=review", "data.label_column=sentiment", "data.max_length=32",
        "data.batch_size=16", "optim.lr=5e-5", "optim.scheduler.warmup_steps=5", "trainer.max_epochs=2",
        f"run.dir={tmp_path}", "logger=false"])
    cfg["trainer"].update(FAST_TRAINER)
    results = fit(cfg)
    assert results["test"]["test/acc"] >= 0.8, results["test"]
