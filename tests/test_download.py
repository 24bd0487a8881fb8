"""zoo.data.download on files the tests generate: file:// and a local HTTP server with Range support."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pytest

from zoo.data.download import atomic_output, download, sha256_of
from zoo.errors import ZooError

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB of every byte value


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src" / "data.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_file_url_download_verifies_and_is_cached(source, tmp_path):
    dest = tmp_path / "cache" / "data.bin"
    assert download(source.as_uri(), dest, digest(PAYLOAD), progress=False) == dest
    assert dest.read_bytes() == PAYLOAD and not dest.with_name("data.bin.part").exists()
    source.write_bytes(b"changed upstream")  # a verified cached file is not fetched again
    assert download(source.as_uri(), dest, digest(PAYLOAD), progress=False).read_bytes() == PAYLOAD


def test_sha256_mismatch_raises_and_leaves_nothing(source, tmp_path):
    dest = tmp_path / "cache" / "data.bin"
    with pytest.raises(ZooError, match="sha256 mismatch"):
        download(source.as_uri(), dest, "0" * 64, progress=False)
    assert not dest.exists() and not dest.with_name("data.bin.part").exists()


def test_corrupt_cached_file_is_replaced(source, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD[:1000] + b"garbage")
    download(source.as_uri(), dest, digest(PAYLOAD), progress=False)
    assert sha256_of(dest) == digest(PAYLOAD)


def test_partial_file_resumes(source, tmp_path):
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(PAYLOAD[:300_000])  # an interrupted earlier download
    download(source.as_uri(), dest, digest(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_corrupt_partial_file_fails_verification_then_recovers(source, tmp_path):
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(b"x" * 1000)  # wrong bytes: resuming cannot fix them
    with pytest.raises(ZooError, match="sha256 mismatch"):
        download(source.as_uri(), dest, digest(PAYLOAD), progress=False)
    download(source.as_uri(), dest, digest(PAYLOAD), progress=False)  # the bad part was deleted
    assert dest.read_bytes() == PAYLOAD


def test_concurrent_callers_share_one_verified_file(source, tmp_path):
    dest = tmp_path / "data.bin"
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: download(source.as_uri(), dest, digest(PAYLOAD), progress=False), range(4)))
    assert all(p == dest for p in paths) and dest.read_bytes() == PAYLOAD


def test_missing_source_and_bad_scheme_are_one_line_errors(tmp_path):
    with pytest.raises(ZooError, match="Cannot download"):
        download((tmp_path / "nope.bin").as_uri(), tmp_path / "out.bin", "0" * 64, progress=False)
    with pytest.raises(ZooError, match="Unsupported URL scheme 'ftp'"):
        download("ftp://example.org/x", tmp_path / "out.bin", "0" * 64, progress=False)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves PAYLOAD at any path, honouring `Range: bytes=N-` like real file servers."""

    requests: ClassVar[list[str | None]] = []

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_download_resumes_with_range_request(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data.bin"
        dest = tmp_path / "data.bin"
        dest.with_name("data.bin.part").write_bytes(PAYLOAD[:12345])
        RangeHandler.requests = []
        download(url, dest, digest(PAYLOAD), progress=False)
        assert dest.read_bytes() == PAYLOAD
        assert RangeHandler.requests == ["bytes=12345-"]
        os.remove(dest)
        download(url, dest, digest(PAYLOAD), progress=False)  # a fresh download sends no Range
        assert RangeHandler.requests[-1] is None and dest.read_bytes() == PAYLOAD
    finally:
        server.shutdown()


def test_atomic_output_replaces_whole_keeps_the_usual_mode_and_leaves_nothing_on_failure(tmp_path):
    import stat

    plain, dest = tmp_path / "plain.txt", tmp_path / "out" / "tune.mid"
    plain.write_text("x")
    with atomic_output(dest) as tmp:
        tmp.write_text("new")
        assert not dest.exists()  # nothing at the destination until the writer is done
    assert dest.read_text() == "new"
    assert stat.S_IMODE(dest.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)  # not mkstemp's 0600
    with pytest.raises(RuntimeError), atomic_output(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert dest.read_text() == "new" and sorted(p.name for p in dest.parent.iterdir()) == ["tune.mid"]
