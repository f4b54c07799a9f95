"""Early fusion by concatenation (the "Concatenate" baseline of Arevalo et al. 2017 and CentralNet)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import Fusion, FusionOutput
from src.models.heads import build_head


class ConcatFusion(Fusion):
    """``fusion=concat``: h = [x_1; ...; x_K] in the fusion order, then the configured head.

    ``projection_dim`` first maps every modality linearly to that size, h = [W_1 x_1; ...; W_K x_K]
    (the 2025 MM-IMDb comparison's early fusion, Eq. 3.20: both features "projected to a common
    512-dimensional space through linear layers, then concatenated").
    """

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        projection_dim: int | None = None,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(input_dims, num_outputs, modality_order)
        self.projections = (
            nn.ModuleDict({m: nn.Linear(d, projection_dim) for m, d in self.input_dims.items()})
            if projection_dim
            else None
        )
        width = projection_dim * len(self.modalities) if projection_dim else sum(self.input_dims.values())
        self.head = build_head(head, width, num_outputs)

    def forward(self, features, masks=None) -> FusionOutput:
        parts = [
            self.projections[m](features[m]) if self.projections is not None else features[m]
            for m in self.modalities
        ]
        return FusionOutput(logits=self.head(torch.cat(parts, dim=-1)))
