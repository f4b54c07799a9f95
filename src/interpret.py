"""Interpretability outputs of a test run: tables, PNGs and their W&B copies.

- GMU paper Figure 8 (Arevalo et al. 2017): for each class, among the test samples predicted with
  that class, the share whose mean gate favours each modality. With two modalities a sample
  favours the first when its mean gate for it exceeds the second's (for the tied GMU, z > 0.5);
  with K modalities, the argmax of the mean gates. Written by every fusion that returns
  ``interpret["gates"]`` (GMU, FGMU, MoE): ``gate_shares.csv`` and ``gate_shares.png``.
  Which units the mean runs over (``callbacks.interpretation.gate_units``): ``selection: all`` averages every unit;
  ``selection: mutual_information`` is the paper's "The units were chosen taking into account the
  mutual information between the predictions and the z activations": per class, the ``top_k``
  units whose gate (binned into ``bins`` equal-width bins of [0, 1]; for K > 2 modalities, which
  modality the unit favours) shares the most mutual information with that class's prediction over
  all test samples; the chosen units are written to ``gate_units.json``.
- CentralNet Figure 3 (Vielzeuf et al. 2018): the learned alphas per depth as percentages of
  |alpha| over the central and modality terms: ``centralnet_alphas.csv`` and ``.png``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SELECTIONS = ("all", "mutual_information")


def _units(gates: np.ndarray) -> np.ndarray:
    """(N, K, H) view of gates of any trailing shape."""
    return gates.reshape(gates.shape[0], gates.shape[1], -1)


def favoured_modality(gates: np.ndarray, units: Sequence[int] | None = None) -> np.ndarray:
    """Index of the modality each sample's mean gate (over ``units``, default all) favours; ``gates`` is (N, K, H)."""
    per_unit = _units(gates)
    mean = (per_unit if units is None else per_unit[:, :, list(units)]).mean(-1)
    if mean.shape[1] == 2:
        return np.where(mean[:, 0] > mean[:, 1], 0, 1)
    return mean.argmax(1)


def gate_states(gates: np.ndarray, bins: int = 10) -> tuple[np.ndarray, int]:
    """Each sample's discrete state per unit, (N, H), and the number of states: for two modalities
    the bin of z (the first modality's gate) among ``bins`` equal-width bins of [0, 1]; for K > 2 the
    modality with the largest gate at that unit."""
    per_unit = _units(gates)
    if per_unit.shape[1] == 2:
        return np.clip(np.floor(per_unit[:, 0] * bins), 0, bins - 1).astype(np.int64), bins
    return per_unit.argmax(1), per_unit.shape[1]


def gate_mutual_information(gates: np.ndarray, predicted: np.ndarray, bins: int = 10) -> np.ndarray:
    """(C, H) mutual information (nats) between each unit's gate state and each class's prediction."""
    states, n_states = gate_states(gates, bins)
    n, n_units = states.shape
    unit_index = np.broadcast_to(np.arange(n_units), states.shape)
    information = np.zeros((predicted.shape[1], n_units))
    for c in range(predicted.shape[1]):
        joint = np.zeros((n_units, n_states, 2))
        np.add.at(
            joint,
            (unit_index, states, np.broadcast_to(predicted[:, c : c + 1].astype(np.int64), states.shape)),
            1.0,
        )
        joint /= n
        independent = joint.sum(2, keepdims=True) * joint.sum(1, keepdims=True)
        ratio = np.divide(joint, independent, out=np.ones_like(joint), where=joint > 0)
        information[c] = (joint * np.log(ratio)).sum((1, 2))
    return information


def select_gate_units(
    gates: np.ndarray, predicted: np.ndarray, selection: str = "all", top_k: int = 16, bins: int = 10
) -> list[list[int]] | None:
    """Per class, the units Figure 8 averages: None for all of them, else the ``top_k`` by mutual information."""
    if selection not in SELECTIONS:
        raise ValueError(
            f"callbacks.interpretation.gate_units.selection={selection!r}; expected one of {SELECTIONS}"
        )
    if selection == "all":
        return None
    if top_k < 1:
        raise ValueError(f"callbacks.interpretation.gate_units.top_k={top_k} must be >= 1")
    information = gate_mutual_information(gates, predicted, bins)
    order = np.argsort(-information, axis=1, kind="stable")
    return [sorted(row[:top_k].tolist()) for row in order]


def gate_shares(
    gates: np.ndarray,
    predicted: np.ndarray,
    class_names: Sequence[str],
    modalities: Sequence[str],
    units: Sequence[Sequence[int]] | None = None,
) -> list[dict[str, Any]]:
    """One row per class: how many test samples were predicted with it and the share whose gates,
    averaged over ``units[c]`` (default all units), favour each modality."""
    rows = []
    for c, name in enumerate(class_names):
        favoured = favoured_modality(gates, None if units is None else units[c])
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
    gate_units: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write Figure 8 (when there are gates and classes; ``gate_units`` chooses the units, see the
    module docstring) and Figure 3 (CentralNet alphas); returns the files."""
    written: list[Path] = []
    gates = interpret.get("gates")
    if gates is not None and predicted is not None:
        units = select_gate_units(gates, predicted, **dict(gate_units or {}))
        rows = gate_shares(gates, predicted, class_names, modalities, units)
        _write_csv(out / "gate_shares.csv", rows)
        if units is not None:
            (out / "gate_units.json").write_text(
                json.dumps(
                    {"selection": dict(gate_units), "units": dict(zip(class_names, units, strict=True))},
                    indent=2,
                )
            )
            written.append(out / "gate_units.json")
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
