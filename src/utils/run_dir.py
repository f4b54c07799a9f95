"""One run per directory: a lock while it runs, no mixing with another run, no stale artifacts.

:func:`claim_run_dir` is what ``src.train`` and ``src.eval`` do before writing anything:

- it takes an exclusive lock (``.run.lock``, held by the process until the run ends or dies: a
  killed run leaves no stale lock); a second process aiming at the same directory is refused;
- a directory that already holds something (besides Hydra's own ``.hydra/`` and job log) is
  refused unless the run **resumes** from a checkpoint of this very directory, or
  ``overwrite`` (``overwrite_run_dir=true``) asks to clear it first (only a run directory is
  cleared: one with a ``config.yaml``);
- a resume in place keeps what the resumed run continues (checkpoints, logger folders) and deletes
  the previous attempt's final artifacts (metrics, thresholds, per-class tables, interpretability
  files, ``data_issues.json``), and the rows that a CSV logger wrote after the checkpoint's epoch.
  It resumes only from the newest checkpoint of the directory, so nothing is rewound.

Only the global rank 0 claims the directory: other ranks of a distributed run share it.
A later sweep-resume can call :func:`claim_run_dir` per job directory with ``resume_from`` set to
that job's ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import csv
import fcntl
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from src.errors import RunDirError

log = logging.getLogger("mmfusion")

LOCK = ".run.lock"
#: written by Hydra for the current job before the task runs; never another run's artifacts
HYDRA_ENTRIES = (".hydra",)
#: what a resumed run continues (everything else of the previous attempt is deleted)
CONTINUED_ON_RESUME = ("checkpoints", "csv", "tensorboard", "wandb", "config.yaml", "encoders.json")
#: what makes a directory a run directory (one that ``overwrite`` may clear)
RUN_MARKERS = ("config.yaml", "provenance.json")
FRESH, RESUMED, OVERWRITTEN = "fresh", "resumed", "overwritten"


@dataclass(frozen=True)
class RunDir:
    path: Path
    state: str  # fresh | resumed | overwritten


def is_global_rank_zero() -> bool:
    """True unless the environment says this process is another rank of a distributed run."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key) not in (None, ""):
            return int(os.environ[key]) == 0 and int(os.environ.get("NODE_RANK", "0") or 0) == 0
    return True


def _lock(path: Path) -> int:
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunDirError(
            f"{path} is in use by a run that is still going ({holder}); two runs must not share a "
            "directory: wait for it, or choose another hydra.run.dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}\n".encode())
    return fd


def _entries(path: Path, ignore: Iterable[str]) -> list[Path]:
    skip = {LOCK, *HYDRA_ENTRIES, *ignore}
    return sorted(p for p in path.iterdir() if p.name not in skip)


def _remove(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def trim_csv_rows(path: Path, last_epoch: int) -> int:
    """Drop the rows of a Lightning ``metrics.csv`` whose epoch is after ``last_epoch``; returns how many."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [r for r in rows if not r.get("epoch") or float(r["epoch"]) <= last_epoch]
    if len(kept) != len(rows):
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)
    return len(rows) - len(kept)


def newest_checkpoint(folder: Path) -> Path | None:
    """The newest ``*.ckpt`` of ``folder`` by mtime, ``last.ckpt`` first among equals (it can be a hard
    link of the selected epoch's file, src.callbacks.SelectedCheckpoint); None when there is none. A
    kill between the epoch checkpoint and ``last.ckpt`` leaves the epoch one newer."""
    checkpoints = list(folder.glob("*.ckpt"))
    if not checkpoints:
        return None
    return max(checkpoints, key=lambda c: (c.stat().st_mtime, c.name == "last.ckpt"))


def _prepare_resume(path: Path, resume_from: Path, resume_epoch: int | None, ignore: Iterable[str]) -> None:
    newest = newest_checkpoint(path / "checkpoints")
    if newest is not None and not newest.samefile(resume_from):  # a hard-linked twin is the same file
        raise RunDirError(
            f"ckpt_path={resume_from} is not the newest checkpoint of {path} ({newest.name} is): "
            "resuming from it in place would mix it with later epochs; resume from "
            f"{newest} or give the resumed run another hydra.run.dir"
        )
    stale = [p for p in _entries(path, ignore) if p.name not in CONTINUED_ON_RESUME]
    if stale:
        log.info("resuming in %s: removing the previous attempt's %s", path, [p.name for p in stale])
        _remove(stale)
    if resume_epoch is not None:
        for table in path.glob("csv/**/metrics.csv"):
            dropped = trim_csv_rows(table, resume_epoch)
            if dropped:
                log.info("%s: dropped %d rows written after epoch %d", table, dropped, resume_epoch)


@contextmanager
def claim_run_dir(
    path: Path,
    resume_from: Path | None = None,
    resume_epoch: int | None = None,
    overwrite: bool = False,
    ignore: Iterable[str] = (),
) -> Iterator[RunDir]:
    """Lock ``path`` for this run and make sure it holds nothing of another run (module docstring).

    ``resume_from``: the checkpoint a training run resumes from (a directory holding it is resumed
    in place); ``resume_epoch``: its epoch (CSV rows after it are stale); ``ignore``: names that
    belong to the current job (Hydra's job log).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not is_global_rank_zero():
        yield RunDir(path, FRESH)
        return
    fd = _lock(path)
    try:
        ignore = tuple(ignore)
        existing = _entries(path, ignore)
        in_place = resume_from is not None and path.resolve() in resume_from.resolve().parents
        state = FRESH
        if existing and in_place:
            _prepare_resume(path, resume_from, resume_epoch, ignore)
            state = RESUMED
        elif existing and overwrite:
            if not any((path / marker).is_file() for marker in RUN_MARKERS):
                raise RunDirError(
                    f"overwrite_run_dir=true: {path} is not a run directory (no config.yaml or provenance.json; it holds "
                    f"{[p.name for p in existing[:5]]}); refusing to delete it, choose another hydra.run.dir"
                )
            log.warning("overwrite_run_dir=true: clearing %s (%d entries)", path, len(existing))
            _remove(existing)
            state = OVERWRITTEN
        elif existing:
            raise RunDirError(
                f"{path} already holds another run ({[p.name for p in existing[:6]]}). Resume it with "
                f"ckpt_path={path / 'checkpoints' / 'last.ckpt'}, clear it with overwrite_run_dir=true, "
                "or choose another hydra.run.dir"
            )
        yield RunDir(path, state)
    finally:
        os.close(fd)


def hydra_job_entries() -> list[str]:
    """The names Hydra wrote into the run directory for the current job (its log file)."""
    from hydra.core.hydra_config import HydraConfig

    return [f"{HydraConfig.get().job.name}.log"] if HydraConfig.initialized() else []
