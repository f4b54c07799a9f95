"""``fusion=linear_sum``: the "Linear sum" baseline of Arevalo et al. 2017 (Sec. 4.2).

Each modality is mapped linearly to a common size and the maps are summed, h = sum_k W_k x_k
(optionally through an activation, ``fusion.activation``), then the configured head. It is the GMU
without gates: the comparison isolates what the gates add.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import Fusion, FusionOutput
from src.models.heads import ACTIVATIONS, build_head


class LinearSumFusion(Fusion):
    """h = act(sum_k W_k x_k) with act the identity unless ``activation`` names one (relu, tanh, gelu)."""

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        hidden_dim: int = 512,
        activation: str | None = None,
        bias: bool = True,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(input_dims, num_outputs, modality_order)
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(
                f"fusion.activation={activation!r}; expected null or one of {sorted(ACTIVATIONS)}"
            )
        self.maps = nn.ModuleDict(
            {m: nn.Linear(self.input_dims[m], hidden_dim, bias=bias) for m in self.modalities}
        )
        self.activation = ACTIVATIONS[activation]() if activation else nn.Identity()
        self.head = build_head(head, hidden_dim, num_outputs)

    def forward(self, features, masks=None) -> FusionOutput:
        summed = torch.stack([self.maps[m](features[m]) for m in self.modalities]).sum(0)
        return FusionOutput(logits=self.head(self.activation(summed)))
