"""Summary figures of a metric-vs-level curve: relative and effective robustness.

A curve is the metric at the levels of one perturbation, level 0 (clean) first. Both figures follow
MultiBench (Liang et al. 2021, "MultiBench: Multiscale Benchmarks for Multimodal Representation
Learning", NeurIPS Datasets and Benchmarks; ``eval_scripts/robustness.py`` of pliang279/MultiBench):

* **relative robustness**, the accuracy under imperfect inputs: MultiBench sums trapezoids of width
  0.1 under its 11-level curves (the area under the curve over levels 0, 0.1, ..., 1);
* **effective robustness**, the performance drop beyond the baseline's: MultiBench shifts the late
  fusion curve to start at the method's clean accuracy, ``beta_f = lf + (f[0] - lf[0])``, and sums
  ``f - beta_f`` over the levels (the notion of Taori et al. 2020, "Measuring robustness to natural
  distribution shifts in image classification": performance beyond what the baseline predicts).

MultiBench then min-max normalises both over the methods of a table whose baseline curves are
hard-coded in that file. Here every figure is a property of curves measured in the same sweep:

* the area is taken over the level *index* mapped to [0, 1] (x_i = i / (n - 1)), which is
  MultiBench's axis for its 11 evenly spaced levels and keeps perturbations with different level
  units (a rate, an SNR, a blur width) on one scale; :func:`curve_area` is thus the curve's mean
  height;
* :func:`relative_robustness` divides that area by the clean metric: the average share of the
  clean performance kept (1 = no loss), so it needs no other method to be read;
* :func:`effective_robustness` is the same area of the gap to the shifted baseline (in metric
  units; > 0: degrades more gracefully than the baseline). MultiBench's sum equals
  (n - 1) * area + gap[-1] / 2 and grows with the number of levels; the area does not.

For a lower-is-better metric (a regression error) the signs read the other way: relative robustness
above 1 and effective robustness above 0 mean a larger error than clean / than the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _curve(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(
            f"{name}: a curve needs at least 2 values (level 0 first), got {list(array.ravel())}"
        )
    return array


def curve_area(values: Sequence[float]) -> float:
    """Trapezoidal area under ``values`` at evenly spaced x in [0, 1] (their mean height)."""
    y = _curve(values, "curve_area")
    return float(((y[:-1] + y[1:]) / 2).sum() / (y.size - 1))


def relative_robustness(values: Sequence[float]) -> float:
    """Area under the metric-vs-level curve divided by the clean metric ``values[0]``; NaN when the
    clean metric is 0 or not finite (the ratio is undefined)."""
    y = _curve(values, "relative_robustness")
    if y[0] == 0 or not math.isfinite(y[0]):
        return math.nan
    return curve_area(y) / float(y[0])


def effective_gap(values: Sequence[float], baseline: Sequence[float]) -> np.ndarray:
    """Pointwise ``f - (b - b[0] + f[0])``: the method's metric above the baseline's curve shifted to
    start at the method's clean metric (0 at level 0)."""
    f = _curve(values, "effective_gap")
    b = _curve(baseline, "effective_gap baseline")
    if f.shape != b.shape:
        raise ValueError(
            f"effective robustness: the method's curve has {f.size} levels, the baseline's {b.size}; "
            "both must be measured at the same levels"
        )
    return f - (b - b[0] + f[0])


def effective_robustness(values: Sequence[float], baseline: Sequence[float]) -> float:
    """Area (as :func:`curve_area`) of :func:`effective_gap`, in metric units."""
    return curve_area(effective_gap(values, baseline))
