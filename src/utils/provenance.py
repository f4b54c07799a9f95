"""``provenance.json``: which code, environment, data and configuration produced a run directory.

Every run of ``src.train`` and ``src.eval`` writes it once the run directory is claimed (status
``running``) and completes it when the run ends (``completed``; ``failed`` with the error line for an
exception; ``interrupted`` for Ctrl-C, SIGTERM turned into an exit, or a launcher that stopped the
job). A process killed outright (``kill -9``, a node failure) leaves ``running``: with no
``metrics.json`` that is how an interrupted run looks to a sweep resume (:mod:`src.utils.sweep`).

What it records:

- ``git``: the commit of the checkout holding ``src/``, ``dirty`` (tracked files differ from that
  commit; untracked files do not count, as for ``git describe --dirty``), the changed paths and a
  sha256 of ``git diff HEAD`` so two dirty trees can be told apart; ``null`` outside a git checkout;
- ``packages`` (torch, lightning, hydra-core, omegaconf, torchmetrics, numpy, wandb and this project,
  ``mmfusion``), ``python``, ``platform``, ``host``, ``pid``, the command line;
- ``cuda``: the CUDA and cuDNN versions torch was built with and the visible GPUs' names when a GPU
  is present; ``slurm``: the job id, array task, nodes and tasks when run under SLURM;
- ``started`` / ``ended`` (UTC, ISO 8601) and ``duration_s``;
- ``config_sha256``: :func:`src.utils.sweep.config_hash` of the job's composed config;
- ``data``: the fingerprint of what the data module delivers, per split (:func:`data_fingerprint`).

Only the global rank 0 writes it; the file is replaced atomically, so a reader never sees half.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from src.errors import UserError, user_message
from src.utils.paths import REPO_ROOT
from src.utils.run_dir import is_global_rank_zero

PROVENANCE = "provenance.json"
RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"
#: distributions whose versions every run records (``mmfusion`` is this project)
PACKAGES = ("torch", "lightning", "hydra-core", "omegaconf", "torchmetrics", "numpy", "wandb", "mmfusion")
SLURM_VARIABLES = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "nodes": "SLURM_JOB_NUM_NODES",
    "ntasks": "SLURM_NTASKS",
    "restart_count": "SLURM_RESTART_COUNT",
}
MAX_LISTED_CHANGES = 20


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def git_state() -> dict[str, Any] | None:
    """Commit, dirty flag, changed paths and diff hash of the checkout holding ``src/`` (None when it
    is not a git checkout or git is missing)."""
    try:
        commit = _git("rev-parse", "HEAD").strip()
        changed = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()]
        diff = _git("diff", "HEAD") if changed else ""
    except (OSError, subprocess.SubprocessError):
        return None
    return {
        "commit": commit,
        "dirty": bool(changed),
        "changed": changed[:MAX_LISTED_CHANGES],
        "n_changed": len(changed),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if changed else None,
    }


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cuda_state() -> dict[str, Any]:
    """CUDA/cuDNN versions of the torch build and the visible GPUs (``available: false`` without one)."""
    import torch

    state: dict[str, Any] = {"available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if state["available"]:
        state["cudnn"] = torch.backends.cudnn.version()
        state["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        state["visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return state


def environment() -> dict[str, Any]:
    """What the code ran on: git, packages, Python, platform, host, CUDA and SLURM."""
    slurm = {key: os.environ[var] for key, var in SLURM_VARIABLES.items() if os.environ.get(var)}
    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": list(sys.argv),
        "cuda": cuda_state(),
        "slurm": slurm or None,
    }


def _digest(values: Any) -> str:
    """sha256 of an array (dtype, shape and bytes), or of a list of arrays or strings, element by element."""
    digest = hashlib.sha256()
    if isinstance(values, np.ndarray):
        array = np.ascontiguousarray(values)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
        return digest.hexdigest()
    for value in values:
        digest.update(_digest(value).encode() if isinstance(value, np.ndarray) else str(value).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def data_fingerprint(datamodule: Any, splits: Sequence[str] = ("train", "val", "test")) -> dict[str, Any]:
    """Per split: the number of samples and sha256s of the sample ids (in order), the labels and each
    in-memory modality (arrays, sequences or texts as delivered, i.e. after the data module's own
    preprocessing). Modalities read lazily from files per sample are not hashed (``lazy``). Call it
    after ``preflight()``: the splits are then read and validated, and nothing is read again."""
    from src.data.feature_cache import ids_hash

    fingerprint: dict[str, Any] = {
        "datamodule": f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"
    }
    for split in splits:
        dataset = datamodule._validated_split(split)
        entry: dict[str, Any] = {
            "n_samples": len(dataset.ids),
            "ids_sha256": ids_hash(dataset.ids),
            "labels_sha256": _digest(np.asarray(dataset.labels)),
        }
        arrays: Mapping[str, Any] = getattr(dataset, "modalities", {})
        entry["modalities_sha256"] = {m: _digest(values) for m, values in sorted(arrays.items())}
        lazy = sorted(getattr(dataset, "readers", {}))
        if lazy:
            entry["lazy"] = lazy
        fingerprint[split] = entry
    return fingerprint


def error_line(error: BaseException, limit: int = 300) -> str:
    """One line naming what went wrong: ``Type: message`` with the message's first line (and the
    next one when the first only introduces a list, as in ``invalid configuration:``)."""
    message = user_message(error) if isinstance(error, UserError) else str(error)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:
        first = f"{first} {lines[1].lstrip('-* ')}"
    first = first if len(first) <= limit else first[: limit - 3] + "..."
    return f"{type(error).__name__}: {first}"


class RunRecord:
    """The ``provenance.json`` of one run directory (module docstring); rank 0 writes, others no-op."""

    def __init__(self, run_dir: Path, entry_point: str, config_sha256: str | None, **extra: Any) -> None:
        self.path = Path(run_dir) / PROVENANCE
        self.writes = is_global_rank_zero()
        self.record: dict[str, Any] = {
            "status": RUNNING,
            "entry_point": entry_point,
            "started": _now(),
            "ended": None,
            "config_sha256": config_sha256,
            **extra,
            **environment(),
        }
        self._start = datetime.now(timezone.utc)

    def update(self, **values: Any) -> None:
        self.record.update(values)
        self.save()

    def add_data(self, datamodule: Any) -> None:
        """Record the data fingerprint (:func:`data_fingerprint`)."""
        if self.writes:
            self.update(data=data_fingerprint(datamodule))

    def finish(self, status: str, error: BaseException | None = None) -> None:
        ended = datetime.now(timezone.utc)
        self.record.update(
            status=status,
            ended=ended.isoformat(timespec="seconds"),
            duration_s=round((ended - self._start).total_seconds(), 3),
        )
        if error is not None:
            self.record["error"] = error_line(error)
        self.save()

    def save(self) -> None:
        if not self.writes:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(self.record, indent=2, default=str) + "\n")
        os.replace(partial, self.path)


@contextmanager
def recorded_run(
    run_dir: Path, entry_point: str, config_sha256: str | None = None, **extra: Any
) -> Iterator[RunRecord]:
    """Write ``provenance.json`` for the run in ``run_dir`` (status ``running``) and complete it when
    the block ends: ``completed``, ``failed`` (an exception, with its error line) or ``interrupted``
    (KeyboardInterrupt, SystemExit)."""
    record = RunRecord(run_dir, entry_point, config_sha256, **extra)
    record.save()
    try:
        yield record
    except Exception as error:
        record.finish(FAILED, error)
        raise
    except BaseException as error:
        record.finish(INTERRUPTED, error)
        raise
    record.finish(COMPLETED)


def read_provenance(run_dir: Path) -> dict[str, Any] | None:
    """A run directory's ``provenance.json``, or None when it has none (or it cannot be read)."""
    path = Path(run_dir) / PROVENANCE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
