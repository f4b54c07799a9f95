"""The analysis notebook runs headless on a tiny real run, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from src.utils.resolvers import REPO_ROOT
from tests.helpers import train_cli


@pytest.mark.slow  # an end-to-end CLI run (>10 s on 2 cores); the fast suite keeps `make test` under 10 min
def test_analysis_notebook_executes_on_a_tiny_run(tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    train_cli(run_dir, "fusion=gmu", "trainer.max_epochs=1", "callbacks.progress_bar=null")
    monkeypatch.setenv("MMFUSION_RUN_DIR", str(run_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}},
    ).execute()
    outputs = "".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert str(run_dir) in outputs and "view1" in outputs  # the run and its gate table were shown
