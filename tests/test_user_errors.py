"""Issue 12, classes 9 and 10 through the command line: the documented bad-input policy forms work
(and the hint prints one that does); a user error is one clear message with exit code 2, the full
traceback only with HYDRA_FULL_ERROR=1."""

from __future__ import annotations

import json
import re

import pytest

from src.data.issues import DataIssueError
from src.errors import UserError, user_message
from tests.data_writers import write_mmimdb_raw
from tests.helpers import run_cli

QUICK = ["logger=csv", "callbacks.progress_bar=null", "trainer.max_epochs=1"]


def mmimdb_args(root, run_dir, *extra):
    return [f"hydra.run.dir={run_dir}", "data=mmimdb", f"data.root={root}", "data.poster_size=[16,8]",
            "data.batch_size=4", *QUICK, *extra]  # fmt: skip


def test_both_documented_policy_forms_work_and_the_hint_is_a_working_command(tmp_path):
    split = write_mmimdb_raw(tmp_path / "mmimdb", (6, 3, 3))
    (tmp_path / "mmimdb" / "dataset" / f"{split['train'][1]}.jpeg").unlink()
    poster = tmp_path / "mmimdb" / "dataset" / f"{split['train'][2]}.jpeg"
    poster.write_bytes(poster.read_bytes()[:150])
    refused = run_cli("src.train", mmimdb_args(tmp_path / "mmimdb", tmp_path / "a", "data.num_workers=2"))
    output = refused.stdout + refused.stderr
    assert refused.returncode == 2 and "Traceback" not in output and "Original Traceback" not in output
    hint = re.findall(
        r"add (data\.on_problem\.missing_file=skip) or (data\.on_problem\.missing_file=blank)", output
    )
    assert hint == [("data.on_problem.missing_file=skip", "data.on_problem.missing_file=blank")]
    # the README/docs form, several problems at once
    docs_form = "data.on_problem={missing_file: blank, unreadable_file: skip}"
    ok = run_cli(
        "src.train", mmimdb_args(tmp_path / "mmimdb", tmp_path / "b", docs_form, "data.num_workers=0")
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads((tmp_path / "b" / "data_issues.json").read_text())["train"] == {
        "missing_file": {"blank": 1},
        "unreadable_file": {"skip": 1},
    }
    # the hint's form, one key
    (tmp_path / "mmimdb" / "dataset" / f"{split['train'][1]}.jpeg").write_bytes(poster.read_bytes())
    one_key = run_cli(
        "src.data.check",
        ["data=mmimdb", f"data.root={tmp_path / 'mmimdb'}", "data.on_problem.unreadable_file=skip"],
    )
    assert one_key.returncode == 1 and "unreadable_file: 2" in one_key.stdout  # reported, not a Hydra error


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["trainer.max_epochs=abc"], {}, "trainer.max_epochs='abc': expected an integer >= 1"),
        (["seed=abc"], {}, "seed='abc': expected an integer"),
        (
            ["data=mmimdb"],
            {"MMFUSION_DATA_DIR": "{tmp}/nodata"},
            "MM-IMDb (data.format=raw) not found under {tmp}/nodata/mmimdb",
        ),
    ],
    ids=["max_epochs_abc", "seed_abc", "missing_data"],
)
def test_a_user_error_is_one_message_and_exit_code_2(tmp_path, args, env, message):
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    proc = run_cli("src.train", [f"hydra.run.dir={tmp_path / 'run'}", *QUICK, *args], env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-2000:]
    assert message.format(tmp=tmp_path) in output
    assert "Traceback" not in output and "\\n" not in output and "Error(" not in output


def test_hydra_full_error_shows_the_traceback(tmp_path):
    proc = run_cli(
        "src.train", [f"hydra.run.dir={tmp_path}", "seed=abc", *QUICK], env={"HYDRA_FULL_ERROR": "1"}
    )
    assert proc.returncode == 2 and "Traceback (most recent call last)" in proc.stderr
    assert "src/utils/config_checks.py" in proc.stderr


def test_a_garbage_checkpoint_is_not_told_to_disable_weights_only(tmp_path):
    garbage = tmp_path / "bad.ckpt"
    garbage.write_bytes(bytes(range(256)) * 8)
    proc = run_cli("src.eval", [f"ckpt_path={garbage}", f"hydra.run.dir={tmp_path / 'eval'}"])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and f"{garbage}: cannot be read as a checkpoint" in output
    assert "weights_only" not in output and "Traceback" not in output


def test_a_worker_error_keeps_only_its_own_message():
    """What torch's DataLoader re-raises from a worker: the worker's traceback, then the message."""
    original = "[train] missing_file: /data/x.jpeg is missing\n(to skip/blank ...)"
    wrapped = DataIssueError(
        "Caught DataIssueError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "worker.py", line 1, in <module>\n'
        f"src.data.issues.DataIssueError: {original}\n"
    )
    assert user_message(wrapped) == original + "\n"
    assert user_message(UserError("plain")) == "plain"
