"""Decision thresholds of multilabel tasks, tuned on the validation split only.

Strategies (config ``model.thresholds.strategy``):
- ``fixed``: the configured ``value`` for every class (0.5 in the GMU and CentralNet papers);
- ``global``: one threshold for all classes, the grid value that maximises ``metric`` on validation;
- ``per_class``: one threshold per class, each maximising that class's validation F1.
Ties are broken towards the value closest to 0.5, so an uninformative class keeps 0.5.

``grid`` (config ``model.thresholds.grid``) is the set of candidate values: null for
:data:`DEFAULT_GRID` (0.05 to 0.95 in steps of 0.01), ``{start, stop, step}`` with both ends included
(the 2025 MM-IMDb comparison, Sec. 4.5.2: "thresholds from 0.1 to 0.9 in steps of 0.02"), or an
explicit list of values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from src.metrics import confusion_counts, f1_from_counts, multilabel_metrics

STRATEGIES = ("fixed", "global", "per_class")
DEFAULT_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def threshold_grid(grid: Mapping[str, float] | Sequence[float] | np.ndarray | None) -> np.ndarray:
    """The candidate thresholds: the default grid, ``{start, stop, step}`` (both ends included) or a list."""
    if grid is None:
        return DEFAULT_GRID
    if isinstance(grid, Mapping):
        if set(grid) != {"start", "stop", "step"}:
            raise ValueError(
                f"model.thresholds.grid={dict(grid)} must have exactly the keys start, stop and step"
            )
        start, stop, step = float(grid["start"]), float(grid["stop"]), float(grid["step"])
        if step <= 0 or stop < start:
            raise ValueError(f"model.thresholds.grid={dict(grid)}: expected step > 0 and stop >= start")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        values = np.round(start + step * np.arange(count), 10)
    else:
        values = np.asarray(grid, dtype=np.float64).ravel()
    if values.size == 0 or not np.all((values > 0) & (values < 1)):
        raise ValueError(
            f"model.thresholds.grid must hold values strictly between 0 and 1, got {values.tolist()}"
        )
    return values


def _best_index(scores: np.ndarray, grid: np.ndarray) -> int:
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    return int(best[np.argmin(np.abs(grid[best] - 0.5))])


def tune_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    strategy: str = "fixed",
    value: float = 0.5,
    metric: str = "f1_micro",
    grid: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Return a (C,) array of thresholds for ``probs``/``targets`` of shape (N, C)."""
    n_classes = targets.shape[1]
    grid = threshold_grid(grid)
    if strategy == "fixed":
        return np.full(n_classes, value, dtype=np.float64)
    if strategy == "global":
        scores = np.array([multilabel_metrics(probs, targets, t)[metric] for t in grid])
        return np.full(n_classes, grid[_best_index(scores, grid)], dtype=np.float64)
    if strategy == "per_class":
        targets = targets.astype(bool)
        per_class = np.empty((grid.size, n_classes))
        for i, t in enumerate(grid):
            per_class[i] = f1_from_counts(*confusion_counts(probs >= t, targets, axis=0))
        return np.array([grid[_best_index(per_class[:, c], grid)] for c in range(n_classes)])
    raise ValueError(f"unknown threshold strategy {strategy!r}; expected one of {STRATEGIES}")
