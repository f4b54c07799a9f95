"""MulT pickles: IEMOCAP / MOSI / MOSEI / MOSEI emotions, aligned and unaligned, -inf and NaN handling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from src.data.base import DatasetNotFoundError
from src.data.issues import DataIssueError
from src.data.mult import MulTDataModule
from src.spec import ModalitySpec
from src.tasks import MULTILABEL, REGRESSION
from tests.data_writers import write_mult_pickle
from tests.helpers import train_cli


def test_iemocap_labels_masks_and_neg_inf(tmp_path):
    data = write_mult_pickle(tmp_path / "iemocap_data.pkl", "iemocap")
    dm = MulTDataModule(str(tmp_path), "iemocap")
    assert dm.task == MULTILABEL and dm.class_names == ["Neutral", "Happy", "Sad", "Angry"]
    assert dm.modalities["audio"] == ModalitySpec("sequence", (7, 74))
    train = dm._ensure("train")
    np.testing.assert_array_equal(train.labels[1], [1, 0, 1, 0])  # row 1's hot column is (1 + emotion) % 2
    assert dm.issue_counts["train"] == {"audio_neg_inf_to_0": {"fixed": 2}}
    assert (
        np.abs(train.modalities["audio"][0, -1, :2]).sum() == 0.0
        and np.isfinite(train.modalities["audio"]).all()
    )
    sample = train[0]
    # the writer zero-pads the first T // 3 steps of each modality
    assert sample["text_mask"].tolist() == [False, False, True, True, True, True]
    assert sample["audio_mask"].tolist() == [False, False, True, True, True, True, True]
    assert train.ids[0] == "train_0_0_1"
    assert len(dm._ensure("val")) == len(data["valid"]["labels"])


def test_regression_and_unaligned_file_choice(tmp_path):
    write_mult_pickle(tmp_path / "mosi_data_noalign.pkl", "mosi")
    with pytest.raises(DatasetNotFoundError, match="data.aligned=false"):
        MulTDataModule(str(tmp_path), "mosi", aligned=True)
    dm = MulTDataModule(str(tmp_path), "mosi", aligned=False)
    assert dm.task == REGRESSION and dm.spec.num_outputs == 1
    assert dm._ensure("test").labels.shape == (8, 1)


def test_mosei_emotions_needs_seven_columns(tmp_path):
    write_mult_pickle(tmp_path / "mosei_senti_data.pkl", "mosei")
    with pytest.raises(ValueError, match="7-column layout"):
        MulTDataModule(str(tmp_path), "mosei_emotions")._ensure("train")
    data = write_mult_pickle(tmp_path / "mosei_senti_data.pkl", "mosei_emotions")
    train = MulTDataModule(str(tmp_path), "mosei_emotions")._ensure("train")
    np.testing.assert_array_equal(train.labels, (data["train"]["labels"][:, 0, 1:] > 0).astype(np.float32))


def test_nan_policy_and_wrong_shapes(tmp_path):
    data = write_mult_pickle(tmp_path / "mosi_data.pkl", "mosi")
    data["train"]["vision"][3, 2, 0] = np.nan
    with open(tmp_path / "mosi_data.pkl", "wb") as f:
        pickle.dump(data, f)
    with pytest.raises(DataIssueError, match=r"'vision'\]\[3\]"):
        MulTDataModule(str(tmp_path), "mosi")._ensure("train")
    dm = MulTDataModule(str(tmp_path), "mosi", on_problem={"nonfinite": "skip"})
    assert len(dm._ensure("train")) == 15 and dm.issue_counts["train"]["nonfinite"] == {"skip": 1}
    data["valid"]["audio"] = data["valid"]["audio"][:, :, :70]
    with open(tmp_path / "mosi_data.pkl", "wb") as f:
        pickle.dump(data, f)
    with pytest.raises(
        ValueError, match=r"\['valid'\]\['audio'\]: shape \(8, 7, 70\), expected \(N, T, 74\)"
    ):
        MulTDataModule(str(tmp_path), "mosi")


@pytest.mark.slow
def test_train_cli_iemocap_one_epoch(tmp_path):
    write_mult_pickle(tmp_path / "mult" / "iemocap_data.pkl", "iemocap")
    metrics = train_cli(
        tmp_path / "run",
        "data=iemocap",
        f"data.root={tmp_path / 'mult'}",
        "trainer.max_epochs=1",
        "data.batch_size=8",
    )
    assert 0.0 <= metrics["test/f1_micro"] <= 1.0
    assert json.loads((tmp_path / "run" / "data_issues.json").read_text())["train"] == {
        "audio_neg_inf_to_0": {"fixed": 2}
    }
