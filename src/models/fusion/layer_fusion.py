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

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionOutput, Predictor
from src.models.fusion.branches import InputAligner, build_stages, reshape_input, resolve_branch
from src.models.heads import HeadFactory
from src.tasks import TaskLink

OPS = ("sum", "subtract", "product")


class LayerFusion(Predictor):
    """Modality networks merged at depth ``layer`` by ``op``; optional ensemble with the unimodal outputs."""

    min_modalities = 2

    def __init__(
        self,
        inputs: FusionInputs,
        make_head: HeadFactory,
        link: TaskLink,
        layer: int = 2,
        op: str = "sum",
        ensemble: bool = False,
        branch: str = "auto",
        conv_channels: Sequence[int] = (16, 32),
        conv_kernel: int = 3,
        hidden_dims: Sequence[int] = (128,),
        align: str = "pad",
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(inputs, make_head, link)
        num_outputs = self.num_outputs
        input_shapes = inputs.shapes
        if op not in OPS:
            raise ValueError(f"fusion.op={op!r}; expected one of {OPS}")
        if op == "subtract" and len(self.modalities) != 2:
            raise ValueError(f"fusion.op=subtract takes exactly 2 modalities, got {self.modalities}")
        self.op = op
        self.ensemble = ensemble
        self.branch = resolve_branch(branch, {m: input_shapes[m] for m in self.modalities})
        self.shapes = {
            m: tuple(input_shapes[m]) if self.branch == "conv" else (self.input_dims[m],)
            for m in self.modalities
        }
        self.align = InputAligner(self.shapes, align)
        options = {
            "conv_channels": conv_channels,
            "conv_kernel": conv_kernel,
            "hidden_dims": hidden_dims,
            "batch_norm": batch_norm,
            "dropout": dropout,
        }
        fused_stages, _ = build_stages(self.align.shape, out_dim=num_outputs, **options)
        if not 0 <= layer < len(fused_stages):
            raise ValueError(
                f"fusion.layer={layer} must be in [0, {len(fused_stages) - 1}] for these {len(fused_stages)} stages"
            )
        self.layer = layer
        self.fused = fused_stages[layer:]
        self.unimodal = nn.ModuleDict()
        for m in self.modalities:
            stages, _ = build_stages(self.shapes[m], out_dim=num_outputs, **options)
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
