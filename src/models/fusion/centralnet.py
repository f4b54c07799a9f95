"""``fusion=centralnet``: CentralNet (Vielzeuf et al. 2018, "CentralNet: a Multilayer Approach for
Multimodal Fusion", ECCV Workshops).

One network per modality plus a central network with the same stage sizes. The input of central
stage i + 1 is a learned weighted sum of the previous central hidden state and the modalities'
hidden states at that depth (Eq. 1):

    h_C(i+1) = alpha_C(i) h_C(i) + sum_k alpha_k(i) h_k(i)

(``fusion.form=eq1``). ``form=eq3`` adds one alpha over the modality sum,
h_C(i+1) = alpha_C(i) h_C(i) + alpha_M(i) sum_k alpha_k(i) h_k(i), which separates how much the
central path trusts the modalities from how it splits that trust between them. At depth 0 there is
no central state: the sum runs over the inputs only (aligned to one size by ``fusion.align``: zero
padding, as CentralNet does for the 300-d MM-IMDb text, or a learned projection). Every sum starts
as an average (alphas 1/terms, alpha_M = 1). The output is the same weighted sum of the central and
unimodal predictions, and the unimodal predictions feed the multi-task loss
loss_C + sum_k beta_k loss_k (Eq. 2; beta = ``model.aux_loss_weight``, a number or a dict per
modality).

Stages are convolutional on images of one (C, H, W) shape and dense otherwise
(:mod:`src.models.fusion.branches`); the configured ``head`` is not used, since the output layers
belong to the central and unimodal networks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import Fusion, FusionOutput
from src.models.fusion.branches import InputAligner, build_stages, reshape_input, resolve_branch

FORMS = ("eq1", "eq3")


class CentralNetFusion(Fusion):
    """Unimodal networks, a central network fed by weighted sums at every depth, weighted output."""

    min_modalities = 2
    context_args = ("input_shapes",)

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        input_shapes: Mapping[str, Sequence[int]],
        form: str = "eq1",
        branch: str = "auto",
        conv_channels: Sequence[int] = (16, 32),
        conv_kernel: int = 3,
        hidden_dims: Sequence[int] = (128,),
        align: str = "pad",
        batch_norm: bool = True,
        dropout: float = 0.0,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(input_dims, num_outputs, modality_order)
        if form not in FORMS:
            raise ValueError(f"fusion.form={form!r}; expected one of {FORMS}")
        self.form = form
        self.branch = resolve_branch(branch, {m: input_shapes[m] for m in self.modalities})
        self.shapes = {
            m: tuple(input_shapes[m]) if self.branch == "conv" else (self.input_dims[m],)
            for m in self.modalities
        }
        options = {
            "conv_channels": conv_channels,
            "conv_kernel": conv_kernel,
            "hidden_dims": hidden_dims,
            "batch_norm": batch_norm,
            "dropout": dropout,
        }
        self.unimodal = nn.ModuleDict()
        for m in self.modalities:
            self.unimodal[m], _ = build_stages(self.shapes[m], out_dim=num_outputs, **options)
        self.align = InputAligner(self.shapes, align)
        self.central, _ = build_stages(self.align.shape, out_dim=num_outputs, **options)
        n = len(self.modalities)
        depths = len(self.central) + 1  # a sum before every central stage, and one over the outputs
        # alphas[d][0] weighs the central state (unused at depth 0), alphas[d][1 + k] modality k.
        init = torch.full((depths, n + 1), 1.0 / (n + 1))
        init[0] = torch.cat([torch.zeros(1), torch.full((n,), 1.0 / n)])
        self.alphas = nn.Parameter(init)
        self.modality_scale = nn.Parameter(torch.ones(depths)) if form == "eq3" else None

    def weighted_sum(
        self, depth: int, central: torch.Tensor | None, hiddens: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Eq. 1 (or Eq. 3 with ``modality_scale``) at ``depth``; ``central`` is None at depth 0."""
        alphas = self.alphas[depth]
        modal = sum(alphas[1 + k] * h for k, h in enumerate(hiddens))
        if self.modality_scale is not None:
            modal = self.modality_scale[depth] * modal
        return modal if central is None else alphas[0] * central + modal

    def forward(self, features, masks=None) -> FusionOutput:
        hiddens = [reshape_input(features[m], self.shapes[m]) for m in self.modalities]
        central = self.central[0](
            self.weighted_sum(
                0, None, [self.align(m, h) for m, h in zip(self.modalities, hiddens, strict=True)]
            )
        )
        for depth in range(1, len(self.central)):
            hiddens = [self.unimodal[m][depth - 1](h) for m, h in zip(self.modalities, hiddens, strict=True)]
            central = self.central[depth](self.weighted_sum(depth, central, hiddens))
        outputs = [self.unimodal[m][-1](h) for m, h in zip(self.modalities, hiddens, strict=True)]
        logits = self.weighted_sum(len(self.central), central, outputs)
        return FusionOutput(logits=logits, aux_logits=dict(zip(self.modalities, outputs, strict=True)))

    def interpretation(self) -> dict[str, Any]:
        """The learned alphas per depth (CentralNet Figure 3), central first; eq3 folds alpha_M in."""
        rows = []
        for depth, alphas in enumerate(self.alphas.detach().cpu()):
            scale = 1.0 if self.modality_scale is None else self.modality_scale[depth].item()
            row = {"depth": depth, "central": None if depth == 0 else float(alphas[0])}
            row.update({m: scale * float(alphas[1 + k]) for k, m in enumerate(self.modalities)})
            rows.append(row)
        return {"centralnet_alphas": rows, "form": self.form}
