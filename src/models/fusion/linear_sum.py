"""``fusion=linear_sum``: the "Linear sum" baseline of Arevalo et al. 2017 (Sec. 4.2).

Each modality is mapped linearly to a common size and the maps are summed, h = sum_k W_k x_k
(optionally through an activation, ``fusion.activation``); the model's head follows. It is the GMU
without gates: the comparison isolates what the gates add.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionLayer, LayerOutput
from src.models.heads import ACTIVATIONS


class LinearSumFusion(FusionLayer):
    """h = act(sum_k W_k x_k) with act the identity unless ``activation`` names one (relu, tanh, gelu)."""

    def __init__(
        self, inputs: FusionInputs, hidden_dim: int = 512, activation: str | None = None, bias: bool = True
    ) -> None:
        super().__init__(inputs)
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(
                f"fusion.activation={activation!r}; expected null or one of {sorted(ACTIVATIONS)}"
            )
        self.maps = nn.ModuleDict(
            {m: nn.Linear(self.input_dims[m], hidden_dim, bias=bias) for m in self.modalities}
        )
        self.activation = ACTIVATIONS[activation]() if activation else nn.Identity()
        self.out_dim = hidden_dim

    def forward(self, features, masks=None) -> LayerOutput:
        summed = torch.stack([self.maps[m](features[m]) for m in self.modalities]).sum(0)
        return self.activation(summed), {}
