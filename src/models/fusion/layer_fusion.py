"""``fusion=layer_fusion``: fusing two modality networks at one layer (Vielzeuf et al. 2018, Table 2).

Each modality has its own network (:mod:`src.models.fusion.branches`) up to depth ``fusion.layer``
(0 = the inputs); there the hidden states are merged by ``fusion.op``: ``sum`` (h_1 + ... + h_K),
``product`` (elementwise, h_1 * ... * h_K) or ``subtract`` (h_1 - h_2, two modalities only), and one
network continues from the merged state to the outputs. ``fusion.ensemble=true`` is the
"Fusion+Ensemble" row: the modality networks also continue to their own outputs, the prediction is
the average of the probabilities of the fused and the unimodal networks, and each unimodal output
is trained on its own loss (``aux_logits``). Inputs of different sizes are aligned at depth 0 as in
CentralNet (``fusion.align``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionOutput
from src.models.fusion.branches import StagedPredictor, reshape_input
from src.models.heads import HeadFactory
from src.tasks import TaskLink

OPS = ("sum", "subtract", "product")


class LayerFusion(StagedPredictor):
    """Modality networks merged at depth ``layer`` by ``op``; optional ensemble with the unimodal outputs.

    ``stage_options``: the stages' options (:class:`~src.models.fusion.branches.StagedPredictor`).
    """

    depth_option = "layer"  # the stage the modalities merge at (there are fewer on dense branches)

    def __init__(
        self,
        inputs: FusionInputs,
        make_head: HeadFactory,
        link: TaskLink,
        layer: int = 2,
        op: str = "sum",
        ensemble: bool = False,
        **stage_options: Any,
    ) -> None:
        super().__init__(inputs, make_head, link, **stage_options)
        if op not in OPS:
            raise ValueError(f"fusion.op={op!r}; expected one of {OPS}")
        if op == "subtract" and len(self.modalities) != 2:
            raise ValueError(f"fusion.op=subtract takes exactly 2 modalities, got {self.modalities}")
        self.op = op
        self.ensemble = ensemble
        self.align = self.aligner()
        fused_stages = self.stages(self.align.shape)
        if not 0 <= layer < len(fused_stages):
            raise ValueError(
                f"fusion.layer={layer} must be in [0, {len(fused_stages) - 1}] for these {len(fused_stages)} stages"
            )
        self.layer = layer
        self.fused = fused_stages[layer:]
        self.unimodal = nn.ModuleDict()
        for m in self.modalities:
            stages = self.stages(self.shapes[m])
            self.unimodal[m] = stages if ensemble else stages[:layer]

    def merge(self, hiddens: Sequence[torch.Tensor]) -> torch.Tensor:
        """sum, elementwise product, or h_1 - h_2."""
        if self.op == "subtract":
            return hiddens[0] - hiddens[1]
        merged = hiddens[0]
        for h in hiddens[1:]:
            merged = merged + h if self.op == "sum" else merged * h
        return merged

    def forward(self, features, masks=None) -> FusionOutput:
        hiddens = {m: reshape_input(features[m], self.shapes[m]) for m in self.modalities}
        if self.layer == 0:
            merged = self.merge([self.align(m, hiddens[m]) for m in self.modalities])
        else:
            for depth in range(self.layer):
                hiddens = {m: self.unimodal[m][depth](h) for m, h in hiddens.items()}
            merged = self.merge([hiddens[m] for m in self.modalities])
        for stage in self.fused:
            merged = stage(merged)
        if not self.ensemble:
            return FusionOutput(logits=merged)
        unimodal = {}
        for m, h in hiddens.items():
            for stage in self.unimodal[m][self.layer :]:
                h = stage(h)
            unimodal[m] = h
        scores = torch.stack(
            [self.link.to_scores(merged)] + [self.link.to_scores(unimodal[m]) for m in self.modalities]
        )
        return FusionOutput(logits=self.link.to_logits(scores.mean(0)), aux_logits=unimodal)
