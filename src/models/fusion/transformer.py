"""Crossmodal and self-attention transformer layers (Tsai et al. 2019, MulT, Sec. 3.2 and Figure 3).

A crossmodal block lets a target sequence (queries) attend to a source sequence (keys/values):

    Z = CM(LN(X_target), LN(X_source)) + X_target                 (MulT Eq. 3-4, pre-LayerNorm)
    Z = FF(LN(Z)) + Z                                             (position-wise feed-forward)

With no source the block is ordinary self-attention. Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` with a key padding mask: padded steps (mask
False) are never attended to, so changing them never changes a real step's output. Dropouts are
separate, as in MulT: ``attn_dropout`` (attention weights), ``relu_dropout`` (inside the
feed-forward), ``res_dropout`` (each sub-layer's output before the residual sum) and
``embed_dropout`` (after the scaled input plus sinusoidal positions).

Printed equations vs. MulT's released code (BPMuLT issue point 10). MulT's paper and BPMuLT's
Eq. 7-8 print the residual as the *normalised* input, Z^ = CM(LN(Z), LN(X_s)) + LN(Z) and
Z = f(LN(Z^)) + LN(Z^), and BPMuLT's Eq. 7 takes the source as LN(Z_{M1->M2}^[D]) without
re-embedding it. We follow MulT's released code (``modules/transformer.py`` of
github.com/yaohungt/Multimodal-Transformer), which MuLT-GMU and BPMuLT build on (BPMuLT Sec. 4.1:
"precisely the same in the MuLT model"; Sec. 4.3: "we use the exact attention mechanism described
before"): the residual is the un-normalised input (x + sublayer(LN(x))), and every source is
embedded like the target (sqrt(d) scale, sinusoidal positions, embedding dropout) by the
transformer that reads it, so a biprojection re-embeds the single projection's output. Where we
differ from that code: the query and the source have a LayerNorm each (the code shares one; the
equations write LN for both), positions count from 0 (the code: from 1), and padded steps are
masked out of attention (the code has no padding mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from src.models.layers import sinusoidal_positions


class MultiHeadAttention(nn.Module):
    """Multi-head attention over ``scaled_dot_product_attention`` with a key padding mask.

    A sample whose keys are all padding (an empty sequence) attends to nothing: its output is zero.
    """

    def __init__(self, dim: int, num_heads: int, attn_dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(
        self, query: torch.Tensor, source: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        q, k, v = (
            self._heads(self.query(query)),
            self._heads(self.key(source)),
            self._heads(self.value(source)),
        )
        attn_mask = None
        empty = None
        if key_mask is not None:
            empty = ~key_mask.any(dim=1)
            attn_mask = (key_mask | empty[:, None])[:, None, None, :]
        dropout = self.attn_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        out = out.transpose(1, 2).reshape(query.shape)
        if empty is not None:
            out = out.masked_fill(empty[:, None, None], 0.0)
        return self.out(out)


class CrossmodalBlock(nn.Module):
    """One pre-LayerNorm block: [self-attention,] (cross-)attention and feed-forward, each residual.

    ``cross=False`` makes it a self-attention block (no source, no source LayerNorm).
    ``decoder=True`` first applies, on the target, self-attention (padded steps masked) followed by a
    LayerNorm, LN(x + SA(x)) as in Vaswani et al.'s decoder: BPMuLT's "translating" biprojection
    (Sec. 6.1, Fig. 11: "It is just adding a self-attention module followed by a normalization
    layer"; the residual is Vaswani's, which the ablation says it follows).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attn_dropout: float = 0.1,
        relu_dropout: float = 0.1,
        res_dropout: float = 0.1,
        decoder: bool = False,
        cross: bool = True,
    ) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(dim, num_heads, attn_dropout) if decoder else None
        self.self_norm = nn.LayerNorm(dim) if decoder else None
        self.attention = MultiHeadAttention(dim, num_heads, attn_dropout)
        self.query_norm = nn.LayerNorm(dim)
        self.source_norm = nn.LayerNorm(dim) if cross else None
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(relu_dropout), nn.Linear(4 * dim, dim)
        )
        self.res_dropout = nn.Dropout(res_dropout)

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor | None,
        source: torch.Tensor | None = None,
        source_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.self_attention is not None:
            x = self.self_norm(x + self.res_dropout(self.self_attention(x, x, x_mask)))
        query = self.query_norm(x)
        if (source is None) != (self.source_norm is None):
            raise ValueError("a crossmodal block needs a source sequence; a self-attention block takes none")
        if source is None:
            keys, key_mask = query, x_mask
        else:
            keys, key_mask = self.source_norm(source), source_mask
        x = x + self.res_dropout(self.attention(query, keys, key_mask))
        return x + self.res_dropout(self.ff(self.ff_norm(x)))


class CrossmodalTransformer(nn.Module):
    """``num_layers`` blocks over a target sequence, optionally attending to a source (MulT Sec. 3.2).

    Inputs are scaled by sqrt(dim) and get sinusoidal positions plus embedding dropout (the source
    too, as in MulT); a final LayerNorm closes the stack. With ``cross=False`` it is the
    self-attention transformer MulT applies to each target's concatenated crossmodal outputs.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        num_heads: int,
        attn_dropout: float = 0.1,
        relu_dropout: float = 0.1,
        res_dropout: float = 0.1,
        embed_dropout: float = 0.25,
        decoder: bool = False,
        cross: bool = True,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(
            CrossmodalBlock(dim, num_heads, attn_dropout, relu_dropout, res_dropout, decoder, cross)
            for _ in range(num_layers)
        )
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.final_norm = nn.LayerNorm(dim)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        positions = sinusoidal_positions(x.shape[1], self.dim, x.device, x.dtype)
        return self.embed_dropout(math.sqrt(self.dim) * x + positions)

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor | None,
        source: torch.Tensor | None = None,
        source_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self._embed(x)
        if source is not None:
            source = self._embed(source)
        for block in self.blocks:
            x = block(x, x_mask, source, source_mask)
        return self.final_norm(x)
