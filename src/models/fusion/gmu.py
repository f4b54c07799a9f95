"""Gated Multimodal Unit (Arevalo et al. 2017, "Gated Multimodal Units for Information Fusion")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionLayer, LayerOutput


class GatedMultimodalUnit(nn.Module):
    """The GMU layer over K vector inputs.

    h_i = tanh(W_i x_i) for every modality i (Eq. 1-2 / Figure 2a). With ``tied=True`` and K = 2 the
    bimodal form of Eq. 3-5: z = sigmoid(W_z [x_1; x_2]), h = z * h_1 + (1 - z) * h_2. Otherwise the
    K-modal form of Figure 2a: one gate z_i = sigmoid(W_zi [x_1; ...; x_K]) per modality and
    h = sum_i z_i * h_i.

    Returns the fused (B, H) representation and the gates (B, K, H) (for K = 2 tied: [z, 1 - z]).
    """

    def __init__(self, input_dims: Sequence[int], hidden_dim: int, tied: bool = True, bias: bool = False):
        super().__init__()
        if tied and len(input_dims) != 2:
            raise ValueError(f"the tied (z, 1 - z) GMU takes exactly 2 inputs, got {len(input_dims)}")
        self.tied = tied
        self.hidden = nn.ModuleList(nn.Linear(d, hidden_dim, bias=bias) for d in input_dims)
        n_gates = 1 if tied else len(input_dims)
        self.gate = nn.Linear(sum(input_dims), n_gates * hidden_dim, bias=bias)
        self.hidden_dim = hidden_dim

    def modality_terms(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The per-modality terms the gates weigh, (B, K, H): h_i = tanh(W_i x_i)."""
        return torch.stack(
            [torch.tanh(layer(x)) for layer, x in zip(self.hidden, inputs, strict=True)], dim=1
        )

    def gates(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, K, H) gates from all inputs: [z, 1 - z] when tied, else one sigmoid gate per modality."""
        gate_logits = self.gate(torch.cat(list(inputs), dim=-1))
        if self.tied:
            z = torch.sigmoid(gate_logits)
            return torch.stack([z, 1 - z], dim=1)
        return torch.sigmoid(gate_logits.view(-1, len(inputs), self.hidden_dim))

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        gates = self.gates(inputs)
        return (gates * self.modality_terms(inputs)).sum(dim=1), gates


class GMUFusion(FusionLayer):
    """``fusion=gmu``: a GMU over the modality vectors (the model's head follows: MaxoutMLP in the paper)."""

    min_modalities = 2
    #: the unit over the modality vectors (``fusion=fgmu`` swaps in the FGMU); ``unit_options`` go to it
    unit_cls: type[GatedMultimodalUnit] = GatedMultimodalUnit

    def __init__(
        self,
        inputs: FusionInputs,
        hidden_dim: int = 512,
        tied: bool = True,
        bias: bool = False,
        dropout: float = 0.0,
        **unit_options: Any,
    ) -> None:
        super().__init__(inputs)
        self.gmu = self.unit_cls(
            [self.input_dims[m] for m in self.modalities],
            hidden_dim,
            tied=tied and len(self.modalities) == 2,
            bias=bias,
            **unit_options,
        )
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden_dim

    def forward(self, features, masks=None) -> LayerOutput:
        fused, gates = self.gmu([features[m] for m in self.modalities])
        return self.dropout(fused), {"gates": gates}
