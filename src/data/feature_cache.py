"""On-disk cache of frozen-encoder features: computed once, memory-mapped by later epochs and runs.

An entry is keyed by dataset, split, a hash of the split's sample ids (in order), the encoder's
name and weights checksum (``Encoder.provenance``; a sha256 of the state dict when the provenance
has none) and the preprocessing settings: any change of a key gives a new entry. An entry is
written into a temporary folder (``features.npy`` + ``meta.json``), completed by a ``COMPLETE``
marker and only then renamed into place, so a run interrupted while writing never leaves a folder
that reads as complete (readers require the marker; stale temporary folders are ignored).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.models.encoders.base import Encoder

log = logging.getLogger("mmfusion")

COMPLETE = "COMPLETE"


def sha256_of(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def ids_hash(ids: Sequence[str]) -> str:
    """Order-sensitive hash of a split's sample ids."""
    return sha256_of("\n".join(map(str, ids)))


def weights_sha256(encoder: Encoder) -> str:
    """The provenance's ``sha256`` when it has one, else a hash of the encoder's parameters and buffers."""
    recorded = encoder.provenance.get("sha256")
    if recorded:
        return str(recorded)
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class FeatureCache:
    """A folder of entries ``<dataset>/<split>/<key hash>/{features.npy, meta.json, COMPLETE}``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def key(
        self,
        dataset: str,
        split: str,
        ids: Sequence[str],
        encoder: str,
        weights: str,
        preprocessing: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {
            "dataset": dataset,
            "split": split,
            "n_samples": len(ids),
            "ids_sha256": ids_hash(ids),
            "encoder": encoder,
            "weights_sha256": weights,
            "preprocessing": dict(preprocessing),
        }

    def path(self, key: Mapping[str, Any]) -> Path:
        digest = sha256_of(json.dumps(key, sort_keys=True, default=str))[:20]
        return self.root / str(key["dataset"]) / str(key["split"]) / digest

    def load(self, key: Mapping[str, Any]) -> np.ndarray | None:
        """The memory-mapped features of a complete entry, or None."""
        entry = self.path(key)
        if not (entry / COMPLETE).is_file():
            return None
        meta = json.loads((entry / "meta.json").read_text())
        if meta["key"] != json.loads(json.dumps(key, default=str)):
            raise RuntimeError(
                f"feature cache entry {entry} holds another key (hash collision?): {meta['key']}"
            )
        return np.load(entry / "features.npy", mmap_mode="r")

    def write(self, key: Mapping[str, Any], batches: Iterable[np.ndarray], n_rows: int) -> np.ndarray:
        """Write ``batches`` (rows in id order) as a new entry atomically; returns the memory map."""
        entry = self.path(key)
        tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        out: np.lib.format.open_memmap | None = None
        row = 0
        for batch in batches:
            batch = np.asarray(batch, dtype=np.float32)
            if out is None:
                out = np.lib.format.open_memmap(
                    tmp / "features.npy", mode="w+", dtype=np.float32, shape=(n_rows, *batch.shape[1:])
                )
            out[row : row + len(batch)] = batch
            row += len(batch)
        if out is None or row != n_rows:
            shutil.rmtree(tmp)
            raise RuntimeError(f"feature computation produced {row} rows, expected {n_rows}")
        out.flush()
        del out
        (tmp / "meta.json").write_text(json.dumps({"key": key}, indent=2, default=str))
        (tmp / COMPLETE).write_text("ok\n")
        if entry.exists():  # another process completed the same entry meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, entry)
        return np.load(entry / "features.npy", mmap_mode="r")

    def get_or_compute(
        self, key: Mapping[str, Any], compute: Callable[[], Iterable[np.ndarray]], n_rows: int
    ) -> np.ndarray:
        cached = self.load(key)
        if cached is not None:
            log.info("feature cache hit: %s", self.path(key))
            return cached
        log.info(
            "feature cache miss: computing %s/%s with %s -> %s",
            key["dataset"],
            key["split"],
            key["encoder"],
            self.path(key),
        )
        return self.write(key, compute(), n_rows)


def encode_batches(
    encoder: Encoder, batches: Iterable[tuple[Any, torch.Tensor | None]]
) -> Iterable[np.ndarray]:
    """Run a frozen encoder (eval mode, no grad) over ``(inputs, mask)`` batches; sequences are mean-pooled."""
    encoder.eval()
    with torch.no_grad():
        for x, mask in batches:
            y = encoder(x, mask)
            if encoder.returns_sequence:
                if mask is None:
                    y = y.mean(1)
                else:
                    m = mask.to(y.dtype).unsqueeze(-1)
                    y = (y * m).sum(1) / m.sum(1).clamp_min(1.0)
            yield y.detach().cpu().numpy()
