"""What a robustness sweep writes: ``robustness.json``, ``robustness.csv`` and the curve plot.

A sweep measures :class:`CurvePoint` s: the test metrics of one checkpoint with ``perturbation`` at
``level`` on ``modality`` for one perturbation ``seed`` (level 0 is the clean test set).

``robustness.json`` (schema :data:`SCHEMA`)::

    {"schema": "mmfusion.robustness/1",
     "meta": {...},                                   # checkpoint, config, hardware, wall time
     "points": [{"modality": "image", "perturbation": "gaussian_noise", "level": 0.1, "seed": 0,
                 "metrics": {"test/acc": 0.91, ...}}, ...],
     "summary": [{"modality", "perturbation", "metric", "levels", "mean", "std", "n_seeds", "clean",
                  "last", "relative_robustness", "baseline", "effective_robustness"}, ...],
     "gates": [rows of src.robustness.gates.mean_gate_rows]}

Non-finite numbers are written as ``null``. ``robustness.csv`` is the long table of the points:
``modality, perturbation, level, seed, metric, value``, one row per metric.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src.robustness.perturbations import PERTURBATIONS
from src.robustness.summary import effective_robustness, relative_robustness

SCHEMA = "mmfusion.robustness/1"
CSV_COLUMNS = ("modality", "perturbation", "level", "seed", "metric", "value")


@dataclass(frozen=True)
class CurvePoint:
    """The test metrics of one (modality, perturbation, level, seed) of a sweep."""

    modality: str
    perturbation: str
    level: float
    seed: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Curve:
    """One metric of one (modality, perturbation) over the levels: mean and std over the seeds."""

    modality: str
    perturbation: str
    metric: str
    levels: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_seeds: int


def curves(points: Sequence[CurvePoint], metric: str) -> list[Curve]:
    """The curves of ``metric``, one per (modality, perturbation) in the order they first appear.

    Every level of a curve must have the same seeds and the curve must start at level 0.
    """
    grouped: dict[tuple[str, str], dict[float, dict[int, float]]] = {}
    for p in points:
        if metric not in p.metrics:
            raise KeyError(
                f"metric {metric!r} not measured at {p.modality}/{p.perturbation}/{p.level}: {sorted(p.metrics)}"
            )
        per_level = grouped.setdefault((p.modality, p.perturbation), {}).setdefault(float(p.level), {})
        if p.seed in per_level:
            raise ValueError(f"{p.modality}/{p.perturbation} level {p.level} seed {p.seed} measured twice")
        per_level[p.seed] = float(p.metrics[metric])
    out = []
    for (modality, perturbation), by_level in grouped.items():
        levels = sorted(by_level)
        if levels[0] != 0.0:
            raise ValueError(
                f"{modality}/{perturbation}: the curve has no clean point (level 0), levels {levels}"
            )
        seeds = set(by_level[0.0])
        for level in levels:
            if set(by_level[level]) != seeds:
                raise ValueError(
                    f"{modality}/{perturbation}: level {level} has seeds {sorted(by_level[level])}, "
                    f"level 0 has {sorted(seeds)}"
                )
        values = np.array([[by_level[level][s] for s in sorted(seeds)] for level in levels])
        out.append(
            Curve(
                modality,
                perturbation,
                metric,
                tuple(levels),
                tuple(values.mean(1).tolist()),
                tuple(values.std(1).tolist()),
                len(seeds),
            )
        )
    return out


def summary_rows(
    points: Sequence[CurvePoint],
    metric: str,
    baseline: Sequence[CurvePoint] | None = None,
    baseline_name: str | None = None,
) -> list[dict[str, Any]]:
    """One row per curve of ``metric``: its seed-mean curve, clean and last value, relative robustness,
    and, when the points of a baseline checkpoint of the same sweep are given, its effective robustness
    against the baseline's curve of the same modality and perturbation (same levels)."""
    base = {(c.modality, c.perturbation): c for c in curves(baseline, metric)} if baseline else {}
    rows = []
    for c in curves(points, metric):
        row: dict[str, Any] = {
            "modality": c.modality,
            "perturbation": c.perturbation,
            "metric": metric,
            "levels": list(c.levels),
            "mean": list(c.mean),
            "std": list(c.std),
            "n_seeds": c.n_seeds,
            "clean": c.mean[0],
            "last": c.mean[-1],
            "relative_robustness": relative_robustness(c.mean),
            "baseline": None,
            "effective_robustness": None,
        }
        if baseline is not None:
            other = base.get((c.modality, c.perturbation))
            if other is None or other.levels != c.levels:
                raise ValueError(
                    f"baseline {baseline_name!r} has no {c.modality}/{c.perturbation} curve at levels "
                    f"{list(c.levels)}" + (f" (it has {list(other.levels)})" if other else "")
                )
            row["baseline"] = baseline_name
            row["effective_robustness"] = effective_robustness(c.mean, other.mean)
        rows.append(row)
    return rows


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    return value


def write_json(
    path: Path,
    points: Sequence[CurvePoint],
    summary: Sequence[Mapping[str, Any]] = (),
    gates: Sequence[Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """``robustness.json`` (module docstring); non-finite numbers become ``null``."""
    document = {
        "schema": SCHEMA,
        "meta": dict(meta or {}),
        "points": [
            {
                "modality": p.modality,
                "perturbation": p.perturbation,
                "level": p.level,
                "seed": p.seed,
                "metrics": dict(p.metrics),
            }
            for p in points
        ],
        "summary": list(summary),
        "gates": list(gates),
    }
    path.write_text(json.dumps(_json_safe(document), indent=2) + "\n")
    return path


def read_json(path: Path) -> tuple[list[CurvePoint], dict[str, Any]]:
    """The points of a ``robustness.json`` and the whole document; a clear error for another schema."""
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"{path}: 'schema' is {found!r}, expected {SCHEMA!r}")
    points = []
    for i, p in enumerate(document.get("points", [])):
        try:
            points.append(
                CurvePoint(
                    str(p["modality"]),
                    str(p["perturbation"]),
                    float(p["level"]),
                    int(p["seed"]),
                    {k: math.nan if v is None else float(v) for k, v in p["metrics"].items()},
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: points[{i}] is not a point ({err!r}): {p!r}") from err
    return points, document


def write_csv_rows(
    path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    """A CSV of ``rows`` (columns: ``columns`` or the first row's keys)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns or (rows[0] if rows else [])))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_csv(path: Path, points: Sequence[CurvePoint]) -> Path:
    """``robustness.csv``: one row per point and metric (:data:`CSV_COLUMNS`)."""
    rows = [
        {
            "modality": p.modality,
            "perturbation": p.perturbation,
            "level": p.level,
            "seed": p.seed,
            "metric": m,
            "value": v,
        }
        for p in points
        for m, v in p.metrics.items()
    ]
    return write_csv_rows(path, rows, CSV_COLUMNS)


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write (100 dpi) and close a matplotlib figure; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def level_axis(ax: Any, levels: Sequence[float]) -> list[int]:
    """Draw at the level index (the axis the summary areas use) with the levels as tick labels."""
    positions = list(range(len(levels)))
    ax.set_xticks(positions)
    ax.set_xticklabels([f"{v:g}" for v in levels])
    return positions


def plot_curves(path: Path, points: Sequence[CurvePoint], metric: str, title: str = "") -> Path:
    """Metric vs level: one panel per perturbation, one line per perturbed modality (std over seeds as
    error bars when there are several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_perturbation: dict[str, list[Curve]] = {}
    for c in curves(points, metric):
        by_perturbation.setdefault(c.perturbation, []).append(c)
    n = len(by_perturbation)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, (perturbation, group) in zip(axes[0], by_perturbation.items(), strict=True):
        for c in group:
            x = level_axis(ax, c.levels)
            ax.errorbar(
                x, c.mean, yerr=c.std if c.n_seeds > 1 else None, marker="o", capsize=3, label=c.modality
            )
        ax.set_title(perturbation)
        known = PERTURBATIONS.get(perturbation)
        ax.set_xlabel(known.unit if known else "level")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
