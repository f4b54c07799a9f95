"""``python -m src.robustness`` end to end on the embedded data: checkpoints trained here by src.train
(digits: a GMU, a late fusion and a unimodal model of the same data and seed; synthetic_gmu: a GMU),
swept through the CLI, compared by ``python -m src.report --robustness``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import src.robustness.__main__ as cli
from src.eval import evaluate
from src.report import main as report_main
from src.robustness.plan import RobustnessConfigError
from src.robustness.report import SweptRun, baseline_for
from src.robustness.results import read_json
from src.train import train
from tests.helpers import compose_train, run_cli

QUICK = ["logger=csv", "trainer.max_epochs=2", "callbacks.progress_bar=null"]
DIGITS = {
    "gmu": ["fusion=gmu"],
    "late": ["fusion=late_fusion"],
    "unimodal": ["fusion=unimodal", "fusion.modality=view1"],
}


def best_checkpoint(run_dir: Path) -> Path:
    (best,) = (run_dir / "checkpoints").glob("epoch_*.ckpt")
    return best


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict[str, Path]:
    """Three 2-epoch digits checkpoints of seed 0 (a few seconds each)."""
    root = tmp_path_factory.mktemp("robustness_digits")
    for name, overrides in DIGITS.items():
        train(compose_train([*QUICK, *overrides], root / name))
    return {name: best_checkpoint(root / name) for name in DIGITS}


def robustness_cfg(ckpt: Path, out: Path, *overrides: str):
    return compose_train([f"ckpt_path={ckpt}", *overrides], out, config_name="robustness")


def test_level_zero_is_src_eval_exactly(digits: dict[str, Path], tmp_path: Path):
    evaluated = evaluate(compose_train([f"ckpt_path={digits['gmu']}"], tmp_path / "eval", config_name="eval"))
    clean = cli.robustness(robustness_cfg(digits["gmu"], tmp_path / "sweep", "robustness=noise"))
    # every metric of src.eval but the loss (not a robustness metric); src.eval's values went through
    # Lightning's float32 logging, so ours are compared after the same cast, bit for bit
    assert set(clean) == set(evaluated) - {"test/loss"}
    assert {k: float(np.float32(v)) for k, v in clean.items()} == {k: evaluated[k] for k in clean}
    points, document = read_json(tmp_path / "sweep" / "robustness.json")
    assert {p.level for p in points} == {0.0, 0.1, 0.3162, 1.0, 3.1623}
    assert all(p.metrics == clean for p in points if p.level == 0)
    assert document["meta"]["clean"] == clean and document["meta"]["run"]["fusion"] == "GMUFusion"


@pytest.mark.slow  # an end-to-end CLI run (>10 s on 2 cores); the fast suite keeps `make test` under 10 min
def test_multirun_over_methods_then_the_report(digits: dict[str, Path], tmp_path: Path):
    sweep_dir = tmp_path / "multirun"
    paths = ",".join(str(digits[name]) for name in DIGITS)
    proc = run_cli(
        "src.robustness",
        [
            "-m",
            f"ckpt_path={paths}",
            "robustness=missing",
            "robustness.modalities=[view1]",
            f"hydra.sweep.dir={sweep_dir}",
        ],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {name: sweep_dir / str(i) for i, name in enumerate(DIGITS)}
    for job in jobs.values():
        for name in ("robustness.json", "robustness.csv", "robustness_curves.png", "robustness.log"):
            assert (job / name).is_file(), (job, name)
    # the GMU's gates: per level, overall and per true and predicted class, and their plots
    gates = pd.read_csv(jobs["gmu"] / "robustness_gates.csv")
    assert set(gates["group"]) == {"all", "label", "prediction"}
    assert sorted(gates["level"].unique()) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert (jobs["gmu"] / "gates_view1_missing_zeros.png").is_file()
    assert not (jobs["late"] / "robustness_gates.csv").exists()  # LateFusion exports no gates
    csv = pd.read_csv(jobs["gmu"] / "robustness.csv")
    assert set(csv["perturbation"]) == {"missing_zeros", "missing_mean"} and set(csv["modality"]) == {"view1"}

    # the sweep directory holds the comparison; the GMU's baseline is the late fusion (same data, seed)
    table = pd.read_csv(sweep_dir / "robustness_table.csv")
    assert (sweep_dir / "robustness_table.md").is_file() and (
        sweep_dir / "curves_missing_zeros.png"
    ).is_file()
    row = table[(table["method"] == "GMUFusion") & (table["perturbation"] == "missing_zeros")].iloc[0]
    assert row["baseline"] == "LateFusion"

    def curve(job: Path) -> np.ndarray:
        points, _ = read_json(job / "robustness.json")
        rows = sorted((p.level, p.metrics["test/acc"]) for p in points if p.perturbation == "missing_zeros")
        return np.array([v for _, v in rows])

    y, b = curve(jobs["gmu"]), curve(jobs["late"])
    gap = y - (b - b[0] + y[0])  # MultiBench's effective gap, by hand
    area = float(np.sum((gap[1:] + gap[:-1]) / 2) / (len(gap) - 1))
    assert row["effective_robustness"] == pytest.approx(area, abs=1e-12)
    assert row["relative_robustness"] == pytest.approx(float(np.sum((y[1:] + y[:-1]) / 2) / 5 / y[0]))
    assert table[table["method"].isin(["LateFusion", "UnimodalFusion"])]["effective_robustness"].isna().all()

    out = tmp_path / "report"
    assert report_main([str(sweep_dir), "--robustness", "--out", str(out)]) == 0
    assert (out / "robustness_table.md").read_text() == (sweep_dir / "robustness_table.md").read_text()
    assert (out / "gates_GMUFusion_view1_missing_zeros.png").is_file()


@pytest.mark.slow  # ~1 min idle: a CentralNet fit and a sweep
def test_centralnet_branch_contributions_under_a_missing_modality(tmp_path: Path):
    """CentralNet exports per-sample branch contributions instead of gates; zeroing view1 takes its
    share of the first weighted sum to 0, so its mean share over the depths falls."""
    train(compose_train([*QUICK, "fusion=centralnet"], tmp_path / "run"))
    out = tmp_path / "sweep"
    cli.robustness(
        robustness_cfg(
            best_checkpoint(tmp_path / "run"), out, "robustness=missing", "robustness.modalities=[view1]"
        )
    )
    gates = pd.read_csv(out / "robustness_gates.csv")
    assert set(gates["quantity"]) == {"branch_contributions"}
    overall = gates[(gates["group"] == "all") & (gates["perturbation"] == "missing_zeros")].set_index("level")
    assert np.allclose(overall["view1"] + overall["view2"], 1.0)
    assert overall.loc[1.0, "view1"] < overall.loc[0.0, "view1"]
    assert (out / "gates_view1_missing_zeros.png").is_file()


def test_bad_requests_are_named_before_any_work(digits: dict[str, Path], tmp_path: Path, monkeypatch, caplog):
    def no_work(*args, **kwargs):
        raise AssertionError("data or model loaded before the plan was checked")

    monkeypatch.setattr(cli, "load_checkpoint_run", no_work)
    with pytest.raises(
        RobustnessConfigError, match=r"\['audio'\] not among the checkpoint's modalities \['view1', 'view2'\]"
    ):
        cli.robustness(robustness_cfg(digits["gmu"], tmp_path / "a", "robustness.modalities=[audio]"))
    with pytest.raises(RobustnessConfigError, match=r"image\.wobble: unknown perturbation 'wobble'"):
        cli.robustness(
            robustness_cfg(digits["gmu"], tmp_path / "b", "+robustness.perturbations.image.wobble=[0,1]")
        )
    with caplog.at_level(logging.ERROR, logger="mmfusion"), pytest.raises(SystemExit) as exit_info:
        cli.run_job(
            cli.robustness, robustness_cfg(digits["gmu"], tmp_path / "c", "robustness.modalities=[audio]")
        )
    assert exit_info.value.code == 2 and "not among the checkpoint's modalities" in caplog.text
    assert not any((tmp_path / d / "robustness.json").exists() for d in "abc")


def swept(fusion: str, seed: int, modality: str | None = None, data: str = "digits") -> SweptRun:
    run = {"method": f"{fusion}{modality or ''}", "fusion": fusion, "fusion_modality": modality, "seed": seed}
    return SweptRun(
        Path(f"/{fusion}{modality}{seed}{data}"), [], {"run": {**run, "data": {"name": data}}}, []
    )


def test_the_baseline_is_the_late_fusion_else_the_unimodal_model_of_the_perturbed_modality():
    gmu, image, audio = (
        swept("GMUFusion", 0),
        swept("UnimodalFusion", 0, "image"),
        swept("UnimodalFusion", 0, "audio"),
    )
    late, late_other_seed = swept("LateFusion", 0), swept("LateFusion", 1)
    other_data = swept("UnimodalFusion", 0, "image", data="mmnist")
    assert baseline_for(gmu, [gmu, image, audio, other_data], "image") is image
    assert baseline_for(gmu, [gmu, image, audio], "audio") is audio
    assert baseline_for(gmu, [gmu, image, audio, late], "image") is late
    assert baseline_for(gmu, [gmu, late_other_seed, other_data], "image") is None
    assert baseline_for(image, [gmu, image, late], "image") is None  # baselines get none


def test_synthetic_gmu_gate_shift_through_the_cli(tmp_path: Path):
    """The part-1 finding (tests/test_robustness_synthetic_gmu.py) on a checkpoint of src.train: with x_v
    (``image``) under noise, the mean gate on it falls where it carried the class (latent M = 1) and
    rises elsewhere (M = 0). The paper's one-unit GMU (experiment=arevalo2017_synthetic), 300 full-batch
    steps."""
    train(
        compose_train(
            ["logger=csv", "experiment=arevalo2017_synthetic", "trainer.max_epochs=300"], tmp_path / "train"
        )
    )
    cli.robustness(
        robustness_cfg(
            best_checkpoint(tmp_path / "train"),
            tmp_path / "sweep",
            "robustness=noise",
            "robustness.modalities=[image]",
        )
    )
    gates = pd.read_csv(tmp_path / "sweep" / "robustness_gates.csv")
    latent = gates[gates["group"] == "latent"].sort_values("level")
    carried = latent[latent["class"] == "latent=1"]["image"].to_numpy()
    other = latent[latent["class"] == "latent=0"]["image"].to_numpy()
    assert carried[0] > 0.5 > other[0]
    assert carried[-1] < carried[0] - 0.02
    assert other[-1] > other[0] + 0.02


def test_wandb_logger_gets_the_plots_as_media(digits: dict[str, Path], tmp_path: Path):
    cfg = robustness_cfg(
        digits["gmu"], tmp_path, "robustness=quick", "robustness.modalities=[view1]", "logger=wandb"
    )
    cli.run_job(cli.robustness, cfg)  # offline (WANDB_MODE), finished by run_job
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    media = sorted(p.name.split("_")[0] for p in (run / "files" / "media").rglob("*.png"))
    assert len(media) == 3  # the curves and the two gate plots (missing_zeros, gaussian_noise)
    assert list((run / "files" / "media" / "table").rglob("*.table.json"))
