"""Encoders inside the LightningModule: the raw-text batch contract, the training-only fit, the CLI."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from lightning import Trainer

from src.data.base import FusionDataModule, SampleDataset
from src.models.encoders.text import TfidfEncoder
from src.models.module import FusionClassifier
from src.spec import ModalitySpec
from src.train import fit_data_encoders
from tests.helpers import train_cli
from tests.test_encoders import write_glove

TEXTS = {
    "train": [
        "a detective hunts a killer",
        "lovers meet in paris",
        "the police chase a thief",
        "a wedding in rome",
        "murder at night",
        "a kiss at dawn",
    ],
    "val": ["a killer in the city", "love in venice"],
    "test": ["bank robbery gone wrong zzz", "romance blooms qqq"],
}


class TextSamples(SampleDataset):
    """Texts stay ``str`` per sample (the text contract of src/models/encoders/text.py)."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "text": self.modalities["text"][index],
            "image": torch.as_tensor(self.modalities["image"][index]),
            "labels": torch.as_tensor(self.labels[index]),
            "index": index,
            "ids": self.ids[index],
        }


class TinyTextData(FusionDataModule):
    task = "multiclass"

    def __init__(self) -> None:
        super().__init__(batch_size=4)
        self.class_names = ["crime", "romance"]
        self.modalities = {
            "text": ModalitySpec("text", ()),
            "image": ModalitySpec("image", (1, 8, 8)),
        }

    def load_split(self, split: str) -> SampleDataset:
        texts = TEXTS[split]
        rng = np.random.default_rng(len(split))
        return TextSamples(
            ids=[f"{split}{i}" for i in range(len(texts))],
            modalities={"text": texts, "image": rng.random((len(texts), 1, 8, 8), dtype=np.float32)},
            labels=np.arange(len(texts)) % 2,
        )


def make_model(text_encoder: dict[str, Any]) -> FusionClassifier:
    data = TinyTextData()
    return FusionClassifier(
        task=data.task,
        num_outputs=2,
        class_names=data.class_names,
        modalities=data.spec.to_dict()["modalities"],
        fusion={"_target_": "src.models.fusion.gmu.GMUFusion", "hidden_dim": 8, "tied": True},
        head={"name": "linear"},
        loss={"name": "cross_entropy"},
        optimizer={"_target_": "torch.optim.Adam", "lr": 0.01},
        encoders={
            "text": text_encoder,
            "image": {"_target_": "src.models.encoders.image.ConvEncoder", "channels": [4], "kernels": [3]},
        },
    )


def fit(model: FusionClassifier) -> tuple[TinyTextData, Trainer]:
    data = TinyTextData()
    trainer = Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    fit_data_encoders(model, data)  # what src.train does before fitting
    trainer.fit(model, datamodule=data)
    return data, trainer


def test_tfidf_is_fitted_on_the_training_split_only_before_fitting(tmp_path):
    model = make_model({"_target_": "src.models.encoders.text.TfidfEncoder", "max_features": 64})
    data, trainer = fit(model)
    assert data.loaded_splits == ["train", "val"]
    reference = TfidfEncoder([], "text", max_features=64)
    reference.fit(TEXTS["train"])
    assert bool(model.encoders["text"].fitted)
    torch.testing.assert_close(model.encoders["text"].idf, reference.idf)
    torch.testing.assert_close(model.encoders["text"].columns, reference.columns)
    trainer.save_checkpoint(tmp_path / "tfidf.ckpt")
    reloaded = FusionClassifier.load_from_checkpoint(tmp_path / "tfidf.ckpt")
    assert bool(reloaded.encoders["text"].fitted)
    torch.testing.assert_close(reloaded.encoders["text"].idf, reference.idf)


def test_token_sequences_are_pooled_with_the_encoders_own_mask(tmp_path):
    glove = write_glove(tmp_path / "glove.txt")
    spec = {
        "_target_": "src.models.encoders.text.RNNEncoder",
        "vectors": str(glove),
        "hidden_dim": 4,
        "return_sequence": True,
    }
    model = make_model(spec)
    fit(model)
    model.eval()
    batch = {"text": ["the cat", "the cat sat on the mat"], "image": torch.zeros(2, 1, 8, 8)}
    alone = {"text": ["the cat"], "image": torch.zeros(1, 1, 8, 8)}
    torch.testing.assert_close(model(batch).logits[:1], model(alone).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_cli_digits_with_lenet_views(tmp_path):
    metrics = train_cli(
        tmp_path / "run",
        "data=digits",
        "fusion=gmu",
        "debug=limit",
        "trainer.max_epochs=1",
        "+encoder/image@model.encoders.view1=lenet",
        "+encoder/image@model.encoders.view2=lenet",
    )
    assert 0.0 <= metrics["test/acc"] <= 1.0
    hparams = (tmp_path / "run").rglob("*.yaml")
    assert any("ConvEncoder" in p.read_text() for p in hparams)
