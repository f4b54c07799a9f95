"""Concatenation fusions.

- ``fusion=concat``: early fusion, h = [x_1; ...; x_K], then the configured head (the "Concatenate"
  baseline of Arevalo et al. 2017).
- ``fusion=concat_scores``: CentralNet's "Concat" baseline (Vielzeuf et al. 2018, Sec. 3: "'Concat'
  consists in concatenating the unimodal scores and inferring the final score with a single-layer
  linear perceptron"). Each modality's head predicts scores s_k (softmax probabilities for
  multiclass, sigmoids for multilabel, the outputs for regression); the logits are
  W [s_1; ...; s_K] + b. With ``aux_losses: true`` each unimodal prediction also gets its own loss
  ("Concat+Multi-Task ... uses the same Multi-Task loss as with the CentralNet").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionLayer, FusionOutput, LayerOutput
from src.models.fusion.late import UnimodalHeadsFusion


class ConcatFusion(FusionLayer):
    """``fusion=concat``: h = [x_1; ...; x_K] in the fusion order (the model's head follows).

    ``projection_dim`` first maps every modality linearly to that size, h = [W_1 x_1; ...; W_K x_K]
    (the 2025 MM-IMDb comparison's early fusion, Eq. 3.20: both features "projected to a common
    512-dimensional space through linear layers, then concatenated").
    """

    def __init__(self, inputs: FusionInputs, projection_dim: int | None = None) -> None:
        super().__init__(inputs)
        self.projections = (
            nn.ModuleDict({m: nn.Linear(d, projection_dim) for m, d in self.input_dims.items()})
            if projection_dim
            else None
        )
        self.out_dim = (
            projection_dim * len(self.modalities) if projection_dim else sum(self.input_dims.values())
        )

    def forward(self, features, masks=None) -> LayerOutput:
        parts = [
            self.projections[m](features[m]) if self.projections is not None else features[m]
            for m in self.modalities
        ]
        return torch.cat(parts, dim=-1), {}


class ScoreConcatFusion(UnimodalHeadsFusion):
    """``fusion=concat_scores``: a single-layer linear perceptron on the concatenated unimodal scores."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.perceptron = nn.Linear(len(self.modalities) * self.num_outputs, self.num_outputs)

    def forward(self, features, masks=None) -> FusionOutput:
        logits = {m: self.heads[m](features[m]) for m in self.modalities}
        scores = torch.cat([self.link.to_scores(logits[m]) for m in self.modalities], dim=-1)
        return FusionOutput(logits=self.perceptron(scores), aux_logits=logits if self.aux_losses else {})
