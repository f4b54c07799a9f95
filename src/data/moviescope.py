"""``data=moviescope``: Moviescope (Cascante-Bonilla et al. 2019) as read by the MuLT-GMU / BPMuLT code.

Folder layout (../shared/reference/data_formats.md): ``{train,dev,test}.jsonl`` (``id``, ``synopsis``,
``label`` list; 13 genres), per-id pickles ``200F_VGG16/<id>.p`` (200 x 4096 trailer-frame VGG16
features, possibly (1, 200, 4096)), ``PosterFeatures/<id>.p`` (4096, possibly (1, 4096)),
``Melspectrogram/<id>.p`` (96 mel bins x time) or ``MelgramPorcessed/<id>.p`` ((1, 4, 96, T')
chunks concatenated along time), and ``Metadata_matrices/{train,val,test}_metadata.npy`` with
``{split}_ids.pickle`` (id -> row; 'dev' is 'val' there). Python-2-era pickles are read with
``encoding="bytes"``, all through the restricted unpickler of :mod:`src.data.safe_pickle`
(``data.trust_pickle_files=true`` lifts it for files you trust). Every per-id pickle is opened and
validated when its split is loaded (missing, unreadable, wrong shape, NaN/inf: each through its
``data.on_problem`` policy) and read again on access; ``video`` and ``audio`` are sequences (audio as
(time, 96), cut to ``audio_max_frames``), ``poster`` and ``metadata`` vectors, ``text`` the synopsis
(a string: a text encoder makes its features, e.g. ``encoder/text=hashing``, as ``data=mmimdb``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.data.base import DatasetNotFoundError
from src.data.files import FileDataModule
from src.data.lazy import LazyDataset, RowReader
from src.data.safe_pickle import UnsafePickleError, load_pickle
from src.data.validate import BadShapeError
from src.errors import ConfigError, DataFormatError
from src.spec import ModalitySpec
from src.tasks import MULTILABEL

log = logging.getLogger("mmfusion")

SPLIT_FILES = {"train": "train", "val": "dev", "test": "test"}  # ours -> jsonl name
METADATA_SPLIT = {"train": "train", "val": "val", "test": "test"}
AUDIO_FOLDERS = ("Melspectrogram", "MelgramPorcessed")
HOW_TO_GET = "Moviescope is distributed on request by its authors; `python -m src.data.prepare moviescope` prints the steps."


def _float_array(x: Any, where: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise BadShapeError(f"{where}: holds {type(x).__name__}, expected a float array ({err})") from err


def video_array(x: np.ndarray, where: str) -> np.ndarray:
    x = _float_array(x, where)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2 or x.shape[1] != 4096:
        raise BadShapeError(
            f"{where}: frame features of shape {np.shape(x)}, expected (200, 4096) or (1, 200, 4096)"
        )
    return x


def poster_array(x: np.ndarray, where: str) -> np.ndarray:
    x = _float_array(x, where)
    x = x.reshape(-1) if x.shape in ((4096,), (1, 4096)) else x
    if x.shape != (4096,):
        raise BadShapeError(f"{where}: poster feature of shape {np.shape(x)}, expected (4096,) or (1, 4096)")
    return x


def mel_array(x: np.ndarray, where: str) -> np.ndarray:
    """(time, 96) from (96, T) or from (1, 4, 96, T') chunks concatenated along time."""
    x = _float_array(x, where)
    if x.ndim == 4 and x.shape[0] == 1 and x.shape[2] == 96:
        x = np.concatenate(list(x[0]), axis=1)
    if x.ndim != 2 or x.shape[0] != 96:
        raise BadShapeError(
            f"{where}: mel spectrogram of shape {np.shape(x)}, expected (96, T) or (1, 4, 96, T')"
        )
    return np.ascontiguousarray(x.T)


def read_feature_pickle(
    path: Path, convert: Callable[[np.ndarray, str], np.ndarray], trusted: bool = False
) -> np.ndarray:
    """One per-id pickle as the validated float array of its modality."""
    return convert(load_pickle(path, trusted=trusted), str(path))


class PickleReader:
    """``reader(row)``: the row's pickle, validated by ``convert``; rows without a file read as zeros
    (blank); rows in ``repair`` had NaN/inf blanked by the ``nonfinite: blank`` policy."""

    def __init__(
        self,
        paths: Sequence[Path | None],
        convert: Callable[[np.ndarray, str], np.ndarray],
        blank_shape: Sequence[int],
        max_rows: int | None = None,
        repair: set[int] | None = None,
        trusted: bool = False,
    ) -> None:
        self.paths, self.convert, self.blank_shape, self.max_rows = (
            list(paths),
            convert,
            tuple(blank_shape),
            max_rows,
        )
        self.repair, self.trusted = set(repair or ()), trusted

    def __call__(self, row: int) -> np.ndarray:
        path = self.paths[row]
        if path is None:
            return np.zeros(self.blank_shape, dtype=np.float32)
        x = read_feature_pickle(path, self.convert, self.trusted)
        if row in self.repair:
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        elif not np.isfinite(x).all():  # validated when the split was loaded: the file changed since
            raise DataFormatError(f"{path}: {int((~np.isfinite(x)).sum())} NaN/inf values")
        return x[: self.max_rows] if self.max_rows else x


class MoviescopeDataModule(FileDataModule):
    task = MULTILABEL
    name = "moviescope"

    def __init__(
        self,
        root: str,
        modalities: Sequence[str] = ("video", "audio", "poster", "metadata"),
        genres: Sequence[str] | None = None,
        audio_folder: str = "Melspectrogram",
        audio_max_frames: int = 1000,
        trust_pickle_files: bool = False,
        **options,
    ) -> None:
        super().__init__(**options)
        self.root = Path(root)
        self.trust_pickle_files = bool(trust_pickle_files)
        missing = [
            f"{name}.jsonl" for name in SPLIT_FILES.values() if not (self.root / f"{name}.jsonl").is_file()
        ]
        if missing:
            raise DatasetNotFoundError(
                f"Moviescope not found under {self.root}: missing {missing}.\n{HOW_TO_GET}"
            )
        if audio_folder not in AUDIO_FOLDERS:
            raise ConfigError(f"data.audio_folder={audio_folder!r}; expected one of {AUDIO_FOLDERS}")
        known = {"video", "audio", "poster", "metadata", "text"}
        if not set(modalities) <= known or not modalities:
            raise ConfigError(f"data.modalities={list(modalities)}; choose from {sorted(known)}")
        self.audio_folder, self.audio_max_frames = audio_folder, audio_max_frames
        self._rows = {s: self._read_jsonl(s) for s in SPLIT_FILES}
        self.class_names = (
            list(genres)
            if genres
            else sorted(
                {
                    g
                    for r in self._rows["train"]
                    if isinstance(r.get("label"), list)
                    for g in r["label"]
                    if isinstance(g, str)
                }
            )
        )
        specs: dict[str, ModalitySpec] = {
            "video": ModalitySpec("sequence", (200, 4096)),
            "audio": ModalitySpec("sequence", (audio_max_frames, 96)),
            "poster": ModalitySpec("vector", (4096,)),
            "text": ModalitySpec("text", ()),
        }
        if "metadata" in modalities:
            self._metadata = {s: self._read_metadata(s) for s in SPLIT_FILES}
            widths = {s: int(m.shape[1]) for s, (m, _) in self._metadata.items()}
            if len(set(widths.values())) > 1:
                files = {f"{METADATA_SPLIT[s]}_metadata.npy": w for s, w in widths.items()}
                raise DataFormatError(
                    f"{self.root / 'Metadata_matrices'}: the matrices have different numbers of columns {files}; "
                    "every split needs the same metadata columns"
                )
            specs["metadata"] = ModalitySpec("vector", (widths["train"],))
        self.modalities = {m: specs[m] for m in modalities}

    def _read_jsonl(self, split: str) -> list[dict[str, Any]]:
        path = self.root / f"{SPLIT_FILES[split]}.jsonl"
        rows = []
        first_line: dict[str, int] = {}
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise DataFormatError(f"{path}:{line_no}: not JSON ({err})") from err
            if not isinstance(row, dict) or "id" not in row:
                raise DataFormatError(
                    f"{path}:{line_no}: expected an object with 'id', 'synopsis' and a 'label' list; got keys {list(row) if isinstance(row, dict) else type(row)}"
                )
            movie_id = str(row["id"])
            if movie_id in first_line:
                raise DataFormatError(
                    f"{path}:{line_no}: id {movie_id} is already on line {first_line[movie_id]}; one line per movie"
                )
            first_line[movie_id] = line_no
            rows.append(row)
        return rows

    def _read_metadata(self, split: str) -> tuple[np.ndarray, dict[str, int]]:
        folder = self.root / "Metadata_matrices"
        name = METADATA_SPLIT[split]
        matrix_path, ids_path = folder / f"{name}_metadata.npy", folder / f"{name}_ids.pickle"
        for path in (matrix_path, ids_path):
            if not path.is_file():
                raise DatasetNotFoundError(
                    f"Moviescope metadata: {path} missing (or leave 'metadata' out of data.modalities)"
                )
        try:
            matrix = np.load(matrix_path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as err:
            raise DataFormatError(f"{matrix_path}: not a readable numeric .npy matrix ({err})") from err
        mapping = load_pickle(ids_path, trusted=self.trust_pickle_files)
        if not isinstance(mapping, dict) or not all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in mapping.values()
        ):
            raise DataFormatError(
                f"{ids_path}: expected a dict id -> row number, got {type(mapping).__name__}"
            )
        mapping = {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in mapping.items()}
        if matrix.ndim != 2:
            raise BadShapeError(f"{matrix_path}: shape {matrix.shape}, expected (movies, features)")
        rows = list(mapping.values())
        if rows and (min(rows) < 0 or max(rows) >= len(matrix)):
            raise DataFormatError(
                f"{matrix_path}: shape {matrix.shape} does not hold the rows of {ids_path} (rows {min(rows)}..{max(rows)})"
            )
        return matrix, mapping

    def preprocessing(self, modality: str) -> dict[str, Any]:
        return (
            {"audio_folder": self.audio_folder, "audio_max_frames": self.audio_max_frames}
            if modality == "audio"
            else {}
        )

    def load_split(self, split: str) -> LazyDataset:
        files = {
            "video": ("200F_VGG16", video_array, (200, 4096)),
            "audio": (self.audio_folder, mel_array, (1, 96)),
            "poster": ("PosterFeatures", poster_array, (4096,)),
        }
        jsonl = f"{SPLIT_FILES[split]}.jsonl"
        ids, labels, texts, meta_rows = [], [], [], []
        paths: dict[str, list[Path | None]] = {m: [] for m in files if m in self.modalities}
        repair: dict[str, set[int]] = {m: set() for m in paths}
        for row in self._rows[split]:
            movie_id = str(row["id"])
            genres = row.get("label")
            if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
                self.issues.problem(
                    split,
                    "unknown_label",
                    f"{jsonl} id {movie_id}: 'label' must be a list of genre names, got {genres!r}",
                    allow=("skip",),
                )
                continue
            unknown = sorted(set(genres) - set(self.class_names))
            if unknown or not genres:
                self.issues.problem(
                    split,
                    "unknown_label",
                    f"{jsonl} id {movie_id}: labels {genres} not in {self.class_names}",
                    allow=("skip",),
                )
                continue
            chosen: dict[str, Path | None] = {}
            blanked: set[str] = set()
            skip = False
            for m in paths:
                folder, convert, _ = files[m]
                path: Path | None = self.root / folder / f"{movie_id}.p"
                action = self._verify(split, movie_id, path, convert)
                if action == "skip":
                    skip = True
                    break
                if action == "blank":
                    path = None
                elif action == "repair":
                    blanked.add(m)
                chosen[m] = path
            if skip:
                continue
            if "metadata" in self.modalities:
                matrix, mapping = self._metadata[split]
                name = f"Metadata_matrices/{METADATA_SPLIT[split]}_metadata.npy"
                if movie_id not in mapping:
                    self.issues.problem(
                        split,
                        "missing_id",
                        f"id {movie_id} not in Metadata_matrices/{METADATA_SPLIT[split]}_ids.pickle",
                        allow=("skip",),
                    )
                    continue
                meta_row = mapping[movie_id]
                if not np.isfinite(matrix[meta_row]).all():
                    action = self.issues.problem(
                        split, "nonfinite", f"{name} row {meta_row} (id {movie_id}) has NaN/inf"
                    )
                    if action == "skip":
                        continue
                    matrix[meta_row] = np.nan_to_num(matrix[meta_row], nan=0.0, posinf=0.0, neginf=0.0)
                meta_rows.append(meta_row)
            synopsis = row.get("synopsis")
            if "text" in self.modalities and not (isinstance(synopsis, str) and synopsis.strip()):
                if self.issues.problem(split, "empty_text", f"id {movie_id}: empty synopsis") == "skip":
                    continue
                synopsis = ""
            for m in blanked:
                repair[m].add(len(ids))
            ids.append(movie_id)
            labels.append([g in genres for g in self.class_names])
            texts.append(synopsis if isinstance(synopsis, str) else "")
            for m, p in chosen.items():
                paths[m].append(p)
        readers: dict[str, Callable[[int], Any]] = {
            m: PickleReader(
                paths[m],
                files[m][1],
                files[m][2],
                self.audio_max_frames if m == "audio" else None,
                repair=repair[m],
                trusted=self.trust_pickle_files,
            )
            for m in paths
        }
        if "metadata" in self.modalities:
            readers["metadata"] = RowReader(self._metadata[split][0][meta_rows])
        if "text" in self.modalities:
            readers["text"] = texts.__getitem__
        log.info("moviescope %s: %d movies", split, len(ids))
        return LazyDataset(
            ids,
            {m: readers[m] for m in self.modalities},
            np.asarray(labels, dtype=np.float32).reshape(len(ids), -1),
        )

    def _verify(
        self, split: str, movie_id: str, path: Path, convert: Callable[[np.ndarray, str], np.ndarray]
    ) -> str | None:
        """Open and validate one per-id pickle now (so that training never meets a broken one);
        returns None when it is fine, else the policy's action: skip, blank, or repair (NaN/inf
        blanked). A pickle naming code outside the allow-list always stops (no policy)."""
        if not path.is_file():
            return self.issues.problem(split, "missing_file", f"{path} missing (id {movie_id})")
        try:
            x = read_feature_pickle(path, convert, self.trust_pickle_files)
        except UnsafePickleError:
            raise
        except BadShapeError as err:
            return self.issues.problem(split, "bad_shape", str(err))
        except DataFormatError as err:
            return self.issues.problem(split, "unreadable_file", str(err))
        if np.isfinite(x).all():
            return None
        action = self.issues.problem(
            split, "nonfinite", f"{path}: {int((~np.isfinite(x)).sum())} NaN/inf values (id {movie_id})"
        )
        return "repair" if action == "blank" else action
