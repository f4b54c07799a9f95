"""``fusion=concat_multitask``: early fusion by concatenation plus the unimodal losses.

A feature-level variant of CentralNet's multi-task loss (Vielzeuf et al. 2018, Eq. 2): the
concatenation classifier of ``fusion=concat`` trained jointly with one classifier per modality, total
loss loss_C + beta sum_k loss_k (beta = ``model.aux_loss_weight``); the prediction is the
concatenation classifier's. The paper's "Concat + Multi-Task" rows concatenate the unimodal *scores*
instead: ``fusion=concat_scores fusion.aux_losses=true`` (:mod:`src.models.fusion.concat`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import Fusion, FusionOutput
from src.models.heads import build_head


class ConcatMultitaskFusion(Fusion):
    """Head on [x_1; ...; x_K]; a head per modality supplies ``aux_logits``."""

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(input_dims, num_outputs, modality_order)
        self.head = build_head(head, sum(self.input_dims.values()), num_outputs)
        self.unimodal_heads = nn.ModuleDict(
            {m: build_head(head, self.input_dims[m], num_outputs) for m in self.modalities}
        )

    def forward(self, features, masks=None) -> FusionOutput:
        logits = self.head(torch.cat([features[m] for m in self.modalities], dim=-1))
        return FusionOutput(
            logits=logits, aux_logits={m: self.unimodal_heads[m](features[m]) for m in self.modalities}
        )
