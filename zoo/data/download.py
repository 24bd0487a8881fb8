"""Downloading files safely: sha256-checked, atomic, resumable, and safe under DDP.

    path = download("https://example.org/data.txt", cache_dir() / "data" / "data.txt", sha256="ab12...")

- `file://` and `http(s)://` URLs (and plain local paths) are supported.
- Bytes go to `<dest>.part`; an interrupted download resumes from there with an HTTP Range
  request (or a seek, for local files) when the server allows it: at once when the connection
  closes mid-file (up to RETRIES times), or on the next call after an error.
- The finished file is checked against `sha256` before `os.replace` moves it to `dest`, so `dest`
  is either absent or complete and verified. A mismatch deletes the partial file and raises.
- A lock file (`<dest>.lock`, the `filelock` library) serialises concurrent callers, e.g. DDP
  ranks or two runs that all call `prepare_data()`: the first downloads, the others find the
  verified file.

`cache_dir()` is zoo's one cache folder ($ZOO_HOME): downloaded data and weights, and the judges
that zoo.evaluation trains, all live under it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from filelock import FileLock

from zoo.errors import ZooError

CHUNK = 1 << 20
RETRIES = 2  # further attempts after a connection that closes mid-file, each resuming where it stopped


class CutConnection(Exception):
    """The server closed the connection before the whole file arrived."""


def cache_dir() -> Path:
    """Return zoo's cache folder: $ZOO_HOME, else ~/.cache/zoo."""
    return Path(os.environ.get("ZOO_HOME") or Path.home() / ".cache" / "zoo")


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str | Path, sha256: str | None, progress: bool = True) -> Path:
    """Return `dest` holding the verified contents of `url`, downloading it only if needed.

    With `sha256=None` nothing can be verified: the file is kept and its digest is shown in a
    warning so it can be pinned. Raises ZooError on a digest mismatch or an unreachable URL.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.is_file() and (expected is None or sha256_of(dest) == expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(dest.with_name(dest.name + ".lock")):
        if dest.is_file():  # another rank may have finished while we waited
            if expected is None or sha256_of(dest) == expected:
                return dest
            dest.unlink()  # corrupt or stale: fetch again
        part = dest.with_name(dest.name + ".part")
        for attempt in range(1 + RETRIES):  # a cut connection resumes from the bytes that arrived
            try:
                fetch(url, part, progress=progress, label=dest.name)
                break
            except CutConnection as e:
                if attempt == RETRIES:
                    raise ZooError(f"Cannot download {url}: {e}; the partial file is kept, run again to resume") \
                        from None
        digest = sha256_of(part)
        if expected is not None and digest != expected:
            part.unlink(missing_ok=True)
            raise ZooError(f"sha256 mismatch for {url}: expected {expected}, got {digest} (file deleted; retry or "
                           "check the URL)")
        if expected is None:
            warnings.warn(f"{url} was not verified; its sha256 is {digest}", stacklevel=2)
        os.replace(part, dest)
    return dest


def fetch(url: str, part: Path, *, progress: bool, label: str) -> None:
    """Append the bytes of `url` that `part` does not hold yet (resuming), or rewrite it if it cannot resume."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    total = None
    try:
        with open_source(url, have) as (src, total, resumed):
            mode = "ab" if resumed else "wb"
            start = have if resumed else 0
            with open(part, mode) as out, progress_bar(progress, total, start, label) as bar:
                shutil.copyfileobj(_Counted(src, bar), out, CHUNK)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        if isinstance(e, urllib.error.HTTPError) and e.code == 416 and have:  # Range past the end: already complete
            return
        why = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or e
        raise ZooError(f"Cannot download {url}: {why}") from None
    got = part.stat().st_size
    if total is not None and got < total:  # urllib ends a body that stops short without an error
        raise CutConnection(f"the connection closed after {got:,} of {total:,} bytes")


@contextlib.contextmanager
def open_source(url: str, offset: int) -> Iterator[tuple[BinaryIO, int | None, bool]]:
    """Yield (stream, total size or None, whether the stream starts at `offset`)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else url)
        total = path.stat().st_size
        with open(path, "rb") as f:
            resumed = 0 < offset <= total
            if resumed:
                f.seek(offset)
            yield f, total, resumed
        return
    if parsed.scheme not in ("http", "https"):
        raise ZooError(f"Unsupported URL scheme '{parsed.scheme}' in {url}. Use file://, http:// or https://")
    request = urllib.request.Request(url, headers={"User-Agent": "zoo"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    with urllib.request.urlopen(request, timeout=60) as response:  # the scheme was checked above
        resumed = offset > 0 and response.status == 206
        length = response.headers.get("Content-Length")
        total = int(length) + (offset if resumed else 0) if length else None
        yield response, total, resumed


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int | None, start: int, label: str) -> Iterator[object]:
    """Yield a tqdm bar in bytes (or a no-op stand-in when disabled)."""
    from tqdm.auto import tqdm

    with tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label, disable=not enabled) as bar:
        yield bar


class _Counted:
    """A read-only stream wrapper that advances a progress bar."""

    def __init__(self, src: BinaryIO, bar: object) -> None:
        self.src, self.bar = src, bar

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.src.read(n)
        except (OSError, http.client.HTTPException) as e:  # e.g. a reset connection mid-file
            raise CutConnection(f"the transfer broke off ({e or type(e).__name__})") from None
        self.bar.update(len(data))
        return data
