"""Moviescope: jsonl + per-id pickles (python-2-era included) + metadata matrices with id maps."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from src.data.issues import DataIssueError
from src.data.moviescope import MoviescopeDataModule, mel_array
from src.data.safe_pickle import load_pickle
from tests.data_writers import MOVIESCOPE_GENRES, python2_array_pickle, write_moviescope
from tests.helpers import train_cli


def test_python2_pickle_needs_bytes_encoding(tmp_path):
    array = np.arange(6, dtype=np.float32).reshape(2, 3) + 200.5  # raw bytes outside ASCII
    data = python2_array_pickle(array)
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)
    (tmp_path / "a.p").write_bytes(data)
    np.testing.assert_array_equal(load_pickle(tmp_path / "a.p"), array)


def test_layout_shapes_labels_metadata(tmp_path):
    ids = write_moviescope(tmp_path)
    dm = MoviescopeDataModule(str(tmp_path), modalities=["video", "audio", "poster", "metadata", "text"])
    assert dm.class_names == MOVIESCOPE_GENRES
    train = dm._ensure("train")
    assert train.ids == ids["train"]
    s0, s1 = (
        train[0],
        train[1],
    )  # row 0 was written by "python 2" with 2-D shapes, row 1 by python 3 with a leading 1
    assert s0["video"].shape == s1["video"].shape == (200, 4096)
    assert s0["poster"].shape == s1["poster"].shape == (4096,)
    assert s0["audio"].shape == (30, 96) and s1["audio"].shape == (31, 96)
    assert s1["labels"].tolist() == [0.0, 1.0, 1.0]  # k=1: comedy + drama
    assert s1["metadata"].tolist() == [1.0, 1.0, 2.0]  # the row of id tt00001 via train_ids.pickle
    val = dm._ensure("val")
    assert val[0]["metadata"][0] == int(ids["dev"][0][2:])  # 'dev' split read from the 'val' matrices
    batch = dm.train_dataloader().collate_fn([train[0], train[1]])
    assert batch["audio"].shape == (2, 31, 96) and batch["audio_mask"].sum(1).tolist() == [30, 31]


def test_missing_and_broken_pickles(tmp_path):
    ids = write_moviescope(tmp_path)
    (tmp_path / "PosterFeatures" / f"{ids['train'][2]}.p").unlink()
    (tmp_path / "200F_VGG16" / f"{ids['train'][3]}.p").write_bytes(b"\x80\x02truncated")
    (tmp_path / "Melspectrogram" / f"{ids['train'][4]}.p").write_bytes(
        pickle.dumps(np.zeros((64, 10), np.float32))
    )
    with pytest.raises(DataIssueError, match=f"PosterFeatures/{ids['train'][2]}.p missing"):
        MoviescopeDataModule(str(tmp_path))._ensure("train")
    policy = {"missing_file": "blank", "unreadable_file": "skip", "bad_shape": "skip"}
    dm = MoviescopeDataModule(str(tmp_path), on_problem=policy)
    train = dm._ensure("train")
    assert len(train) == 6 and dm.issue_counts["train"] == {
        "missing_file": {"blank": 1},
        "unreadable_file": {"skip": 1},
        "bad_shape": {"skip": 1},
    }
    assert float(train[train.ids.index(ids["train"][2])]["poster"].abs().sum()) == 0.0


@pytest.mark.slow
def test_train_cli_one_epoch(tmp_path):
    write_moviescope(tmp_path / "ms", (6, 3, 3))
    metrics = train_cli(
        tmp_path / "run", "data=moviescope", f"data.root={tmp_path / 'ms'}", "data.num_workers=0", "data.batch_size=3",
        "data.modalities=[poster,audio,metadata]", "trainer.max_epochs=1",
    )  # fmt: skip
    assert 0.0 <= metrics["test/f1_micro"] <= 1.0


def test_melgram_processed_chunks_concatenate_along_time():
    chunks = np.arange(4 * 96 * 3, dtype=np.float32).reshape(1, 4, 96, 3)
    mel = mel_array(chunks, "MelgramPorcessed/x.p")
    assert mel.shape == (12, 96)
    np.testing.assert_array_equal(mel[3:6], chunks[0, 1].T)  # chunk 1 follows chunk 0 in time
    with pytest.raises(ValueError, match=r"shape \(64, 10\), expected \(96, T\)"):
        mel_array(np.zeros((64, 10)), "Melspectrogram/y.p")
