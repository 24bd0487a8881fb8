"""Pretrained cards: every shipped card's metrics are re-measured; downloads are verified and cached."""

from __future__ import annotations

import shutil

import lightning as L
import pytest
import torch

import zoo
from tests.conftest import run_cli
from zoo.errors import ConfigError, ZooError
from zoo.hub import pretrained
from zoo.training.config import datamodule_for

CARDS = sorted(pretrained.cards())


def test_cards_exist():
    assert {"cnn-digits", "mlp-iris"} <= set(CARDS)


@pytest.mark.parametrize("name", CARDS)
def test_card_metrics_hold(name):
    """Load the shipped weights by name and re-measure the card's test metrics on the recipe's split."""
    card = pretrained.card(name)
    model = zoo.load(name)
    assert not model.training and model.registry_name == card["model"]
    datamodule = datamodule_for(card["recipe"], [])
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    measured = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    for metric, value in card["metrics"].items():
        assert measured[metric] == pytest.approx(value, abs=2e-4), metric


def test_unknown_name_did_you_mean():
    with pytest.raises(ConfigError, match="Did you mean 'cnn-digits'"):
        zoo.load("cnn-digit")


def fake_card(monkeypatch, uri: str, sha: str) -> None:
    shipped = dict(pretrained.cards())
    card = {**shipped["mlp-iris"], "name": "remote-iris", "weights": {"uri": uri, "sha256": sha,
                                                                      "format": "safetensors"}}
    monkeypatch.setattr(pretrained, "cards", lambda: {**shipped, "remote-iris": card})


def test_download_verify_cache_offline(tmp_path, monkeypatch):
    """A file:// card is fetched once into $ZOO_HOME, verified, then loads with the source gone."""
    src = tmp_path / "served" / "iris.safetensors"
    src.parent.mkdir()
    shutil.copy(pretrained.CARDS_DIR / "mlp-iris.safetensors", src)
    fake_card(monkeypatch, src.as_uri(), pretrained.card("mlp-iris")["weights"]["sha256"])
    cached = pretrained.weights_path("remote-iris", progress=False)
    assert cached.is_relative_to(pretrained.cache_dir())
    first = zoo.load("remote-iris")
    src.unlink()  # "offline": the source is gone, the verified cache serves
    again = zoo.load("remote-iris")
    x = torch.randn(5, 4)
    assert torch.equal(first(x), again(x))

    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")  # corrupt the cache
    with pytest.raises(ZooError, match="Cannot download"):  # never served unverified; the source is gone
        pretrained.weights_path("remote-iris", progress=False)
    shutil.copy(pretrained.CARDS_DIR / "mlp-iris.safetensors", src)
    healed = pretrained.weights_path("remote-iris", progress=False)  # fetched again and verified
    assert healed == cached and torch.equal(zoo.load("remote-iris")(x), first(x))


def test_sha_mismatch_on_download(tmp_path, monkeypatch):
    src = tmp_path / "w.safetensors"
    shutil.copy(pretrained.CARDS_DIR / "mlp-iris.safetensors", src)
    fake_card(monkeypatch, src.as_uri(), "0" * 64)
    with pytest.raises(ZooError, match="sha256 mismatch"):
        pretrained.weights_path("remote-iris", progress=False)
    leftovers = [p for p in pretrained.cache_dir().rglob("remote-iris-*") if p.suffix != ".lock"]
    assert not leftovers, "no unverified or partial file may stay in the cache"


def test_corrupt_weights_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ZooError, match="corrupt"):
        zoo.load(bad)


def test_cli_list_and_fetch():
    proc = run_cli("zoo", "list", "pretrained")
    assert proc.returncode == 0 and "cnn-digits" in proc.stdout and "test/acc" in proc.stdout
    proc = run_cli("zoo", "fetch", "cnn-digits")
    assert proc.returncode == 0 and "sha256 verified" in proc.stdout, proc.stderr
    proc = run_cli("zoo", "fetch", "cnn-digitz")
    assert proc.returncode == 2 and "Did you mean 'cnn-digits'" in proc.stderr
