"""``fusion=moe``: mixture of experts adapted to multilabel (Arevalo et al. 2017, Sec. 4.2 "MoE").

One expert per modality predicts from that modality alone, p_k = expert_k(x_k) (logistic
regression or the MaxoutMLP, ``fusion.expert``). A gating network on the concatenated inputs
weighs the experts: p = sum_k g_k p_k with g = softmax over the experts. ``fusion.gating=tied``
uses one gate vector for all outputs (g: (B, K)); ``untied`` one per output (g: (B, K, C)), which
is the multilabel adaptation (each genre may trust a different modality).

The gates are returned per sample as ``interpret["gates"]`` (B, K, 1) or (B, K, C).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionOutput, Predictor
from src.models.heads import HeadFactory
from src.tasks import TaskLink

EXPERTS = ("logistic", "maxout")
GATINGS = ("tied", "untied")


class MoEFusion(Predictor):
    """Experts per modality, softmax gates from [x_1; ...; x_K]; see the module docstring.

    The experts are ``fusion.expert``'s heads, not ``model.head`` (``make_head`` gives the outputs' count).
    """

    min_modalities = 2

    def __init__(
        self,
        inputs: FusionInputs,
        make_head: HeadFactory,
        link: TaskLink,
        expert: str = "logistic",
        gating: str = "untied",
        maxout: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(inputs, make_head, link)
        num_outputs = self.num_outputs
        if expert not in EXPERTS:
            raise ValueError(f"fusion.expert={expert!r}; expected one of {EXPERTS}")
        if gating not in GATINGS:
            raise ValueError(f"fusion.gating={gating!r}; expected one of {GATINGS}")
        spec = {"name": "linear"} if expert == "logistic" else {"name": "maxout", **(maxout or {})}
        make_expert = HeadFactory(spec, num_outputs)
        self.experts = nn.ModuleDict({m: make_expert(self.input_dims[m]) for m in self.modalities})
        self.gate_outputs = 1 if gating == "tied" else num_outputs
        self.gate = nn.Linear(sum(self.input_dims.values()), len(self.modalities) * self.gate_outputs)

    def forward(self, features, masks=None) -> FusionOutput:
        xs = [features[m] for m in self.modalities]
        scores = torch.stack(
            [self.link.to_scores(self.experts[m](x)) for m, x in zip(self.modalities, xs, strict=True)],
            dim=1,
        )
        gates = torch.softmax(self.gate(torch.cat(xs, dim=-1)).view(-1, len(xs), self.gate_outputs), dim=1)
        fused = (gates * scores).sum(dim=1)
        return FusionOutput(logits=self.link.to_logits(fused), interpret={"gates": gates})
