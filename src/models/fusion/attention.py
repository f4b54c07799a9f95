"""``fusion=attention``: bidirectional multi-head cross-attention (the 2025 MM-IMDb comparison).

Every modality is projected to ``dim``; each modality's tokens then attend (``num_heads`` heads, 8
by default) to the tokens of all the other modalities (for two modalities: text -> image and
image -> text), with a residual connection and layer norm. The attended modalities are mean-pooled
over their valid steps, concatenated and passed to the configured head (an MLP).

Vector features are single tokens (the attention then mixes in the other modality's projected
value); sequence features (B, T, D) keep their steps and masks, so the method also takes
sequences directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import Fusion, FusionOutput
from src.models.heads import build_head


def _as_tokens(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, D) -> (B, 1, D); the mask (B, T), True = real step (all True for vectors)."""
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return x, mask


class CrossAttentionFusion(Fusion):
    """Cross-attention of each modality over the others, pooled, concatenated, then the head."""

    min_modalities = 2
    accepts_sequences = True

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        dim: int = 256,
        num_heads: int = 8,
        dropout: float = 0.1,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(input_dims, num_outputs, modality_order)
        if dim % num_heads:
            raise ValueError(f"fusion.dim={dim} must be divisible by fusion.num_heads={num_heads}")
        self.proj = nn.ModuleDict({m: nn.Linear(self.input_dims[m], dim) for m in self.modalities})
        self.attn = nn.ModuleDict(
            {
                m: nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
                for m in self.modalities
            }
        )
        self.norm = nn.ModuleDict({m: nn.LayerNorm(dim) for m in self.modalities})
        self.head = build_head(head, dim * len(self.modalities), num_outputs)

    def forward(self, features, masks=None) -> FusionOutput:
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
            out = self.norm[m](tokens[m] + attended)
            weights = valid[m].unsqueeze(-1).to(out.dtype)
            pooled.append((out * weights).sum(1) / weights.sum(1).clamp_min(1.0))
        return FusionOutput(logits=self.head(torch.cat(pooled, dim=-1)))
