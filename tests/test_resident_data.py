"""Issue 19: small splits resident on the device give the DataLoader's samples, in its order, under
the same seed, draw the same random numbers, and keep exact resume (src/data/resident.py)."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from src.data.base import SampleDataset
from src.data.digits import DigitsDataModule
from src.data.resident import ResidentLoader, split_nbytes
from src.data.synthetic_sequences import SyntheticSequencesDataModule
from src.spec import ModalitySpec
from src.train import train
from tests.helpers import compose_train
from tests.test_resume import epoch_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _epochs(datamodule, split: str, epochs: int, seed: int) -> tuple[list[dict], torch.Tensor]:
    """Every batch of ``epochs`` passes over a split's loader after ``seed_everything(seed)``, and
    torch's global generator state at the end."""
    L.seed_everything(seed)
    batches = []
    for _ in range(epochs):
        loader = datamodule.train_dataloader() if split == "train" else datamodule.val_dataloader()
        batches.extend(loader)
    return batches, torch.get_rng_state()


def _assert_same_batches(left: list[dict], right: list[dict]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert sorted(a) == sorted(b)
        for key in a:
            if torch.is_tensor(a[key]):
                assert a[key].dtype == b[key].dtype, key
                assert torch.equal(a[key], b[key]), key
            else:
                assert a[key] == b[key], key


@pytest.mark.parametrize("split", ["train", "val"])
def test_resident_batches_equal_the_dataloaders_batch_by_batch(split):
    """Three epochs of 8x8 digits (last batch partial): the same tensors, ids and order, batch by
    batch, and the same global random-number state afterwards (later draws are unchanged too)."""
    plain = DigitsDataModule(batch_size=100)
    resident = DigitsDataModule(batch_size=100, resident_mb=16)
    plain.setup("fit")
    resident.setup("fit")
    assert isinstance(plain.train_dataloader(), DataLoader)
    assert isinstance(resident.train_dataloader(), ResidentLoader)
    expected, expected_state = _epochs(plain, split, 3, seed=7)
    got, state = _epochs(resident, split, 3, seed=7)
    _assert_same_batches(got, expected)
    assert torch.equal(state, expected_state)
    assert len(resident.train_dataloader()) == len(plain.train_dataloader())
    if split == "train":  # shuffled: the epochs differ from each other, and the seed matters
        assert got[0]["ids"] != got[len(got) // 3]["ids"]
        other, _ = _epochs(resident, split, 1, seed=8)
        assert other[0]["ids"] != got[0]["ids"]


def test_the_split_is_copied_once_and_batches_are_views_of_it():
    datamodule = DigitsDataModule(batch_size=64, resident_mb=16)
    datamodule.setup("fit")
    first = datamodule.train_dataloader().split
    assert datamodule.train_dataloader().split is first  # copied once, reused by every epoch
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["view1"].device == first.modalities["view1"].device


def test_over_budget_or_variable_length_splits_use_the_dataloader():
    tiny = DigitsDataModule(batch_size=64, resident_mb=0.01)  # 10 KB: the digits' train split is ~0.4 MB
    tiny.setup("fit")
    assert isinstance(tiny.train_dataloader(), DataLoader)
    workers = DigitsDataModule(batch_size=64, resident_mb=16, num_workers=1)
    workers.setup("fit")
    assert isinstance(workers.train_dataloader(), DataLoader)
    sequences = SyntheticSequencesDataModule(n_samples=60, resident_mb=16)  # lists of (T_i, D) arrays
    sequences.setup("fit")
    assert isinstance(sequences.train_dataloader(), DataLoader)


def test_split_nbytes_counts_fixed_shape_arrays_only():
    assert split_nbytes([np.zeros((10, 3), np.float32), np.zeros(10, np.int64)]) == 120 + 80
    assert split_nbytes([torch.zeros(4, 2)]) == 32
    assert split_nbytes([[np.zeros(3), np.zeros(4)]]) is None
    assert split_nbytes([np.array(["a", None], dtype=object)]) is None


def test_fixed_length_sequences_get_the_collated_masks():
    """A sequence modality of one length: the DataLoader path adds an all-true ``<key>_mask``, so
    does the resident path (on the device)."""
    ids = [f"s{i}" for i in range(10)]
    dataset = SampleDataset(ids, {"audio": np.random.rand(10, 5, 3).astype(np.float32)}, np.arange(10) % 2)
    datamodule = DigitsDataModule(batch_size=4, resident_mb=1)
    datamodule.modalities = {"audio": ModalitySpec("sequence", (5, 3))}
    datamodule.splits = {"val": dataset}
    resident = list(datamodule.val_dataloader())
    datamodule.resident_mb = 0
    _assert_same_batches(resident, list(datamodule.val_dataloader()))
    assert resident[0]["audio_mask"].all()


BASE = ["data=digits", "seed=3", "logger=csv", "callbacks.progress_bar=null"]


def test_resident_training_equals_the_dataloader_run_and_resumes_exactly(tmp_path):
    """Through src.train: the resident run's metrics and per-epoch losses equal the DataLoader
    run's to the last digit, and a resident run stopped after epoch 1 and resumed from last.ckpt
    repeats it (exact resume, src/utils/rng.py)."""
    plain = train(compose_train([*BASE, "trainer.max_epochs=3"], tmp_path / "plain"))
    resident_args = [*BASE, "data.resident_mb=16"]
    resident = train(compose_train([*resident_args, "trainer.max_epochs=3"], tmp_path / "resident"))
    assert resident == plain
    assert epoch_rows(tmp_path / "resident") == epoch_rows(tmp_path / "plain")
    train(compose_train([*resident_args, "trainer.max_epochs=1"], tmp_path / "cut"))
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    resumed = train(
        compose_train([*resident_args, "trainer.max_epochs=3", f"ckpt_path={last}"], tmp_path / "cut")
    )
    assert resumed == plain
    assert epoch_rows(tmp_path / "cut") == epoch_rows(tmp_path / "plain")
