"""On-disk cache of frozen-encoder features (and of decoded posters, ``data.poster_cache``): computed
once, memory-mapped by later epochs and runs.

An entry is keyed by dataset, split, a hash of the split's sample ids (in order), the encoder's
name and weights checksum (given by the feature step, :mod:`src.precompute`) and the preprocessing settings: any change of a key gives a new entry. An entry is
written into a temporary folder (``features.npy`` + ``meta.json``), completed by a ``COMPLETE``
marker and only then renamed into place, so a run interrupted while writing never leaves a folder
that reads as complete (readers require the marker; stale temporary folders are ignored).

``meta.json`` records the key, the array's shape and dtype and the sha256 of ``features.npy``.
Loading verifies all of them (and that the features are finite and have the rows and width the
caller expects) before the file is memory-mapped: an overwritten, truncated, short, re-typed or
non-finite entry is logged with the reason, deleted and computed again. Computed features that are
not finite are an error naming the entry (they would train to NaN).
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

from src.errors import DataFormatError

log = logging.getLogger("mmfusion")

COMPLETE = "COMPLETE"


def sha256_of(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def ids_hash(ids: Sequence[str]) -> str:
    """Order-sensitive hash of a split's sample ids."""
    return sha256_of("\n".join(map(str, ids)))


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

    def load(self, key: Mapping[str, Any], width: int | None = None) -> np.ndarray | None:
        """The memory-mapped features of a complete, verified entry, or None (no entry, or one that
        failed verification: it is logged, deleted, and the caller computes it again)."""
        entry = self.path(key)
        if not (entry / COMPLETE).is_file():
            return None
        problem = self.verify(entry, key, width)
        if problem is None:
            return np.load(entry / "features.npy", mmap_mode="r")
        log.warning("feature cache entry %s %s: deleting it and computing the features again", entry, problem)
        shutil.rmtree(entry, ignore_errors=True)
        return None

    @staticmethod
    def verify(entry: Path, key: Mapping[str, Any], width: int | None = None) -> str | None:
        """None when ``entry`` holds what ``meta.json`` says (checksum, shape, dtype, finite values)
        for ``key``, with ``key["n_samples"]`` rows of ``width`` features; else what is wrong."""
        try:
            meta = json.loads((entry / "meta.json").read_text())
            recorded_key, shape, dtype, digest = meta["key"], meta["shape"], meta["dtype"], meta["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            return (
                f"has no readable meta.json with key, shape, dtype and sha256 ({type(err).__name__}: {err})"
            )
        if recorded_key != json.loads(json.dumps(key, default=str)):
            return f"holds another key (hash collision?): {recorded_key}"
        expected = [int(key["n_samples"]), *([width] if width is not None else shape[1:])]
        if list(shape) != expected:
            return f"records shape {shape}, expected {expected}"
        features = entry / "features.npy"
        try:
            found = sha256_file(features)
        except OSError as err:
            return f"has no readable features.npy ({err})"
        if found != digest:
            return f"features.npy has sha256 {found[:12]}..., meta.json records {digest[:12]}... (overwritten or truncated)"
        array = np.load(features, mmap_mode="r")
        if list(array.shape) != list(shape) or str(array.dtype) != dtype:
            return f"features.npy is {array.dtype} {list(array.shape)}, meta.json records {dtype} {shape}"
        if not np.isfinite(array).all():
            return "holds NaN/inf features"
        return None

    def write(
        self, key: Mapping[str, Any], batches: Iterable[np.ndarray], n_rows: int, dtype: Any = np.float32
    ) -> np.ndarray:
        """Write ``batches`` (rows in id order, as ``dtype``) as a new entry atomically; returns the memory map."""
        entry = self.path(key)
        tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        out: np.lib.format.open_memmap | None = None
        row = 0
        for batch in batches:
            batch = np.asarray(batch, dtype=dtype)
            if out is None:
                out = np.lib.format.open_memmap(
                    tmp / "features.npy", mode="w+", dtype=dtype, shape=(n_rows, *batch.shape[1:])
                )
            out[row : row + len(batch)] = batch
            row += len(batch)
        if out is None or row != n_rows:
            shutil.rmtree(tmp)
            raise RuntimeError(f"feature computation produced {row} rows, expected {n_rows}")
        bad = np.flatnonzero(~np.isfinite(out.reshape(n_rows, -1)).all(1))
        if bad.size:
            shutil.rmtree(tmp)
            raise DataFormatError(
                f"feature cache {entry}: {key['encoder']} produced NaN/inf features for {bad.size} of the "
                f"{n_rows} samples of {key['dataset']}/{key['split']} (rows {bad[:5].tolist()}); nothing was cached"
            )
        out.flush()
        shape, dtype = list(out.shape), str(out.dtype)
        del out
        meta = {"key": key, "shape": shape, "dtype": dtype, "sha256": sha256_file(tmp / "features.npy")}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        (tmp / COMPLETE).write_text("ok\n")
        if entry.exists():  # another process completed the same entry meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, entry)
        return np.load(entry / "features.npy", mmap_mode="r")

    def get_or_compute(
        self,
        key: Mapping[str, Any],
        compute: Callable[[], Iterable[np.ndarray]],
        n_rows: int,
        width: int | None = None,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        """The verified cached features of ``key`` ((n_rows, width); or (n_rows, ...) as computed when
        ``width`` is None), computed and stored as ``dtype`` when needed."""
        cached = self.load(key, width)
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
        return self.write(key, compute(), n_rows, dtype)
