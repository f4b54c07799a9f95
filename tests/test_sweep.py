"""Issue 16, section 3 and 4: sweeps that resume, tolerate failing jobs and never share a directory;
a provenance record in every run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.report import collect
from src.utils import provenance, sweep
from src.utils.resolvers import REPO_ROOT
from tests.helpers import compose_train, run_cli

QUICK = ["logger=csv", "callbacks.progress_bar=null", "trainer.max_epochs=1"]


def _config(tmp_path: Path, *overrides: str):
    return compose_train(list(overrides), tmp_path)


def test_config_hash_ignores_where_a_run_is_written_but_not_what_it_runs(tmp_path):
    base = sweep.config_hash(_config(tmp_path / "a"))
    assert sweep.config_hash(_config(tmp_path / "b", "logger=many", "tags=[x]")) == base
    assert sweep.config_hash(_config(tmp_path / "a", "resume_sweep=latest")) == base
    assert sweep.config_hash(_config(tmp_path / "a", "model.optimizer.lr=0.5")) != base
    assert sweep.config_hash(_config(tmp_path / "a", "seed=1")) != base
    assert sweep.config_hash(_config(tmp_path / "a", "data.split_seed=1")) != base


def _job_dir(
    root: Path, status: str | None, sha: str = "abc", metrics: bool = False, last: bool = False
) -> Path:
    (root / ".hydra").mkdir(parents=True)
    if status is not None:
        (root / "provenance.json").write_text(
            json.dumps({"status": status, "config_sha256": sha, "error": "E"})
        )
    if metrics:
        (root / "metrics.json").write_text('{"test/acc": 0.5}')
    if last:
        (root / "checkpoints").mkdir()
        (root / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return root


@pytest.mark.parametrize(
    ("status", "sha", "metrics", "last", "expected"),
    [
        (None, "abc", False, False, sweep.FRESH),
        ("completed", "abc", True, True, sweep.COMPLETE),
        ("completed", "abc", False, True, sweep.INTERRUPTED),  # metrics.json lost: not complete
        ("running", "abc", False, True, sweep.INTERRUPTED),  # kill -9
        ("interrupted", "abc", False, True, sweep.INTERRUPTED),
        ("running", "abc", False, False, sweep.FAILED_JOB),  # killed before its first checkpoint
        ("failed", "abc", False, True, sweep.FAILED_JOB),
        ("completed", "other", True, True, sweep.CONFLICT),  # a changed config is never "finished"
    ],
)
def test_plan_job(tmp_path, status, sha, metrics, last, expected):
    plan = sweep.plan_job(_job_dir(tmp_path / "job", status, sha, metrics, last), "abc")
    assert plan.state == expected
    assert (plan.resume_from is not None) == (expected == sweep.INTERRUPTED)
    assert plan.overwrite == (expected == sweep.FAILED_JOB)


def test_a_run_without_provenance_is_a_conflict(tmp_path):
    job = _job_dir(tmp_path / "job", None, metrics=True)
    assert sweep.plan_job(job, "abc").state == sweep.CONFLICT


def test_two_sweeps_started_in_the_same_microsecond_get_two_directories(tmp_path):
    now = datetime(2026, 12, 1, 12, 0, 0, 123456)
    first, second = sweep.new_sweep_dir(tmp_path, now), sweep.new_sweep_dir(tmp_path, now)
    assert first != second and first.is_dir() and second.is_dir()
    assert second.name == f"{first.name}-1"


def test_the_sweep_dir_resolver_is_resolved_once_per_sweep(tmp_path):
    cfg = OmegaConf.create({"a": f"${{sweep_dir:null,{tmp_path}}}", "b": "${a}"})
    assert cfg.a == cfg.a == cfg.b
    assert len(list(tmp_path.iterdir())) == 1


def test_provenance_records_success_and_failure(tmp_path):
    with provenance.recorded_run(tmp_path / "ok", "test", "abc"):
        running = provenance.read_provenance(tmp_path / "ok")
    done = provenance.read_provenance(tmp_path / "ok")
    assert running["status"] == "running" and running["ended"] is None
    assert done["status"] == "completed" and done["ended"] and done["config_sha256"] == "abc"
    assert done["git"]["commit"] and isinstance(done["git"]["dirty"], bool)
    assert done["packages"]["torch"] and done["packages"]["lightning"] and done["python"]
    assert "available" in done["cuda"] and done["host"]
    with pytest.raises(ValueError), provenance.recorded_run(tmp_path / "bad", "test", "abc"):
        raise ValueError("the second line is not kept\nsecond")
    failed = provenance.read_provenance(tmp_path / "bad")
    assert failed["status"] == "failed" and failed["error"] == "ValueError: the second line is not kept"


def test_a_failing_job_does_not_stop_the_sweep_and_the_report_lists_it(tmp_path):
    """Job 0 fails its start-up check (max_epochs=0), job 1 runs; the sweep exits 1 and lists job 0."""
    proc = run_cli("src.train", ["-m", f"paths.log_dir={tmp_path}", *QUICK, "trainer.max_epochs=0,1"])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 of 2 jobs failed" in proc.stderr
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    assert json.loads((sweep_dir / "1" / "metrics.json").read_text())["test/acc"] > 0
    record = provenance.read_provenance(sweep_dir / "0")
    assert record["status"] == "failed" and "max_epochs" in record["error"]
    finished, missing = collect([sweep_dir])
    assert [j.path.name for j in finished] == ["1"] and [m.path.name for m in missing] == ["0"]
    assert "max_epochs" in missing[0].error
    report = run_cli("src.report", [str(sweep_dir)])
    assert report.returncode == 0, report.stderr
    assert "max_epochs" in report.stdout and f"`{sweep_dir / '0'}`" in report.stdout


def _sweep(log_dir: Path, *extra: str) -> subprocess.Popen:
    args = ["-m", f"paths.log_dir={log_dir}", "logger=csv", "callbacks.progress_bar=null"]
    args += ["trainer.max_epochs=6", "seed=0,1,2", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "src.train", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _mtimes(job: Path) -> dict[str, int]:
    return {str(p.relative_to(job)): p.stat().st_mtime_ns for p in sorted(job.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_kill_9_mid_sweep_then_resume(tmp_path):
    """3 digits jobs; the sweep is killed (SIGKILL, whole process group) once job 1 has a last.ckpt;
    rerun with resume_sweep: job 0 untouched, job 1 resumed from last.ckpt, job 2 run; the final
    table is the uninterrupted sweep's."""
    full = _sweep(tmp_path / "full")
    out, _ = full.communicate(timeout=1200)
    assert full.returncode == 0, out[-3000:]
    cut = _sweep(tmp_path / "cut")
    parent = tmp_path / "cut" / "train" / "multiruns"
    while cut.poll() is None:
        lasts = list(parent.glob("*/1/checkpoints/last.ckpt"))
        if lasts and lasts[0].stat().st_size > 0:
            time.sleep(0.5)
            os.killpg(cut.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    cut.communicate(timeout=60)
    (sweep_dir,) = parent.iterdir()
    assert (sweep_dir / "0" / "metrics.json").is_file() and not (sweep_dir / "1" / "metrics.json").exists()
    assert provenance.read_provenance(sweep_dir / "1")["status"] == "running"
    before = _mtimes(sweep_dir / "0")
    resumed = _sweep(tmp_path / "cut", f"resume_sweep={sweep_dir}")
    out, _ = resumed.communicate(timeout=1200)
    assert resumed.returncode == 0, out[-3000:]
    assert "job 0" in out and "complete" in out and "interrupted" in out
    assert _mtimes(sweep_dir / "0") == before
    assert provenance.read_provenance(sweep_dir / "1")["resumed_from"].endswith("last.ckpt")
    (full_dir,) = (tmp_path / "full" / "train" / "multiruns").iterdir()
    for job in ("0", "1", "2"):
        assert json.loads((sweep_dir / job / "metrics.json").read_text()) == json.loads(
            (full_dir / job / "metrics.json").read_text()
        )
    tables = [run_cli("src.report", [str(d)]).stdout.split("\n", 1)[1] for d in (full_dir, sweep_dir)]
    assert tables[0] == tables[1]
