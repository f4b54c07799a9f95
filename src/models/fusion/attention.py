"""``fusion=attention``: bidirectional multi-head cross-attention (the 2025 MM-IMDb comparison).

Hessnawi et al. 2025, Eq. 3.25-3.26: Q_t = h_text W^Q, K_v = h_vision W^K, V_v = h_vision W^V,
Attended_t = softmax(Q_t K_v^T / sqrt(d_k)) V_v, "Similarly, vision attends to text"; Sec. 4.3.3: an
"8-head cross-attention module", the attended representations "concatenated to form a
1024-dimensional joint representation" (2 x ``dim`` = 512), then the MLP head.

Every modality is projected to ``dim``; each modality's tokens then attend (``num_heads`` heads) to
the tokens of all the other modalities (for two: text -> image and image -> text). With
``residual: true`` (ours, the transformer habit) the attended output is added to the query tokens and
layer-normalised; ``residual: false`` is Eq. 3.26 as printed (the attended representation alone).
The attended modalities are mean-pooled over their valid steps and concatenated (the model's head follows).

One vector per modality is one token, so each query attends to a single key: the softmax over one
key is always 1, and Attended_t is just the projected value of the other modality,
W^O W^V h_vision (the attention weights carry no information). The paper's design, one DistilBERT
[CLS] vector and one ResNet-18 vector, has the same property. Sequence features (B, T, D) keep their
steps and masks, and there the softmax does weigh the other modality's steps.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionLayer, LayerOutput
from src.models.layers import masked_mean


def _as_tokens(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, D) -> (B, 1, D); the mask (B, T), True = real step (all True for vectors)."""
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return x, mask


class CrossAttentionFusion(FusionLayer):
    """Cross-attention of each modality over the others (optionally residual + layer norm), pooled, concatenated."""

    min_modalities = 2
    accepts_sequences = True

    def __init__(
        self,
        inputs: FusionInputs,
        dim: int = 256,
        num_heads: int = 8,
        dropout: float = 0.1,
        residual: bool = True,
    ) -> None:
        super().__init__(inputs)
        self.residual = residual
        if dim % num_heads:
            raise ValueError(f"fusion.dim={dim} must be divisible by fusion.num_heads={num_heads}")
        self.proj = nn.ModuleDict({m: nn.Linear(self.input_dims[m], dim) for m in self.modalities})
        self.attn = nn.ModuleDict(
            {
                m: nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
                for m in self.modalities
            }
        )
        self.norm = nn.ModuleDict({m: nn.LayerNorm(dim) for m in self.modalities}) if residual else None
        self.out_dim = dim * len(self.modalities)

    def forward(self, features, masks=None) -> LayerOutput:
        masks = masks or {}
        tokens, valid = {}, {}
        for m in self.modalities:
            x, mask = _as_tokens(features[m], masks.get(m))
            tokens[m], valid[m] = self.proj[m](x), mask
        pooled = []
        for m in self.modalities:
            others = [o for o in self.modalities if o != m]
            keys = torch.cat([tokens[o] for o in others], dim=1)
            key_valid = torch.cat([valid[o] for o in others], dim=1)
            attended, _ = self.attn[m](tokens[m], keys, keys, key_padding_mask=~key_valid, need_weights=False)
            out = self.norm[m](tokens[m] + attended) if self.norm is not None else attended
            pooled.append(masked_mean(out, valid[m]))
        return torch.cat(pooled, dim=-1), {}
