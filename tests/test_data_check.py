"""``python -m src.data.check``: clean data exits 0; each kind of broken input is reported and exits 1."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from src.data.check import main as check_main
from src.data.issues import IssueLog
from tests.data_writers import write_mmimdb_raw, write_mult_pickle


def test_check_reports_broken_mmimdb(tmp_path, capsys):
    split = write_mmimdb_raw(tmp_path, (6, 3, 3))
    assert check_main(["data=mmimdb", f"data.root={tmp_path}"]) == 0
    poster = tmp_path / "dataset" / f"{split['train'][1]}.jpeg"
    poster.write_bytes(poster.read_bytes()[:150])  # truncated JPEG
    (tmp_path / "dataset" / f"{split['dev'][0]}.json").write_text(
        '{"plot": ["x"], "genres": ["Drama", "Cooking"]}'
    )
    (tmp_path / "dataset" / f"{split['test'][2]}.json").unlink()
    assert check_main(["data=mmimdb", f"data.root={tmp_path}"]) == 1
    out = capsys.readouterr().out.split("data check:")[-1]
    assert "train: 6 samples  [PROBLEMS]" in out and "unreadable_file: 1" in out  # read, not dropped
    assert f"{split['train'][1]}: {tmp_path}/dataset/{split['train'][1]}.jpeg: cannot decode image" in out
    assert "unknown_label: 1" in out and "Cooking" in out
    assert f"id {split['test'][2]} of split.json has no" in out


def test_check_mult_nan_and_fixed_neg_inf(tmp_path, capsys):
    data = write_mult_pickle(tmp_path / "mosi_data.pkl", "mosi")
    assert check_main(["data=mosi", f"data.root={tmp_path}"]) == 0
    assert "fixed audio_neg_inf_to_0: 2" in capsys.readouterr().out
    data["test"]["text"][1, 0, 0] = np.inf
    with open(tmp_path / "mosi_data.pkl", "wb") as f:
        pickle.dump(data, f)
    assert check_main(["data=mosi", f"data.root={tmp_path}"]) == 1
    assert "['test']['text'][1]: 1 NaN/inf values" in capsys.readouterr().out


def test_check_missing_dataset_and_usage(tmp_path, capsys):
    assert check_main([]) == 2
    assert check_main(["data=mmimdb", f"data.root={tmp_path / 'absent'}"]) == 1
    assert "mmimdb.tar.gz" in capsys.readouterr().err


def test_report_mode_uses_an_action_the_call_site_allows():
    log = IssueLog(report=True)
    assert log.problem("train", "unreadable_file", "x.wav: truncated", allow=("blank",)) == "blank"
    assert log.problem("train", "missing_id", "id 1") == "skip"
    assert log.as_dict() == {"train": {"unreadable_file": {"blank": 1}, "missing_id": {"skip": 1}}}


def test_policy_config_is_validated():
    with pytest.raises(ValueError, match="unknown problems"):
        IssueLog({"bogus": "skip"})
    with pytest.raises(ValueError, match=r"unknown_label='blank'; allowed: \['error', 'skip'\]"):
        IssueLog({"unknown_label": "blank"})
