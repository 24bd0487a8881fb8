"""Read an offline W&B run file (`run-<id>.wandb`) back into Python, for tests.

wandb 0.31 ships no reader, so this follows the file format (see shared FACTS.md): a 7-byte
header, then 32 KiB blocks of records, each record a 7-byte header (crc32, length, type) and
a chunk of a protobuf `Record`; types 1/2/3/4 are FULL/FIRST/MIDDLE/LAST chunks.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> list[Any]:
    """Return every `wandb_internal_pb2.Record` stored in a `.wandb` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    magic, version, _ = struct.unpack("<4sHB", data[:7])
    assert magic == b":W&B" and version == 0xBEE1, f"{path} is not a W&B run file"
    out, pending, pos = [], b"", 7
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:  # zero padding at the end of the file
            break
        assert zlib.crc32(bytes([kind]) + chunk) == crc, f"{path}: corrupt record at byte {pos}"
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


class WandbRun:
    """The parts of an offline run a test asserts on: config, history rows, summary, artifacts."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.artifacts: list[Any] = []
        self.kinds: dict[str, int] = defaultdict(int)
        for r in records(self.path):
            kind = r.WhichOneof("record_type")
            self.kinds[kind] += 1
            if kind == "run":
                self.run_id = r.run.run_id
                self.config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
            elif kind == "config":
                self.config.update({i.key: json.loads(i.value_json) for i in r.config.update})
            elif kind == "history":
                self.history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
            elif kind == "summary":
                self.summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.summary.update})
            elif kind == "artifact":
                self.artifacts.append(r.artifact)

    def rows_with(self, key: str) -> list[dict[str, Any]]:
        """Return the history rows that hold `key`."""
        return [row for row in self.history if key in row]


def finished_run(path: str | Path, timeout: float = 60) -> WandbRun:
    """Return the run once its file holds the exit record: W&B's service may still be writing after finish()."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            run = WandbRun(path)
            if run.kinds.get("exit") or time.monotonic() > deadline:
                return run
        except (AssertionError, struct.error):  # a record cut short by a write in progress
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def run_files(root: str | Path) -> list[Path]:
    """Return the `.wandb` files under `root`, oldest run first."""
    files = [p for p in Path(root).glob("*/run-*.wandb") if p.parent.name != "latest-run"]
    return sorted(files, key=lambda p: p.parent.name)  # offline-run-<YYYYmmdd_HHMMSS>-<id>
