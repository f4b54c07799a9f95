"""Early fusion by concatenation (the "Concatenate" baseline of Arevalo et al. 2017 and CentralNet)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from src.models.fusion.base import Fusion, FusionOutput
from src.models.heads import build_head


class ConcatFusion(Fusion):
    """``fusion=concat``: h = [x_1; ...; x_K] in the fusion order, then the configured head."""

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(input_dims, num_outputs, modality_order)
        self.head = build_head(head, sum(self.input_dims.values()), num_outputs)

    def forward(self, features, masks=None) -> FusionOutput:
        return FusionOutput(logits=self.head(torch.cat([features[m] for m in self.modalities], dim=-1)))
