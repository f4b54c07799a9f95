"""Feature cache: keys, atomic completion, reuse across runs, and the feature step (src.precompute) through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.data.feature_cache import COMPLETE, FeatureCache
from src.data.images import PosterReader
from src.data.mmimdb import MMIMDbDataModule
from src.errors import ConfigError, DataFormatError
from src.models.encoders.base import MLPEncoder
from src.precompute import build_frozen, run_feature_step, weights_sha256
from src.spec import ModalitySpec, unit_pixels
from tests.data_writers import write_mmimdb_raw

FROZEN = {
    "image": {"_target_": "src.models.encoders.base.MLPEncoder", "hidden_dims": [8], "precompute": True}
}


def _key(cache, **changes):
    base = {
        "dataset": "d",
        "split": "train",
        "ids": ["a", "b", "c"],
        "encoder": "enc",
        "weights": "w1",
        "preprocessing": {"size": 32},
    }
    base.update(changes)
    return cache.key(**base)


def test_keys_and_interrupted_write(tmp_path):
    cache = FeatureCache(tmp_path)
    key = _key(cache)
    assert cache.load(key) is None
    features = cache.write(key, [np.ones((2, 4)), np.full((1, 4), 2.0)], 3)
    assert isinstance(features, np.memmap) and features.tolist()[2] == [2.0] * 4
    np.testing.assert_array_equal(cache.load(key), features)
    for change in (
        {"ids": ["a", "c", "b"]},
        {"weights": "w2"},
        {"preprocessing": {"size": 64}},
        {"encoder": "other"},
        {"split": "val"},
    ):
        assert (
            cache.path(_key(cache, **change)) != cache.path(key) and cache.load(_key(cache, **change)) is None
        )

    def interrupted():
        yield np.zeros((2, 4))
        raise KeyboardInterrupt

    other = _key(cache, weights="w3")
    with pytest.raises(KeyboardInterrupt):
        cache.write(other, interrupted(), 3)
    assert cache.load(other) is None and not cache.path(other).exists()  # only a hidden .tmp folder remains
    with pytest.raises(RuntimeError, match="produced 2 rows, expected 3"):
        cache.write(other, [np.zeros((2, 4))], 3)
    (cache.path(key) / COMPLETE).unlink()
    assert cache.load(key) is None  # no completion marker, never read


def test_weights_hash_follows_parameters():
    torch.manual_seed(0)
    a = MLPEncoder([4], "vector", hidden_dims=[3])
    torch.manual_seed(0)
    b = MLPEncoder([4], "vector", hidden_dims=[3])
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        b.net[1].weight[0, 0] += 1
    assert weights_sha256(a) != weights_sha256(b)


def _with_feature_step(root, cache, seed=0, num_workers=0, **options):
    dm = MMIMDbDataModule(str(root), poster_size=[16, 8], **options)
    encoders = run_feature_step(
        dm, {"text": {}, "image": FROZEN["image"]}, cache, num_workers=num_workers, seed=seed
    )
    return dm, encoders


def test_frozen_poster_features_are_cached_and_reused(tmp_path, monkeypatch):
    write_mmimdb_raw(tmp_path / "mmimdb", (6, 3, 3))
    cache = tmp_path / "cache"
    dm, encoders = _with_feature_step(tmp_path / "mmimdb", cache)
    assert dm.modalities["image"].shape == (8,) and dm.modalities["image"].kind == "vector"
    assert encoders["image"]["_target_"].endswith("IdentityEncoder")
    assert (
        dm.modalities["image"].source["precomputed"]
        and dm.modalities["image"].source["encoder"] == "MLPEncoder"
    )
    train = dm._ensure("train")
    encoder = build_frozen(FROZEN["image"], "image", ModalitySpec("image", (3, 16, 8)), seed=0)
    raw = MMIMDbDataModule(str(tmp_path / "mmimdb"), poster_size=[16, 8])._ensure("train")
    with torch.no_grad():
        expected = encoder(unit_pixels(torch.stack([raw[i]["image"] for i in range(len(raw))]))).numpy()
    np.testing.assert_allclose(
        np.stack([train[i]["image"].numpy() for i in range(len(train))]), expected, rtol=1e-5, atol=1e-6
    )
    entries = sorted((cache / "mmimdb" / "train").iterdir())
    assert len(entries) == 1 and (entries[0] / COMPLETE).is_file()
    again, _ = _with_feature_step(tmp_path / "mmimdb", cache)

    def not_decoded_again(self, row):
        raise AssertionError("posters are not decoded again: the features come from the cache")

    monkeypatch.setattr(PosterReader, "__call__", not_decoded_again)
    np.testing.assert_allclose(again._ensure("train")[0]["image"].numpy(), expected[0], rtol=1e-5, atol=1e-6)
    monkeypatch.undo()
    _with_feature_step(tmp_path / "mmimdb", cache, seed=1)[0]._ensure("train")  # other weights -> a new entry
    assert len(list((cache / "mmimdb" / "train").iterdir())) == 2


def test_feature_step_with_loader_workers_equals_serial_bit_for_bit(tmp_path):
    write_mmimdb_raw(tmp_path / "mmimdb", (9, 3, 3))
    serial = _with_feature_step(tmp_path / "mmimdb", tmp_path / "serial")[0]._ensure("train")
    workers = _with_feature_step(tmp_path / "mmimdb", tmp_path / "workers", num_workers=2)[0]._ensure("train")
    a = np.stack([serial[i]["image"].numpy() for i in range(len(serial))])
    b = np.stack([workers[i]["image"].numpy() for i in range(len(workers))])
    assert a.shape == (9, 8) and a.tobytes() == b.tobytes()


def test_precompute_of_a_data_fitted_encoder_is_refused(tmp_path):
    write_mmimdb_raw(tmp_path / "mmimdb", (4, 2, 2))
    dm = MMIMDbDataModule(str(tmp_path / "mmimdb"), poster_size=[16, 8])
    tfidf = {"_target_": "src.models.encoders.text.TfidfEncoder", "max_features": 8, "precompute": True}
    with pytest.raises(ConfigError, match="model.encoders.text: .*TfidfEncoder.*not fixed"):
        run_feature_step(dm, {"text": tfidf, "image": {}}, tmp_path / "cache")


def test_bench_data_runs_and_writes_json(tmp_path):
    import json

    from src.bench.data import main as bench_main

    assert (
        bench_main(["--n", "8", "--epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "b.json")]) == 0
    )
    results = json.loads((tmp_path / "b.json").read_text())
    assert results["jpeg_decode_samples_per_s"] > 0 and results["feature_cache_samples_per_s"] > 0
    assert set(results) >= {"cache_speedup", "loader_vs_bare_pil", "bare_pil_samples_per_s", "targets_met"}


def _tamper_overwrite(path):
    x = np.load(path, mmap_mode="r+")
    x[:] = 7.0
    x.flush()


def _tamper_nan(path):
    x = np.load(path, mmap_mode="r+")
    x[1, 0] = np.nan
    x.flush()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_overwrite, "sha256"),
        (_tamper_nan, "sha256"),
        (lambda p: np.save(p, np.load(p)[:2]), "sha256"),
        (lambda p: p.write_bytes(p.read_bytes()[:-10]), "sha256"),
        (lambda p: np.save(p, np.load(p).astype(np.float64)), "sha256"),
        (lambda p: (p.parent / "meta.json").write_text("{not json"), "no readable meta.json"),
    ],
    ids=["overwritten", "nan", "short", "truncated", "float64", "meta_garbage"],
)
def test_a_tampered_entry_is_detected_and_recomputed(tmp_path, caplog, tamper, reason):
    """Issue 12, class 4: the entry records sha256/shape/dtype; a mismatch is logged naming the
    entry, the entry is deleted and computed again, so the run gets the right features."""
    cache = FeatureCache(tmp_path)
    key = _key(cache)
    good = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.write(key, [good], 3)
    tamper(cache.path(key) / "features.npy")
    with caplog.at_level("WARNING", logger="mmfusion"):
        features = cache.get_or_compute(key, lambda: [good], 3, width=4)
    np.testing.assert_array_equal(features, good)
    assert (
        str(cache.path(key)) in caplog.text
        and reason in caplog.text
        and "computing the features again" in caplog.text
    )
    assert cache.verify(cache.path(key), key, 4) is None


def test_wrong_width_and_non_finite_computed_features(tmp_path):
    cache = FeatureCache(tmp_path)
    key = _key(cache)
    cache.write(key, [np.zeros((3, 4))], 3)
    assert "records shape [3, 4], expected [3, 8]" in cache.verify(cache.path(key), key, 8)
    other = _key(cache, weights="w9")
    with pytest.raises(
        DataFormatError,
        match=r"enc produced NaN/inf features for 1 of the 3 samples of d/train \(rows \[2\]\)",
    ):
        cache.write(other, [np.array([[0.0], [1.0], [np.inf]])], 3)
    assert not cache.path(other).exists()
