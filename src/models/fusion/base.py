"""The interface every fusion method implements.

A fusion module never knows which dataset it runs on: it receives ``features`` keyed by modality
name (vectors (B, D) or sequences (B, T, D) with boolean ``masks`` (B, T), True = real step) and
walks the modalities in one fixed order (sorted names unless ``modality_order`` is configured), so
the same method works with 2, 3 or N modalities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class FusionOutput:
    """What a fusion returns.

    logits: (B, num_outputs) class scores (or regression outputs).
    aux_logits: per-modality predictions for multi-task losses (CentralNet, late fusion, ...).
    interpret: per-sample tensors with a leading batch dimension (e.g. ``gates``: (B, K, H) gate
        activations, modality k in the fusion's order); written out for the test split.
    """

    logits: torch.Tensor
    aux_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    interpret: dict[str, torch.Tensor] = field(default_factory=dict)


class Fusion(nn.Module):
    """Base class: validates and fixes the modality order; subclasses implement ``forward``.

    Subclasses set ``min_modalities`` / ``max_modalities`` when a method only takes some counts.
    """

    min_modalities: int = 1
    max_modalities: int | None = None

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if modality_order is None:
            order = sorted(input_dims)
        else:
            order = list(modality_order)
            if sorted(order) != sorted(input_dims):
                raise ValueError(
                    f"fusion.modality_order {order} does not list exactly the modalities {sorted(input_dims)}"
                )
        name = type(self).__name__
        if len(order) < self.min_modalities:
            raise ValueError(f"{name} needs at least {self.min_modalities} modalities, got {order}")
        if self.max_modalities is not None and len(order) > self.max_modalities:
            raise ValueError(f"{name} takes at most {self.max_modalities} modalities, got {order}")
        self.modalities: list[str] = order
        self.input_dims = {m: int(input_dims[m]) for m in order}
        self.num_outputs = num_outputs

    def interpretation(self) -> dict[str, Any]:
        """Learned, sample-independent quantities worth reporting (e.g. CentralNet alphas)."""
        return {}

    def forward(
        self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        raise NotImplementedError
