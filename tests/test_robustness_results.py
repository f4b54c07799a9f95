"""robustness.json / robustness.csv, the curve and gate plots, and the gate statistics under corruption
(src/robustness/results.py, src/robustness/gates.py) on small arrays with expected values."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from src.robustness.gates import mean_gate_rows, membership, plot_mean_gates
from src.robustness.results import (
    SCHEMA,
    CurvePoint,
    curves,
    plot_curves,
    read_json,
    summary_rows,
    write_csv,
    write_csv_rows,
    write_json,
)


def sweep(values: dict[tuple[str, str], list[list[float]]], levels=(0.0, 0.5, 1.0)) -> list[CurvePoint]:
    """Points of a sweep: per (modality, perturbation), per level, one test/acc per seed."""
    return [
        CurvePoint(m, p, level, seed, {"test/acc": acc, "test/f1_macro": acc / 2})
        for (m, p), per_level in values.items()
        for level, accs in zip(levels, per_level, strict=True)
        for seed, acc in enumerate(accs)
    ]


METHOD = sweep(
    {
        ("image", "missing_zeros"): [[0.8, 0.8], [0.7, 0.5], [0.4, 0.4]],
        ("text", "missing_zeros"): [[0.8, 0.8], [0.8, 0.8], [0.6, 0.6]],
    }
)
BASELINE = sweep(
    {
        ("image", "missing_zeros"): [[0.9, 0.9], [0.7, 0.7], [0.3, 0.3]],
        ("text", "missing_zeros"): [[0.9, 0.9], [0.8, 0.8], [0.7, 0.7]],
    }
)


def test_curves_average_the_seeds():
    image, text = curves(METHOD, "test/acc")
    assert (image.modality, image.levels, image.n_seeds) == ("image", (0.0, 0.5, 1.0), 2)
    np.testing.assert_allclose(image.mean, [0.8, 0.6, 0.4])
    np.testing.assert_allclose(image.std, [0.0, 0.1, 0.0])
    assert text.mean == pytest.approx((0.8, 0.8, 0.6))


def test_summary_rows_by_hand():
    rows = summary_rows(METHOD, "test/acc", BASELINE, baseline_name="late_fusion")
    image, text = rows
    assert image["relative_robustness"] == pytest.approx(0.6 / 0.8)  # area 0.6 (test_robustness_summary)
    # baseline [0.9, 0.7, 0.3] shifted to 0.8: [0.8, 0.6, 0.2]; gap [0, 0, 0.2]; area 0.2 / 2 / 2 = 0.05
    assert image["effective_robustness"] == pytest.approx(0.05)
    # text: area (0.8 + 0.8) / 4 + (0.8 + 0.6) / 4 = 0.75; gap vs [0.8, 0.7, 0.6]: [0, 0.1, 0] -> 0.05
    assert text["relative_robustness"] == pytest.approx(0.75 / 0.8)
    assert text["effective_robustness"] == pytest.approx(0.05)
    assert (image["clean"], image["last"], image["baseline"]) == (0.8, 0.4, "late_fusion")
    assert summary_rows(METHOD, "test/acc")[0]["effective_robustness"] is None


def test_malformed_sweeps_are_named():
    with pytest.raises(ValueError, match="no clean point"):
        curves([CurvePoint("image", "blur", 1.0, 0, {"test/acc": 0.5})], "test/acc")
    with pytest.raises(ValueError, match="level 0.5 has seeds \\[0\\], level 0 has \\[0, 1\\]"):
        curves(METHOD[:3] + METHOD[4:6], "test/acc")
    with pytest.raises(ValueError, match="measured twice"):
        curves(METHOD[:1] * 2, "test/acc")
    with pytest.raises(KeyError, match="test/ap_micro"):
        curves(METHOD, "test/ap_micro")
    other_levels = sweep({("image", "missing_zeros"): [[0.9], [0.3]]}, levels=(0.0, 1.0))
    with pytest.raises(
        ValueError, match=r"'lf' has no image/missing_zeros curve at .* \(it has \[0.0, 1.0\]\)"
    ):
        summary_rows(METHOD, "test/acc", other_levels, baseline_name="lf")
    image_only = [p for p in BASELINE if p.modality == "image"]
    with pytest.raises(ValueError, match="baseline 'lf' has no text/missing_zeros curve"):
        summary_rows(METHOD, "test/acc", image_only, baseline_name="lf")


def test_json_round_trip_and_schema(tmp_path: Path):
    points = METHOD + [CurvePoint("audio", "gaussian_noise", 0.0, 0, {"test/acc": math.nan})]
    rows = summary_rows(METHOD, "test/acc")
    path = write_json(tmp_path / "robustness.json", points, rows, meta={"ckpt_path": "x.ckpt"})
    document = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert document["schema"] == SCHEMA and document["meta"] == {"ckpt_path": "x.ckpt"}
    assert document["points"][-1]["metrics"] == {"test/acc": None}
    assert document["summary"][0]["levels"] == [0.0, 0.5, 1.0]
    back, _ = read_json(path)
    assert back[:-1] == METHOD and math.isnan(back[-1].metrics["test/acc"])
    (tmp_path / "old.json").write_text(json.dumps({"schema": "other/0"}))
    with pytest.raises(ValueError, match="old.json: 'schema' is 'other/0'"):
        read_json(tmp_path / "old.json")
    (tmp_path / "bad.json").write_text(json.dumps({"schema": SCHEMA, "points": [{"modality": "image"}]}))
    with pytest.raises(ValueError, match=r"bad.json: points\[0\]"):
        read_json(tmp_path / "bad.json")


def test_csv_is_the_long_table(tmp_path: Path):
    with open(write_csv(tmp_path / "robustness.csv", METHOD[:2])) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["modality", "perturbation", "level", "seed", "metric", "value"]
    assert [(r["seed"], r["metric"], float(r["value"])) for r in rows] == [
        ("0", "test/acc", 0.8),
        ("0", "test/f1_macro", 0.4),
        ("1", "test/acc", 0.8),
        ("1", "test/f1_macro", 0.4),
    ]


def test_plots_are_written(tmp_path: Path):
    png = plot_curves(tmp_path / "curves.png", METHOD + BASELINE[:0], "test/acc", title="avmnist")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = mean_gate_rows({0.0: np.full((4, 2, 3), 0.5), 1.0: np.full((4, 2, 3), 0.25)}, ["image", "audio"])
    assert plot_mean_gates(tmp_path / "gates.png", rows, ["image", "audio"]).stat().st_size > 1000


# ---- gates -----------------------------------------------------------------------------------


GATES_CLEAN = np.array(
    [  # (N=4, K=2, H=2): sample means image 0.9, 0.7, 0.2, 0.4
        [[0.8, 1.0], [0.2, 0.0]],
        [[0.6, 0.8], [0.4, 0.2]],
        [[0.2, 0.2], [0.8, 0.8]],
        [[0.4, 0.4], [0.6, 0.6]],
    ]
)
GATES_NOISY = 1.0 - GATES_CLEAN  # the gate flips under the perturbation
LABELS = np.array([0, 0, 1, 2])  # class "c" (2) has one sample; no sample predicted "c"
PREDICTED = {0.0: np.array([0, 0, 1, 1]), 0.8: np.array([1, 1, 1, 0])}


def test_mean_gates_per_level_overall_per_label_and_per_prediction():
    rows = mean_gate_rows(
        {0.8: GATES_NOISY, 0.0: GATES_CLEAN},
        ["image", "text"],
        class_names=["a", "b", "c"],
        labels=LABELS,
        predictions_by_level=PREDICTED,
        context={"perturbed": "image", "perturbation": "gaussian_noise"},
    )
    table = {(r["level"], r["group"], r["class"]): r for r in rows}
    assert len(rows) == 2 * (1 + 3 + 3) and rows[0]["level"] == 0.0  # levels ascending
    assert list(rows[0])[:2] == ["perturbed", "perturbation"]
    clean_all = table[(0.0, "all", "all")]
    assert (
        clean_all["n"] == 4
        and clean_all["image"] == pytest.approx(0.55)
        and clean_all["text"] == pytest.approx(0.45)
    )
    assert table[(0.8, "all", "all")]["image"] == pytest.approx(0.45)
    assert table[(0.0, "label", "a")]["image"] == pytest.approx(0.8)  # samples 0, 1: (0.9 + 0.7) / 2
    assert table[(0.8, "label", "a")]["image"] == pytest.approx(0.2)
    assert table[(0.0, "label", "c")]["image"] == pytest.approx(0.4)
    assert table[(0.0, "prediction", "b")]["image"] == pytest.approx(0.3)  # samples 2, 3
    assert table[(0.8, "prediction", "b")]["image"] == pytest.approx((0.1 + 0.3 + 0.8) / 3)
    empty = table[(0.0, "prediction", "c")]
    assert empty["n"] == 0 and math.isnan(empty["image"])


def test_gates_of_multilabel_and_regression_tasks():
    two_labels = np.array([[1, 1], [0, 1], [0, 0], [1, 0]])  # a sample in both classes counts in both
    rows = mean_gate_rows({0.0: GATES_CLEAN}, ["image", "text"], class_names=["x", "y"], labels=two_labels)
    table = {(r["group"], r["class"]): r for r in rows}
    assert table[("label", "x")]["image"] == pytest.approx((0.9 + 0.4) / 2)
    assert table[("label", "y")]["n"] == 2 and table[("label", "y")]["image"] == pytest.approx(0.8)
    moe = np.array([[0.7, 0.3], [0.1, 0.9]])  # (N, K) gates, a regression task: overall only
    (row,) = mean_gate_rows({0.5: moe}, ["a", "b"])
    assert (row["group"], row["a"], row["b"]) == ("all", pytest.approx(0.4), pytest.approx(0.6))


def test_gate_inputs_are_checked():
    with pytest.raises(ValueError, match="K = 3 modalities"):
        mean_gate_rows({0.0: GATES_CLEAN}, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 2\)"):
        membership(np.array([0, 2]), 2)
    with pytest.raises(ValueError, match=r"\(N, 3\) indicators"):
        membership(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="3 samples for 4 gates"):
        mean_gate_rows({0.0: GATES_CLEAN}, ["image", "text"], ["a", "b", "c"], labels=LABELS[:3])


def test_gate_rows_write_as_csv(tmp_path: Path):
    rows = mean_gate_rows({0.0: GATES_CLEAN}, ["image", "text"], ["a", "b", "c"], LABELS)
    with open(write_csv_rows(tmp_path / "gates.csv", rows)) as handle:
        back = list(csv.DictReader(handle))
    assert len(back) == 4 and back[0]["class"] == "all" and float(back[0]["image"]) == pytest.approx(0.55)


def test_a_method_keeps_its_colour_in_every_panel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Before: colours followed each panel's line order, and only the last panel had a legend, so a
    unimodal row present in one panel shifted every colour of the other (the avMNIST curves)."""
    import src.robustness.report as report

    figures = []
    monkeypatch.setattr(report, "save_figure", lambda fig, path: figures.append(fig) or path)
    row = {"perturbation": "missing_zeros", "levels": [0.0, 0.5, 1.0], "curve_std": [0.0] * 3, "n": 1}
    table = [
        {**row, "method": "image_only", "modality": "image", "curve": [0.6, 0.3, 0.1]},
        {**row, "method": "gmu", "modality": "image", "curve": [0.9, 0.8, 0.7]},
        {**row, "method": "gmu", "modality": "audio", "curve": [0.9, 0.6, 0.4]},
        {**row, "method": "audio_only", "modality": "audio", "curve": [0.8, 0.5, 0.1]},
    ]
    report.plot_methods(tmp_path, table, "test/acc")
    (figure,) = figures
    colours = {}
    for ax in figure.axes:
        assert ax.get_legend() is not None
        for curve in ax.containers:  # one errorbar container per method: its data line has the colour
            colours.setdefault(curve.get_label(), set()).add(curve.lines[0].get_color())
    assert set(colours) == {"image_only", "gmu", "audio_only"}
    assert all(len(c) == 1 for c in colours.values())
    assert len({next(iter(c)) for c in colours.values()}) == 3
