"""Gates under corruption: the mean gate per modality at each level of a perturbation.

The question (issue 18): as one modality degrades, does a gated fusion move its weight toward the
clean one? The GMU (Arevalo et al. 2017, Eq. 3-5) claims its gates "learn to decide how modalities
influence the activation"; its gates are input-driven, so a corruption the model never saw in
training may move them either way. These functions turn the gates a fusion exports
(``interpret["gates"]``, (N, K, H) for GMU, FGMU, MoE and BPMuLT; CentralNet, whose alphas are
per-layer constants, exports per-sample ``interpret["branch_contributions"]`` (N, K, depths) instead)
at every level into table rows
(overall, per true class and per predicted class) and a plot; the mean of sample n's gate for
modality k is taken over its H units, as in the gate shares of ``src/interpret.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.robustness.results import level_axis, save_figure

#: per-sample modality weights a fusion may export, and what the tables and plots call their mean
GATE_QUANTITIES: dict[str, str] = {"gates": "mean gate", "branch_contributions": "mean branch contribution"}


def exported_quantity(interpret: Mapping[str, Any]) -> str | None:
    """The key of :data:`GATE_QUANTITIES` that ``interpret`` holds (the first one), else None."""
    return next((key for key in GATE_QUANTITIES if interpret.get(key) is not None), None)


def per_modality(gates: np.ndarray, n_modalities: int) -> np.ndarray:
    """(N, K) mean gate of every sample and modality from (N, K) or (N, K, H) gates."""
    gates = np.asarray(gates, dtype=np.float64)
    if gates.ndim not in (2, 3) or gates.shape[1] != n_modalities:
        raise ValueError(
            f"gates must be (N, K) or (N, K, H) with K = {n_modalities} modalities, got {gates.shape}"
        )
    return gates if gates.ndim == 2 else gates.mean(-1)


def membership(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C) bool: which classes each sample belongs to, from (N,) class indices (multiclass) or
    (N, C) 0/1 indicators (multilabel; a binary task is (N, 1))."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(
                f"class indices must lie in [0, {n_classes}), got [{labels.min()}, {labels.max()}]"
            )
        return np.eye(n_classes, dtype=bool)[labels.astype(np.int64)]
    if labels.ndim == 2 and labels.shape[1] == n_classes:
        return labels.astype(bool)
    raise ValueError(
        f"labels must be (N,) class indices or (N, {n_classes}) indicators, got shape {labels.shape}"
    )


def _row(context: Mapping[str, Any], level: float, group: str, name: str, means: np.ndarray, modalities):
    row: dict[str, Any] = {
        **context,
        "level": float(level),
        "group": group,
        "class": name,
        "n": int(means.shape[0]),
    }
    for k, modality in enumerate(modalities):
        row[modality] = float(means[:, k].mean()) if means.shape[0] else float("nan")
    return row


def mean_gate_rows(
    gates_by_level: Mapping[float, np.ndarray],
    modalities: Sequence[str],
    class_names: Sequence[str] = (),
    labels: np.ndarray | None = None,
    predictions_by_level: Mapping[float, np.ndarray] | None = None,
    context: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{**context, level, group, class, n, <modality>: mean gate}`` for every level (ascending):

    * ``group="all"``: over every test sample;
    * ``group="label"``: per true class (``labels``, fixed across levels);
    * ``group="prediction"``: per predicted class at that level (``predictions_by_level``), the
      grouping of the GMU paper's Figure 8.

    ``context`` (e.g. ``{"perturbed": "image", "perturbation": "gaussian_noise"}``) leads every row.
    A class without samples gets n = 0 and NaN gates.
    """
    context = dict(context or {})
    rows: list[dict[str, Any]] = []
    n_classes = len(class_names)
    members = membership(labels, n_classes) if labels is not None else None
    for level in sorted(gates_by_level):
        means = per_modality(gates_by_level[level], len(modalities))
        rows.append(_row(context, level, "all", "all", means, modalities))
        groups = [("label", members)]
        if predictions_by_level is not None:
            groups.append(("prediction", membership(predictions_by_level[level], n_classes)))
        for group, matrix in groups:
            if matrix is None:
                continue
            if matrix.shape[0] != means.shape[0]:
                raise ValueError(
                    f"{group}: {matrix.shape[0]} samples for {means.shape[0]} gates at level {level}"
                )
            rows += [
                _row(context, level, group, name, means[matrix[:, c]], modalities)
                for c, name in enumerate(class_names)
            ]
    return rows


def plot_mean_gates(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    modalities: Sequence[str],
    title: str = "",
    quantity: str = "gates",
) -> Path:
    """Mean gate (or the :data:`GATE_QUANTITIES` ``quantity``) vs level (the ``group="all"`` rows),
    one line per modality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overall = sorted((r for r in rows if r["group"] == "all"), key=lambda r: r["level"])
    if not overall:
        raise ValueError("plot_mean_gates: no group='all' rows")
    fig, ax = plt.subplots(figsize=(5, 3.4))
    x = level_axis(ax, [r["level"] for r in overall])
    for modality in modalities:
        ax.plot(x, [r[modality] for r in overall], marker="o", label=modality)
    ax.set_xlabel("level")
    ax.set_ylabel(GATE_QUANTITIES[quantity])
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
