"""What a job does differently under each Hydra launcher (conf/hydra/launcher/).

- **Strategy.** Lightning's ``ddp`` re-executes ``sys.argv`` in every rank; in a Hydra multirun on
  the basic launcher (or joblib, or submitit's local executor) that command is the whole sweep, so
  there ``ddp`` becomes ``ddp_spawn``. Under ``submitit_slurm`` SLURM starts one task per rank through
  srun (``tasks_per_node = trainer.devices``) and Lightning's SLURM environment reads the ranks, so
  ``ddp`` stays ``ddp`` (Hydra #2231/#2814, Lightning #20056).
- **Requeue.** submitit owns it (``hydra.launcher.max_num_timeout``): on the timeout signal it
  requeues the job, which then resumes from its ``last.ckpt`` (:func:`src.utils.sweep.job_start`).
  Lightning's own SLURM auto-requeue is switched off (:func:`cluster_plugins`), so one mechanism
  requeues, once.
- **One GPU per job.** submitit's local executor and joblib hand every job the same GPUs; a
  single-device GPU job of such a sweep takes GPU ``hydra.job.num mod n`` of the ``n`` visible ones
  (:func:`job_device`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("mmfusion")

BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
SUBMITIT_LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
#: launchers that run several jobs at once on this machine
LOCAL_PARALLEL = (SUBMITIT_LOCAL, JOBLIB)


def multirun_launcher() -> str | None:
    """The ``_target_`` of the launcher running this job in a Hydra multirun; None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return str(HydraConfig.get().launcher.get("_target_", BASIC))


def strategy_for(strategy: Any, launcher: str | None) -> Any:
    """The Lightning strategy a job runs with (module docstring): ``ddp`` -> ``ddp_spawn`` in a
    multirun on any launcher but SLURM's."""
    if strategy == "ddp" and launcher is not None and launcher != SLURM:
        return "ddp_spawn"
    return strategy


def cluster_plugins() -> list[Any]:
    """Lightning's SLURM environment with auto-requeue off when this process is a SLURM task (the
    environment Lightning would pick by itself, minus its requeue: submitit owns requeueing)."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def gpu_count(accelerator: Any, devices: Any = None) -> int:
    """``${gpu_count:<trainer.accelerator>[,<trainer.devices>]}``: the GPUs a job asks for, 0 unless the
    trainer runs on GPUs; ``devices`` when given (SLURM's ``gpus_per_node``), else the GPUs visible
    here (what submitit's local executor exposes to its jobs in ``CUDA_VISIBLE_DEVICES``)."""
    if str(accelerator) not in ("gpu", "cuda", "auto"):
        return 0
    if devices is not None and str(devices).isdigit():
        return int(devices)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    import torch

    return torch.cuda.device_count()


def job_device(
    trainer: DictConfig, launcher: str | None = None, job_num: int | None = None
) -> dict[str, Any]:
    """Trainer arguments that put a single-GPU job of a local parallel sweep on its own GPU
    (``{}`` otherwise). Before CUDA starts in the process it narrows ``CUDA_VISIBLE_DEVICES`` to that
    GPU, so the job sees only its own; in a reused worker where CUDA already runs it picks the
    device by index instead. ``launcher`` and ``job_num`` default to this Hydra job's."""
    launcher = launcher or multirun_launcher()
    if launcher not in LOCAL_PARALLEL or str(trainer.get("accelerator")) not in ("gpu", "cuda"):
        return {}
    if trainer.get("devices") not in (1, "1"):
        return {}
    import torch

    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    count = len(visible) if "CUDA_VISIBLE_DEVICES" in os.environ else torch.cuda.device_count()
    if count < 2:
        return {}
    index = (hydra_job_num() if job_num is None else job_num) % count
    if not torch.cuda.is_initialized():
        chosen = visible[index] if visible else str(index)
        os.environ["CUDA_VISIBLE_DEVICES"] = chosen
        log.info("job %d: CUDA_VISIBLE_DEVICES=%s (GPU %d of %d)", job_num, chosen, index + 1, count)
        return {}
    log.info("job %d: GPU %d of %d", job_num, index, count)
    return {"devices": [index]}


def hydra_job_num() -> int:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 0
    num = OmegaConf.select(HydraConfig.get().job, "num", default=None)  # ??? outside a multirun
    return int(num) if num is not None else 0
