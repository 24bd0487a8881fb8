"""torchvision datasets (mnist, fashion_mnist, cifar10, cifar100) on files the tests write in the real
formats, read, checked and downloaded by torchvision's own code: idx files (plain and .gz), CIFAR
python batches (with torchvision's md5 check), downloads from a local HTTP server, the offline
error, two processes preparing at once, and two real trainings on scikit-learn's digits."""

from __future__ import annotations

import hashlib
import http.server
import io
import multiprocessing
import socket
import tarfile
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import torchvision.datasets

from zoo.data.vision import CIFAR10, CIFAR100, MNIST, FashionMNIST, digits_images, write_cifar, write_mnist
from zoo.errors import ZooError


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def digits_split(size: int, channels: int, n_train: int = 1437, seed: int = 0):
    """Return ((x, y) train, (x, y) test): scikit-learn's digits as uint8 images, shuffled and split."""
    x, y = digits_images(size, channels)
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:n_train], order[n_train:]
    return (x[tr], y[tr]), (x[te], y[te])


def closed_port() -> int:
    """Return a local port nobody listens on: connecting fails at once, as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FileServer(http.server.BaseHTTPRequestHandler):
    """Serves `files` (name -> bytes), slowly if asked, recording each download (GET) by name."""

    files: ClassVar[dict[str, bytes]] = {}
    gets: ClassVar[list[str]] = []
    delay: ClassVar[float] = 0.0

    def do_HEAD(self):
        self.send_response(200 if self.path.lstrip("/") in self.files else 404)
        self.end_headers()

    def do_GET(self):
        if self.headers.get("Method") == "HEAD":  # torchvision's redirect probe: a GET that reads no body
            self.do_HEAD()
            return
        name = self.path.lstrip("/")
        type(self).gets.append(name)
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(0, len(body), 1 << 14):  # slow enough that a second process arrives mid-download
            self.wfile.write(body[i : i + (1 << 14)])
            time.sleep(self.delay)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FileServer.files, FileServer.gets, FileServer.delay = {}, [], 0.0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FileServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def leftovers(root: Path) -> list[str]:
    """Return what a failed prepare_data left under root, apart from its lock file."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(".lock"))


# -- MNIST and Fashion-MNIST: idx files ---------------------------------------------------------


def test_mnist_reads_plain_idx_files(tmp_path):
    train, test = digits_split(28, 1, n_train=300)
    write_mnist(tmp_path / "MNIST" / "raw", train, test)
    dm = MNIST(root=str(tmp_path), download=False)
    dm.prepare_data()
    x, y = dm.split("test")
    assert torch.equal(x, torch.from_numpy(test[0]).permute(0, 3, 1, 2).float() / 255)
    assert torch.equal(y, torch.from_numpy(test[1]))
    (xt, _), (xv, _) = dm.split("train"), dm.split("val")
    assert len(xt) + len(xv) == 300 and len(xv) == 30
    assert dm.spec.input_shape == (1, 28, 28) and dm.spec.num_classes == 10 and dm.spec.class_names[0] == "0 - zero"
    assert dm._splits["train"][0].dtype == torch.uint8  # stored as bytes: floats only per batch
    mean = float(xt.double().mean())  # the spec's statistics are the train split's, in [0, 1] units
    assert dm.spec.input_mean[0] == pytest.approx(mean, rel=1e-6)


def test_a_corrupt_idx_file_is_one_line(tmp_path):
    train, test = digits_split(28, 1, n_train=100)
    paths = write_mnist(tmp_path / "MNIST" / "raw", train, test)
    paths[0].write_bytes(b"\x00\x00\x08\x07garbage")  # a bad dimension count: not an idx image file
    dm = MNIST(root=str(tmp_path))
    dm.prepare_data()  # torchvision only checks that MNIST's files exist; reading them fails
    with pytest.raises(ZooError, match=r"mnist: cannot read the files in .*MNIST/raw \(AssertionError") as e:
        dm.setup("fit")
    assert "\n" not in str(e.value)


def test_fashion_mnist_extracts_gz_files_put_in_its_folder_offline(tmp_path, monkeypatch):
    """.gz files in FashionMNIST/raw/ are checked by torchvision's md5 and extracted, with no download."""
    train, test = digits_split(28, 1, n_train=200)
    paths = write_mnist(tmp_path / "FashionMNIST" / "raw", train, test, gz=True)
    cls = torchvision.datasets.FashionMNIST
    monkeypatch.setattr(cls, "resources", [(p.name, md5(p)) for p in paths])  # the md5s of these files
    monkeypatch.setattr(cls, "mirrors", [f"http://127.0.0.1:{closed_port()}/"])  # offline
    dm = FashionMNIST(root=str(tmp_path))
    dm.prepare_data()
    assert torch.equal(dm.split("test")[1], torch.from_numpy(test[1]))
    assert dm.spec.class_names[0] == "T-shirt/top"
    assert sorted(p.name for p in (tmp_path / "FashionMNIST" / "raw").iterdir()) == sorted(
        [p.name for p in paths] + [p.name.removesuffix(".gz") for p in paths])
    assert not list(tmp_path.glob(".fashion_mnist-*")), "the staging folder is gone"


def test_mnist_downloads_gz_from_a_mirror_with_md5_check(tmp_path, server, monkeypatch):
    train, test = digits_split(28, 1, n_train=200)
    paths = write_mnist(tmp_path / "mirror", train, test, gz=True)
    FileServer.files = {p.name: p.read_bytes() for p in paths}
    cls = torchvision.datasets.MNIST
    monkeypatch.setattr(cls, "mirrors", [f"http://127.0.0.1:{closed_port()}/", server])  # the first one is down
    monkeypatch.setattr(cls, "resources", [(p.name, md5(p)) for p in paths])
    root = tmp_path / "data"
    dm = MNIST(root=str(root))
    dm.prepare_data()
    assert sorted(FileServer.gets) == sorted(p.name for p in paths)
    assert torch.equal(dm.split("test")[1], torch.from_numpy(test[1]))
    MNIST(root=str(root)).prepare_data()  # present: nothing is fetched again
    assert len(FileServer.gets) == 4

    # A mirror serving other bytes fails torchvision's md5 check: one line, and nothing half-written.
    monkeypatch.setattr(cls, "resources", [(p.name, "0" * 32) for p in paths])
    other = tmp_path / "other"
    with pytest.raises(ZooError) as e:
        MNIST(root=str(other)).prepare_data()
    assert "\n" not in str(e.value) and "were not downloaded" in str(e.value)
    assert leftovers(other) == []


# -- CIFAR-10 and CIFAR-100: python batches, md5-checked ----------------------------------------


def cifar_md5s(monkeypatch, source: str, folder: Path) -> None:
    """Make torchvision's CIFAR class expect the md5s of the files in `folder` (the generated ones)."""
    cls = getattr(torchvision.datasets, source)
    for attr in ("train_list", "test_list"):
        monkeypatch.setattr(cls, attr, [[name, md5(folder / name)] for name, _ in getattr(cls, attr)])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})


@pytest.mark.parametrize("dm_cls", [CIFAR10, CIFAR100], ids=["cifar10", "cifar100"])
def test_cifar_batches_pass_torchvision_md5_check(dm_cls, tmp_path, monkeypatch):
    train, test = digits_split(32, 3, n_train=250)
    folder = write_cifar(tmp_path, dm_cls.source, train, test)
    with pytest.raises(ZooError) as e:  # torchvision's published md5s: these files are not CIFAR
        dm_cls(root=str(tmp_path), download=False).prepare_data()
    assert "\n" not in str(e.value) and str(folder) in str(e.value) and "fail torchvision's checks" in str(e.value)

    cifar_md5s(monkeypatch, dm_cls.source, folder)
    dm = dm_cls(root=str(tmp_path), download=False)
    dm.prepare_data()
    x, y = dm.split("test")
    assert torch.equal(x, torch.from_numpy(test[0]).permute(0, 3, 1, 2).float() / 255)  # R, G, B planes in order
    assert torch.equal(y, torch.from_numpy(test[1]))
    assert dm.spec.input_shape == (3, 32, 32) and dm.spec.num_classes == (100 if dm_cls is CIFAR100 else 10)
    assert len(dm.split("val")[0]) == 25


def test_cifar_verify_false_accepts_files_you_wrote(tmp_path):
    train, test = digits_split(32, 3, n_train=100)
    write_cifar(tmp_path, "CIFAR10", train, test)
    dm = CIFAR10(root=str(tmp_path), download=False, verify=False)
    assert torch.equal(dm.split("test")[1], torch.from_numpy(test[1]))


def cifar_archive(tmp_path: Path) -> tuple[bytes, Path]:
    """Return a cifar-10-python.tar.gz of generated batches and the folder they came from."""
    train, test = digits_split(32, 3, n_train=100)
    folder = write_cifar(tmp_path / "src", "CIFAR10", train, test)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue(), folder


def serve_cifar(tmp_path, server, monkeypatch) -> None:
    archive, folder = cifar_archive(tmp_path)
    FileServer.files = {"cifar-10-python.tar.gz": archive}
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "url", server + "cifar-10-python.tar.gz")
    monkeypatch.setattr(cls, "tgz_md5", hashlib.md5(archive).hexdigest())
    cifar_md5s(monkeypatch, "CIFAR10", folder)


def prepare_in_child(root: str, barrier) -> None:
    barrier.wait()
    CIFAR10(root=root).prepare_data()


def test_two_processes_prepare_at_once_and_download_once(tmp_path, server, monkeypatch):
    """Two processes call prepare_data together: the lock lets one download, the other finds the files."""
    serve_cifar(tmp_path, server, monkeypatch)
    FileServer.delay = 0.02  # the download takes ~0.5 s, so the second process arrives during it
    root = tmp_path / "data"
    ctx = multiprocessing.get_context("fork")  # the children see this test's patched torchvision class
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=prepare_in_child, args=(str(root), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert FileServer.gets == ["cifar-10-python.tar.gz"], "downloaded more than once"
    dm = CIFAR10(root=str(root), download=False)
    assert len(dm.split("test")[1]) == 1797 - 100  # torchvision's md5 check passes on what they left


def test_offline_without_files_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{closed_port()}/"])
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", f"http://127.0.0.1:{closed_port()}/c.tar.gz")
    for dm_cls, names in ((MNIST, ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
                          (CIFAR10, ["data_batch_1", "test_batch", "batches.meta", "cifar-10-python.tar.gz"])):
        root = tmp_path / dm_cls.source
        with pytest.raises(ZooError) as e:
            dm_cls(root=str(root)).prepare_data()
        message = str(e.value)
        assert "\n" not in message and str(dm_cls(root=str(root)).folder()) in message
        assert all(n in message for n in names), message
        assert torchvision.datasets.MNIST.mirrors[0] in message if dm_cls is MNIST else "127.0.0.1" in message
        assert leftovers(root) == []
    with pytest.raises(ZooError, match="data.download=false"):  # no network attempt at all
        MNIST(root=str(tmp_path / "none"), download=False).prepare_data()


# -- learning: scikit-learn's digits through the real formats -----------------------------------


@pytest.mark.slow
def test_mnist_cnn_learns_digits_written_as_mnist(tmp_path):
    """configs/experiment/mnist_cnn.yaml through the `mnist` DataModule, shortened: half the width
    ([16, 32, 64]), 8 epochs, batch 32 (the digits are 1,437 training images, not 60,000)."""
    from zoo.fit import fit, resolve

    train, test = digits_split(28, 1)
    write_mnist(tmp_path / "data" / "MNIST" / "raw", train, test)
    cfg, _ = resolve(["configs/experiment/mnist_cnn.yaml"], [
        f"data.root={tmp_path / 'data'}", "data.batch_size=32", "model.channels=[16,32,64]", "trainer.max_epochs=8",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.enable_progress_bar=false", "logger=false",
        f"run.dir={tmp_path / 'runs'}"])
    results = fit(cfg)
    assert results["test"]["test/acc"] >= 0.95, results["test"]


@pytest.mark.slow
def test_cifar10_resnet_learns_digits_written_as_cifar(tmp_path, monkeypatch):
    """configs/experiment/cifar10_resnet.yaml (ResNet-20) through the `cifar10` DataModule with
    torchvision's md5 check, shortened: half the width ([8, 16, 32], still 3 blocks per stage),
    3 epochs, batch 32, and crop without flips (a flipped digit is another digit)."""
    from zoo.fit import fit, resolve

    train, test = digits_split(32, 3)
    folder = write_cifar(tmp_path / "data", "CIFAR10", train, test)
    cifar_md5s(monkeypatch, "CIFAR10", folder)
    cfg, _ = resolve(["configs/experiment/cifar10_resnet.yaml"], [
        f"data.root={tmp_path / 'data'}", "data.batch_size=32", "data.augment=crop", "model.channels=[8,16,32]",
        "trainer.max_epochs=3", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.enable_progress_bar=false",
        "logger=false", f"run.dir={tmp_path / 'runs'}"])
    assert cfg["model"]["blocks_per_stage"] == 3 and cfg["model"]["block"] == "residual"
    results = fit(cfg)
    assert results["test"]["test/acc"] >= 0.90, results["test"]
