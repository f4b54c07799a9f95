"""``ResumableSweeper``: Hydra's basic sweeper with sweep resume and failure tolerance.

- With ``resume_sweep`` set, every job is planned by :func:`src.utils.sweep.plan_job` before
  anything is launched: complete jobs are skipped (never launched, so Hydra writes nothing into
  them either) and jobs whose directory holds another configuration's run are reported as failed
  without touching it; the others are launched (each job then resumes from its ``last.ckpt`` or
  replaces its failed attempt itself, :func:`src.utils.sweep.continuation`). The launched jobs keep
  their own directories (``hydra.sweep.subdir`` pinned), whatever the launcher numbers them.
- A failed job does not stop the sweep: every batch runs to its end, and when the sweep has run,
  the failed jobs are listed (directory and error line) and the sweep exits with code 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class SweepJobsFailed(Exception):
    """Raised when a sweep has finished and some of its jobs failed (they are listed)."""


class _PlanningLauncher:
    """Wraps the configured launcher: plans, skips, launches the rest, records the failures."""

    def __init__(self, launcher: Any, hydra_context: HydraContext, config: DictConfig) -> None:
        self.launcher = launcher
        self.hydra_context = hydra_context
        self.config = config
        self.failures: list[tuple[str, str]] = []
        self.n_jobs = 0

    def _job_config(self, overrides: Sequence[str], idx: int) -> tuple[DictConfig, Path]:
        job = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(job):
            job.hydra.job.num = idx
        return job, Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from src.errors import RunDirError
        from src.utils.sweep import COMPLETE, CONFLICT, config_hash, plan_job, resume_requested

        self.n_jobs += len(job_overrides)
        if not resume_requested(self.config):
            return self._record(self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx))
        results: dict[int, JobReturn] = {}
        launched: list[tuple[int, list[str]]] = []
        for i, overrides in enumerate(job_overrides):
            job, run_dir = self._job_config(overrides, initial_job_idx + i)
            plan = plan_job(run_dir, config_hash(job))
            log.info(
                "resume_sweep: job %d %s: %s %s",
                initial_job_idx + i,
                list(overrides),
                plan.state,
                plan.reason,
            )
            if plan.state == COMPLETE:
                results[i] = _job_return(overrides, str(run_dir), JobStatus.COMPLETED, None)
            elif plan.state == CONFLICT:
                results[i] = _job_return(overrides, str(run_dir), JobStatus.FAILED, RunDirError(plan.reason))
            else:
                launched.append((i, [*overrides, f"hydra.sweep.subdir={job.hydra.sweep.subdir}"]))
        if launched:
            returns = self.launcher.launch([o for _, o in launched], initial_job_idx=initial_job_idx)
            results.update({i: r for (i, _), r in zip(launched, returns, strict=True)})
        return self._record([results[i] for i in range(len(job_overrides))])

    def _record(self, returns: Sequence[JobReturn]) -> list[JobReturn]:
        """Note each failed job and hand the sweeper a completed one, so the batch and the following
        ones run on; :meth:`ResumableSweeper.sweep` reports the failures at the end."""
        from src.utils.provenance import error_line

        kept = []
        for ret in returns:
            if ret.status == JobStatus.FAILED:
                where = ret.working_dir or ""
                if ret.hydra_cfg is not None:
                    where = str(ret.hydra_cfg.hydra.runtime.output_dir)
                error = ret._return_value
                self.failures.append(
                    (where, error_line(error) if isinstance(error, BaseException) else str(error))
                )
                ret = _job_return(ret.overrides or [], ret.working_dir, JobStatus.COMPLETED, None, ret)
            kept.append(ret)
        return kept


def _job_return(
    overrides: Sequence[str], where: str | None, status: JobStatus, value: Any, like: JobReturn | None = None
) -> JobReturn:
    ret = JobReturn(
        overrides=list(overrides),
        cfg=like.cfg if like else None,
        hydra_cfg=like.hydra_cfg if like else None,
        working_dir=where,
        task_name=like.task_name if like else None,
        status=status,
    )
    ret.return_value = value
    return ret


class ResumableSweeper(BasicSweeper):
    """:class:`BasicSweeper` (same ``params`` and ``max_batch_size``) with ``resume_sweep`` and
    failure tolerance (module docstring)."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = _PlanningLauncher(self.launcher, hydra_context, config)  # type: ignore[assignment]

    def sweep(self, arguments: list[str]) -> Any:
        returns = super().sweep(arguments)
        failures = self.launcher.failures  # type: ignore[attr-defined]
        if failures:
            lines = "\n".join(f"  {where}: {error}" for where, error in failures)
            raise SweepJobsFailed(
                f"{len(failures)} of {self.launcher.n_jobs} jobs failed (the others ran):\n{lines}\n"  # type: ignore[attr-defined]
                "Rerun the same command with resume_sweep=<sweep dir> to run only these again."
            )
        return returns
