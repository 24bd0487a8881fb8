"""Remote weights: https:// (served here by an HTTP server on 127.0.0.1), hf:// (a local folder in the
Hugging Face cache layout, offline), file://, and `zoo verify` re-hashing the cache."""

from __future__ import annotations

import http.server
import shutil
import threading
from typing import ClassVar

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.errors import ZooError
from zoo.hub import pretrained

SHIPPED = pretrained.CARDS_DIR / "mlp-iris.safetensors"
SHA = pretrained.card("mlp-iris")["weights"]["sha256"]
X = torch.randn(5, 4) * 2 + 4  # raw iris-like rows


def add_card(monkeypatch, name: str, uri: str, sha: str = SHA) -> None:
    """Register a card like mlp-iris whose weights live at `uri` (for this test only)."""
    card = {**pretrained.card("mlp-iris"), "name": name, "weights": {"uri": uri, "sha256": sha, "format": "safetensors"}}
    monkeypatch.setitem(pretrained.cards(), name, card)


def shipped_outputs() -> torch.Tensor:
    return zoo.load("mlp-iris").predict_step(X)


class WeightsHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` by path with `Range: bytes=N-` support; the first `cut` responses stop halfway."""

    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[tuple[str, str | None]]] = []
    cut: ClassVar[int] = 0

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).requests.append((self.path, rng))
        if self.path not in self.files:
            self.send_error(404)
            return
        data = self.files[self.path]
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = data[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if type(self).cut > 0:  # a dropped connection: part of the body, then the socket closes
            type(self).cut -= 1
            self.wfile.write(body[: len(body) // 3])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    WeightsHandler.files = {"/w/iris.safetensors": SHIPPED.read_bytes()}
    WeightsHandler.requests, WeightsHandler.cut = [], 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WeightsHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def cache_files() -> list[str]:
    folder = pretrained.cache_dir() / "weights"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.is_dir() else []


def test_http_fetch_verifies_shows_progress_and_caches_for_offline_use(server, monkeypatch, capsys):
    add_card(monkeypatch, "web-iris", f"{server.url}/w/iris.safetensors")
    path = pretrained.weights_path("web-iris", progress=True)
    assert path == pretrained.cached_path("web-iris") and path.name == f"web-iris-{SHA[:12]}.safetensors"
    assert "web-iris-" in capsys.readouterr().err  # tqdm's bar, labelled with the file
    assert cache_files() == [path.name]  # renamed into place: no .part left
    torch.testing.assert_close(zoo.load("web-iris").predict_step(X), shipped_outputs())
    server.shutdown()  # offline from here on: the verified cache serves
    server.server_close()
    torch.testing.assert_close(zoo.load("web-iris").predict_step(X), shipped_outputs())
    assert [r for r, _ in WeightsHandler.requests] == ["/w/iris.safetensors"]


def test_a_cut_connection_resumes_with_a_range_request(server, monkeypatch):
    add_card(monkeypatch, "web-iris", f"{server.url}/w/iris.safetensors")
    size = SHIPPED.stat().st_size
    WeightsHandler.cut = 1  # the first response stops after a third of the file
    pretrained.weights_path("web-iris", progress=False)
    assert [rng for _, rng in WeightsHandler.requests] == [None, f"bytes={size // 3}-"]
    torch.testing.assert_close(zoo.load("web-iris").predict_step(X), shipped_outputs())


def test_a_download_cut_every_time_keeps_its_part_and_resumes_on_the_next_call(server, monkeypatch):
    add_card(monkeypatch, "web-iris", f"{server.url}/w/iris.safetensors")
    WeightsHandler.cut = 99
    with pytest.raises(ZooError, match=r"connection closed after [\d,]+ of [\d,]+ bytes.*run again to resume"):
        pretrained.weights_path("web-iris", progress=False)
    part = pretrained.cached_path("web-iris").with_name(pretrained.cached_path("web-iris").name + ".part")
    have = part.stat().st_size
    assert 0 < have < SHIPPED.stat().st_size and not pretrained.cached_path("web-iris").exists()
    WeightsHandler.cut, WeightsHandler.requests = 0, []
    pretrained.weights_path("web-iris", progress=False)
    assert WeightsHandler.requests == [("/w/iris.safetensors", f"bytes={have}-")]
    assert not part.exists() and pretrained.sha256_of(pretrained.cached_path("web-iris")) == SHA


def test_404_is_one_line_and_leaves_nothing(server, monkeypatch):
    add_card(monkeypatch, "web-iris", f"{server.url}/w/missing.safetensors")
    with pytest.raises(ZooError, match="Cannot download .*missing.safetensors: .*404") as err:
        zoo.load("web-iris")
    assert "\n" not in str(err.value)
    assert cache_files() == []


def test_sha256_mismatch_leaves_the_cache_clean(server, monkeypatch):
    add_card(monkeypatch, "web-iris", f"{server.url}/w/iris.safetensors", sha="0" * 64)
    with pytest.raises(ZooError, match="sha256 mismatch .*file deleted"):
        zoo.load("web-iris")
    assert cache_files() == []


def test_file_url_weights(tmp_path, monkeypatch):
    src = tmp_path / "served" / "iris.safetensors"
    src.parent.mkdir()
    shutil.copy(SHIPPED, src)
    add_card(monkeypatch, "file-iris", src.as_uri())
    torch.testing.assert_close(zoo.load("file-iris").predict_step(X), shipped_outputs())
    src.unlink()
    torch.testing.assert_close(zoo.load("file-iris").predict_step(X), shipped_outputs())


# -- hf:// ---------------------------------------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A Hugging Face hub cache holding zoo-test/weights with the iris weights, read offline.

    The layout is the hub's own: models--OWNER--REPO/{blobs/<etag>, snapshots/<commit>/<file> -> blob,
    refs/main}. huggingface_hub reads HF_HUB_CACHE and HF_HUB_OFFLINE once, at import, so the test
    sets both in the environment and in its constants.
    """
    from huggingface_hub import constants

    root = tmp_path / "hf-hub"
    repo = root / "models--zoo-test--weights"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    blob = repo / "blobs" / SHA
    shutil.copy(SHIPPED, blob)
    snapshot = repo / "snapshots" / COMMIT / "iris" / "model.safetensors"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(blob)
    for var, value in (("HF_HUB_CACHE", str(root)), ("HF_HUB_OFFLINE", "1")):
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return snapshot


def test_hf_weights_come_from_the_hub_cache_offline(hf_cache, monkeypatch):
    add_card(monkeypatch, "hf-iris", "hf://zoo-test/weights/iris/model.safetensors")
    assert pretrained.weights_path("hf-iris") == hf_cache
    torch.testing.assert_close(zoo.load("hf-iris").predict_step(X), shipped_outputs())
    add_card(monkeypatch, "hf-iris-pinned", f"hf://zoo-test/weights@{COMMIT}/iris/model.safetensors")
    assert pretrained.weights_path("hf-iris-pinned") == hf_cache
    assert not (pretrained.cache_dir() / "weights").exists()  # the hub's cache holds it, not zoo's


def test_hf_file_not_cached_while_offline_is_one_line(hf_cache, monkeypatch):
    add_card(monkeypatch, "hf-missing", "hf://zoo-test/weights/nope.safetensors")
    with pytest.raises(ZooError, match="not in the Hugging Face cache and the Hub cannot be reached"):
        zoo.load("hf-missing")
    add_card(monkeypatch, "hf-bad", "hf://just-a-repo")
    with pytest.raises(ZooError, match="expected hf://OWNER/REPO"):
        zoo.load("hf-bad")


# -- zoo verify ------------------------------------------------------------------------------------


def test_verify_names_and_removes_every_bad_file(server, hf_cache, monkeypatch, capsys):
    add_card(monkeypatch, "web-iris", f"{server.url}/w/iris.safetensors")
    add_card(monkeypatch, "hf-iris", "hf://zoo-test/weights/iris/model.safetensors")
    good = pretrained.weights_path("web-iris", progress=False)
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert f"ok   {good}" in out and f"ok   {hf_cache}" in out and "2 good, 0 bad" in out

    good.write_bytes(good.read_bytes()[:-8] + b"tampered")  # a corrupt download
    orphan = good.with_name(f"old-entry-{'a' * 12}.safetensors")  # no card names it; its name still says its hash
    orphan.write_bytes(b"truncated")
    stranger = good.with_name("notes.txt")  # not zoo's: left alone
    stranger.write_text("mine")
    blob = hf_cache.resolve()
    blob.write_bytes(b"not the weights")
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    for path in (good, orphan, hf_cache):
        assert f"BAD  {path}: sha256" in out and "removed" in out, path
    assert "0 good, 3 bad" in out
    assert not good.exists() and not orphan.exists() and not hf_cache.exists() and not blob.exists()
    assert stranger.exists()
    assert main(["verify"]) == 0  # a clean cache; the next load fetches again and verifies
    assert zoo.load("web-iris").predict_step(X).shape == (5, 3)
