"""Issue 12, classes 9 and 10: the documented bad-input policy forms work (and the error prints one
that does); a user error is one clear message with exit code 2, the full traceback only with
HYDRA_FULL_ERROR=1. Overrides go through Hydra's compose API (the parser of the command line) and
one run of each kind through the CLI itself."""

from __future__ import annotations

import json
import logging
import re

import pytest

from src.callbacks import CHECKPOINT_RUN_CONFIG_KEY
from src.data.issues import DataIssueError
from src.errors import CheckpointError, UserError, user_message
from src.train import train
from src.utils.checkpoints import read_checkpoint
from src.utils.run import run_job
from tests.data_writers import write_mmimdb_raw
from tests.helpers import compose_train, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = ["logger=csv", "callbacks.progress_bar=null", "trainer.max_epochs=1"]


def mmimdb(root, *extra):
    return [
        "data=mmimdb",
        f"data.root={root}",
        "data.poster_size=[16,8]",
        "data.batch_size=4",
        *QUICK,
        *extra,
    ]


@pytest.mark.slow  # an end-to-end CLI run (>10 s on 2 cores); the fast suite keeps `make test` under 10 min
def test_both_documented_policy_forms_work_and_the_hint_is_a_working_command(tmp_path):
    """Before: both documented forms were 'not in struct' for Hydra; only +data.on_problem... worked."""
    split = write_mmimdb_raw(tmp_path / "mmimdb", (6, 3, 3))
    (tmp_path / "mmimdb" / "dataset" / f"{split['train'][1]}.jpeg").unlink()
    poster = tmp_path / "mmimdb" / "dataset" / f"{split['train'][2]}.jpeg"
    poster.write_bytes(poster.read_bytes()[:150])
    with pytest.raises(DataIssueError) as refused:
        train(compose_train(mmimdb(tmp_path / "mmimdb", "data.num_workers=2"), tmp_path / "a"))
    hints = re.findall(r"add (data\.on_problem\.\w+=\w+) or (data\.on_problem\.\w+=\w+)", str(refused.value))
    assert hints == [("data.on_problem.missing_file=skip", "data.on_problem.missing_file=blank")]
    expected = {"missing_file": {"blank": 1}, "unreadable_file": {"skip": 1}}
    # the hint's form, one key each
    one_key = [
        "data.on_problem.missing_file=blank",
        "data.on_problem.unreadable_file=skip",
        "data.num_workers=0",
    ]
    train(compose_train(mmimdb(tmp_path / "mmimdb", *one_key), tmp_path / "b"))
    assert json.loads((tmp_path / "b" / "data_issues.json").read_text())["train"] == expected
    # the README/docs form, several problems at once, through the command line
    docs_form = "data.on_problem={missing_file: blank, unreadable_file: skip}"
    proc = run_cli("src.train", [f"hydra.run.dir={tmp_path / 'c'}", *mmimdb(tmp_path / "mmimdb", docs_form)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "c" / "data_issues.json").read_text())["train"] == expected


def test_a_user_error_is_one_message_and_exit_code_2(tmp_path):
    """Before: seed=abc printed an int() traceback with exit code 1."""
    proc = run_cli("src.train", [f"hydra.run.dir={tmp_path}", *QUICK, "seed=abc"])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-2000:]
    assert "seed='abc': expected an integer in [0, 4294967295] or null" in output
    assert "Traceback" not in output and "Error executing job" not in output


def test_missing_data_is_a_message_not_a_repr(tmp_path, monkeypatch, caplog):
    """Before: Hydra printed the DatasetNotFoundError's repr, with a literal \\n."""
    monkeypatch.setenv("MMFUSION_DATA_DIR", str(tmp_path / "nodata"))
    cfg = compose_train(["data=mmimdb", *QUICK], tmp_path / "run")
    with caplog.at_level(logging.ERROR, logger="mmfusion"), pytest.raises(SystemExit) as exited:
        run_job(train, cfg)
    assert exited.value.code == 2
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message.startswith(f"MM-IMDb (data.format=raw) not found under {tmp_path / 'nodata' / 'mmimdb'}")
    assert (
        "\\n" not in message
        and "DatasetNotFoundError(" not in message
        and "\nMM-IMDb is distributed" in message
    )


def test_hydra_full_error_shows_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(SystemExit) as exited:
        run_job(train, compose_train(["seed=abc", *QUICK], tmp_path))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "src/utils/config_checks.py" in err


def test_a_garbage_checkpoint_is_not_told_to_disable_weights_only(tmp_path):
    garbage = tmp_path / "bad.ckpt"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(garbage, CHECKPOINT_RUN_CONFIG_KEY)
    assert str(refused.value).startswith(f"{garbage}: cannot be read as a checkpoint (UnpicklingError")
    assert "weights_only" not in str(refused.value)


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
