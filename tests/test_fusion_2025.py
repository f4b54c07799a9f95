"""The 2025 MM-IMDb comparison's fusion heads on tiny tensors: projected early fusion, Eq. 3.26 cross-attention."""

from __future__ import annotations

import torch
from torch import nn

from src.models.fusion.attention import CrossAttentionFusion
from src.models.fusion.concat import ConcatFusion
from tests.helpers import fusion_model

LINEAR = {"name": "linear"}


def test_early_fusion_projects_each_modality_then_concatenates():
    """Eq. 3.20: h = [W_t h_text; W_v h_vision], here with hand-set 1-d projections and head."""
    model = fusion_model(
        ConcatFusion, {"text": 2, "image": 3}, 1, LINEAR, projection_dim=1, modality_order=["text", "image"]
    )
    with torch.no_grad():
        model.fusion.projections["text"].weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.fusion.projections["image"].weight.copy_(torch.tensor([[0.0, 0.0, 3.0]]))
        for layer in model.fusion.projections.values():
            layer.bias.zero_()
        model.head[0].weight.copy_(torch.tensor([[1.0, 10.0]]))
        model.head[0].bias.zero_()
    out = model.fuse({"text": torch.tensor([[1.0, 1.0]]), "image": torch.tensor([[5.0, 5.0, 2.0]])})
    assert out.logits.item() == (1 + 2) + 10 * 6
    plain = fusion_model(ConcatFusion, {"text": 2, "image": 3}, 1, LINEAR)
    assert plain.fusion.projections is None and plain.head[0].in_features == 5


def _value_path(attention: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """W^O (W^V x + b^V) + b^O: what one query attending to one key gets (the softmax weight is 1)."""
    dim = attention.embed_dim
    w_v, b_v = attention.in_proj_weight[2 * dim :], attention.in_proj_bias[2 * dim :]
    return attention.out_proj(x @ w_v.T + b_v)


def test_cross_attention_over_one_key_is_the_other_modalitys_value():
    """With one vector per modality each softmax runs over a single key (weight 1): Attended_text is the
    projected value of the image alone, whatever the text query (Eq. 3.26, ``residual: false``)."""
    torch.manual_seed(0)
    model = fusion_model(
        CrossAttentionFusion,
        {"text": 3, "image": 2},
        2,
        LINEAR,
        dim=4,
        num_heads=2,
        dropout=0.0,
        residual=False,
        modality_order=["text", "image"],
    ).eval()
    x = {"text": torch.randn(5, 3), "image": torch.randn(5, 2)}
    other_text = {"text": torch.randn(5, 3), "image": x["image"]}
    attended_text = _value_path(model.fusion.attn["text"], model.fusion.proj["image"](x["image"]))
    attended_image = _value_path(model.fusion.attn["image"], model.fusion.proj["text"](x["text"]))
    expected = model.head(torch.cat([attended_text, attended_image], dim=-1))
    torch.testing.assert_close(model.fuse(x).logits, expected)
    # the text query changes nothing in Attended_text: only the image half of the joint vector moves
    head_weight = model.head[0].weight
    delta = model.fuse(other_text).logits - model.fuse(x).logits
    image_half = (
        _value_path(model.fusion.attn["image"], model.fusion.proj["text"](other_text["text"]))
        - attended_image
    )
    torch.testing.assert_close(delta, image_half @ head_weight[:, 4:].T)
    residual = fusion_model(CrossAttentionFusion, {"text": 3, "image": 2}, 2, LINEAR, dim=4, num_heads=2)
    assert residual.fusion.norm is not None and model.fusion.norm is None
