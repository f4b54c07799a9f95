"""Read back what an offline W&B run wrote (``<run>/wandb/offline-run-*/run-*.wandb``).

The ``.wandb`` file is W&B's transaction log, the one ``wandb sync`` uploads: a 7-byte header
(``:W&B``, magic 0xBEE1, version 0) followed by LevelDB-log blocks of 32 KiB whose records are
``crc32c (4) | length (2, little endian) | type (1: full, 2: first, 3: middle, 4: last) | data``, each
complete record a serialized ``wandb.proto.wandb_internal_pb2.Record``. wandb itself no longer ships
a Python reader, so this is the one place that parses it; tests use it to check what a run sent.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<4sHB")
HEADER_IDENT, HEADER_MAGIC, HEADER_VERSION = b":W&B", 0xBEE1, 0
BLOCK = 32768
RECORD_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_records(path: Path) -> list[bytes]:
    """The complete records (payload bytes) of a ``.wandb`` transaction log, in order."""
    data = Path(path).read_bytes()
    ident, magic, version = HEADER.unpack_from(data, 0)
    if ident != HEADER_IDENT or magic != HEADER_MAGIC or version != HEADER_VERSION:
        raise ValueError(f"{path}: not a W&B transaction log (header {ident!r} {magic:#x} v{version})")
    records: list[bytes] = []
    pending = b""
    offset = HEADER.size
    while offset + RECORD_HEADER.size <= len(data):
        left_in_block = BLOCK - offset % BLOCK
        if left_in_block < RECORD_HEADER.size:  # the writer pads a block's tail that cannot hold a header
            offset += left_in_block
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, offset)
        if kind == 0 and length == 0:  # zero padding at the end of the file
            break
        start = offset + RECORD_HEADER.size
        chunk = data[start : start + length]
        offset = start + length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            records.append(pending + chunk)
            pending = b""
        else:
            raise ValueError(f"{path}: unknown record type {kind} at byte {offset - length}")
    return records


@dataclass
class OfflineRun:
    """What one offline run holds: its identity, config, summary, history rows and metric definitions."""

    path: Path
    run_id: str = ""
    project: str = ""
    group: str = ""
    name: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    exit_code: int | None = None


def _set(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


def _remove(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.get(key, {})
    target.pop(keys[-1], None)


def read_offline_run(path: Path) -> OfflineRun:
    """Parse one ``run-<id>.wandb`` file (or the ``offline-run-*`` folder holding it)."""
    from google.protobuf.json_format import MessageToDict
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        (path,) = sorted(path.glob("run-*.wandb"))
    run = OfflineRun(path=path)
    for payload in iter_records(path):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group = r.run_id, r.project, r.run_group
            run.name, run.job_type, run.tags = r.display_name, r.job_type, list(r.tags)
            for item in r.config.update:
                _set(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, item)
            for item in record.config.remove:
                _remove(run.config, item)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, item)
            for item in record.summary.remove:
                _remove(run.summary, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item)
            run.history.append(row)
        elif kind == "metric":
            definition = MessageToDict(record.metric, preserving_proto_field_name=True)
            run.metrics[definition.get("name") or definition.get("glob_name", "")] = definition
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def offline_runs(run_dir: Path) -> list[OfflineRun]:
    """Every offline W&B run under a run directory, oldest first."""
    return [read_offline_run(p) for p in sorted(Path(run_dir).glob("**/offline-run-*/run-*.wandb"))]
