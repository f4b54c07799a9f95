"""``fusion=centralnet``: CentralNet (Vielzeuf et al. 2018, "CentralNet: a Multilayer Approach for
Multimodal Fusion", ECCV Workshops).

One network per modality plus a central network with the same stage sizes. The input of central
stage i + 1 is a learned weighted sum of the previous central hidden state and the modalities'
hidden states at that depth, in one of three forms (``fusion.form``):

- ``eq3`` (the default; Sec. 2.3: rewriting Eq. 1 as Eq. 3 "leads to better and stable
  performance"): h_C(i+1) = alpha_C(i) h_C(i) + alpha_modalities sum_k alpha_k(i) h_k(i), with one
  alpha_modalities for all depths, as Eq. 3 writes it (no layer index);
- ``eq3_per_depth``: Eq. 3 with one alpha_modalities(i) per depth (a variant of ours);
- ``eq1``: h_C(i+1) = alpha_C(i) h_C(i) + sum_k alpha_k(i) h_k(i) (Eq. 1).

At depth 0 there is no central state: the sum runs over the inputs only (aligned to one size by
``fusion.align``: zero padding, as CentralNet does for the 300-d MM-IMDb text, or a learned
projection). Every sum starts as an average (alphas 1/terms, alpha_modalities = 1; Sec. 2.3: "Before
training, the weighted sum is therefore equivalent to a simple average").

"At the output level, the last weighted sum is done between the unimodal predictions and the central
prediction" (Sec. 2.1); that sum is the final prediction. ``fusion.output`` says what a prediction
is: ``scores`` sums the "Pred" layers' outputs after their activation (Table 1: "fully-connected
layers followed by softmax activation"; sigmoid for multilabel), and the sum, normalised to sum to 1
for multiclass, is the predicted distribution; ``logits`` sums the outputs before the activation
(MM-IMDb, Eq. 4: "sigma(pred) the sigmoid activation of the last output of the network"). The
unimodal predictions feed the multi-task loss loss_C + sum_k beta_k loss_k (Eq. 2; beta =
``model.aux_loss_weight``, a number or a dict per modality).

Per sample, ``interpret["branch_contributions"]`` (B, K, depths) is the share of modality k in the
modality part of every weighted sum (the alphas are per-layer constants, the branches' hidden states
are not): |alpha_k(i)| mean|h_k(i)| / sum_j |alpha_j(i)| mean|h_j(i)|, the last depth over the
unimodal predictions as the output sum combines them. Ours (the paper reports only the alphas): it
lets the robustness sweep ask whether the sum leans away from a degraded modality.

Stages are convolutional on images of one (C, H, W) shape and dense otherwise
(:mod:`src.models.fusion.branches`); ``make_head`` (``model.head``) only gives the number of outputs,
since the output layers belong to the central and unimodal networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionOutput
from src.models.fusion.branches import StagedPredictor, reshape_input
from src.models.heads import HeadFactory
from src.tasks import MULTICLASS, TaskLink

FORMS = ("eq1", "eq3", "eq3_per_depth")
OUTPUTS = ("scores", "logits")


class CentralNetFusion(StagedPredictor):
    """Unimodal networks, a central network fed by weighted sums at every depth, weighted output.

    ``stage_options``: the stages' options (:class:`~src.models.fusion.branches.StagedPredictor`).
    """

    def __init__(
        self,
        inputs: FusionInputs,
        make_head: HeadFactory,
        link: TaskLink,
        form: str = "eq3",
        output: str = "scores",
        **stage_options: Any,
    ) -> None:
        super().__init__(inputs, make_head, link, **stage_options)
        if form not in FORMS:
            raise ValueError(f"fusion.form={form!r}; expected one of {FORMS}")
        if output not in OUTPUTS:
            raise ValueError(f"fusion.output={output!r}; expected one of {OUTPUTS}")
        self.form = form
        self.output = output
        self.unimodal = nn.ModuleDict({m: self.stages(self.shapes[m]) for m in self.modalities})
        self.align = self.aligner()
        self.central = self.stages(self.align.shape)
        n = len(self.modalities)
        depths = len(self.central) + 1  # a sum before every central stage, and one over the outputs
        # alphas[d][0] weighs the central state (unused at depth 0), alphas[d][1 + k] modality k.
        init = torch.full((depths, n + 1), 1.0 / (n + 1))
        init[0] = torch.cat([torch.zeros(1), torch.full((n,), 1.0 / n)])
        self.alphas = nn.Parameter(init)
        # alpha_modalities of Eq. 3: one scalar, or one per depth (eq3_per_depth)
        scales = {"eq1": None, "eq3": 1, "eq3_per_depth": depths}[form]
        self.modality_scale = None if scales is None else nn.Parameter(torch.ones(scales))

    def weighted_sum(
        self, depth: int, central: torch.Tensor | None, hiddens: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Eq. 1 (or Eq. 3 with ``modality_scale``) at ``depth``; ``central`` is None at depth 0."""
        alphas = self.alphas[depth]
        modal = sum(alphas[1 + k] * h for k, h in enumerate(hiddens))
        if self.modality_scale is not None:
            modal = self.scale(depth) * modal
        return modal if central is None else alphas[0] * central + modal

    def modality_shares(self, depth: int, hiddens: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, K) share of every modality's term in the modality part of the sum at ``depth``:
        |alpha_k| mean|h_k| normalised over the modalities (alpha_modalities scales them all alike)."""
        alphas = self.alphas[depth, 1:].detach().abs()
        sizes = torch.stack([h.detach().abs().flatten(1).mean(1) for h in hiddens], dim=1) * alphas
        return sizes / sizes.sum(1, keepdim=True).clamp_min(torch.finfo(sizes.dtype).tiny)

    def scale(self, depth: int) -> torch.Tensor:
        """alpha_modalities at ``depth`` (the same scalar at every depth for ``eq3``)."""
        return self.modality_scale[0 if self.form == "eq3" else depth]

    def combine_predictions(self, central: torch.Tensor, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The last weighted sum, over logits or over scores (see the module docstring), as logits."""
        depth = len(self.central)
        if self.output == "logits":
            return self.weighted_sum(depth, central, outputs)
        scores = self.weighted_sum(
            depth, self.link.to_scores(central), [self.link.to_scores(o) for o in outputs]
        )
        if self.link.task == MULTICLASS:  # learned alphas need not sum to 1: renormalise the distribution
            scores = scores.clamp_min(0.0)
            scores = scores / scores.sum(-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
        return self.link.to_logits(scores)

    def forward(self, features, masks=None) -> FusionOutput:
        hiddens = [reshape_input(features[m], self.shapes[m]) for m in self.modalities]
        aligned = [self.align(m, h) for m, h in zip(self.modalities, hiddens, strict=True)]
        shares = [self.modality_shares(0, aligned)]
        central = self.central[0](self.weighted_sum(0, None, aligned))
        for depth in range(1, len(self.central)):
            hiddens = [self.unimodal[m][depth - 1](h) for m, h in zip(self.modalities, hiddens, strict=True)]
            shares.append(self.modality_shares(depth, hiddens))
            central = self.central[depth](self.weighted_sum(depth, central, hiddens))
        outputs = [self.unimodal[m][-1](h) for m, h in zip(self.modalities, hiddens, strict=True)]
        summed = outputs if self.output == "logits" else [self.link.to_scores(o) for o in outputs]
        shares.append(self.modality_shares(len(self.central), summed))
        logits = self.combine_predictions(central, outputs)
        return FusionOutput(
            logits=logits,
            aux_logits=dict(zip(self.modalities, outputs, strict=True)),
            interpret={"branch_contributions": torch.stack(shares, dim=-1)},
        )

    def interpretation(self) -> dict[str, Any]:
        """The learned alphas per depth (CentralNet Figure 3), central first; Eq. 3's alpha_modalities is
        folded into the modality weights."""
        rows = []
        for depth, alphas in enumerate(self.alphas.detach().cpu()):
            scale = 1.0 if self.modality_scale is None else self.scale(depth).item()
            row = {"depth": depth, "central": None if depth == 0 else float(alphas[0])}
            row.update({m: scale * float(alphas[1 + k]) for k, m in enumerate(self.modalities)})
            rows.append(row)
        return {"centralnet_alphas": rows, "form": self.form}
