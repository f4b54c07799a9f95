"""Issue 16, section 1: W&B runs as their users expect, checked by reading back the offline run files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from src.utils.wandb_offline import offline_runs
from src.utils.wandb_run import mean_gates, per_class_rows, run_identity
from tests.helpers import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mean_gates_per_modality_and_sample():
    gates = np.array([[[0.2, 0.4], [0.8, 0.6]], [[1.0, 0.0], [0.0, 1.0]]])  # (N=2, M=2, D=2)
    means = mean_gates({"gates": gates}, ["image", "text"])
    assert means["image"].tolist() == pytest.approx([0.3, 0.5]) and means["text"].tolist() == pytest.approx(
        [0.7, 0.5]
    )
    assert mean_gates({"gates": gates}, ["only_one"]) == {}


def test_per_class_rows_multiclass_match_sklearn():
    from sklearn.metrics import f1_score

    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    targets = np.array([0, 1, 1, 1])
    rows = per_class_rows("multiclass", scores, targets, ["a", "b"], None)
    assert [r["f1"] for r in rows] == pytest.approx(
        f1_score(targets, scores.argmax(1), average=None).tolist()
    )
    assert [r["support"] for r in rows] == [1, 3]


def test_identity_of_a_run_without_hydra():
    identity = run_identity(
        {
            "task_name": "centralnet2018_digits",
            "seed": 0,
            "method_name": "centralnet",
            "tags": ["t"],
            "fusion": {"_target_": "x.CentralNet"},
            "data": {"_target_": "x.Digits"},
        },
        {"image": {"encoder": "identity"}},
    )
    assert identity["name"] == "centralnet-s0" and identity["job_type"] == "train"
    assert identity["tags"] == ["t", "data:Digits", "fusion:CentralNet", "encoder:image:identity"]


def test_offline_run_reads_back_group_name_config_summary_and_media(tmp_path):
    """Two seeds of one sweep: one group, named runs, the selected checkpoint's metrics as summary."""
    proc = run_cli(
        "src.train",
        [
            "-m",
            f"paths.log_dir={tmp_path}",
            "logger=wandb",
            "callbacks.progress_bar=null",
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=4",
            "seed=0,1",
        ],
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    groups = set()
    for job, seed in (("0", 0), ("1", 1)):
        (run,) = offline_runs(sweep_dir / job)
        groups.add(run.group)
        assert run.name == f"gmu-s{seed}" and run.job_type == "train" and run.exit_code == 0
        assert {"dev", "data:digits", "fusion:gmu"} <= set(run.tags)
        assert {"encoder:view1:identity", "encoder:view2:identity"} <= set(run.tags)
        assert run.config["seed"] == seed and run.config["model"]["optimizer"]["lr"] > 0  # nested, resolved
        metrics = json.loads((sweep_dir / job / "metrics.json").read_text())
        assert {k: run.summary[k] for k in metrics} == pytest.approx(metrics)
        assert run.metrics["val/acc"]["summary"] == {"max": True}
        assert run.metrics["val/*"]["step_metric"] == "epoch"
        logged = {k for row in run.history for k in row}
        assert {"val/gate_hist/view1", "val/gate_hist/view2", "test/gate_hist/view1"} <= logged
        assert {"test/per_class", "test/predictions", "interpret/gate_shares"} <= logged
        predictions = next(row["test/predictions"] for row in run.history if "test/predictions" in row)
        assert predictions["_type"] == "table-file" and 0 < predictions["nrows"] <= 1000
        gate_epochs = [
            row["epoch"] for row in run.history if any(k.startswith("val/gate_hist/") for k in row)
        ]
        assert gate_epochs == [0, 1]
    assert groups == {f"train-{sweep_dir.name}"}
