"""``data=mmimdb``: MM-IMDb (Arevalo et al. 2017), 23 genres, multilabel.

Two published layouts (../shared/reference/data_formats.md): the raw archive (``split.json`` +
``dataset/<id>.json`` + ``dataset/<id>.jpeg``, ``data.format=raw``) and the authors' feature file
``multimodal_imdb.hdf5`` (``data.format=hdf5``, Fuel layout with a ``split`` attribute).

Raw layout: ``text`` is the plot (``plot_choice``: ``longest`` as the original pipeline, ``first``,
or ``all``: every plot of a training movie is its own sample, evaluation uses the longest),
optionally normalised (``text_normalization: original``), delivered as a string: the text encoder
(``encoder/text=...``; the dataset default is the hashed bag-of-words ``hashing``) receives
``list[str]`` per batch and makes the features. ``image`` is the poster resized/cropped to
``poster_size``, delivered as bytes (``poster_dtype: uint8``, converted to [0, 1] floats on the model
side) or as float32, and optionally decoded once into ``poster_cache``. Genre columns always follow
``GENRES`` (the paper's Table 1 order), whatever order
the files use, and every run records them as ``class_names``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from src.data.base import DatasetNotFoundError, SampleDataset, stratified_split
from src.data.feature_cache import FeatureCache
from src.data.files import FileDataModule
from src.data.images import PosterReader, decoded_posters, unit_floats, verify_images
from src.data.lazy import LazyDataset, RowReader
from src.data.validate import (
    BINARY,
    ArraySpec,
    check_array,
    check_split_ids,
    check_split_ranges,
    label_problems,
)
from src.errors import ConfigError, DataFormatError
from src.spec import ModalitySpec
from src.tasks import MULTILABEL

log = logging.getLogger("mmfusion")

#: the paper's Table 1 order (frequency); written into every run as ``class_names``
GENRES = [
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror", "Documentary",
    "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History", "Music", "Animation",
    "Musical", "Western", "Sport", "Short", "Film-Noir",
]  # fmt: skip
#: genres of the raw data that the standard 23-genre task drops (not an error)
DROPPED_GENRES = {"News", "Adult", "Talk-Show", "Reality-TV"}
SPLIT_NAMES = {"train": "train", "val": "dev", "test": "test"}  # ours -> the files'
HDF5_SOURCES = {"text": ("features", "three_grams", "word_grams"), "image": ("vgg_features", "images")}
#: the arrays of ``multimodal_imdb.hdf5`` as published (../shared/reference/data_formats.md)
HDF5_SPECS = {
    "features": ArraySpec(("N", 300)),  # mean word2vec of the plot
    "vgg_features": ArraySpec(("N", 4096)),  # VGG16 fc7 of the poster
    "images": ArraySpec(("N", 3, 256, 160), "int"),  # resized + cropped posters, 0-255
    "three_grams": ArraySpec(("N", "V")),  # tf-idf
    "word_grams": ArraySpec(("N", "V")),
    "genres": ArraySpec(("N", 23), "number"),  # 0/1 per genre, columns in target_names order
    "imdb_ids": ArraySpec(("N",), "str"),
}
#: rows read at a time when the posters of the ``images`` source are validated
IMAGE_CHECK_ROWS = 256

HOW_TO_GET = (
    "MM-IMDb is distributed by its authors at https://archive.org/details/mmimdb (mmimdb.tar.gz, ~8 GB, "
    "and multimodal_imdb.hdf5); `python -m src.data.prepare mmimdb` downloads it. Point data.root (or "
    "MMFUSION_DATA_DIR, which holds mmimdb/) at the unpacked folder."
)


def missing_files_message(root: Path, data_format: str) -> str | None:
    """None when ``root`` holds the files of ``data_format``; otherwise what is missing and how to get it."""
    if data_format == "hdf5":
        expected = root / "multimodal_imdb.hdf5"
        if expected.is_file():
            return None
        return f"MM-IMDb (data.format=hdf5) not found: looked for {expected}.\n{HOW_TO_GET}"
    split = root / "split.json"
    dataset_dir = root / "dataset"
    if split.is_file() and dataset_dir.is_dir():
        return None
    return (
        f"MM-IMDb (data.format=raw) not found under {root}: expected {split} and {dataset_dir}/<id>.json "
        f"+ {dataset_dir}/<id>.jpeg for every id of split.json (or data.format=hdf5 with "
        f"{root / 'multimodal_imdb.hdf5'}).\n{HOW_TO_GET}"
    )


def resplit_ids(splits: dict[str, list[str]], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """All ids of ``splits`` shuffled with ``seed`` and cut into train/val/test by ``fractions``.

    For protocols that re-split the movies themselves (the 2025 comparison: 70/15/15 at random).
    """
    if len(fractions) != 3 or not np.isclose(sum(fractions), 1.0):
        raise ConfigError(
            f"data.resplit={list(fractions)}: expected three train/val/test fractions summing to 1"
        )
    ids = sorted(i for split in splits.values() for i in split)
    cuts = stratified_split(np.zeros(len(ids), dtype=np.int64), [float(f) for f in fractions], seed)
    return {split: [ids[i] for i in idx] for split, idx in cuts.items()}


def read_split(path: Path) -> dict[str, list[str]]:
    """``split.json`` as {train, val, test: [ids]} (the file's ``dev`` is our ``val``); validated."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: not readable JSON ({err})") from err
    splits: dict[str, list[str]] = {}
    for ours, theirs in SPLIT_NAMES.items():
        ids = raw.get(theirs) if isinstance(raw, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DataFormatError(
                f"{path}: key {theirs!r} must be a list of id strings; file has keys {list(raw) if isinstance(raw, dict) else type(raw)}"
            )
        if len(set(ids)) != len(ids):
            raise DataFormatError(f"{path}: split {theirs!r} repeats ids")
        splits[ours] = ids
    check_split_ids(str(path), {SPLIT_NAMES[s]: ids for s, ids in splits.items()})
    return splits


_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_NON_WORD = re.compile(r"[^a-z0-9'\s]+")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The word2vec-style plot normalisation of the original pipeline (our implementation): lower
    case, HTML line breaks and punctuation to spaces (apostrophes kept), whitespace collapsed."""
    text = _BREAK.sub(" ", text.lower())
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text)).strip()


def genre_vector(genres: Any, where: str) -> tuple[np.ndarray | None, str | None]:
    """23-dim 0/1 vector of ``genres``; (None, reason) when the field is not a list or has no known genre."""
    if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
        return None, f"{where}: 'genres' must be a list of strings, got {genres!r}"
    unknown = sorted(set(genres) - set(GENRES) - DROPPED_GENRES)
    if unknown:
        return (
            None,
            f"{where}: genres {unknown} are neither among the 23 of the task {GENRES} nor the dropped {sorted(DROPPED_GENRES)}",
        )
    vector = np.array([g in genres for g in GENRES], dtype=np.float32)
    if not vector.any():
        return None, f"{where}: none of the 23 genres among {genres}"
    return vector, None


class MMIMDbDataModule(FileDataModule):
    task = MULTILABEL
    name = "mmimdb"

    def __init__(
        self,
        root: str,
        format: str = "raw",
        plot_choice: str = "longest",
        text_normalization: str = "none",
        poster_size: Sequence[int] = (256, 160),
        poster_mode: str = "resize_crop",
        poster_mean: Sequence[float] | None = None,
        poster_std: Sequence[float] | None = None,
        poster_dtype: str = "uint8",
        poster_cache: str | None = None,
        hdf5_sources: dict[str, str] | None = None,
        text_copies: Sequence[str] = (),
        resplit: Sequence[float] | None = None,
        resplit_seed: int = 0,
        **options,
    ) -> None:
        super().__init__(**options)
        if format not in ("raw", "hdf5"):
            raise ConfigError(f"data.format={format!r}; expected 'raw' or 'hdf5'")
        if resplit is not None and format != "raw":
            raise ConfigError(
                f"data.resplit={list(resplit)} needs data.format=raw (the hdf5 fixes its split)"
            )
        if plot_choice not in ("longest", "first", "all"):
            raise ConfigError(f"data.plot_choice={plot_choice!r}; expected longest, first or all")
        if text_normalization not in ("none", "original"):
            raise ConfigError(f"data.text_normalization={text_normalization!r}; expected none or original")
        if text_copies and format != "raw":
            raise ConfigError(f"data.text_copies needs data.format=raw (the plot as text), got {format!r}")
        clashes = sorted(set(text_copies) & {"text", "image"})
        if clashes:
            raise ConfigError(f"data.text_copies={list(text_copies)} reuses the modality names {clashes}")
        self.text_copies = list(text_copies)
        self.root = Path(root)
        self.format = format
        problem = missing_files_message(self.root, format)
        if problem:
            raise DatasetNotFoundError(problem)
        self.class_names = list(GENRES)
        self.plot_choice, self.text_normalization = plot_choice, text_normalization
        if poster_dtype not in ("float32", "uint8"):
            raise ConfigError(f"data.poster_dtype={poster_dtype!r}; expected uint8 or float32")
        if poster_dtype == "uint8" and (poster_mean is not None or poster_std is not None):
            raise ConfigError(
                "data.poster_mean/poster_std standardise float posters: set data.poster_dtype=float32 with them "
                "(uint8 posters reach the encoder as [0, 1] floats; ImageNet encoders standardise themselves)"
            )
        self.poster = {
            "size": [int(s) for s in poster_size],
            "mode": poster_mode,
            "mean": poster_mean,
            "std": poster_std,
        }
        self.poster_dtype = poster_dtype
        self.poster_cache = None if poster_cache is None else FeatureCache(poster_cache)
        if format == "raw":
            self._split_ids = read_split(self.root / "split.json")
            if resplit is not None:
                self._split_ids = resplit_ids(self._split_ids, resplit, resplit_seed)
                log.info(
                    "MM-IMDb: split.json's movies re-split %s at random (seed %d): %s",
                    list(resplit), resplit_seed, {k: len(v) for k, v in self._split_ids.items()},
                )  # fmt: skip
            text = ModalitySpec("text", ())
            image = ModalitySpec("image", (3, *self.poster["size"]), poster_dtype)
            self.modalities = {"text": text, "image": image}
            self.modalities.update(dict.fromkeys(self.text_copies, text))
        else:
            self.sources = {"text": "features", "image": "vgg_features", **(hdf5_sources or {})}
            self._h5_layout = self._read_hdf5_layout()

    def preprocessing(self, modality: str) -> dict[str, Any]:
        if self.format == "hdf5":
            return {"format": self.format, "source": self.sources[modality]}
        if modality == "image":
            return {"format": self.format, **self.poster}
        return {
            "format": self.format,
            "plot_choice": self.plot_choice,
            "text_normalization": self.text_normalization,
        }

    # raw --------------------------------------------------------------------------------------
    def load_split(self, split: str) -> SampleDataset | LazyDataset:
        return self._load_raw(split) if self.format == "raw" else self._load_hdf5(split)

    def _read_movie(self, split: str, movie_id: str) -> tuple[list[str], np.ndarray] | None:
        """(plots, genre vector) of one movie, or None when the policy skips it."""
        path = self.root / "dataset" / f"{movie_id}.json"
        if not path.is_file():
            self.issues.problem(
                split, "missing_id", f"id {movie_id} of split.json has no {path}", allow=("skip",)
            )
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError(f"top level is {type(meta).__name__}, expected an object")
        except (OSError, ValueError) as err:
            self.issues.problem(split, "unreadable_file", f"{path}: {err}", allow=("skip",))
            return None
        labels, reason = genre_vector(meta.get("genres"), str(path))
        if labels is None:
            self.issues.problem(split, "unknown_label", reason or "")
            return None
        plots = meta.get("plot")
        if isinstance(plots, str):
            plots = [plots]
        plots = (
            [p for p in plots or [] if isinstance(p, str) and p.strip()]
            if isinstance(plots, list | type(None))
            else []
        )
        if not plots:
            action = self.issues.problem(
                split, "empty_text", f"{path}: 'plot' has no non-empty string (got {meta.get('plot')!r})"
            )
            if action == "skip":
                return None
            plots = [""]
        return plots, labels

    def _load_raw(self, split: str) -> LazyDataset:
        movies: list[tuple[str, list[str], np.ndarray, Path | None]] = []
        for movie_id in self._split_ids[split]:
            movie = self._read_movie(split, movie_id)
            if movie is None:
                continue
            poster: Path | None = self.root / "dataset" / f"{movie_id}.jpeg"
            if not poster.is_file() or poster.stat().st_size == 0:
                what = "missing" if not poster.is_file() else "empty (0 bytes)"
                if self.issues.problem(split, "missing_file", f"poster {poster} is {what}") == "skip":
                    continue
                poster = None
            movies.append((movie_id, *movie, poster))
        if self.verify_media:  # decode every poster now, so that training never meets a broken one
            paths = [poster for *_, poster in movies if poster is not None]
            errors = dict(
                zip(paths, verify_images(paths, self.num_workers, f"mmimdb {split} posters"), strict=True)
            )
            verified = []
            for movie_id, plots, label, poster in movies:
                if poster is not None and errors[poster] is not None:
                    if self.issues.problem(split, "unreadable_file", errors[poster]) == "skip":
                        continue
                    poster = None
                verified.append((movie_id, plots, label, poster))
            movies = verified
        ids, texts, labels, posters = [], [], [], []
        for movie_id, plots, label, poster in movies:
            if self.plot_choice == "all" and split == "train":
                chosen = list(enumerate(plots))
            else:
                k = 0 if self.plot_choice == "first" else max(range(len(plots)), key=lambda j: len(plots[j]))
                chosen = [(k, plots[k])]
            for k, plot in chosen:
                ids.append(movie_id if len(chosen) == 1 else f"{movie_id}#{k}")
                texts.append(normalize_text(plot) if self.text_normalization == "original" else plot)
                labels.append(label)
                posters.append(poster)
        if not ids:
            raise DataFormatError(f"MM-IMDb {split}: no usable movie under {self.root}")
        log.info(
            "mmimdb %s: %d samples from %d ids of split.json", split, len(ids), len(self._split_ids[split])
        )
        text_reader = texts.__getitem__
        image_reader = PosterReader(
            posters,
            self.poster["size"],
            self.poster["mode"],
            self.poster["mean"],
            self.poster["std"],
            self.poster_dtype,
            self._decoded_posters(split, ids, posters),
        )
        readers = {
            "text": text_reader,
            "image": image_reader,
            **{name: text_reader for name in self.text_copies},
        }
        return LazyDataset(ids, readers, np.stack(labels))

    def _decoded_posters(self, split: str, ids: list[str], posters: list[Path | None]) -> np.ndarray | None:
        """With ``poster_cache``: the split's posters decoded once (uint8 (N, 3, H, W), memory-mapped,
        keyed by the split's ids and the poster settings like a feature-cache entry), else None."""
        if self.poster_cache is None:
            return None
        preprocessing = {k: v for k, v in self.preprocessing("image").items() if k not in ("mean", "std")}
        key = self.poster_cache.key(self.name, split, ids, "decoded posters", "", preprocessing)
        batches = partial(
            decoded_posters, posters, self.poster["size"], self.poster["mode"], self.num_workers,
            f"decode mmimdb {split} posters",
        )  # fmt: skip
        return self.poster_cache.get_or_compute(key, batches, len(ids), dtype=np.uint8)

    # hdf5 -------------------------------------------------------------------------------------
    def _read_hdf5_layout(self) -> dict[str, Any]:
        """Validate the feature file (arrays against ``HDF5_SPECS``, the Fuel split table, the genre
        names) and read its split ranges and genre order; sets ``modalities``."""
        path = self.root / "multimodal_imdb.hdf5"
        for modality, source in self.sources.items():
            if source not in HDF5_SOURCES.get(modality, ()):
                raise ConfigError(
                    f"data.hdf5_sources.{modality}={source!r}; expected one of {HDF5_SOURCES.get(modality)}"
                )
        with open_hdf5(path) as f:
            for key in (*self.sources.values(), "genres", "imdb_ids"):
                if key not in f:
                    raise DataFormatError(f"{path}: dataset {key!r} missing; the file has {sorted(f)}")
                check_array(f"{path}:{key}", f[key].shape, f[key].dtype, HDF5_SPECS[key])
            if "split" not in f.attrs:
                raise DataFormatError(
                    f"{path}: no Fuel 'split' attribute (structured array of split/source/start/stop)"
                )
            table = f.attrs["split"]
            names = table.dtype.names or ()
            if not {"split", "source", "start", "stop"} <= set(names):
                raise DataFormatError(
                    f"{path}: 'split' attribute has fields {names}, expected split, source, start, stop"
                )
            ranges: dict[tuple[str, str], tuple[int, int]] = {}
            for row in table:
                ranges[(_text(row["split"]), _text(row["source"]))] = (int(row["start"]), int(row["stop"]))
            target_names = f["genres"].attrs.get("target_names")
            if target_names is None:
                raise DataFormatError(f"{path}: 'genres' has no 'target_names' attribute")
            names_list = (
                json.loads(_text(target_names))
                if isinstance(target_names, bytes | str)
                else [_text(t) for t in target_names]
            )
            if sorted(names_list) != sorted(GENRES):
                raise DataFormatError(
                    f"{path}: genres/target_names {names_list} are not the 23 genres {GENRES}"
                )
            n = len(f["genres"])
            shapes = {m: list(f[s].shape[1:]) for m, s in self.sources.items()}
            for key in (*self.sources.values(), "imdb_ids"):
                if len(f[key]) != n:
                    raise DataFormatError(f"{path}: {key!r} has {len(f[key])} rows, genres has {n}")
        self.modalities = {
            m: ModalitySpec("image", tuple(shapes[m]), self.poster_dtype)
            if self.sources[m] == "images"
            else ModalitySpec("vector", tuple(shapes[m]))
            for m in self.sources
        }
        layout = {
            "path": path,
            "ranges": ranges,
            "names": names_list,
            "order": [names_list.index(g) for g in GENRES],
        }
        split_rows = {SPLIT_NAMES[s]: self._split_range(s, layout) for s in SPLIT_NAMES}
        check_split_ranges(f"{path} ('split' attribute)", split_rows, n)
        return layout

    def _split_range(self, split: str, layout: dict[str, Any] | None = None) -> tuple[int, int]:
        layout = layout or self._h5_layout
        ranges, theirs = layout["ranges"], SPLIT_NAMES[split]
        found = {ranges[(theirs, s)] for s in (*self.sources.values(), "genres") if (theirs, s) in ranges}
        if not found:
            raise DataFormatError(f"{layout['path']}: the split attribute has no rows for split {theirs!r}")
        if len(found) > 1:
            raise DataFormatError(
                f"{layout['path']}: sources disagree on the {theirs!r} range: {sorted(found)}"
            )
        return found.pop()

    def _load_hdf5(self, split: str) -> SampleDataset | LazyDataset:
        start, stop = self._split_range(split)
        path = self._h5_layout["path"]
        with open_hdf5(path) as f:
            ids = [_text(i) for i in f["imdb_ids"][start:stop]]
            file_labels = np.asarray(f["genres"][start:stop])
            vectors = {
                m: np.asarray(f[s][start:stop], dtype=np.float32)
                for m, s in self.sources.items()
                if self.modalities[m].kind == "vector"
            }
            if "images" in self.sources.values():
                check_pixels(f, "images", start, stop, path)
        keep = np.ones(len(ids), dtype=bool)
        problems = label_problems(file_labels, BINARY, self._h5_layout["names"])
        flagged = {row for row, _ in problems}
        no_genre = np.flatnonzero(np.nan_to_num(file_labels).sum(1) == 0)
        problems += [(int(row), "has no genre") for row in no_genre if row not in flagged]
        for row, reason in sorted(problems):
            self.issues.problem(
                split,
                "unknown_label",
                f"{path}:genres[{start + row}] (id {ids[row]}) {reason}",
                allow=("skip",),
            )
            keep[row] = False
        labels = file_labels[:, self._h5_layout["order"]].astype(np.float32)
        for m, array in vectors.items():
            bad = ~np.isfinite(array).all(axis=1)
            for row in np.flatnonzero(bad & keep):
                action = self.issues.problem(
                    split, "nonfinite", f"{path}:{self.sources[m]}[{start + row}] (id {ids[row]}) has NaN/inf"
                )
                if action == "skip":
                    keep[row] = False
                else:
                    array[row] = np.nan_to_num(array[row], nan=0.0, posinf=0.0, neginf=0.0)
        rows = np.flatnonzero(keep)
        readers = {m: RowReader(v[rows]) for m, v in vectors.items()}
        for m, source in self.sources.items():
            if m not in vectors:
                readers[m] = H5RowReader(path, source, start + rows, self.poster_dtype)
        return LazyDataset([ids[r] for r in rows], readers, labels[rows])


def open_hdf5(path: Path) -> h5py.File:
    """``h5py.File(path, "r")``; a file that is not (or no longer) HDF5, e.g. truncated, is named."""
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({err})") from err


def check_pixels(f: h5py.File, key: str, start: int, stop: int, path: Path) -> None:
    """The posters of rows [start, stop) hold 0-255 pixel values (read in chunks)."""
    for lo in range(start, stop, IMAGE_CHECK_ROWS):
        chunk = np.asarray(f[key][lo : min(lo + IMAGE_CHECK_ROWS, stop)])
        low, high = int(chunk.min(initial=0)), int(chunk.max(initial=0))
        if low < 0 or high > 255:
            raise DataFormatError(
                f"{path}:{key}[{lo}:{min(lo + IMAGE_CHECK_ROWS, stop)}] holds values in [{low}, {high}]; "
                "the published posters are 0-255 pixels"
            )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | np.bytes_) else str(value)


class H5RowReader:
    """Rows of the hdf5's posters read on access, as uint8 or float32 in [0, 1] (``dtype``); the file
    is opened once per process."""

    def __init__(self, path: Path, key: str, rows: np.ndarray, dtype: str = "float32") -> None:
        self.path, self.key, self.rows, self.dtype = path, key, rows, dtype
        self._file: h5py.File | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}

    def __call__(self, row: int) -> np.ndarray:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        pixels = np.asarray(self._file[self.key][int(self.rows[row])]).astype(np.uint8)  # 0-255 (checked)
        return pixels if self.dtype == "uint8" else unit_floats(pixels)
