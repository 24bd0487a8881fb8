"""zoo's cache ($ZOO_HOME): downloads, pretrained weights and the judges zoo.evaluation trains,
every entry verified by sha256 and made again (or explained) when it is corrupt.

    path = download("https://example.org/data.txt", cache_path("data/text", url, sha256), sha256="ab12...")
    path = cached(dest, make, what="the judge for this data")   # any cache entry that zoo builds itself

- `cached` is the one rule of every cache entry. An entry is checked against the sha256 known in
  advance (pinned downloads, shipped weights), else against the digest recorded beside it when it
  was made (`<dest>.sha256`: judges, unpinned downloads). A missing or corrupt entry is made again
  by `make`; one that zoo cannot make (weights shipped inside the package) raises a one-line error
  naming the file and what to do.
- Entries are keyed by content: `cache_path` names a download after its expected sha256, or after
  a hash of its URL when none is given, so two URLs never share a file.
- `file://` and `http(s)://` URLs (and plain local paths) are supported. Bytes go to
  `<dest>.part`; an interrupted download resumes from there with an HTTP Range request (or a
  seek, for local files) when the server allows it: at once when the connection closes mid-file
  (up to RETRIES times), or on the next call after an error.
- The finished file is checked before `os.replace` moves it to `dest`, so `dest` is either absent
  or complete and verified. A mismatch deletes the partial file and raises.
- A lock file (`<dest>.lock`, the `filelock` library) serialises concurrent callers, e.g. DDP
  ranks or two runs that all call `prepare_data()`: the first makes the entry, the others find
  it verified.

`atomic_output(dest)` gives any other writer the same guarantee: a temporary file beside `dest`,
renamed over it only once it is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
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


def _file_mode() -> int:
    """Return the mode `open()` gives a new file here: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()  # for files made through mkstemp, which makes them 0600


@contextlib.contextmanager
def atomic_output(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest` to write; on success it replaces `dest` in one rename.

    Readers, and concurrent writers such as DDP ranks, see the old file or the complete new one,
    never a half-written one; if the writer fails, the temporary file is deleted. The file gets the
    mode any new file gets here.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def cache_path(folder: str, url: str, sha256: str | None = None) -> Path:
    """Return where a download of `url` is cached: `<cache>/<folder>/<key>-<file name>`.

    The key is the expected sha256 when it is known (the same bytes share one file, whichever URL
    serves them), else a hash of the URL itself (two URLs never share one file, even with the
    same file name).
    """
    key = sha256.lower() if sha256 else hashlib.sha256(url.encode()).hexdigest()
    name = Path(unquote(urlparse(url).path)).name or "download"
    return cache_dir() / folder / f"{key[:16]}-{name}"


def _digest_file(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _intact(dest: Path, sha256: str | None) -> bool:
    """Return True when `dest` exists and matches `sha256`, else the digest recorded when it was made."""
    if not dest.is_file():
        return False
    if sha256 is None:
        record = _digest_file(dest)
        if not record.is_file():
            return False
        sha256 = record.read_text().strip()
    return sha256_of(dest) == sha256.lower()


def cached(dest: str | Path, make: Callable[[Path], None] | None, *, what: str, sha256: str | None = None,
           fix: str = "") -> Path:
    """Return `dest`, a verified cache entry, made by `make(part)` (which writes the file `part`) when
    it is missing or corrupt.

    With `sha256` the entry must match it, and a made file that does not is deleted and raises.
    Without, the digest of the made file is recorded beside it and checked on every later use.
    `make=None` means zoo cannot make the entry: a missing or corrupt one raises a one-line
    ZooError naming `what`, the file and `fix`.
    """
    dest = Path(dest)
    if _intact(dest, sha256):
        return dest
    if make is None:
        state = "corrupt (its sha256 does not match)" if dest.is_file() else "missing"
        raise ZooError(f"{what} at {dest} is {state}; {fix}" if fix else f"{what} at {dest} is {state}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(dest.with_name(dest.name + ".lock")):
        if _intact(dest, sha256):  # another rank or run may have made it while we waited
            return dest
        if dest.is_file():
            warnings.warn(f"{what} at {dest} was corrupt (sha256 mismatch): making it again", stacklevel=2)
        dest.unlink(missing_ok=True)
        _digest_file(dest).unlink(missing_ok=True)
        part = dest.with_name(dest.name + ".part")
        make(part)
        digest = sha256_of(part)
        if sha256 is not None and digest != sha256.lower():
            part.unlink(missing_ok=True)
            raise ZooError(f"sha256 mismatch for {what}: expected {sha256.lower()}, got {digest} "
                           "(file deleted; retry or check the source)")
        os.replace(part, dest)
        if sha256 is None:
            _digest_file(dest).write_text(digest + "\n")
    return dest


def download(url: str, dest: str | Path, sha256: str | None, progress: bool | None = None) -> Path:
    """Return `dest` holding the verified contents of `url`, downloading it only if needed (see `cached`).

    With `sha256=None` the file cannot be checked against its source: its digest is shown in a
    warning so it can be pinned, and recorded, so that a later corruption of the cached copy is
    caught. Raises ZooError on a digest mismatch or an unreachable URL.
    """

    def make(part: Path) -> None:
        for attempt in range(1 + RETRIES):  # a cut connection resumes from the bytes that arrived
            try:
                fetch(url, part, progress=progress, label=Path(dest).name)
                break
            except CutConnection as e:
                if attempt == RETRIES:
                    raise ZooError(f"Cannot download {url}: {e}; the partial file is kept, run again to resume") \
                        from None
        if sha256 is None:
            warnings.warn(f"{url} was not verified; its sha256 is {sha256_of(part)}", stacklevel=3)

    return cached(dest, make, what=f"The download of {url}", sha256=sha256)


def fetch(url: str, part: Path, *, progress: bool | None, label: str) -> None:
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
def progress_bar(enabled: bool | None, total: int | None, start: int, label: str) -> Iterator[object]:
    """Yield a tqdm bar in bytes: always with `enabled=True`, never with False, and with None (the
    default) only when stderr is a terminal, not a log file, a pipe or a test."""
    from tqdm.auto import tqdm

    with tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label,
              disable=None if enabled is None else not enabled) as bar:
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
