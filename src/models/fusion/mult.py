"""MulT (Tsai et al. 2019) and MuLT-GMU (Rodriguez-Bribiesca et al. 2021).

``fusion=mult``: for every target modality t, one crossmodal transformer per source s != t
(s -> t: t's steps query s, MulT Eq. 3-5); the K-1 outputs are concatenated along features and
passed through a self-attention transformer (MulT Eq. 6); the target's summary step (last real
step, or [CLS]) is kept. The K summaries (and any extras) are concatenated and go through the
residual projection block; the model's head follows (``model.head.name=linear`` is MulT's output
layer exactly).

``fusion=mult_gmu`` (``combine: gmu``): the same per-target summaries, plus the extras
(poster, metadata vectors), are fused by a K-input GMU (Arevalo et al. 2017, Figure 2a) instead of
concatenated; the gates are exported per sample as ``interpret["gates"]`` (B, K, H) in
``self.modalities`` order.

``transformer_encoder: false`` drops the per-target self-attention transformer (MulT Eq. 6): the
summary token of every crossmodal output s -> t goes to the GMU (or the concatenation) as an input
of its own. With ``combine: gmu`` this is BPMuLT's Table 1 row "MuLT-GMU-no-transf-encoder"
(BPMuLT, Sec. 6.1: "the best performance of the Mult-GMU model is when all crossmodal (single
projection in gray) are given to the GMU"). Its inputs, in ``self.modalities`` order with each
target's s -> t in modality order, are named by ``interpretation()["top_gmu_inputs"]``; their gates
are ``interpret["gates_top"]`` (B, N, H), and ``gates`` (one input per modality) is not written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionLayer, LayerOutput
from src.models.fusion.gmu import GatedMultimodalUnit
from src.models.fusion.sequence import ResidualBlock, SequenceFusion
from src.models.fusion.transformer import CrossmodalTransformer

COMBINE = ("concat", "gmu")


def pair_key(source: str, target: str) -> str:
    """ModuleDict key of the crossmodal transformer source -> target."""
    return f"{source}_to_{target}"


class MulTFusion(SequenceFusion, FusionLayer):
    """``fusion=mult`` / ``fusion=mult_gmu``; see the module docstring."""

    def __init__(
        self,
        inputs: FusionInputs,
        d_model: int = 30,
        num_heads: int = 5,
        num_layers: int = 5,
        self_layers: int = 3,
        attn_dropout: float = 0.1,
        relu_dropout: float = 0.1,
        res_dropout: float = 0.1,
        embed_dropout: float = 0.25,
        out_dropout: float = 0.0,
        combine: str = "concat",
        gmu_hidden: int = 128,
        transformer_encoder: bool = True,
        extras: Sequence[str] = (),
        kernel_sizes: int | Mapping[str, int] = 1,
        summary_tokens: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(inputs, d_model, extras, kernel_sizes, summary_tokens)
        if combine not in COMBINE:
            raise ValueError(f"fusion.combine={combine!r}: expected one of {COMBINE}")
        self.combine = combine
        dropouts = {"attn_dropout": attn_dropout, "relu_dropout": relu_dropout, "res_dropout": res_dropout}
        self.crossmodal = nn.ModuleDict(
            {
                pair_key(s, t): CrossmodalTransformer(
                    d_model, num_layers, num_heads, embed_dropout=embed_dropout, **dropouts
                )
                for t in self.sequences
                for s in self.sequences
                if s != t
            }
        )
        self.transformer_encoder = transformer_encoder
        memory_dim = (len(self.sequences) - 1) * d_model
        if transformer_encoder:
            self.memory = nn.ModuleDict(
                {
                    t: CrossmodalTransformer(
                        memory_dim,
                        self_layers,
                        num_heads,
                        embed_dropout=embed_dropout,
                        cross=False,
                        **dropouts,
                    )
                    for t in self.sequences
                }
            )
            self.top_inputs = list(self.modalities)
        else:
            self.top_inputs = [
                name
                for m in self.modalities
                for name in ([m] if m in self.extras else [pair_key(s, m) for s in self.sequences if s != m])
            ]
        dims = [
            self.input_dims[name] if name in self.extras else memory_dim if transformer_encoder else d_model
            for name in self.top_inputs
        ]
        if combine == "gmu":
            self.gmu = GatedMultimodalUnit(dims, gmu_hidden, tied=False)
            self.fused_dim = gmu_hidden
        else:
            self.fused_dim = sum(dims)
        self.residual = ResidualBlock(self.fused_dim, out_dropout)
        self.out_dropout = nn.Dropout(out_dropout)
        self.out_dim = self.fused_dim

    def interpretation(self) -> dict[str, Any]:
        return {"top_gmu_inputs": list(self.top_inputs)} if self.combine == "gmu" else {}

    def target_summaries(
        self, sequences: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Per target t: [s -> t for s != t] concatenated, self-attention, summary step (MulT Eq. 3-6);
        without the transformer encoder, the summary step of each s -> t, keyed ``<s>_to_<t>``."""
        summaries = {}
        for t in self.sequences:
            crossed = {
                s: self.crossmodal[pair_key(s, t)](sequences[t], masks[t], sequences[s], masks[s])
                for s in self.sequences
                if s != t
            }
            if not self.transformer_encoder:
                summaries.update({pair_key(s, t): self.summary(t, z, masks[t]) for s, z in crossed.items()})
                continue
            memory = self.memory[t](torch.cat(list(crossed.values()), dim=-1), masks[t])
            summaries[t] = self.summary(t, memory, masks[t])
        return summaries

    def late_representation(
        self,
        sequences: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
        extras: Mapping[str, torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The fused (B, fused_dim) representation of projected inputs before the residual block, and its gates."""
        parts = {**self.target_summaries(sequences, masks), **extras}
        inputs = [parts[name] for name in self.top_inputs]
        if self.combine == "gmu":
            fused, gates = self.gmu(inputs)
            return fused, {"gates" if self.transformer_encoder else "gates_top": gates}
        return torch.cat(inputs, dim=-1), {}

    def forward(self, features, masks=None) -> LayerOutput:
        fused, interpret = self.late_representation(*self.project(features, masks))
        return self.out_dropout(self.residual(fused)), interpret
