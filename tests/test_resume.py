"""Issue 12, class 5: a resumed run repeats the uninterrupted one to the last digit, in its own
directory, with one ``last.ckpt`` (the checkpoint carries the random-number state, see
``FusionDataModule.state_dict``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from src.train import train
from src.utils.resolvers import REPO_ROOT
from tests.helpers import compose_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = ["data=digits", "seed=3", "logger=csv", "callbacks.progress_bar=null"]


def epoch_rows(run_dir: Path) -> list[list[float]]:
    rows = pd.read_csv(run_dir / "csv" / "metrics.csv").dropna(subset=["train/loss"])
    return rows[["epoch", "train/loss"]].values.tolist()


@pytest.mark.parametrize(
    "workers", [0, pytest.param(2, marks=pytest.mark.slow)], ids=["no_workers", "two_workers"]
)
def test_resume_in_place_equals_the_uninterrupted_run(tmp_path, workers):
    """Stopped after epoch 1 and resumed in the same directory up to epoch 3: the same metrics,
    the same selected epoch, the same per-epoch losses, and one last.ckpt (now at epoch 3). With
    loader workers the resumed epoch starts new workers where the uninterrupted run reused its own."""
    common = [*BASE, f"data.num_workers={workers}"]
    full = train(compose_train([*common, "trainer.max_epochs=4"], tmp_path / "full"))
    train(compose_train([*common, "trainer.max_epochs=2"], tmp_path / "cut"))
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    resumed = train(compose_train([*common, "trainer.max_epochs=4", f"ckpt_path={last}"], tmp_path / "cut"))
    assert resumed == full
    assert epoch_rows(tmp_path / "cut") == epoch_rows(tmp_path / "full")
    names = {p.name for p in (tmp_path / "cut" / "checkpoints").glob("*.ckpt")}
    assert names == {p.name for p in (tmp_path / "full" / "checkpoints").glob("*.ckpt")}
    assert sorted(n for n in names if n.startswith("last")) == ["last.ckpt"]
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 3


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    args = [
        sys.executable,
        "-m",
        "src.train",
        f"hydra.run.dir={run_dir}",
        *BASE,
        "trainer.max_epochs=12",
        *extra,
    ]
    return subprocess.Popen(
        args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _epoch(path: Path) -> int | None:
    try:  # checkpoints are replaced atomically: a read sees an old or a new one, never half
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return None


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    """The issue's case: data=digits max_epochs=12 seed=3, SIGKILL once last.ckpt holds epoch 4,
    resumed from last.ckpt into the same directory."""
    full = _start(tmp_path / "full")
    out, _ = full.communicate(timeout=900)
    assert full.returncode == 0, out[-3000:]
    cut = tmp_path / "cut"
    run = _start(cut)
    killed_at = None
    while run.poll() is None:
        epoch = _epoch(cut / "checkpoints" / "last.ckpt")
        if epoch is not None and epoch >= 4:
            run.send_signal(signal.SIGKILL)
            killed_at = epoch
            break
        time.sleep(0.02)
    run.communicate(timeout=60)
    assert killed_at is not None and killed_at < 11 and not (cut / "metrics.json").exists()
    resumed = _start(cut, f"ckpt_path={cut / 'checkpoints' / 'last.ckpt'}")
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out[-3000:]
    metrics = {d: json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("full", "cut")}
    assert metrics["cut"] == metrics["full"]
    assert epoch_rows(cut) == epoch_rows(tmp_path / "full")  # each epoch once, same losses
    assert sorted(p.name for p in (cut / "checkpoints").glob("*.ckpt")) == sorted(
        p.name for p in (tmp_path / "full" / "checkpoints").glob("*.ckpt")
    )
    assert (
        _epoch(cut / "checkpoints" / "last.ckpt")
        == _epoch(tmp_path / "full" / "checkpoints" / "last.ckpt")
        == 11
    )
