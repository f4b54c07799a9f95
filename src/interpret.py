"""Interpretability outputs of a test run: tables, PNGs and their W&B copies.

- GMU paper Figure 8 (Arevalo et al. 2017): for each class, among the test samples predicted with
  that class, the share whose mean gate favours each modality. With two modalities a sample
  favours the first when its mean gate for it exceeds the second's (for the tied GMU, z > 0.5);
  with K modalities, the argmax of the mean gates. Written by every fusion that returns
  ``interpret["gates"]`` (GMU, FGMU, MoE): ``gate_shares.csv`` and ``gate_shares.png``.
- CentralNet Figure 3 (Vielzeuf et al. 2018): the learned alphas per depth as percentages of
  |alpha| over the central and modality terms: ``centralnet_alphas.csv`` and ``.png``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def favoured_modality(gates: np.ndarray) -> np.ndarray:
    """Index of the modality each sample's mean gate favours; ``gates`` is (N, K, H)."""
    mean = gates.reshape(gates.shape[0], gates.shape[1], -1).mean(-1)
    if mean.shape[1] == 2:
        return np.where(mean[:, 0] > mean[:, 1], 0, 1)
    return mean.argmax(1)


def gate_shares(
    gates: np.ndarray, predicted: np.ndarray, class_names: Sequence[str], modalities: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per class: how many test samples were predicted with it and the share favouring each modality."""
    favoured = favoured_modality(gates)
    rows = []
    for c, name in enumerate(class_names):
        chosen = favoured[predicted[:, c]]
        row: dict[str, Any] = {"class": name, "n_predicted": int(chosen.size)}
        for k, modality in enumerate(modalities):
            row[modality] = float((chosen == k).mean()) if chosen.size else float("nan")
        rows.append(row)
    return rows


def alpha_percentages(
    alpha_rows: Sequence[Mapping[str, Any]], modalities: Sequence[str]
) -> list[dict[str, Any]]:
    """CentralNet alphas per depth as percentages of the sum of their absolute values."""
    rows = []
    for row in alpha_rows:
        terms = {"central": row["central"], **{m: row[m] for m in modalities}}
        terms = {k: abs(v) for k, v in terms.items() if v is not None}
        total = sum(terms.values())
        percent = {k: 100.0 * v / total if total > 0 else float("nan") for k, v in terms.items()}
        rows.append(
            {"depth": row["depth"], "central": percent.get("central"), **{m: percent[m] for m in modalities}}
        )
    return rows


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _stacked_bars(
    path: Path, labels: Sequence[str], parts: Mapping[str, Sequence[float]], title: str, xlabel: str
) -> None:
    """Horizontal stacked bars, one per label, one colour per part (missing values drawn as 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.5))
    left = np.zeros(len(labels))
    for name, values in parts.items():
        values = np.nan_to_num(np.asarray(values, dtype=float))
        ax.barh(list(labels), values, left=left, label=name)
        left += values
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _log_wandb(loggers: Sequence[Any], key: str, rows: Sequence[Mapping[str, Any]], png: Path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            columns = list(rows[0])
            logger.log_table(
                key=f"{key}_table", columns=columns, data=[[r[c] for c in columns] for r in rows]
            )
            logger.log_image(key=key, images=[str(png)])


def write_interpretability(
    out: Path,
    predicted: np.ndarray | None,
    interpret: Mapping[str, np.ndarray],
    learned: Mapping[str, Any],
    modalities: Sequence[str],
    class_names: Sequence[str],
    loggers: Sequence[Any] = (),
) -> list[Path]:
    """Write Figure 8 (when there are gates and classes) and Figure 3 (CentralNet alphas); returns the files."""
    written: list[Path] = []
    gates = interpret.get("gates")
    if gates is not None and predicted is not None:
        rows = gate_shares(gates, predicted, class_names, modalities)
        _write_csv(out / "gate_shares.csv", rows)
        _stacked_bars(
            out / "gate_shares.png",
            [f"{r['class']} ({r['n_predicted']})" for r in rows],
            {m: [r[m] for r in rows] for m in modalities},
            "Share of predicted test samples whose mean gate favours each modality",
            "share of samples",
        )
        _log_wandb(loggers, "interpret/gate_shares", rows, out / "gate_shares.png")
        written += [out / "gate_shares.csv", out / "gate_shares.png"]
    if "centralnet_alphas" in learned:
        rows = alpha_percentages(learned["centralnet_alphas"], modalities)
        _write_csv(out / "centralnet_alphas.csv", rows)
        _stacked_bars(
            out / "centralnet_alphas.png",
            [f"depth {r['depth']}" for r in rows],
            {k: [r[k] if r[k] is not None else 0.0 for r in rows] for k in ["central", *modalities]},
            "CentralNet alphas per depth (% of |alpha|)",
            "percent",
        )
        _log_wandb(loggers, "interpret/centralnet_alphas", rows, out / "centralnet_alphas.png")
        written += [out / "centralnet_alphas.csv", out / "centralnet_alphas.png"]
    return written
