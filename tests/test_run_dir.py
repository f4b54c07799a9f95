"""Issue 12, class 6: one run per directory (src/utils/run_dir.py), and through the CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.errors import RunDirError
from src.train import train
from src.utils.resolvers import REPO_ROOT
from src.utils.run_dir import FRESH, OVERWRITTEN, RESUMED, claim_run_dir, trim_csv_rows
from tests.helpers import compose_train, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def old_run(path: Path) -> Path:
    """A finished run's directory (the files src.train writes)."""
    (path / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "metrics.json", "thresholds.json", "per_class_test.csv", "data_issues.json"):
        (path / name).write_text("old\n")
    (path / "checkpoints" / "epoch_001.ckpt").write_text("old")
    time.sleep(0.01)
    (path / "checkpoints" / "last.ckpt").write_text("old")
    (path / "csv").mkdir()
    with open(path / "csv" / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "step", "train/loss"])
        writer.writerows([[0, 1, 0.9], [1, 2, 0.8], [2, 3, 0.7], [3, 4, 0.6]])
    return path


def test_a_directory_of_another_run_is_refused(tmp_path):
    run = old_run(tmp_path / "run")
    with pytest.raises(
        RunDirError, match=r"already holds another run .* Resume it with ckpt_path=.*last.ckpt"
    ):
        with claim_run_dir(run):
            pass
    with claim_run_dir(tmp_path / "new") as claimed:  # fresh (Hydra's own files do not count)
        assert claimed.state == FRESH
    (tmp_path / "hydra" / ".hydra").mkdir(parents=True)
    (tmp_path / "hydra" / "train.log").write_text("this job's log\n")
    with claim_run_dir(tmp_path / "hydra", ignore=["train.log"]) as claimed:
        assert claimed.state == FRESH


def test_overwrite_clears_a_run_directory_only(tmp_path):
    run = old_run(tmp_path / "run")
    with claim_run_dir(run, overwrite=True) as claimed:
        assert claimed.state == OVERWRITTEN and sorted(p.name for p in run.iterdir()) == [".run.lock"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirError, match="not a run directory"):
        with claim_run_dir(tmp_path / "mine", overwrite=True):
            pass
    assert (tmp_path / "mine" / "thesis.tex").is_file()


def test_resume_in_place_removes_the_previous_attempts_artifacts(tmp_path):
    run = old_run(tmp_path / "run")
    with claim_run_dir(run, resume_from=run / "checkpoints" / "last.ckpt", resume_epoch=1) as claimed:
        assert claimed.state == RESUMED
        assert sorted(p.name for p in run.iterdir()) == [".run.lock", "checkpoints", "config.yaml", "csv"]
        assert [r["epoch"] for r in csv.DictReader(open(run / "csv" / "metrics.csv"))] == ["0", "1"]
    with pytest.raises(RunDirError, match="not the newest checkpoint"):
        with claim_run_dir(run, resume_from=run / "checkpoints" / "epoch_001.ckpt", resume_epoch=1):
            pass


def test_trim_csv_rows_keeps_rows_without_an_epoch(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,x\n0,1,a\n,2,b\n3,4,c\n")
    assert trim_csv_rows(path, 0) == 1
    assert path.read_text().splitlines() == ["epoch,step,x", "0,1,a", ",2,b"]


def test_a_directory_in_use_is_refused(tmp_path):
    """The lock is held by a live process; its death releases it (no stale lock after kill -9)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from src.utils.run_dir import claim_run_dir\n"
         "with claim_run_dir(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)", str(tmp_path / "run")],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"in use by a run that is still going \(pid {holder.pid}\)"):
            with claim_run_dir(tmp_path / "run"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with claim_run_dir(tmp_path / "run") as claimed:
        assert claimed.state == FRESH


def test_rerun_into_an_old_directory_through_train(tmp_path):
    """A multilabel run, then a multiclass run into its directory: refused (before, the old
    thresholds.json and per_class_test.csv stayed beside the new metrics); with overwrite_run_dir
    the directory holds the new run only."""
    quick = ["logger=csv", "callbacks.progress_bar=null", "trainer.max_epochs=1"]
    train(compose_train([*quick, "data=synthetic_gmu"], tmp_path))
    assert (tmp_path / "thresholds.json").is_file()
    with pytest.raises(RunDirError, match="already holds another run"):
        train(compose_train(quick, tmp_path))
    train(compose_train([*quick, "overwrite_run_dir=true"], tmp_path))
    assert not (tmp_path / "thresholds.json").exists() and not (tmp_path / "per_class_test.csv").exists()
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.slow
def test_two_runs_into_one_directory_through_the_cli(tmp_path):
    """Before: both exited 0, config.yaml said seed 0 while metrics.json held seed 1's numbers."""
    args = ["data=digits", "trainer.max_epochs=8", "logger=csv", "callbacks.progress_bar=null"]
    first = subprocess.Popen(
        [sys.executable, "-m", "src.train", f"hydra.run.dir={tmp_path}", *args, "seed=0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    while not (tmp_path / ".run.lock").is_file() and first.poll() is None:
        time.sleep(0.1)
    second = run_cli("src.train", [f"hydra.run.dir={tmp_path}", *args, "seed=1"])
    out, _ = first.communicate(timeout=900)
    assert first.returncode == 0, out[-2000:]
    output = second.stdout + second.stderr
    assert second.returncode == 2 and "Traceback" not in output
    # refused while the first runs (or, on a fast machine, because it has finished there)
    assert "in use by a run that is still going" in output or "already holds another run" in output
    assert "seed: 0" in (tmp_path / "config.yaml").read_text()
