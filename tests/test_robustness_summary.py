"""Relative and effective robustness (src/robustness/summary.py) on hand-made curves, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from src.robustness.summary import curve_area, effective_gap, effective_robustness, relative_robustness


def test_relative_robustness_by_hand():
    # x = 0, 0.5, 1: area = (0.8 + 0.6) / 2 * 0.5 + (0.6 + 0.4) / 2 * 0.5 = 0.35 + 0.25 = 0.6
    assert curve_area([0.8, 0.6, 0.4]) == pytest.approx(0.6)
    assert relative_robustness([0.8, 0.6, 0.4]) == pytest.approx(0.6 / 0.8)
    assert relative_robustness([0.9, 0.9, 0.9, 0.9]) == pytest.approx(1.0)
    # a drop straight to 0 at the first level: area = (1 + 0) / 2 * 0.5 + 0 = 0.25
    assert relative_robustness([1.0, 0.0, 0.0]) == pytest.approx(0.25)


def test_the_area_is_multibenchs_trapezoid_sum_on_its_11_levels():
    values = [0.9, 0.88, 0.85, 0.8, 0.74, 0.66, 0.6, 0.5, 0.42, 0.35, 0.3]
    multibench = sum((values[i] + values[i + 1]) * 0.1 / 2 for i in range(10))
    assert curve_area(values) == pytest.approx(multibench, abs=1e-15)


def test_effective_robustness_by_hand():
    f, b = [0.8, 0.7, 0.5], [0.9, 0.7, 0.3]
    # the baseline shifted to start at 0.8: [0.8, 0.6, 0.2]; gap [0, 0.1, 0.3]
    np.testing.assert_allclose(effective_gap(f, b), [0.0, 0.1, 0.3], atol=1e-15)
    # area: (0 + 0.1) / 2 * 0.5 + (0.1 + 0.3) / 2 * 0.5 = 0.025 + 0.1
    assert effective_robustness(f, b) == pytest.approx(0.125)
    # MultiBench's sum of the gap, 0.4 = (n - 1) * area + gap[-1] / 2
    assert effective_gap(f, b).sum() == pytest.approx(2 * 0.125 + 0.3 / 2)
    # a curve that drops exactly like the baseline, from any clean value, scores 0
    assert effective_robustness([0.5, 0.4, 0.1], [0.9, 0.8, 0.5]) == pytest.approx(0.0, abs=1e-15)
    assert effective_robustness([0.9, 0.2, 0.1], [0.9, 0.8, 0.5]) < 0


def test_undefined_and_malformed_curves():
    assert math.isnan(relative_robustness([0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="at least 2 values"):
        curve_area([0.5])
    with pytest.raises(ValueError, match="3 levels, the baseline's 2"):
        effective_robustness([0.8, 0.7, 0.5], [0.9, 0.7])
