"""Issue 16, section 2: SLURM and local parallel launchers (hydra-submitit-launcher, joblib)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from src.utils import launchers, sweep
from src.utils.provenance import PROVENANCE
from tests.helpers import CONF_DIR, compose_train, run_cli

SLURM_JOB = ["hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]


def _launcher_params(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_slurm_config_asks_for_one_task_per_rank_and_submitit_requeues(tmp_path, monkeypatch):
    """The submitit parameters of trainer=ddp trainer.devices=4 trainer.num_nodes=2, and the sbatch
    script submitit writes from them (the launcher's own conversion; a stand-in srun makes submitit
    believe it is on a cluster)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = _launcher_params(SLURM_JOB)
    assert params["_target_"] == launchers.SLURM
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (2, 4, 4)
    assert params["max_num_timeout"] == 3
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    params.pop("_target_")
    params["submitit_folder"] = str(tmp_path / "submitit")
    # what SlurmLauncher.launch does with its params (hydra_submitit_launcher/submitit_launcher.py)
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=params.pop("submitit_folder"),
        slurm_max_num_timeout=params.pop("max_num_timeout"),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m src.train", "uid")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4"):
        assert line in script
    assert "srun" in script
    assert executor._executor.max_num_timeout == 3


def test_cpu_jobs_ask_slurm_for_no_gpu():
    params = _launcher_params(["hydra/launcher=submitit_slurm"])
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (1, 1, 0)


@pytest.mark.parametrize(
    ("launcher", "expected"),
    [
        (None, "ddp"),  # a single run: Lightning's ddp launcher re-runs this one command per rank
        (launchers.SLURM, "ddp"),  # srun starts the ranks
        (launchers.BASIC, "ddp_spawn"),
        (launchers.SUBMITIT_LOCAL, "ddp_spawn"),
        (launchers.JOBLIB, "ddp_spawn"),
    ],
)
def test_strategy_decision(launcher, expected):
    assert launchers.strategy_for("ddp", launcher) == expected
    assert launchers.strategy_for("ddp_spawn", launcher) == "ddp_spawn"
    assert launchers.strategy_for(None, launcher) is None


def test_lightning_auto_requeue_is_off_under_slurm(monkeypatch):
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "8")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    (environment,) = launchers.cluster_plugins()
    assert environment.auto_requeue is False
    monkeypatch.delenv("SLURM_NTASKS")
    assert launchers.cluster_plugins() == []


def test_a_local_parallel_job_gets_its_own_gpu(monkeypatch):
    gpu = OmegaConf.create({"accelerator": "gpu", "devices": 1})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    assert launchers.job_device(gpu, launchers.JOBLIB, 4) == {}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    assert (
        launchers.job_device(gpu, launchers.SLURM, 4) == {} and os.environ["CUDA_VISIBLE_DEVICES"] == "2,5,7"
    )
    assert (
        launchers.job_device(OmegaConf.create({"accelerator": "cpu", "devices": 1}), launchers.JOBLIB, 1)
        == {}
    )
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,5,7"


def test_a_requeued_slurm_job_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    cfg = compose_train(["logger=csv"], tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (tmp_path / PROVENANCE).write_text(
        json.dumps({"status": "running", "config_sha256": sweep.config_hash(cfg)})
    )
    assert sweep.job_start(cfg, tmp_path).ckpt_path is None  # not requeued: an ordinary run
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    start = sweep.job_start(cfg, tmp_path)
    assert start.ckpt_path == tmp_path / "checkpoints" / "last.ckpt" and start.finished is None


@pytest.mark.slow  # submitit polls its jobs: about a minute of CPU, three on a busy machine
def test_submitit_local_multirun_on_cpu(tmp_path):
    """Two jobs through submitit's local executor: both complete and write their metrics."""
    proc = run_cli(
        "src.train",
        [
            "-m",
            "hydra/launcher=submitit_local",
            f"paths.log_dir={tmp_path}",
            "logger=csv",
            "callbacks.progress_bar=null",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=4",
            "seed=0,1",
        ],
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    for job in ("0", "1"):
        metrics = json.loads((sweep_dir / job / "metrics.json").read_text())
        assert 0 < metrics["test/acc"] <= 1
        assert json.loads((sweep_dir / job / PROVENANCE).read_text())["status"] == "completed"
    assert any((sweep_dir / ".submitit").iterdir())


@pytest.mark.slow
def test_joblib_multirun_runs_past_a_failing_job(tmp_path):
    proc = run_cli(
        "src.train",
        [
            "-m",
            "hydra/launcher=joblib",
            f"paths.log_dir={tmp_path}",
            "logger=csv",
            "callbacks.progress_bar=null",
            "trainer.max_epochs=0,1",
            "+trainer.limit_train_batches=4",
        ],
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 1 and "1 of 2 jobs failed" in proc.stderr, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    assert (sweep_dir / "1" / "metrics.json").is_file() and not (sweep_dir / "0" / "metrics.json").exists()
    assert Path(sweep_dir / "0" / PROVENANCE).is_file()
