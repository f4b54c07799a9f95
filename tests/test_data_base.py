"""Sample datasets and collation: the batched fast path equals the sample-by-sample one."""

from __future__ import annotations

import numpy as np
import torch

from src.data.base import Batch, SampleDataset, collate_samples


def make_dataset() -> SampleDataset:
    rng = np.random.default_rng(0)
    return SampleDataset(
        ids=[f"s{i}" for i in range(6)],
        modalities={
            "image": rng.random((6, 1, 4, 4), dtype=np.float32),
            "audio": rng.random((6, 5, 3), dtype=np.float32),
        },
        labels=np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]],
        extras={"latent": np.arange(6, dtype=np.float32)},
    )


def test_batched_fetch_equals_sample_by_sample_collation():
    dataset = make_dataset()
    indices = [4, 0, 3]
    fast = dataset.__getitems__(indices)
    assert isinstance(fast, Batch)
    batched = collate_samples(fast, sequence_keys=["audio"])
    one_by_one = collate_samples([dataset[i] for i in indices], sequence_keys=["audio"])
    assert batched.keys() == one_by_one.keys()
    for key, value in one_by_one.items():
        if torch.is_tensor(value):
            assert torch.equal(batched[key], value) and batched[key].dtype == value.dtype, key
        else:
            assert batched[key] == value == ["s4", "s0", "s3"]


def test_ragged_or_text_fields_fall_back_to_single_samples():
    texts = SampleDataset(
        ids=["a", "b"], modalities={"text": ["crime plot", "love story"]}, labels=np.zeros((2, 1))
    )
    samples = texts.__getitems__([1, 0])
    assert isinstance(samples, list) and [s["text"] for s in samples] == ["love story", "crime plot"]
    ragged = SampleDataset(
        ids=["a", "b"], modalities={"audio": [np.ones((2, 3)), np.ones((4, 3))]}, labels=np.zeros((2, 1))
    )
    batch = collate_samples(ragged.__getitems__([0, 1]), sequence_keys=["audio"])
    assert batch["audio"].shape == (2, 4, 3) and batch["audio_mask"].sum(1).tolist() == [2, 4]


def test_pin_memory_auto_pins_only_for_a_cuda_trainer():
    """``data.pin_memory: auto`` (the default): page-locked batches when the trainer's device is a
    GPU (asynchronous host-to-device copies), ordinary memory on CPU; true/false are kept as given."""
    from types import SimpleNamespace

    import pytest

    from src.data.digits import DigitsDataModule

    def on(device: str) -> SimpleNamespace:
        return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)))

    data = DigitsDataModule()
    assert data._pins_memory() is False  # no trainer yet
    data.trainer = on("cpu")
    assert data._pins_memory() is False
    data.trainer = on("cuda")
    assert data._pins_memory() is True
    assert DigitsDataModule(pin_memory=False)._pins_memory() is False
    with pytest.raises(ValueError, match="data.pin_memory='yes'"):
        DigitsDataModule(pin_memory="yes")
