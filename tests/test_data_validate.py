"""Issue 12, classes 1-3: every format checks disjoint in-range splits, labels before any transform,
and array shapes against the published format (files written by tests/data_writers.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from src.data.issues import DataIssueError
from src.data.mmimdb import MMIMDbDataModule
from src.data.mmnist import MNISTDataModule
from src.data.moviescope import MoviescopeDataModule
from src.data.mult import MulTDataModule
from src.data.validate import (
    BINARY,
    ONEHOT_PAIRS,
    SENTIMENT,
    ArraySpec,
    BadShapeError,
    check_array,
    check_split_ids,
    check_split_ranges,
    label_problems,
)
from src.errors import DataFormatError
from tests.data_writers import (
    read_hdf5_dataset,
    replace_hdf5_dataset,
    rewrite_mult_pickle,
    set_hdf5_split_ranges,
    write_digit_images,
    write_idx,
    write_mmimdb_hdf5,
    write_moviescope,
    write_mult_pickle,
)


# ------------------------------------------------------------------ 1. splits are disjoint and in range
def test_split_checks_name_the_overlap():
    check_split_ids("f", {"train": ["a", "b"], "val": ["c"], "test": ["d#0", "d#1"]})
    with pytest.raises(DataFormatError, match=r"1 ids of 'train' are also in 'test' \(e.g. \['b'\]\)"):
        check_split_ids("f", {"train": ["a", "b"], "val": ["c"], "test": ["b#2"]})  # a sample of movie b
    check_split_ranges("f", {"train": (0, 12), "dev": (12, 18), "test": (18, 24)}, 24)
    with pytest.raises(DataFormatError, match=r"'train' and 'dev' overlap: rows \[8, 12\)"):
        check_split_ranges("f", {"train": (0, 12), "dev": (8, 18), "test": (18, 24)}, 24)
    with pytest.raises(
        DataFormatError, match=r"'test' has rows \[18, 40\); expected 0 <= start < stop <= 24"
    ):
        check_split_ranges("f", {"train": (0, 12), "dev": (12, 18), "test": (18, 40)}, 24)


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"dev": (8, 14)}, r"'train' and 'dev' overlap"),
        ({"test": (18, 40)}, r"'test' has rows \[18, 40\)"),
        ({"dev": (18, 12)}, r"'dev' has rows \[18, 12\)"),
    ],
    ids=["overlap", "past_the_end", "reversed"],
)
def test_hdf5_split_ranges(tmp_path, ranges, message):
    path = tmp_path / "multimodal_imdb.hdf5"
    write_mmimdb_hdf5(path)
    set_hdf5_split_ranges(path, ranges)
    with pytest.raises(DataFormatError, match=message):
        MMIMDbDataModule(str(tmp_path), format="hdf5")


def test_hdf5_same_id_in_two_splits_fails_the_preflight(tmp_path):
    path = tmp_path / "multimodal_imdb.hdf5"
    write_mmimdb_hdf5(path)
    ids = read_hdf5_dataset(path, "imdb_ids")
    ids[20] = ids[3]  # a train movie again among the test rows
    replace_hdf5_dataset(path, "imdb_ids", ids)
    with pytest.raises(
        DataFormatError, match=rf"'train' are also in 'test' \(e.g. \['{ids[3].decode()}'\]\)"
    ):
        MMIMDbDataModule(str(tmp_path), format="hdf5").preflight()


def test_mult_valid_rows_repeating_train_rows_fail_the_preflight(tmp_path):
    data = write_mult_pickle(tmp_path / "iemocap_data.pkl", "iemocap")
    n = len(data["valid"]["labels"])
    for key in ("text", "audio", "vision", "labels", "id"):
        data["valid"][key] = data["train"][key][:n].copy()
    rewrite_mult_pickle(tmp_path / "iemocap_data.pkl", data)
    with pytest.raises(DataFormatError, match=r"8 ids of 'train' are also in 'val' \(e.g. \['train_0_0_1'"):
        MulTDataModule(str(tmp_path), "iemocap").preflight()


def test_mult_without_ids_is_not_an_overlap(tmp_path):
    data = write_mult_pickle(tmp_path / "mosi_data.pkl", "mosi")
    for split in data.values():
        del split["id"]
    rewrite_mult_pickle(tmp_path / "mosi_data.pkl", data)
    MulTDataModule(str(tmp_path), "mosi").preflight()


def test_moviescope_ids_repeated_within_or_across_splits(tmp_path):
    ids = write_moviescope(tmp_path, (6, 3, 3))
    lines = (tmp_path / "dev.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    (tmp_path / "dev.jsonl").write_text(
        "\n".join([json.dumps({**row, "id": ids["train"][1]}), *lines[1:]]) + "\n"
    )
    with pytest.raises(DataFormatError, match=rf"'train' are also in 'val' \(e.g. \['{ids['train'][1]}'\]\)"):
        MoviescopeDataModule(str(tmp_path), modalities=["poster"]).preflight()
    train = (tmp_path / "train.jsonl").read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join([*train, train[0]]) + "\n")
    with pytest.raises(DataFormatError, match=rf"train.jsonl:7: id {ids['train'][0]} is already on line 1"):
        MoviescopeDataModule(str(tmp_path), modalities=["poster"])


# ------------------------------------------------------------------ 2. labels checked before any transform
def test_label_problems_name_row_and_class():
    pairs = np.zeros((4, 2, 2))
    pairs[:, :, 0] = 1
    pairs[1, 1] = [np.nan, 1]
    pairs[2, 0] = [0, 0]
    pairs[3, 1] = [1, 1]
    assert label_problems(pairs, ONEHOT_PAIRS, ["Neutral", "Happy"]) == [
        (1, "not finite (class Happy)"),
        (2, "is not a one-hot pair [1, 0] or [0, 1] (class Neutral)"),
        (3, "is not a one-hot pair [1, 0] or [0, 1] (class Happy)"),
    ]
    assert label_problems(np.array([[0, 1], [2, 0]]), BINARY, ["a", "b"]) == [(1, "is not 0 or 1 (class a)")]
    assert label_problems(np.array([[0.5], [-3.5]]), SENTIMENT) == [
        (1, "is outside the sentiment range [-3, 3]")
    ]


@pytest.mark.parametrize(
    ("row", "pair", "reason"),
    [
        (2, [np.nan, 0.0], r"\[2\] not finite \(class Happy\)"),
        (3, [0.0, 0.0], r"\[3\] is not a one-hot pair .* \(class Happy\)"),
        (4, [1.0, 1.0], r"\[4\] is not a one-hot pair .* \(class Happy\)"),
    ],
    ids=["nan", "all_zero", "both_hot"],
)
def test_iemocap_bad_one_hot_is_named_not_argmaxed(tmp_path, row, pair, reason):
    data = write_mult_pickle(tmp_path / "iemocap_data.pkl", "iemocap")
    data["train"]["labels"][row, 1] = pair
    rewrite_mult_pickle(tmp_path / "iemocap_data.pkl", data)
    with pytest.raises(DataIssueError, match=r"\['train'\]\['labels'\]" + reason):
        MulTDataModule(str(tmp_path), "iemocap")._ensure("train")
    dm = MulTDataModule(str(tmp_path), "iemocap", on_problem={"unknown_label": "skip"})
    assert len(dm._ensure("train")) == 15 and dm.issue_counts["train"]["unknown_label"] == {"skip": 1}


def test_sentiment_and_intensity_ranges(tmp_path):
    data = write_mult_pickle(tmp_path / "mosi_data.pkl", "mosi")
    data["train"]["labels"][1, 0, 0] = 7.0
    rewrite_mult_pickle(tmp_path / "mosi_data.pkl", data)
    with pytest.raises(DataIssueError, match=r"\['labels'\]\[1\] is outside the sentiment range"):
        MulTDataModule(str(tmp_path), "mosi")._ensure("train")
    data = write_mult_pickle(tmp_path / "mosei_senti_data.pkl", "mosei_emotions")
    data["valid"]["labels"][2, 0, 4] = -1.0  # column 4 = the 4th emotion, surprise
    rewrite_mult_pickle(tmp_path / "mosei_senti_data.pkl", data)
    with pytest.raises(
        DataIssueError,
        match=r"\['valid'\]\['labels'\]\[2\] is a negative emotion intensity \(class surprise\)",
    ):
        MulTDataModule(str(tmp_path), "mosei_emotions")._ensure("val")


def test_hdf5_genre_value_two_is_not_a_target_of_two(tmp_path):
    path = tmp_path / "multimodal_imdb.hdf5"
    write_mmimdb_hdf5(path)
    genres = read_hdf5_dataset(path, "genres")
    genres[1, 0] = 2
    replace_hdf5_dataset(path, "genres", genres)
    with pytest.raises(DataIssueError, match=r"genres\[1\] \(id 2000001\) is not 0 or 1 \(class Drama\)"):
        MMIMDbDataModule(str(tmp_path), format="hdf5")._ensure("train")
    dm = MMIMDbDataModule(str(tmp_path), format="hdf5", on_problem={"unknown_label": "skip"})
    train = dm._ensure("train")
    assert len(train) == 11 and set(np.unique(train.labels)) == {0.0, 1.0}


def test_moviescope_label_that_is_not_a_list_of_names(tmp_path):
    write_moviescope(tmp_path, (6, 3, 3))
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "label": "drama"})
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataIssueError, match=r"'label' must be a list of genre names, got 'drama'"):
        MoviescopeDataModule(str(tmp_path), modalities=["poster"])._ensure("train")


# ------------------------------------------------------------------ 3. shapes against data_formats.md
def test_check_array_names_expected_and_found():
    check_array("f:features", (5, 300), np.dtype("float32"), ArraySpec(("N", 300)))
    with pytest.raises(BadShapeError, match=r"f:features: shape \(5, 299\), expected \(N, 300\) of floats"):
        check_array("f:features", (5, 299), np.dtype("float32"), ArraySpec(("N", 300)))
    with pytest.raises(BadShapeError, match=r"dtype \|S1, expected \(N, 300\) of floats"):
        check_array("f:features", (5, 300), np.dtype("S1"), ArraySpec(("N", 300)))


@pytest.mark.parametrize(
    ("key", "array", "sources", "message"),
    [
        (
            "features",
            np.zeros((24, 299), np.float32),
            {},
            r"features: shape \(24, 299\), expected \(N, 300\)",
        ),
        (
            "vgg_features",
            np.zeros((24, 2, 4, 8), np.float32),
            {},
            r"vgg_features: shape \(24, 2, 4, 8\), expected \(N, 4096\)",
        ),
        (
            "images",
            np.zeros((24, 3, 128, 80), np.int32),
            {"image": "images"},
            r"images: shape \(24, 3, 128, 80\), expected \(N, 3, 256, 160\)",
        ),
        ("genres", np.zeros((24, 22), np.int32), {}, r"genres: shape \(24, 22\), expected \(N, 23\)"),
    ],
    ids=["features_299", "vgg_rank4", "images_small", "genres_22"],
)
def test_hdf5_arrays_against_the_published_shapes(tmp_path, key, array, sources, message):
    path = tmp_path / "multimodal_imdb.hdf5"
    write_mmimdb_hdf5(path)
    replace_hdf5_dataset(path, key, array)
    with pytest.raises(DataFormatError, match=rf"{path}:{message}"):
        MMIMDbDataModule(str(tmp_path), format="hdf5", hdf5_sources=sources)


def test_hdf5_posters_outside_0_255(tmp_path):
    path = tmp_path / "multimodal_imdb.hdf5"
    write_mmimdb_hdf5(path)
    images = read_hdf5_dataset(path, "images")
    images[20, 0, 0, 0] = 1000
    replace_hdf5_dataset(path, "images", images)
    dm = MMIMDbDataModule(str(tmp_path), format="hdf5", hdf5_sources={"image": "images"})
    dm._ensure("train")
    with pytest.raises(DataFormatError, match=r"images\[18:24\] holds values in \[0, 1000\]"):
        dm.preflight()


def test_moviescope_and_mnist_shapes(tmp_path):
    ids = write_moviescope(tmp_path / "ms", (6, 3, 3))
    poster = tmp_path / "ms" / "PosterFeatures" / f"{ids['test'][1]}.p"
    poster.write_bytes(__import__("pickle").dumps(np.zeros(4095, np.float32)))
    with pytest.raises(DataIssueError, match=rf"bad_shape: {poster}: poster feature of shape \(4095,\)"):
        MoviescopeDataModule(str(tmp_path / "ms"), modalities=["poster"]).preflight()
    np.save(tmp_path / "ms" / "Metadata_matrices" / "val_metadata.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(
        DataFormatError,
        match=r"different numbers of columns \{'train_metadata.npy': 3, 'val_metadata.npy': 5",
    ):
        MoviescopeDataModule(str(tmp_path / "ms"), modalities=["metadata"])
    write_digit_images(tmp_path / "mnist", 5)
    write_idx(tmp_path / "mnist" / "images-idx3-ubyte.gz", np.zeros((50, 27, 27), np.uint8))
    with pytest.raises(DataFormatError, match="images of 27 x 27 pixels, expected MNIST's 28 x 28"):
        MNISTDataModule(str(tmp_path / "mnist"))
