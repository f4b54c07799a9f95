"""The pipeline benchmark (`python -m src.bench pipeline`): its memory sampler, its parsing and the
suite end to end on a tiny synthetic MM-IMDb."""

from __future__ import annotations

import math
import mmap
import os
import subprocess
import time
from pathlib import Path

import pytest

from src.bench.pipeline import PssSampler, process_tree, pss_bytes, read_epoch_times, render, run_suite
from src.data.synthetic_mmimdb import generate

CHECK_COLUMNS = ["posters", "workers", "check s", "check start-up s", "decode pass s", "check / decode"]
EXTRACTION_COLUMNS = [
    "feature step posters/s",
    "forward posters/s",
    "feature step / forward",
    "poster cache build s",
    "plot cache build s",
]
EPOCH_COLUMNS = [
    "pipeline", "epochs", "start-up s", "first epoch s", "wall s", "peak PSS MB", "checkpoints", "checkpoint MB",
    "checkpoints on disk MB",
]  # fmt: skip


def test_pss_sampler_sees_this_process_grow() -> None:
    with PssSampler(os.getpid(), interval=0.05) as sampler:
        baseline = sampler.sample()
        # 64 MB of fresh pages, every one written: an anonymous mapping, since malloc may hand back
        # heap pages this process already holds (src/utils/allocator.py keeps freed memory)
        block = mmap.mmap(-1, 64 << 20)
        block.write(b"\1" * (64 << 20))
        time.sleep(0.2)
    assert baseline > 0 and pss_bytes(os.getpid()) > 0
    assert sampler.peak_bytes >= baseline + 50e6
    block.close()
    assert pss_bytes(2**22 + 12345) == 0  # no such process


def test_process_tree_holds_the_children() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in process_tree(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_epoch_times_are_read_from_the_csv(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text(
        "epoch,step,time/epoch_s,time/startup_s,val/loss\n0,3,,,0.5\n0,3,2.5,11.0,\n1,7,1.5,11.0,\n"
    )
    assert read_epoch_times(tmp_path / "metrics.csv") == (11.0, [2.5, 1.5])


def numbers(table: str, title: str) -> dict[str, str]:
    """The header -> cell of the one-row Markdown table after ``title``."""
    lines = [line for line in table.split(title, 1)[1].splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    return dict(zip(header, cells, strict=True))


@pytest.mark.slow  # three subprocesses (the data check twice, one training run): 1.5-3 min on 2 cores
def test_suite_on_tiny_data(tmp_path: Path) -> None:
    root = tmp_path / "mmimdb"
    generate(root, n=40, workers=0, progress=False)
    tables = run_suite(root, epochs=1, workers=1, pipelines=["hdf5"], scratch=tmp_path / "scratch")
    table = render(tables, "synthetic MM-IMDb, 40 movies")
    assert "Hardware: " in table and "torch " in table
    check = numbers(table, "## Data check")
    extraction = numbers(table, "## Feature extraction")
    epochs = numbers(table, "## Training runs")
    for row, columns in (
        (check, CHECK_COLUMNS),
        (extraction, EXTRACTION_COLUMNS),
        (epochs, EPOCH_COLUMNS[1:]),
    ):
        for column in columns:
            value = float(row[column])
            assert math.isfinite(value) and value > 0, (column, row[column])
    assert check["posters"] == "40" and extraction["posters"] == "40"
    assert epochs["pipeline"] == "hdf5" and epochs["epochs"] == "1" and epochs["later epochs s"] == "-"
    assert 0 <= float(epochs["test f1_macro"]) <= 1


def test_keep_refuses_a_folder_that_is_not_empty(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from src.bench.pipeline import main

    (tmp_path / "old.log").write_text("an earlier run")
    with pytest.raises(SystemExit) as exit_info:
        main(["--root", str(tmp_path), "--keep", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"--keep {tmp_path}: expected a new or empty folder" in capsys.readouterr().err
