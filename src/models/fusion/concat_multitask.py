"""``fusion=concat_multitask``: early fusion by concatenation plus the unimodal losses.

A feature-level variant of CentralNet's multi-task loss (Vielzeuf et al. 2018, Eq. 2): the
concatenation classifier of ``fusion=concat`` trained jointly with one classifier per modality, total
loss loss_C + beta sum_k loss_k (beta = ``model.aux_loss_weight``); the prediction is the
concatenation classifier's. The paper's "Concat + Multi-Task" rows concatenate the unimodal *scores*
instead: ``fusion=concat_scores fusion.aux_losses=true`` (:mod:`src.models.fusion.concat`).
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionOutput, Predictor
from src.models.heads import HeadFactory
from src.tasks import TaskLink


class ConcatMultitaskFusion(Predictor):
    """Head on [x_1; ...; x_K]; a head per modality supplies ``aux_logits``."""

    def __init__(self, inputs: FusionInputs, make_head: HeadFactory, link: TaskLink) -> None:
        super().__init__(inputs, make_head, link)
        self.head = make_head(sum(self.input_dims.values()))
        self.unimodal_heads = nn.ModuleDict({m: make_head(self.input_dims[m]) for m in self.modalities})

    def forward(self, features, masks=None) -> FusionOutput:
        logits = self.head(torch.cat([features[m] for m in self.modalities], dim=-1))
        return FusionOutput(
            logits=logits, aux_logits={m: self.unimodal_heads[m](features[m]) for m in self.modalities}
        )
