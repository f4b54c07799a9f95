"""``data=iemocap|mosi|mosei|mosei_emotions``: the MulT pickles (Tsai et al. 2019).

``<stem>_data.pkl`` (word-aligned, ``data.aligned=true``) or ``<stem>_data_noalign.pkl``: a pickled
dict ``{"train"|"valid"|"test": {"text": (N, T_l, 300), "audio": (N, T_a, 74), "vision": (N, T_v,
35), "labels": ..., optional "id"}}``, zero-padded per modality. Each modality becomes a
``sequence`` with a padding mask derived from the zero steps (a step is real when any feature is
non-zero). ``-inf`` in ``audio`` is replaced by 0 as in the reference loader and counted; other
NaN/inf values follow ``data.on_problem.nonfinite``. Labels are validated before they become targets
(``src.data.validate.label_problems``): a bad row is an ``unknown_label`` problem naming split, row
and class. The pickle is read by the restricted unpickler of :mod:`src.data.safe_pickle`
(``data.trust_pickle_files=true`` to lift it for files you trust).

Tasks: IEMOCAP's (N, 4, 2) one-hot labels become 4 binary emotions (Neutral, Happy, Sad, Angry,
multilabel); MOSI/MOSEI sentiment (N, 1, 1) in [-3, 3] is regression; ``mosei_emotions`` reads the
CMU-SDK 7-column layout (sentiment, then happy, sad, anger, surprise, disgust, fear) and makes the
6-emotion multilabel task (emotion present when its intensity is > 0, Dai et al. 2021).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from src.data.base import DatasetNotFoundError, SampleDataset
from src.data.files import FileDataModule
from src.data.safe_pickle import load_pickle
from src.data.validate import INTENSITIES, ONEHOT_PAIRS, SENTIMENT, ArraySpec, check_array, label_problems
from src.errors import ConfigError, DataFormatError
from src.spec import ModalitySpec
from src.tasks import MULTILABEL, REGRESSION

log = logging.getLogger("mmfusion")

FEATURE_DIMS = {"text": 300, "audio": 74, "vision": 35}
SPLIT_KEYS = {"train": "train", "val": "valid", "test": "test"}
IEMOCAP_EMOTIONS = ["Neutral", "Happy", "Sad", "Angry"]
MOSEI_EMOTIONS = ["happy", "sad", "anger", "surprise", "disgust", "fear"]
#: task name -> (file stem, task, class names)
TASKS: dict[str, tuple[str, str, list[str]]] = {
    "iemocap": ("iemocap", MULTILABEL, IEMOCAP_EMOTIONS),
    "mosi": ("mosi", REGRESSION, ["sentiment"]),
    "mosei": ("mosei_senti", REGRESSION, ["sentiment"]),
    "mosei_emotions": ("mosei_senti", MULTILABEL, MOSEI_EMOTIONS),
}
HOW_TO_GET = (
    "The processed MulT pickles are distributed with github.com/yaohungt/Multimodal-Transformer "
    "(README: 'Data Download'); IEMOCAP itself needs a licence from https://sail.usc.edu/iemocap/. "
    "`python -m src.data.prepare {name}` prints the steps. Put the .pkl files in data.root."
)


def _key(mapping: dict, key: str) -> Any:
    """``mapping[key]`` also when the pickle came from python 2 (bytes keys)."""
    if key in mapping:
        return mapping[key]
    return mapping.get(key.encode())


def label_array(task: str, labels: Any, where: str) -> np.ndarray:
    """The file's label array as float32, its shape checked against the task's published layout."""
    try:
        labels = np.asarray(labels, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{where}: labels are not numeric ({err})") from err
    n = len(labels)
    if task == "iemocap":
        if labels.shape[1:] != (4, 2):
            raise DataFormatError(
                f"{where}: IEMOCAP labels have shape {labels.shape}, expected (N, 4, 2) one-hot per emotion"
            )
        return labels
    flat = labels.reshape(n, -1)
    if task == "mosei_emotions" and flat.shape[1] != 7:
        raise DataFormatError(
            f"{where}: labels have {flat.shape[1]} column(s) (shape {labels.shape}); the 6-emotion task needs the "
            "CMU-SDK 7-column layout (sentiment, happy, sad, anger, surprise, disgust, fear). The MulT mosei_senti "
            "pickles carry sentiment only: use data=mosei for them, or a pickle built from the SDK's All Labels."
        )
    if task in ("mosi", "mosei") and flat.shape[1] != 1:
        raise DataFormatError(f"{where}: sentiment labels have shape {labels.shape}, expected (N, 1, 1)")
    return flat


def label_row_problems(task: str, labels: np.ndarray) -> list[tuple[int, str]]:
    """(row, reason) of the rows of a :func:`label_array` that break the task's layout."""
    if task == "iemocap":
        return label_problems(labels, ONEHOT_PAIRS, IEMOCAP_EMOTIONS)
    if task == "mosei_emotions":
        sentiment = [
            (r, f"sentiment {why}") for r, why in label_problems(labels[:, :1], SENTIMENT, ["sentiment"])
        ]
        return sorted(sentiment + label_problems(labels[:, 1:], INTENSITIES, MOSEI_EMOTIONS))
    return label_problems(labels, SENTIMENT, ["sentiment"])


def labels_for(task: str, labels: np.ndarray) -> np.ndarray:
    """The task's targets from a validated :func:`label_array`: IEMOCAP's one-hot pairs -> 0/1 per
    emotion, emotion intensities -> present when > 0, sentiment as is."""
    if task == "iemocap":
        return labels.argmax(-1).astype(np.float32)
    if task == "mosei_emotions":
        return (labels[:, 1:] > 0).astype(np.float32)
    return labels


def padding_mask(x: np.ndarray) -> np.ndarray:
    """(N, T) bool, True where a step has any non-zero feature (the files zero-pad)."""
    return (x != 0).any(-1)


class MulTDataModule(FileDataModule):
    """One of the MulT pickle datasets; ``dataset`` picks the task (see ``TASKS``)."""

    def __init__(
        self,
        root: str,
        dataset: str,
        aligned: bool = True,
        file_stem: str | None = None,
        trust_pickle_files: bool = False,
        **options,
    ) -> None:
        super().__init__(**options)
        if dataset not in TASKS:
            raise ConfigError(f"data.dataset={dataset!r}; expected one of {sorted(TASKS)}")
        self.trust_pickle_files = bool(trust_pickle_files)
        stem, self.task, names = TASKS[dataset]
        self.name = dataset
        self.dataset = dataset
        self.aligned = aligned
        self.path = Path(root) / f"{file_stem or stem}_data{'' if aligned else '_noalign'}.pkl"
        if not self.path.is_file():
            other = self.path.with_name(f"{file_stem or stem}_data{'_noalign' if aligned else ''}.pkl")
            hint = (
                f" ({other.name} exists: set data.aligned={str(not aligned).lower()})"
                if other.is_file()
                else ""
            )
            raise DatasetNotFoundError(
                f"{dataset}: {self.path} not found{hint}.\n{HOW_TO_GET.format(name=dataset)}"
            )
        self._data = self._read()
        self.class_names = list(names)
        train = self._data[SPLIT_KEYS["train"]]
        self.modalities = {
            m: ModalitySpec("sequence", tuple(np.shape(_key(train, m))[1:])) for m in FEATURE_DIMS
        }

    def _read(self) -> dict:
        data = load_pickle(self.path, trusted=self.trust_pickle_files)
        if not isinstance(data, dict):
            raise DataFormatError(
                f"{self.path}: top level is {type(data).__name__}, expected a dict of splits"
            )
        data = {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}
        for theirs in SPLIT_KEYS.values():
            split = data.get(theirs)
            if not isinstance(split, dict):
                raise DataFormatError(
                    f"{self.path}: split key {theirs!r} missing or not a dict; keys: {sorted(data)}"
                )
            n = None
            for m, dim in FEATURE_DIMS.items():
                x = _key(split, m)
                if x is None:
                    raise DataFormatError(
                        f"{self.path}[{theirs!r}]: no {m!r} array; keys: {sorted(map(str, split))}"
                    )
                shape = np.shape(x)
                check_array(
                    f"{self.path}[{theirs!r}][{m!r}]",
                    shape,
                    getattr(x, "dtype", None),
                    ArraySpec(("N", "T", dim), "number"),
                )
                if n is not None and shape[0] != n:
                    raise DataFormatError(
                        f"{self.path}[{theirs!r}][{m!r}]: {shape[0]} rows, other modalities have {n}"
                    )
                n = shape[0]
            labels = _key(split, "labels")
            if labels is None or len(labels) != n:
                raise DataFormatError(f"{self.path}[{theirs!r}]['labels']: missing or not {n} rows")
        return data

    def load_split(self, split: str) -> SampleDataset:
        theirs = SPLIT_KEYS[split]
        raw = self._data[theirs]
        where = f"{self.path}[{theirs!r}]"
        file_labels = label_array(self.dataset, _key(raw, "labels"), f"{where}['labels']")
        keep = np.ones(len(file_labels), dtype=bool)
        for row, reason in label_row_problems(self.dataset, file_labels):
            self.issues.problem(split, "unknown_label", f"{where}['labels'][{row}] {reason}", allow=("skip",))
            keep[row] = False
        labels = labels_for(self.dataset, np.nan_to_num(file_labels))
        arrays = {m: np.array(_key(raw, m), dtype=np.float32) for m in FEATURE_DIMS}
        neg_inf = np.isneginf(arrays["audio"])
        self.issues.fixed(split, "audio_neg_inf_to_0", int(neg_inf.sum()))
        arrays["audio"][neg_inf] = 0.0
        for m, x in arrays.items():
            bad_rows = np.flatnonzero(~np.isfinite(x).all(axis=(1, 2)) & keep)
            for row in bad_rows:
                action = self.issues.problem(
                    split,
                    "nonfinite",
                    f"{where}[{m!r}][{row}]: {int((~np.isfinite(x[row])).sum())} NaN/inf values",
                )
                if action == "skip":
                    keep[row] = False
                else:
                    x[row] = np.nan_to_num(x[row], nan=0.0, posinf=0.0, neginf=0.0)
        rows = np.flatnonzero(keep)
        ids = self._ids(raw, len(labels), theirs)
        return SampleDataset(
            ids=[ids[r] for r in rows],
            modalities={m: x[rows] for m, x in arrays.items()},
            labels=labels[rows],
            extras={f"{m}_mask": padding_mask(x[rows]) for m, x in arrays.items()},
        )

    @staticmethod
    def _ids(raw: dict, n: int, split: str) -> list[str]:
        """The file's ``id`` rows joined with '_' (a repeated id made unique as ``<id>#<row>``), or
        ``<split>:row<i>`` when the file has none (then no overlap between splits can be checked)."""
        given = _key(raw, "id")
        if given is None or len(given) != n:
            return [f"{split}:row{i:06d}" for i in range(n)]
        ids = [
            "_".join(str(v.decode() if isinstance(v, bytes) else v) for v in np.atleast_1d(row))
            for row in given
        ]
        if len(set(ids)) != n:
            ids = [f"{i}#{r}" for r, i in enumerate(ids)]
        return ids
