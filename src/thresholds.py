"""Decision thresholds of multilabel tasks, tuned on the validation split only.

Strategies (config ``model.thresholds.strategy``):
- ``fixed``: the configured ``value`` for every class (0.5 in the GMU and CentralNet papers);
- ``global``: one threshold for all classes, the grid value that maximises ``metric`` on validation;
- ``per_class``: one threshold per class, each maximising that class's validation F1.
Ties are broken towards the value closest to 0.5, so an uninformative class keeps 0.5.
"""

from __future__ import annotations

import numpy as np

from src.metrics import confusion_counts, f1_from_counts, multilabel_metrics

STRATEGIES = ("fixed", "global", "per_class")
DEFAULT_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def _best_index(scores: np.ndarray, grid: np.ndarray) -> int:
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    return int(best[np.argmin(np.abs(grid[best] - 0.5))])


def tune_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    strategy: str = "fixed",
    value: float = 0.5,
    metric: str = "f1_micro",
    grid: np.ndarray | None = None,
) -> np.ndarray:
    """Return a (C,) array of thresholds for ``probs``/``targets`` of shape (N, C)."""
    n_classes = targets.shape[1]
    grid = DEFAULT_GRID if grid is None else np.asarray(grid, dtype=np.float64)
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
