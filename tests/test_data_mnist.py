"""mmnist / avmnist: IDX reading, split rules, FSDD spectrograms and pairing; real-data training."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from src.data.audio import spectrogram
from src.data.avmnist import AVMNISTDataModule, fsdd_split
from src.data.mmnist import MNISTDataModule, load_mnist, read_idx
from src.spec import ModalitySpec
from tests.data_writers import write_digit_images, write_fsdd, write_idx
from tests.helpers import train_cli

SHARED = Path(os.environ.get("MMFUSION_DATA_DIR", "/nonexistent"))
HAS_REAL = (SHARED / "mnist10k").is_dir() and (SHARED / "fsdd" / "recordings").is_dir()


def test_read_idx_round_trip_and_errors(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x-images-idx3-ubyte", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x-images-idx3-ubyte"), images)
    raw = (tmp_path / "x-images-idx3-ubyte").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match=r"header says \[2, 3, 4\] \(24 bytes\) but 21"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x00\x00\x08\x04" + raw[4:])
    with pytest.raises(ValueError, match="magic number 2052"):
        read_idx(tmp_path / "magic")


def test_single_pair_is_stratified_and_official_pairs_keep_test(tmp_path):
    write_digit_images(tmp_path / "single", 10)
    _, labels, idx = load_mnist(tmp_path / "single", 0.1, (0.6, 0.2, 0.2), 0)
    assert [len(idx[s]) for s in ("train", "val", "test")] == [60, 20, 20]
    assert np.bincount(labels[idx["test"]]).tolist() == [2] * 10
    write_digit_images(tmp_path / "official", 6, prefix="train-")
    write_digit_images(tmp_path / "official", 3, prefix="t10k-", seed=1)
    _, _, idx = load_mnist(tmp_path / "official", 0.5, (0.6, 0.2, 0.2), 0)
    assert idx["test"].tolist() == list(range(60, 90)) and len(idx["train"]) == len(idx["val"]) == 30
    dm = MNISTDataModule(str(tmp_path / "official"))
    assert dm.modalities["view1"] == ModalitySpec("image", (1, 28, 28))
    views = dm._ensure("test")
    assert views.modalities["view1"].shape == (30, 1, 28, 28)


def test_spectrogram_shape_and_determinism():
    t = np.arange(4000) / 8000
    signal = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    spec = spectrogram(signal, 8000)
    assert spec.shape == (112, 112) and spec.dtype == np.float32
    # 1 kHz at 8 kHz with n_fft 222 falls in bin round(1000 * 222 / 8000) = 28; the padded second half is silent
    assert int(spec[:, 10].argmax()) == 28 and float(spec[:, 100].max()) == 0.0
    np.testing.assert_array_equal(spec, spectrogram(signal, 8000))


def test_avmnist_pairs_by_digit_with_fsdd_split(tmp_path):
    write_digit_images(tmp_path / "mnist", 10)
    write_fsdd(tmp_path / "fsdd", takes=9, speakers=("alice",))
    assert [fsdd_split(t, [5, 6]) for t in (0, 4, 5, 7)] == ["test", "test", "val", "train"]
    dm = AVMNISTDataModule(
        str(tmp_path / "mnist"), str(tmp_path / "fsdd"), split_fractions=[0.6, 0.2, 0.2], val_takes=[5, 6]
    )
    assert {s: len(r) for s, r in dm._recordings.items()} == {"train": 20, "val": 20, "test": 50}
    assert dm.modalities["audio"] == ModalitySpec("image", (1, 112, 112))
    for split, takes in (("train", {7, 8}), ("val", {5, 6}), ("test", set(range(5)))):
        data = dm._ensure(split)
        for sample_id, label in zip(data.ids, data.labels, strict=True):
            digit, _, take = sample_id.split("+")[1].split("_")
            assert int(digit) == label and int(take) in takes
    noisy = AVMNISTDataModule(
        str(tmp_path / "mnist"),
        str(tmp_path / "fsdd"),
        noise_snr_db=0.0,
        split_fractions=[0.6, 0.2, 0.2],
        val_takes=[5, 6],
    )
    again = AVMNISTDataModule(
        str(tmp_path / "mnist"),
        str(tmp_path / "fsdd"),
        noise_snr_db=0.0,
        split_fractions=[0.6, 0.2, 0.2],
        val_takes=[5, 6],
    )
    np.testing.assert_array_equal(noisy._spectrograms["val"], again._spectrograms["val"])
    assert not np.allclose(noisy._spectrograms["val"], dm._spectrograms["val"])


@pytest.mark.slow
@pytest.mark.skipif(
    not HAS_REAL, reason="MMFUSION_DATA_DIR has no mnist10k/ and fsdd/recordings/ (../shared/data)"
)
@pytest.mark.parametrize("data", ["avmnist", "mmnist"])
def test_real_data_trains_end_to_end(tmp_path, data):
    metrics = train_cli(
        tmp_path / data,
        f"data={data}",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=25",
        "++trainer.limit_val_batches=4",
        env={"MMFUSION_DATA_DIR": str(SHARED)},
    )
    assert metrics["test/acc"] > 0.5  # 10 classes: chance is 0.1
