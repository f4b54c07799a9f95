"""The comparison of several swept checkpoints: ``python -m src.report <dirs> --robustness [--out DIR]``.

Every ``robustness.json`` under the given directories is one checkpoint (one method, one training
seed). Per checkpoint and curve (perturbed modality x perturbation) the seed-mean curve gives the
relative robustness (:func:`src.robustness.summary.relative_robustness`) and, when the same sweep holds
a baseline of the same data and training seed, the effective robustness against it
(:func:`src.robustness.summary.effective_robustness`, MultiBench's definition on curves measured here):

* a late-fusion checkpoint (``LateFusion``), MultiBench's baseline, when there is one;
* otherwise the unimodal checkpoint (``UnimodalFusion``) on the perturbed modality: the single-modality
  model facing the same corruption.

Baselines get no effective robustness of their own. The table gives, per method and curve, the mean
+- std over the checkpoints (training seeds); the gate tables average the mean gates of the fusions
that export them over the checkpoints and perturbation seeds, overall and per true class. A multirun of
``python -m src.robustness`` writes the same report into its sweep directory (:class:`MultirunReport`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.robustness.gates import GATE_QUANTITIES, plot_mean_gates
from src.robustness.perturbations import PERTURBATIONS, snr_db
from src.robustness.results import (
    CurvePoint,
    level_axis,
    read_json,
    save_figure,
    summary_rows,
    write_csv_rows,
)

log = logging.getLogger("mmfusion")

LATE_FUSION = "LateFusion"
UNIMODAL = "UnimodalFusion"


@dataclass
class SweptRun:
    """One checkpoint's ``robustness.json``."""

    path: Path
    points: list[CurvePoint]
    meta: dict[str, Any]
    gates: list[dict[str, Any]]

    @property
    def method(self) -> str:
        return str(self.run.get("method") or self.path.parent.name)

    @property
    def run(self) -> dict[str, Any]:
        return self.meta.get("run") or {}

    @property
    def data_key(self) -> str:
        return json.dumps(self.run.get("data"), sort_keys=True, default=str)

    def is_baseline(self) -> bool:
        return self.run.get("fusion") in (LATE_FUSION, UNIMODAL)


def load_runs(dirs: Sequence[Path]) -> list[SweptRun]:
    """Every ``robustness.json`` under ``dirs`` (a run directory or a multirun's sweep directory)."""
    runs = []
    for root in dirs:
        if not Path(root).exists():
            raise FileNotFoundError(f"{root} does not exist")
        for path in sorted(Path(root).rglob("robustness.json")):
            points, document = read_json(path)
            runs.append(SweptRun(path, points, document.get("meta") or {}, document.get("gates") or []))
    if not runs:
        raise FileNotFoundError(f"no robustness.json under {[str(d) for d in dirs]}")
    return runs


def baseline_for(run: SweptRun, runs: Sequence[SweptRun], modality: str) -> SweptRun | None:
    """The baseline of ``run``'s curves on ``modality`` (module docstring), or None."""
    if run.is_baseline():
        return None
    same = [
        r
        for r in runs
        if r is not run and r.data_key == run.data_key and r.run.get("seed") == run.run.get("seed")
    ]
    late = [r for r in same if r.run.get("fusion") == LATE_FUSION]
    if late:
        return late[0]
    unimodal = [
        r for r in same if r.run.get("fusion") == UNIMODAL and r.run.get("fusion_modality") == modality
    ]
    return unimodal[0] if unimodal else None


def common_metric(runs: Sequence[SweptRun], metric: str | None) -> str:
    if metric:
        return metric
    metrics = sorted({str(r.meta.get("metric")) for r in runs})
    if len(metrics) != 1:
        raise ValueError(f"the runs were swept on different metrics {metrics}; pick one with --metric")
    return metrics[0]


def compare(runs: Sequence[SweptRun], metric: str) -> list[dict[str, Any]]:
    """One row per checkpoint and curve: method, seed, curve, relative and effective robustness."""
    rows = []
    for run in runs:
        for modality in dict.fromkeys(p.modality for p in run.points):
            base = baseline_for(run, runs, modality)
            own = [p for p in run.points if p.modality == modality]
            theirs = [p for p in base.points if p.modality == modality] if base else None
            try:
                summary = summary_rows(own, metric, theirs, base.method if base else None)
            except ValueError as err:
                raise ValueError(f"{run.path} against {base.path if base else 'no baseline'}: {err}") from err
            for row in summary:
                rows.append({"method": run.method, "seed": run.run.get("seed"), "path": str(run.path), **row})
    return rows


def _mean_std(values: Sequence[float | None]) -> tuple[float, float, int]:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return math.nan, math.nan, 0
    return float(np.mean(finite)), float(np.std(finite)), len(finite)


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, modality, perturbation), in first-appearance order: mean +- std over checkpoints."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["modality"], row["perturbation"]), []).append(row)
    table = []
    for (method, modality, perturbation), group in groups.items():
        levels = group[0]["levels"]
        if any(r["levels"] != levels for r in group):
            raise ValueError(
                f"{method} {modality}/{perturbation}: the checkpoints were swept at different levels"
            )
        entry: dict[str, Any] = {
            "method": method,
            "modality": modality,
            "perturbation": perturbation,
            "levels": levels,
            "n": len(group),
            "seeds": sorted(r["seed"] for r in group if r["seed"] is not None),
            "curve": np.mean([r["mean"] for r in group], axis=0).tolist(),
            "curve_std": np.std([r["mean"] for r in group], axis=0).tolist(),
            "baseline": ", ".join(sorted({r["baseline"] for r in group if r["baseline"]})),
        }
        for key in ("clean", "last", "relative_robustness", "effective_robustness"):
            entry[key], entry[f"{key}_std"], entry[f"{key}_n"] = _mean_std([r[key] for r in group])
        table.append(entry)
    return table


def level_label(perturbation: str, level: float) -> str:
    """A level as a reader wants it: ``clean``, an SNR in dB for Gaussian noise, else the number."""
    if level == 0:
        return "clean"
    if perturbation == "gaussian_noise":
        return f"{snr_db(level):.0f} dB"
    return f"{level:g}"


def gate_summary(runs: Sequence[SweptRun]) -> list[dict[str, Any]]:
    """The gate rows of every checkpoint averaged over its method's checkpoints and perturbation seeds:
    ``method, perturbed, perturbation, level, group, class, n_checkpoints, <modality>: mean gate``."""
    grouped: dict[tuple, dict[str, list[float]]] = {}
    checkpoints: dict[tuple, set[str]] = {}
    modalities: dict[str, list[str]] = {}
    quantities: dict[str, str] = {}
    for run in runs:
        names = list(run.meta.get("gate_modalities") or [])
        quantities[run.method] = run.gates[0].get("quantity", "gates") if run.gates else "gates"
        modalities[run.method] = names
        for row in run.gates:
            key = (
                run.method,
                row["perturbed"],
                row["perturbation"],
                float(row["level"]),
                row["group"],
                row["class"],
            )
            values = grouped.setdefault(key, {m: [] for m in names})
            for m in names:
                if row.get(m) is not None:
                    values[m].append(float(row[m]))
            checkpoints.setdefault(key, set()).add(str(run.path))
    out = []
    for key, values in grouped.items():
        method, perturbed, perturbation, level, group, name = key
        row = {
            "method": method,
            "perturbed": perturbed,
            "perturbation": perturbation,
            "level": level,
            "group": group,
            "class": name,
            "n_checkpoints": len(checkpoints[key]),
            "quantity": quantities[method],
        }
        row.update({m: float(np.mean(v)) if v else math.nan for m, v in values.items()})
        out.append(row)
    return out


def _fmt(mean: float, std: float, n: int) -> str:
    if n == 0 or not math.isfinite(mean):
        return "-"
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def to_markdown(
    table: Sequence[dict[str, Any]], gates: Sequence[dict[str, Any]], metric: str, title: str
) -> str:
    lines = [
        f"## {title}",
        "",
        f"Metric: `{metric}` on the test split; mean ± std over the checkpoints (training seeds, n). "
        "Relative robustness: area under the metric-vs-level curve / clean metric; effective robustness: "
        "area of the gap to the baseline's curve shifted to this model's clean value (src/robustness/summary.py).",
        "",
        "| method | perturbed | perturbation | n | clean | worst level | relative robustness | effective robustness | baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| {row['method']} | {row['modality']} | {row['perturbation']} | {row['n']} | "
            f"{_fmt(row['clean'], row['clean_std'], row['clean_n'])} | "
            f"{_fmt(row['last'], row['last_std'], row['last_n'])} | "
            f"{_fmt(row['relative_robustness'], row['relative_robustness_std'], row['relative_robustness_n'])} | "
            f"{_fmt(row['effective_robustness'], row['effective_robustness_std'], row['effective_robustness_n'])} | "
            f"{row['baseline'] or '-'} |"
        )
    lines += ["", f"### Curves (`{metric}`, mean over checkpoints)", ""]
    for row in table:
        levels = [level_label(row["perturbation"], v) for v in row["levels"]]
        values = ", ".join(f"{lv}: {v:.4f}" for lv, v in zip(levels, row["curve"], strict=True))
        lines.append(f"- {row['method']}, {row['perturbation']} on {row['modality']}: {values}")
    if gates:
        lines += gate_markdown(gates)
    return "\n".join(lines) + "\n"


def gate_markdown(gates: Sequence[dict[str, Any]]) -> list[str]:
    """Per method and curve: the overall mean gate of every modality per level, and the mean gate on the
    perturbed modality per true class and level."""
    lines = ["", "### Mean gates (and CentralNet's branch contributions) under perturbation", ""]
    curves = dict.fromkeys((g["method"], g["perturbed"], g["perturbation"]) for g in gates)
    for method, perturbed, perturbation in curves:
        rows = [
            g
            for g in gates
            if (g["method"], g["perturbed"], g["perturbation"]) == (method, perturbed, perturbation)
        ]
        overall = sorted((g for g in rows if g["group"] == "all"), key=lambda g: g["level"])
        skip = {"method", "perturbed", "perturbation", "level", "group", "class", "n_checkpoints", "quantity"}
        label = GATE_QUANTITIES[overall[0]["quantity"]]
        modalities = [k for k in overall[0] if k not in skip]
        levels = [g["level"] for g in overall]
        lines += [
            f"**{method}, {perturbation} on {perturbed}** ({overall[0]['n_checkpoints']} checkpoints): {label}",
            "",
            "| gate on | " + " | ".join(level_label(perturbation, v) for v in levels) + " |",
            "|---|" + "---|" * len(levels),
        ]
        for m in modalities:
            lines.append(f"| {m} (all) | " + " | ".join(f"{g[m]:.3f}" for g in overall) + " |")
        by_class = [g for g in rows if g["group"] not in ("all", "prediction")]  # true class, latents
        if perturbed in modalities:
            for name in dict.fromkeys(g["class"] for g in by_class):
                cells = {g["level"]: g[perturbed] for g in by_class if g["class"] == name}
                lines.append(
                    f"| {perturbed}, class {name} | "
                    + " | ".join(f"{cells.get(v, math.nan):.3f}" for v in levels)
                    + " |"
                )
        lines.append("")
    return lines


def plot_methods(out: Path, table: Sequence[dict[str, Any]], metric: str) -> list[Path]:
    """``curves_<perturbation>.png``: one panel per perturbed modality, one line per method (mean +- std
    over its checkpoints). A method has one colour in every panel and figure, and every panel has its
    own legend (the panels of one figure need not hold the same methods: a unimodal row is in one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in table))
    palette = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    colour = {m: palette(i % palette.N) for i, m in enumerate(methods)}
    paths = []
    for perturbation in dict.fromkeys(r["perturbation"] for r in table):
        rows = [r for r in table if r["perturbation"] == perturbation]
        modalities = list(dict.fromkeys(r["modality"] for r in rows))
        fig, axes = plt.subplots(1, len(modalities), figsize=(4.6 * len(modalities), 3.6), squeeze=False)
        for ax, modality in zip(axes[0], modalities, strict=True):
            for r in (r for r in rows if r["modality"] == modality):
                x = level_axis(ax, r["levels"])
                ax.errorbar(
                    x,
                    r["curve"],
                    yerr=r["curve_std"] if r["n"] > 1 else None,
                    marker="o",
                    capsize=2,
                    color=colour[r["method"]],
                    label=r["method"],
                )
            ax.set_xticklabels([level_label(perturbation, v) for v in rows[0]["levels"]])
            ax.set_title(f"{perturbation} on {modality}")
            ax.set_xlabel(PERTURBATIONS[perturbation].unit if perturbation in PERTURBATIONS else "level")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small", loc="best")
        paths.append(save_figure(fig, out / f"curves_{perturbation}.png"))
    return paths


def write_report(
    dirs: Sequence[Path], out: Path | None = None, metric: str | None = None, title: str | None = None
) -> str:
    """The comparison's markdown; with ``out``: ``robustness_table.md``/``.csv``, ``robustness_gates.csv``,
    ``curves_<perturbation>.png`` and ``gates_<method>_<modality>_<perturbation>.png`` there."""
    runs = load_runs(dirs)
    metric = common_metric(runs, metric)
    table = aggregate(compare(runs, metric))
    gates = gate_summary(runs)
    markdown = to_markdown(table, gates, metric, title or "Robustness")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "robustness_table.md").write_text(markdown)
        columns = [k for k in table[0] if k not in ("curve", "curve_std")]
        write_csv_rows(out / "robustness_table.csv", [{k: r[k] for k in columns} for r in table], columns)
        if gates:
            write_csv_rows(out / "robustness_gates.csv", gates)
            modalities = {r.method: list(r.meta.get("gate_modalities") or []) for r in runs}
            for method, perturbed, perturbation in dict.fromkeys(
                (g["method"], g["perturbed"], g["perturbation"]) for g in gates
            ):
                rows = [
                    g
                    for g in gates
                    if (g["method"], g["perturbed"], g["perturbation"]) == (method, perturbed, perturbation)
                ]
                plot_mean_gates(
                    out / f"gates_{method}_{perturbed}_{perturbation}.png",
                    rows,
                    modalities[method],
                    f"{method}: {perturbation} on {perturbed}",
                    quantity=rows[0]["quantity"],
                )
        plot_methods(out, table, metric)
    return markdown


class MultirunReport(Callback):
    """Hydra callback of ``python -m src.robustness -m ...``: the comparison of the sweep's checkpoints
    written into the sweep directory when the multirun ends (an error is logged, the jobs' own outputs
    stay; ``python -m src.report <sweep dir> --robustness`` reruns it)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            write_report([sweep_dir], sweep_dir)
        except (ValueError, FileNotFoundError) as err:
            log.error("robustness comparison of %s not written: %s", sweep_dir, err)
            return
        log.info("written: %s/robustness_table.md", sweep_dir)
