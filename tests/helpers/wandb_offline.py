"""Read an offline wandb run (``run-<id>.wandb``) back: its config and summary, no server needed.

The file is a 7-byte header (``:W&B``, magic 0xBEE1, version 0) followed by LevelDB-style log
records in 32 KiB blocks: 4-byte checksum, 2-byte little-endian length, 1-byte type (1 full,
2 first, 3 middle, 4 last), then that many bytes of a protobuf ``Record``. Tests use this to check
what a run stored without syncing it anywhere.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HEADER = b":W&B\xe1\xbe\x00"
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(raw: bytes, source: Path) -> Iterator[bytes]:
    if not raw.startswith(_HEADER):
        raise ValueError(f"{source}: not a wandb run file (header {raw[:7]!r})")
    pos, pending = len(_HEADER), b""
    while pos + 7 <= len(raw):
        room = _BLOCK - pos % _BLOCK
        if room < 7:  # block trailer padding
            pos += room
            continue
        length, kind = struct.unpack_from("<HB", raw, pos + 4)
        if length == 0 and kind == 0:  # zero padding at the end of a block
            pos += room
            continue
        chunk = raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
        else:
            raise ValueError(f"{source}: unknown record type {kind} at byte {pos}")


def read_offline_run(run_path: str | Path) -> dict[str, dict[str, Any]]:
    """``{"config": {...}, "summary": {...}}`` of an offline run folder or its ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    path = Path(run_path)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if len(files) != 1:
            raise FileNotFoundError(f"{path}: expected one run-*.wandb file, found {len(files)}")
        path = files[0]
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for payload in _payloads(path.read_bytes(), path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key] = json.loads(item.value_json)
        elif kind == "run":
            for item in record.run.config.update:
                config.setdefault(item.key, json.loads(item.value_json))
    return {"config": config, "summary": summary}
