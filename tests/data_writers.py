"""Writers of small files in the published dataset layouts (../shared/reference/data_formats.md), for tests."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from src.data.mmimdb import GENRES


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (20, 30)) -> None:
    """A small RGB JPEG (width, height) of seeded noise."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, "JPEG")


def write_mmimdb_raw(root: Path, n_per_split: tuple[int, int, int] = (12, 6, 6)) -> dict[str, list[str]]:
    """``split.json`` + ``dataset/<id>.json`` (plot list, genres incl. a dropped one) + ``dataset/<id>.jpeg``."""
    (root / "dataset").mkdir(parents=True, exist_ok=True)
    split, k = {}, 0
    for name, n in zip(("train", "dev", "test"), n_per_split, strict=True):
        split[name] = []
        for _ in range(n):
            movie_id = f"{1000000 + k:07d}"
            genres = [GENRES[k % 3], GENRES[3 + k % 5]] + (["News"] if k % 4 == 0 else [])
            plots = [f"Short plot {k}.", f"A much longer plot number {k}, about <br /> {genres[0]}!"]
            meta = {
                "title": f"Movie {k}",
                "year": 2000 + k,
                "plot": plots,
                "genres": genres,
                "director": ["X"],
            }
            (root / "dataset" / f"{movie_id}.json").write_text(json.dumps(meta))
            write_jpeg(root / "dataset" / f"{movie_id}.jpeg", k, size=(18 + k % 3, 27))
            split[name].append(movie_id)
            k += 1
    (root / "split.json").write_text(json.dumps(split))
    return split


def write_mmimdb_hdf5(
    path: Path, n: tuple[int, int, int] = (12, 6, 6), genre_order: list[str] | None = None
) -> np.ndarray:
    """``multimodal_imdb.hdf5`` in the Fuel layout (rows train, dev, test; ``split`` attribute). Returns genres in GENRES order."""
    order = genre_order or GENRES
    total = sum(n)
    rng = np.random.default_rng(0)
    genres_ours = np.zeros((total, len(GENRES)), dtype=np.int32)
    genres_ours[np.arange(total), np.arange(total) % 4] = 1
    genres_ours[np.arange(total), 5 + np.arange(total) % 3] = 1
    genres_file = genres_ours[:, [GENRES.index(g) for g in order]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["features"] = rng.normal(size=(total, 300)).astype(np.float32) + genres_ours[:, :1]
        f["vgg_features"] = rng.random((total, 4096)).astype(np.float32)
        f["images"] = rng.integers(0, 255, (total, 3, 256, 160), dtype=np.int32)
        f["three_grams"] = rng.random((total, 10)).astype(np.float32)
        f["word_grams"] = rng.random((total, 10)).astype(np.float32)
        f["genres"] = genres_file
        f["genres"].attrs["target_names"] = json.dumps(order)
        f["imdb_ids"] = np.array([f"{2000000 + i:07d}".encode() for i in range(total)], dtype="S7")
        dtype = np.dtype([("split", "S5"), ("source", "S15"), ("start", np.int64), ("stop", np.int64),
                          ("indices", h5py.ref_dtype), ("available", bool), ("comment", "S1")])  # fmt: skip
        bounds = np.cumsum([0, *n])
        rows = [
            (split.encode(), source.encode(), bounds[i], bounds[i + 1], h5py.Reference(), True, b".")
            for i, split in enumerate(("train", "dev", "test"))
            for source in (
                "features",
                "vgg_features",
                "images",
                "three_grams",
                "word_grams",
                "genres",
                "imdb_ids",
            )
        ]
        f.attrs["split"] = np.array(rows, dtype=dtype)
    return genres_ours


def write_mult_pickle(
    path: Path,
    name: str,
    sizes: tuple[int, int, int] = (16, 8, 8),
    steps: tuple[int, int, int] = (6, 7, 5),
    neg_inf: int = 2,
) -> dict:
    """A MulT ``<name>_data(_noalign).pkl``: {train, valid, test: {text, audio, vision, labels, id}}."""
    rng = np.random.default_rng(1)
    data = {}
    for split, n in zip(("train", "valid", "test"), sizes, strict=True):
        arrays = {}
        for key, t, d in zip(("text", "audio", "vision"), steps, (300, 74, 35), strict=True):
            x = rng.normal(size=(n, t, d)).astype(np.float32)
            x[:, : t // 3] = 0.0  # MulT files pad at the front with zeros
            arrays[key] = x
        if neg_inf:
            arrays["audio"][0, -1, :neg_inf] = -np.inf
        if name == "iemocap":
            onehot = np.zeros((n, 4, 2), dtype=np.float32)
            onehot[
                np.arange(n)[:, None], np.arange(4)[None, :], (np.arange(n)[:, None] + np.arange(4)) % 2
            ] = 1
            arrays["labels"] = onehot
        elif name == "mosei_emotions":
            arrays["labels"] = np.concatenate(
                [rng.uniform(-3, 3, (n, 1, 1)), rng.integers(0, 3, (n, 1, 6))], axis=2
            ).astype(np.float32)
        else:
            arrays["labels"] = rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32)
        arrays["id"] = np.array([[f"{split}_{i}", "0", "1"] for i in range(n)])
        data[split] = arrays
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return data


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (gzipped when the name ends in .gz): magic 2051 for (N, rows, cols), 2049 for (N,)."""
    import gzip

    magic = {3: 2051, 1: 2049}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_digit_images(root: Path, n_per_digit: int, prefix: str = "", seed: int = 0) -> np.ndarray:
    """``<prefix>images-idx3-ubyte.gz`` / ``<prefix>labels-idx1-ubyte.gz`` of digit-dependent 28x28 images."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_digit).astype(np.uint8)
    images = rng.integers(0, 40, (len(labels), 28, 28)).astype(np.uint8)
    for i, d in enumerate(labels):
        images[i, 2 * d : 2 * d + 6, 4:24] = 250  # a digit-specific bar
    write_idx(root / f"{prefix}images-idx3-ubyte.gz", images)
    write_idx(root / f"{prefix}labels-idx1-ubyte.gz", labels)
    return labels


def write_fsdd(
    root: Path, takes: int = 12, speakers: tuple[str, ...] = ("alice", "bob"), rate: int = 8000
) -> None:
    """``recordings/{digit}_{speaker}_{take}.wav``: 16-bit mono tones whose pitch depends on the digit."""
    import wave

    folder = root / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    for digit in range(10):
        for s, speaker in enumerate(speakers):
            for take in range(takes):
                n = rate // 4 + 40 * take
                t = np.arange(n) / rate
                signal = 0.5 * np.sin(2 * np.pi * (200 + 150 * digit + 10 * s) * t)
                with wave.open(str(folder / f"{digit}_{speaker}_{take}.wav"), "wb") as f:
                    f.setnchannels(1)
                    f.setsampwidth(2)
                    f.setframerate(rate)
                    f.writeframes((signal * 32767).astype("<i2").tobytes())


def python2_array_pickle(array: np.ndarray) -> bytes:
    """The bytes python 2's ``cPickle.dump(array, f, 2)`` writes for a float32 array: py2 ``str`` objects
    (BINSTRING opcodes) for the dtype and raw data, which python 3 only reads with ``encoding="bytes"``."""
    import struct

    def binstring(data: bytes) -> bytes:
        return (b"U" + bytes([len(data)]) if len(data) < 256 else b"T" + struct.pack("<I", len(data))) + data

    def integer(value: int) -> bytes:
        return b"J" + struct.pack("<i", value)

    shape = b"".join(integer(d) for d in array.shape) + {1: b"\x85", 2: b"\x86", 3: b"\x87"}[array.ndim]
    return (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85" + binstring(b"b") + b"\x87R"
        + b"(K\x01" + shape + b"cnumpy\ndtype\n" + binstring(b"f4") + b"K\x00K\x01\x87R"
        + b"(K\x03" + binstring(b"<") + b"NNN" + integer(-1) + integer(-1) + b"K\x00tb\x89"
        + binstring(np.ascontiguousarray(array, dtype="<f4").tobytes()) + b"tb."
    )  # fmt: skip


MOVIESCOPE_GENRES = ["action", "comedy", "drama"]


def write_moviescope(
    root: Path, n: tuple[int, int, int] = (8, 4, 4), python2: bool = True
) -> dict[str, list[str]]:
    """jsonl splits, per-id pickles (frames, poster, mel), metadata matrices with id maps ('val' naming)."""
    rng = np.random.default_rng(2)
    for folder in ("200F_VGG16", "PosterFeatures", "Melspectrogram", "Metadata_matrices"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    ids: dict[str, list[str]] = {}
    k = 0
    for split, meta_name, count in zip(("train", "dev", "test"), ("train", "val", "test"), n, strict=True):
        lines, ids[split] = [], []
        for _ in range(count):
            movie_id = f"tt{k:05d}"
            labels = [MOVIESCOPE_GENRES[k % 3]] + ([MOVIESCOPE_GENRES[(k + 1) % 3]] if k % 2 else [])
            lines.append(json.dumps({"id": movie_id, "synopsis": f"Synopsis of movie {k}.", "label": labels}))
            frames = rng.normal(size=(1, 200, 4096) if k % 2 else (200, 4096)).astype(np.float32)
            poster = rng.normal(size=(1, 4096) if k % 2 else (4096,)).astype(np.float32)
            mel = rng.normal(size=(96, 30 + k)).astype(np.float32)
            for folder, array in (
                ("200F_VGG16", frames),
                ("PosterFeatures", poster),
                ("Melspectrogram", mel),
            ):
                data = python2_array_pickle(array) if python2 and k % 2 == 0 else pickle.dumps(array)
                (root / folder / f"{movie_id}.p").write_bytes(data)
            ids[split].append(movie_id)
            k += 1
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        order = list(reversed(ids[split]))  # matrix rows in another order than the jsonl
        np.save(
            root / "Metadata_matrices" / f"{meta_name}_metadata.npy",
            np.stack([[int(i[2:]), 1.0, 2.0] for i in order]).astype(np.float32),
        )
        with open(root / "Metadata_matrices" / f"{meta_name}_ids.pickle", "wb") as f:
            pickle.dump({i: r for r, i in enumerate(order)}, f, protocol=2)
    return ids


def set_hdf5_split_ranges(path: Path, ranges: dict[str, tuple[int, int]]) -> None:
    """Rewrite the Fuel ``split`` attribute's (start, stop) of the named splits (train/dev/test)."""
    with h5py.File(path, "a") as f:
        table = f.attrs["split"].copy()
        for row in table:
            if row["split"].decode() in ranges:
                row["start"], row["stop"] = ranges[row["split"].decode()]
        f.attrs["split"] = table


def replace_hdf5_dataset(path: Path, key: str, array: np.ndarray) -> None:
    """Replace one dataset of an hdf5 file (keeping its attributes), e.g. with a wrongly shaped one."""
    with h5py.File(path, "a") as f:
        attrs = dict(f[key].attrs)
        del f[key]
        f[key] = array
        f[key].attrs.update(attrs)


def read_hdf5_dataset(path: Path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.array(f[key])


def rewrite_mult_pickle(path: Path, data: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(data, f)


class CodeRunningPickle:
    """Unpickling an instance runs ``touch <marker>`` through ``os.system``: what a malicious
    dataset pickle can do (the tests check that it never runs)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))
