"""``fusion=unimodal``: the single-modality baselines of every table (e.g. ``fusion.modality=text``).

The configured head on one modality's features; the other modalities are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from src.models.fusion.base import Fusion, FusionOutput
from src.models.heads import build_head


class UnimodalFusion(Fusion):
    """Head on ``features[modality]`` only; ``modality`` may be left null when there is one modality."""

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        modality: str | None = None,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(input_dims, num_outputs, modality_order)
        if modality is None:
            if len(self.modalities) != 1:
                raise ValueError(f"fusion=unimodal needs fusion.modality=<one of {self.modalities}>")
            modality = self.modalities[0]
        if modality not in self.input_dims:
            raise ValueError(
                f"fusion.modality={modality!r} is not a modality of this dataset; expected one of {self.modalities}"
            )
        self.modality = modality
        self.head = build_head(head, self.input_dims[modality], num_outputs)

    def forward(self, features, masks=None) -> FusionOutput:
        return FusionOutput(logits=self.head(features[self.modality]))
