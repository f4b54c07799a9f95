"""Issue 19: the GPU path's configs and scripts, checked on CPU: the packing launcher, the
reproduce-gpu ledger, the FLOP bench, and the GPU check's dry run (``--device cpu --tiny``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

from src.bench.flops import run as flops_run
from src.protocol import config_mismatches, missing_settings, parse
from src.utils.resolvers import REPO_ROOT
from tests.helpers import CONF_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EXPERIMENTS = ["centralnet2018_mmnist", "centralnet2018_avmnist"]


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def test_gpu_pack_launcher_is_the_joblib_plugin_with_n_workers():
    cfg = _compose("hydra/launcher=gpu_pack", "hydra.launcher.n_jobs=3")
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "JoblibLauncher"
    assert launcher.n_jobs == 3 and launcher.backend == "loky" and int(launcher.batch_size) == 1


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_reproduce_gpu_keeps_the_papers_protocol_and_records_bf16(experiment):
    """+reproduce_gpu=centralnet2018 with trainer=gpu changes only the precision, the placement of
    the data and the trainer's device keys; the epochs stay 100 and the ledger says bf16."""
    paper = _compose(f"experiment={experiment}")
    gpu = _compose(f"experiment={experiment}", "+reproduce_gpu=centralnet2018", "trainer=gpu")
    assert gpu.trainer.max_epochs == paper.trainer.max_epochs == 100
    assert gpu.hydra.sweeper.params.seed == paper.hydra.sweeper.params.seed
    assert gpu.data.resident_mb > 0 and gpu.trainer.precision == "bf16-mixed"
    for part in ("model", "fusion", "callbacks", "monitor"):
        assert gpu[part] == paper[part], part
    settings, problems = parse(gpu.protocol)
    problems += missing_settings(settings) + config_mismatches(settings, gpu)
    assert not problems, "\n".join(problems)
    precision = {s.name: s for s in settings}["precision"]
    assert precision.ours.startswith("make reproduce-gpu") and not precision.quote
    # without trainer=gpu the ledger and the run would disagree, and the check says so
    cpu = _compose(f"experiment={experiment}", "+reproduce_gpu=centralnet2018", "trainer=cpu")
    assert config_mismatches(parse(cpu.protocol)[0], cpu)


def test_flop_bench_counts_matmuls_and_times_both_paths():
    """One tiny row on CPU: a positive FLOP count that grows with the sequence length, both paths
    timed, and the ratio is their quotient."""
    short = flops_run("mult", "iemocap", batch_size=2, steps=3, warmup=1, device="cpu")
    long = flops_run("mult", "mosei", batch_size=2, steps=3, warmup=1, device="cpu")
    assert 0 < short["gflop_per_step"] < long["gflop_per_step"]
    for row in (short, long):
        assert row["plain_samples_per_s"] > 0 and row["repo_samples_per_s"] > 0 and row["repo_tflops"] > 0
        assert row["ratio"] == pytest.approx(row["repo_samples_per_s"] / row["plain_samples_per_s"], rel=0.01)
    assert short["lengths"] == {"text": 20, "audio": 20, "vision": 20}


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MMFUSION_GPU_DRY_RUN") != "1",
    reason="the whole GPU check on CPU takes ~35 min on 2 cores; opt in with MMFUSION_GPU_DRY_RUN=1 "
    "(or run `make gpu-check ARGS='--device cpu --tiny'`)",
)
def test_gpu_check_dry_run_on_cpu(tmp_path):
    """``scripts/gpu_check.sh --device cpu --tiny``: all four parts run and write one folder.

    Opt-in (MMFUSION_GPU_DRY_RUN=1): its four parts take ~35 minutes on two CPU cores, a third of CI's
    budget; the fast tests cover each part's pieces (resident data, compile, the ledger, a FLOP row).
    """
    out = tmp_path / "gpu_check"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PY": sys.executable}
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--device", "cpu", "--tiny", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = (out / "summary.md").read_text()
    assert "failures: 0" in summary
    for name in ("vector_gmu", "cnn_centralnet", "sequence_mult_T500", "sequence_bpmult_T50"):
        assert json.loads((out / "train" / name / "metrics.json").read_text())
    assert (out / "ddp" / "compare.md").is_file()
    rows = json.loads((out / "bench" / "flops.json").read_text())
    assert {r["method"] for r in rows} == {"mult", "bpmult"}
    for experiment in EXPERIMENTS:
        assert (out / "reproduce" / "results" / experiment / "table.md").is_file()
