"""Threshold tuning on validation: strategies, grid optimum and tie-breaking."""

from __future__ import annotations

import numpy as np
import pytest

from src.metrics import multilabel_metrics
from src.thresholds import DEFAULT_GRID, threshold_grid, tune_thresholds


def test_fixed_strategy_returns_the_value():
    assert tune_thresholds(np.zeros((3, 4)), np.zeros((3, 4)), "fixed", value=0.3).tolist() == [0.3] * 4


def test_per_class_threshold_separates_each_class():
    # class 0 positives score 0.30-0.35 and negatives <= 0.2; class 1 positives >= 0.8, negatives 0.6-0.7
    probs = np.array([[0.30, 0.80], [0.35, 0.90], [0.10, 0.60], [0.20, 0.70]])
    targets = np.array([[1, 1], [1, 1], [0, 0], [0, 0]])
    thresholds = tune_thresholds(probs, targets, "per_class")
    assert 0.2 < thresholds[0] <= 0.30
    assert 0.7 < thresholds[1] <= 0.80
    # the tie-break picks the separating value closest to 0.5
    assert thresholds[0] == pytest.approx(0.30)
    assert thresholds[1] == pytest.approx(0.71)


def test_global_threshold_is_the_grid_optimum():
    rng = np.random.default_rng(1)
    targets = (rng.random((200, 5)) < 0.3).astype(int)
    probs = np.clip(targets * 0.25 + rng.random((200, 5)) * 0.5, 0, 1)
    (chosen,) = set(tune_thresholds(probs, targets, "global", metric="f1_micro").tolist())
    best = max(multilabel_metrics(probs, targets, t)["f1_micro"] for t in DEFAULT_GRID)
    assert multilabel_metrics(probs, targets, chosen)["f1_micro"] == pytest.approx(best)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown threshold strategy 'best'"):
        tune_thresholds(np.zeros((2, 2)), np.zeros((2, 2)), "best")


def test_configured_grid_includes_both_ends():
    """The 2025 comparison's grid, "from 0.1 to 0.9 in steps of 0.02": 41 values, 0.1 and 0.9 included."""
    grid = threshold_grid({"start": 0.1, "stop": 0.9, "step": 0.02})
    assert grid.size == 41 and grid[0] == 0.1 and grid[-1] == 0.9
    assert np.allclose(np.diff(grid), 0.02) and 0.5 in grid.tolist() and 0.34 in grid.tolist()
    assert threshold_grid([0.3, 0.6]).tolist() == [0.3, 0.6]
    assert threshold_grid(None) is DEFAULT_GRID


def test_global_threshold_searches_only_the_configured_grid():
    """Validation F1-macro peaks at 0.23 on the default grid; on 0.1..0.9 step 0.02 the best candidate
    is 0.22 or 0.24, and the search never leaves the grid."""
    targets = np.array([[1], [1], [0], [0], [1]])
    probs = np.array([[0.23], [0.30], [0.225], [0.10], [0.40]])
    assert tune_thresholds(probs, targets, "global", metric="f1_macro").tolist() == [0.23]
    spec = {"start": 0.1, "stop": 0.9, "step": 0.02}
    (chosen,) = tune_thresholds(probs, targets, "global", metric="f1_macro", grid=spec).tolist()
    assert chosen in threshold_grid(spec).tolist() and chosen == pytest.approx(0.22)
    # 0.22 keeps the negative at 0.225 as a false positive (F1 = 6/7); 0.24 drops the positive at 0.23 (0.8)
    assert multilabel_metrics(probs, targets, 0.22)["f1_macro"] == pytest.approx(6 / 7)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"start": 0.1, "stop": 0.9}, "exactly the keys start, stop and step"),
        ({"start": 0.9, "stop": 0.1, "step": 0.02}, "stop >= start"),
        ([0.0, 0.5], "strictly between 0 and 1"),
    ],
)
def test_bad_grid_is_named(grid, message):
    with pytest.raises(ValueError, match=message):
        threshold_grid(grid)
