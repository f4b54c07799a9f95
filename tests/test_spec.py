"""The spec types (src/spec.py): what a DataModule promises the model, known before any split loads."""

from __future__ import annotations

import pytest
import torch

from src.data.base import collate_samples
from src.data.digits import DigitsDataModule
from src.data.synthetic_sequences import SyntheticSequencesDataModule
from src.spec import Batch, DatasetSpec, ModalitySpec


def test_modality_spec_checks_kind_and_rank_and_defaults_dtype() -> None:
    assert ModalitySpec("image", [1, 8, 8]).shape == (1, 8, 8)
    assert ModalitySpec("vector", (4,)).dtype == "float32"
    assert ModalitySpec("text", ()).dtype == "str"
    with pytest.raises(ValueError, match="kind 'graph' is not one of"):
        ModalitySpec("graph", (3,))
    with pytest.raises(ValueError, match="a sequence modality has a shape of 2 dimensions, got \\[5\\]"):
        ModalitySpec("sequence", (5,))


def test_dataset_spec_round_trips_through_plain_values() -> None:
    spec = DatasetSpec(
        "tiny",
        "multilabel",
        ("a", "b", "c"),
        {
            "text": ModalitySpec("text", ()),
            "audio": ModalitySpec("sequence", (7, 74)),
            "image": ModalitySpec("vector", (8,), source={"encoder": "EfficientNet", "sha": "ab"}),
        },
    )
    plain = spec.to_dict()
    assert plain["modalities"]["audio"] == {"kind": "sequence", "shape": [7, 74], "dtype": "float32"}
    assert plain["modalities"]["image"]["source"] == {"encoder": "EfficientNet", "sha": "ab"}
    again = DatasetSpec.from_dict(plain)
    assert again == spec and list(again.modalities) == ["text", "audio", "image"]
    assert again.num_outputs == 3 and again.of_kind("sequence", "text") == ["text", "audio"]
    assert DatasetSpec("r", "regression", ("score",), {"x": ModalitySpec("vector", (2,))}).num_outputs == 1
    with pytest.raises(ValueError, match="dataset bad: task=.ranking."):
        DatasetSpec("bad", "ranking", ("a",), {"x": ModalitySpec("vector", (2,))})


def test_data_modules_expose_their_spec_without_loading_a_split() -> None:
    digits = DigitsDataModule()
    spec = digits.spec
    assert spec.name == "digits" and spec.task == "multiclass" and spec.num_outputs == 10
    assert spec.modalities["view1"] == ModalitySpec("image", (1, 8, 8))
    sequences = SyntheticSequencesDataModule(n_samples=40, batch_size=4)
    assert sequences.spec.of_kind("sequence") == ["text", "audio", "video"]
    assert digits.loaded_splits == [] and sequences.loaded_splits == []


def test_collation_builds_a_batch_with_masks() -> None:
    samples = [
        {"seq": torch.ones(2, 3), "labels": torch.tensor(0), "index": 0, "ids": "a"},
        {"seq": torch.ones(4, 3), "labels": torch.tensor(1), "index": 1, "ids": "b"},
    ]
    batch = collate_samples(samples, sequence_keys=["seq"])
    assert isinstance(batch, Batch) and batch["seq"].shape == (2, 4, 3)
    assert batch.mask("seq").tolist() == [[True, True, False, False], [True, True, True, True]]
    assert batch.modalities(["seq"]).keys() == {"seq"} and batch["ids"] == ["a", "b"]
