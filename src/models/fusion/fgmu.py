"""``fusion=fgmu``: the Fusion-GMU of BPMuLT (Moreno-Galvan et al.), a GMU with a residual product.

Two inputs (Eq. 9-12): h_v = tanh(W_v x_v), h_t = tanh(W_t x_t), z = sigmoid(W_z [x_v; x_t]),
h = z * h_v * x_v + (1 - z) * h_t * x_t. K inputs (Eq. 20-22): z_i = sigmoid(W_zi [x_1; ...; x_K]),
h = sum_i z_i * h_i * x_i.

The product h_i * x_i needs x_i at the hidden size. Our choice: x_i enters the product through a
learned linear projection P_i x_i (no bias) to ``hidden_dim``; with ``project: identity`` the input
is used as is, which requires every input size to equal ``hidden_dim`` (the BPMuLT setting, where
all streams share the model dimension).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs
from src.models.fusion.gmu import GatedMultimodalUnit, GMUFusion

PROJECTIONS = ("linear", "identity")


class FusionGatedUnit(GatedMultimodalUnit):
    """The GMU of :mod:`src.models.fusion.gmu` with h = sum_i z_i * h_i * x_i; returns (h, gates)."""

    def __init__(
        self,
        input_dims: Sequence[int],
        hidden_dim: int,
        tied: bool = True,
        bias: bool = False,
        project: str = "linear",
    ):
        super().__init__(input_dims, hidden_dim, tied, bias)
        if project not in PROJECTIONS:
            raise ValueError(f"fusion.project={project!r}; expected one of {PROJECTIONS}")
        if project == "identity" and any(d != hidden_dim for d in input_dims):
            raise ValueError(
                f"fusion.project=identity needs every input size {list(input_dims)} to equal hidden_dim={hidden_dim}"
            )
        self.project = nn.ModuleList(
            nn.Linear(d, hidden_dim, bias=False) if project == "linear" else nn.Identity() for d in input_dims
        )

    def modality_terms(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """h_i * x_i (x_i projected to the hidden size unless ``project: identity``), (B, K, H)."""
        projected = torch.stack([proj(x) for proj, x in zip(self.project, inputs, strict=True)], dim=1)
        return super().modality_terms(inputs) * projected


class FGMUFusion(GMUFusion):
    """``fusion=fgmu``: :class:`~src.models.fusion.gmu.GMUFusion` with the FGMU unit (the model's head
    follows); gates in ``interpret["gates"]``. ``gmu_options``: GMUFusion's (hidden_dim, tied, bias, dropout)."""

    unit_cls = FusionGatedUnit

    def __init__(self, inputs: FusionInputs, project: str = "linear", **gmu_options: Any) -> None:
        super().__init__(inputs, project=project, **gmu_options)
