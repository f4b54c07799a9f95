"""The checks every dataset format goes through, in one place.

- :func:`check_split_ids` / :func:`check_split_ranges`: the splits are disjoint (by sample id where
  the format has ids, by row range where it stores the splits as ranges of one array) and in range;
  an overlap is an error naming the splits and the first shared ids, never a silent leak.
- :class:`ArraySpec` / :func:`check_array`: an array's rank, sizes and dtype kind against the
  published format (``../shared/reference/data_formats.md``), naming file, key, expected and found.
- :func:`label_problems`: labels are finite and shaped as the format says (one-hot pairs, 0/1
  columns, class indices, sentiment in [-3, 3], non-negative intensities) *before* any transform
  turns them into targets; each bad row is reported with its class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from src.errors import DataFormatError

#: how many shared ids / bad rows a message quotes
EXAMPLES = 5


def source_id(sample_id: str) -> str:
    """The id of the source item a sample comes from: ``<id>#<k>`` samples (several plots of one
    movie, repeated ids made unique by row) belong to ``<id>``."""
    return sample_id.split("#", 1)[0]


def check_split_ids(source: str, splits: Mapping[str, Sequence[str]]) -> None:
    """Raise :class:`DataFormatError` when an id (of a source item) is in two splits."""
    owner: dict[str, str] = {}
    shared: dict[tuple[str, str], list[str]] = {}
    for split, ids in splits.items():
        for item in dict.fromkeys(source_id(str(i)) for i in ids):
            first = owner.setdefault(item, split)
            if first != split:
                shared.setdefault((first, split), []).append(item)
    if shared:
        parts = [
            f"{len(items)} ids of {a!r} are also in {b!r} (e.g. {items[:EXAMPLES]})"
            for (a, b), items in shared.items()
        ]
        raise DataFormatError(
            f"{source}: the splits overlap: {'; '.join(parts)}. A sample in two splits leaks "
            "training data into model selection or the test score; fix the split files."
        )


def check_split_ranges(source: str, ranges: Mapping[str, tuple[int, int]], n_rows: int) -> None:
    """Raise :class:`DataFormatError` unless every ``[start, stop)`` lies in ``[0, n_rows)``, is
    non-empty and overlaps no other split's range."""
    for split, (start, stop) in ranges.items():
        if not 0 <= start < stop <= n_rows:
            raise DataFormatError(
                f"{source}: split {split!r} has rows [{start}, {stop}); expected 0 <= start < stop <= {n_rows} "
                "(the number of rows of the arrays)"
            )
    ordered = sorted(ranges.items(), key=lambda item: item[1])
    for (a, (_, stop_a)), (b, (start_b, stop_b)) in zip(ordered, ordered[1:], strict=False):
        if start_b < stop_a:
            raise DataFormatError(
                f"{source}: the row ranges of splits {a!r} and {b!r} overlap: rows [{start_b}, {min(stop_a, stop_b)}) "
                "are in both. A sample in two splits leaks training data into model selection or the test score."
            )


@dataclass(frozen=True)
class ArraySpec:
    """Expected shape and dtype kind of a published array: an int is a fixed size, a string names a
    free one (``"N"`` rows, ``"T"`` steps, ``"V"`` vocabulary). ``dtype``: ``"float"``, ``"int"``
    (signed or unsigned), ``"number"`` (either) or ``"str"`` (byte or unicode strings)."""

    shape: tuple[int | str, ...]
    dtype: str = "float"

    def describe(self) -> str:
        return f"({', '.join(str(d) for d in self.shape)}) of {self.dtype}s"


_KINDS = {"float": "f", "int": "iu", "number": "fiu", "str": "USaO"}


class BadShapeError(DataFormatError):
    """An array whose shape or dtype is not the published one (the ``bad_shape`` problem)."""


def check_array(where: str, shape: Sequence[int], dtype: np.dtype | None, spec: ArraySpec) -> None:
    """Raise :class:`BadShapeError` naming ``where`` (file and key) when ``shape``/``dtype`` break ``spec``."""
    shape = tuple(int(s) for s in shape)
    ok = len(shape) == len(spec.shape) and all(
        isinstance(e, str) or e == s for e, s in zip(spec.shape, shape, strict=True)
    )
    if not ok:
        raise BadShapeError(f"{where}: shape {shape}, expected {spec.describe()}")
    if dtype is not None and np.dtype(dtype).kind not in _KINDS[spec.dtype]:
        raise BadShapeError(f"{where}: dtype {np.dtype(dtype)}, expected {spec.describe()}")


#: label layouts of the published formats
ONEHOT_PAIRS, BINARY, CLASS_INDEX, SENTIMENT, INTENSITIES = (
    "onehot_pairs",
    "binary",
    "class_index",
    "sentiment",
    "intensities",
)


def label_problems(labels: np.ndarray, layout: str, class_names: Sequence[str] = ()) -> list[tuple[int, str]]:
    """(row, reason) for every row of ``labels`` that breaks ``layout``, before any transform.

    - ``onehot_pairs``: (N, C, 2), per class exactly one of the two entries is 1 and the other 0
      (IEMOCAP's (N, 4, 2));
    - ``binary``: (N, C) of 0/1 (MM-IMDb's ``genres``);
    - ``class_index``: (N,) integers in 0..C-1;
    - ``sentiment``: finite values in [-3, 3] (MOSI/MOSEI);
    - ``intensities``: finite values >= 0 (the CMU-SDK emotion columns).
    """
    labels = np.asarray(labels)
    problems: list[tuple[int, str]] = []
    values = labels.astype(np.float64, copy=False)
    n = len(labels)
    flat = values.reshape(n, -1)
    finite = np.isfinite(flat)
    for row in np.flatnonzero(~finite.all(1)):
        cols = np.flatnonzero(~finite[row])
        problems.append((int(row), f"not finite ({_classes(cols, class_names, values.shape)})"))
    bad_finite = set(np.flatnonzero(~finite.all(1)).tolist())

    def report(mask_rows: np.ndarray, reason: str, per_class: np.ndarray | None = None) -> None:
        for row in np.flatnonzero(mask_rows):
            if int(row) in bad_finite:
                continue
            where = ""
            if per_class is not None:
                cols = np.flatnonzero(per_class[row])
                where = f" ({_names(cols, class_names)})"
            problems.append((int(row), f"{reason}{where}"))

    if layout == ONEHOT_PAIRS:
        pairs = np.nan_to_num(values)
        valid = ((pairs == 0) | (pairs == 1)).all(-1) & (pairs.sum(-1) == 1)
        report(~valid.all(1), "is not a one-hot pair [1, 0] or [0, 1]", ~valid)
    elif layout == BINARY:
        cells = np.nan_to_num(flat)
        valid = (cells == 0) | (cells == 1)
        report(~valid.all(1), "is not 0 or 1", ~valid)
    elif layout == CLASS_INDEX:
        cells = np.nan_to_num(flat[:, 0])
        report(
            (cells != np.round(cells)) | (cells < 0) | (cells >= max(len(class_names), 1)),
            f"is not a class index in 0..{len(class_names) - 1}",
        )
    elif layout == SENTIMENT:
        cells = np.nan_to_num(flat)
        report((np.abs(cells) > 3).any(1), "is outside the sentiment range [-3, 3]")
    elif layout == INTENSITIES:
        cells = np.nan_to_num(flat)
        report((cells < 0).any(1), "is a negative emotion intensity", cells < 0)
    else:
        raise ValueError(f"unknown label layout {layout!r}")
    return sorted(problems)


def _names(cols: np.ndarray, class_names: Sequence[str]) -> str:
    names = [class_names[c] if c < len(class_names) else str(c) for c in cols.tolist()]
    return f"class {', '.join(names)}"


def _classes(cols: np.ndarray, class_names: Sequence[str], shape: tuple[int, ...]) -> str:
    """Flat column indices of a (N, C, ...) label array as class names."""
    per_class = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return _names(np.unique(cols // per_class), class_names)
