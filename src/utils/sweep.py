"""Sweeps that continue where they stopped, tolerate failing jobs and never share a directory.

**Resume.** ``python -m src.train -m <the same sweep> resume_sweep=<sweep dir>`` (or
``resume_sweep=latest``: the newest sweep directory under ``${paths.log_dir}/${task_name}/multiruns``
whose command-line overrides are this command's) runs every job of the sweep again in its own job directory, planned by
:func:`plan_job` from what the directory holds:

==============  ======================================================  ============================
state           the job directory holds                                 what the rerun does
==============  ======================================================  ============================
``complete``    ``provenance.json`` completed, same ``config_sha256``,  skipped, never launched: no
                a readable ``metrics.json``                             file of it is touched
``interrupted`` no terminal status (killed, preempted, Ctrl-C), same    resumed in place from
                ``config_sha256``, ``checkpoints/last.ckpt``            ``last.ckpt`` (exact resume)
``failed``      status failed (or interrupted before a checkpoint),     run again from scratch
                same ``config_sha256``                                  (``overwrite_run_dir=true``)
``fresh``       nothing of a run (at most Hydra's ``.hydra/`` and log)  run
``conflict``    a run of another configuration, or of unknown origin    not launched; reported as a
                                                                        failed job, nothing deleted
==============  ======================================================  ============================

:func:`config_hash` is the sha256 of the job's composed config, resolved, with ``paths`` replaced by
placeholders and without the keys that only steer where and how a run is recorded or continued
(:data:`RUN_CONTROL_KEYS`), so a moved checkout or data folder still matches, and any other change
(a learning rate, a dataset option, the code's defaults in ``conf/``) never passes for a finished job.
A SLURM job requeued by submitit (``SLURM_RESTART_COUNT`` > 0) plans itself the same way, so it
resumes from its ``last.ckpt`` without ``resume_sweep``.

**Failures.** Under a multirun a job's error is recorded (its ``provenance.json`` says ``failed``
with the error line; the job log has the message) and raised as an ordinary exception, which every
launcher (basic, joblib, submitit) records without stopping the other jobs;
:class:`hydra_plugins.mmfusion_sweeper.ResumableSweeper` lists the failed jobs when the sweep ends
and exits with code 1. ``python -m src.report`` lists them with their error line.

**Unique directories.** ``${sweep_dir:...}`` (conf/hydra/default.yaml) creates a new sweep's
directory with an exclusive ``mkdir`` of its timestamp, adding ``-1``, ``-2``, ... when another
sweep took that name in the same microsecond, so two sweeps never share one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from src.errors import ConfigError
from src.utils.provenance import COMPLETED, FAILED, read_provenance
from src.utils.run_dir import newest_checkpoint

log = logging.getLogger("mmfusion")

#: top-level keys left out of :func:`config_hash`: where a run is written and logged, its tags, and
#: the switches that continue or replace it (``paths`` values are hashed as placeholders)
RUN_CONTROL_KEYS = ("logger", "tags", "ckpt_path", "overwrite_run_dir", "resume_sweep")
RESUME_KEY = "resume_sweep"
FRESH, COMPLETE, INTERRUPTED, FAILED_JOB, CONFLICT = "fresh", "complete", "interrupted", "failed", "conflict"
TIMESTAMP = "%Y-%m-%d_%H-%M-%S_%f"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
#: Hydra's own files in a job directory (written before the task runs)
HYDRA_FILES = (".hydra",)


def config_hash(cfg: DictConfig) -> str:
    """sha256 of a job's composed config (module docstring); ``cfg`` may hold the ``hydra`` node."""
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(copy):
        copy.pop("hydra", None)
        for key in RUN_CONTROL_KEYS:
            copy.pop(key, None)
        for key in list(copy.get("paths") or {}):
            copy.paths[key] = f"<paths.{key}>"
    plain = OmegaConf.to_container(copy, resolve=True, throw_on_missing=False)
    plain.pop("paths", None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class JobPlan:
    """What a resumed sweep does with one job directory (module docstring)."""

    state: str
    run_dir: Path
    reason: str = ""
    #: the checkpoint an interrupted job resumes from, in place
    resume_from: Path | None = None
    #: a failed attempt is cleared and the job runs again
    overwrite: bool = False


def _has_run(run_dir: Path) -> bool:
    ignored = {*HYDRA_FILES, ".run.lock"}
    return run_dir.is_dir() and any(
        p.name not in ignored and not (p.suffix == ".log" and p.is_file()) for p in run_dir.iterdir()
    )


def _metrics_readable(run_dir: Path) -> bool:
    try:
        return isinstance(json.loads((run_dir / "metrics.json").read_text()), dict)
    except (OSError, ValueError):
        return False


def plan_job(run_dir: Path, config_sha256: str) -> JobPlan:
    """Decide what a resumed sweep does with the job directory ``run_dir`` (module docstring's table)."""
    run_dir = Path(run_dir)
    if not _has_run(run_dir):
        return JobPlan(FRESH, run_dir)
    record = read_provenance(run_dir)
    if record is None or not record.get("config_sha256"):
        return JobPlan(
            CONFLICT,
            run_dir,
            f"{run_dir} holds a run without provenance.json (config_sha256): its configuration cannot be "
            "compared with this job's, so it is neither skipped nor replaced; move it away or rerun "
            "this job with overwrite_run_dir=true",
        )
    if record["config_sha256"] != config_sha256:
        return JobPlan(
            CONFLICT,
            run_dir,
            f"{run_dir} holds a run of another configuration (config_sha256 {record['config_sha256'][:12]} "
            f"vs this job's {config_sha256[:12]}; its overrides: {_recorded_overrides(run_dir)}); a sweep "
            "resume never replaces it: start a new sweep, or rerun it with overwrite_run_dir=true",
        )
    status = record.get("status")
    if status == COMPLETED and _metrics_readable(run_dir):
        return JobPlan(COMPLETE, run_dir, "finished with the same configuration")
    last = run_dir / LAST_CHECKPOINT
    if status != FAILED and last.is_file():
        newest = newest_checkpoint(last.parent)  # every checkpoint holds the full training state
        return JobPlan(
            INTERRUPTED, run_dir, f"interrupted ({status}); resuming from {newest}", resume_from=newest
        )
    why = record.get("error") or f"{status} before its first checkpoint"
    return JobPlan(FAILED_JOB, run_dir, f"failed ({why}); running it again", overwrite=True)


def _recorded_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        return list(yaml.safe_load(path.read_text()) or [])
    except (OSError, yaml.YAMLError):
        return []


def is_requeued() -> bool:
    """True in a SLURM job that was requeued (by submitit after a timeout or preemption)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def command_overrides(overrides: list[str]) -> list[str]:
    """A sweep's command-line task overrides without the resume switch (what identifies the sweep)."""
    return [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != RESUME_KEY]


def _sweep_overrides(sweep: Path) -> list[str] | None:
    try:
        saved = yaml.safe_load((sweep / "multirun.yaml").read_text())
        return command_overrides(list(saved["hydra"]["overrides"]["task"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def latest_sweep(parent: Path, overrides: list[str]) -> Path:
    """The newest sweep directory under ``parent`` whose ``multirun.yaml`` has these task overrides."""
    wanted = command_overrides(overrides)
    candidates = sorted((p for p in Path(parent).glob("*/multirun.yaml")), key=lambda p: p.parent.name)
    for multirun in reversed(candidates):
        if _sweep_overrides(multirun.parent) == wanted:
            return multirun.parent
    raise ConfigError(
        f"resume_sweep=latest: no sweep under {parent} was started with the overrides {wanted}; "
        "give its directory: resume_sweep=<sweep dir>"
    )


def new_sweep_dir(parent: Path, now: datetime | None = None) -> Path:
    """Create and return ``parent/<timestamp>``, suffixed ``-1``, ``-2``, ... when another sweep
    created that name first (the ``mkdir`` is exclusive, so no two sweeps get the same directory)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now()).strftime(TIMESTAMP)
    for n in range(1000):
        candidate = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a new sweep directory under {parent} for {stamp}")


def sweep_dir(resume: Any, parent: str, overrides: Any = ()) -> str:
    """``${sweep_dir:<resume_sweep>,<parent>,<task overrides>}``, the ``hydra.sweep.dir`` of
    conf/hydra/default.yaml: a new unique directory, or the one ``resume_sweep`` names (module docstring)."""
    if resume in (None, False, "false", "False", ""):
        return str(new_sweep_dir(Path(parent)))
    if resume in (True, "true", "True"):
        raise ConfigError(
            "resume_sweep=true needs the sweep's directory: give it (resume_sweep=<sweep dir>) or take "
            "the newest sweep of the same overrides (resume_sweep=latest)"
        )
    if resume == "latest":
        return str(latest_sweep(Path(parent), [str(o) for o in overrides or ()]))
    path = Path(str(resume))
    if not (path / "multirun.yaml").is_file():
        raise ConfigError(f"resume_sweep={resume}: {path} is not a sweep directory (it has no multirun.yaml)")
    return str(path)


def resume_requested(cfg: DictConfig) -> bool:
    return cfg.get(RESUME_KEY) not in (None, False, "false", "False", "")


def continuation(cfg: DictConfig, run_dir: Path, config_sha256: str) -> JobPlan | None:
    """The plan of a job that continues a sweep (``resume_sweep``) or is a requeued SLURM job; None
    for an ordinary run. The launched job applies it: resume from ``last.ckpt``, replace a failed
    attempt, or refuse a directory holding another configuration's run."""
    if not (resume_requested(cfg) or is_requeued()):
        return None
    plan = plan_job(run_dir, config_sha256)
    log.info("%s: %s%s", run_dir, plan.state, f" ({plan.reason})" if plan.reason else "")
    return plan


@dataclass(frozen=True)
class JobStart:
    """How ``src.train`` starts a job: its config hash, the checkpoint it resumes from, whether it
    replaces a failed attempt, and the metrics of a job that is already complete (then nothing runs)."""

    config_sha256: str
    ckpt_path: Path | None
    overwrite: bool
    finished: dict[str, float] | None = None


def job_start(cfg: DictConfig, run_dir: Path) -> JobStart:
    """Apply :func:`continuation` to a job about to run in ``run_dir``: outside a sweep resume or a
    requeue it only hashes the config; a conflicting directory is refused (:class:`RunDirError`)."""
    from src.errors import RunDirError

    config_sha256 = config_hash(cfg)
    ckpt_path = Path(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    overwrite = bool(cfg.get("overwrite_run_dir"))
    plan = continuation(cfg, Path(run_dir), config_sha256)
    if plan is None or plan.state == FRESH:
        return JobStart(config_sha256, ckpt_path, overwrite)
    if plan.state == CONFLICT:
        raise RunDirError(plan.reason)
    if plan.state == COMPLETE:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        return JobStart(config_sha256, ckpt_path, overwrite, finished=metrics)
    if plan.state == INTERRUPTED:
        return JobStart(config_sha256, plan.resume_from, overwrite)
    return JobStart(config_sha256, ckpt_path, True)
