"""Threshold tuning on validation: strategies, grid optimum and tie-breaking."""

from __future__ import annotations

import numpy as np
import pytest

from src.metrics import multilabel_metrics
from src.thresholds import DEFAULT_GRID, tune_thresholds


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
