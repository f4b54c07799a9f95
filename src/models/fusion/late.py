"""Late fusions: one classifier per modality, their scores combined.

- ``avg_probs``: the average of the unimodal classifiers' probabilities (Arevalo et al. 2017,
  Sec. 4.2 "AVG probs").
- ``weighted_mean``: learned weights on the unimodal scores (Vielzeuf et al. 2018, Sec. 3: "the
  weighted average of single modality scores. The weights are considered as some parameters of the
  model"): p = sum_k softmax(w)_k p_k, the weights initialised equal (the softmax keeping them a
  convex combination is ours: the paper is silent on it).
- ``late_fusion``: p = alpha p_1 + (1 - alpha) p_2 with a trainable alpha initialised at 0.5 (the
  2025 MM-IMDb comparison, p = alpha p_text + (1 - alpha) p_image); alpha weighs the first
  modality of the fusion order (set ``fusion.modality_order=[text,image]`` for the paper's form).

Scores are probabilities for classification (:class:`src.tasks.TaskLink`); the fused score
goes back to logits for the task loss. With ``aux_losses: true`` each unimodal classifier is also
trained on its own loss (``FusionOutput.aux_logits``, weighted by ``model.aux_loss_weight``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionOutput, Predictor
from src.models.heads import HeadFactory
from src.tasks import TaskLink


class UnimodalHeadsFusion(Predictor):
    """Shared part: a head per modality and :meth:`combine` over the stacked scores (B, K, C)."""

    def __init__(
        self, inputs: FusionInputs, make_head: HeadFactory, link: TaskLink, aux_losses: bool = False
    ) -> None:
        super().__init__(inputs, make_head, link)
        self.aux_losses = aux_losses
        self.heads = nn.ModuleDict({m: make_head(self.input_dims[m]) for m in self.modalities})

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features, masks=None) -> FusionOutput:
        logits = {m: self.heads[m](features[m]) for m in self.modalities}
        scores = torch.stack([self.link.to_scores(logits[m]) for m in self.modalities], dim=1)
        fused = self.link.to_logits(self.combine(scores))
        return FusionOutput(logits=fused, aux_logits=logits if self.aux_losses else {})


class AvgProbsFusion(UnimodalHeadsFusion):
    """``fusion=avg_probs``: p = (1/K) sum_k p_k."""

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.mean(dim=1)


class WeightedMeanFusion(UnimodalHeadsFusion):
    """``fusion=weighted_mean``: p = sum_k softmax(w)_k p_k with learned w (equal at init)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight_logits = nn.Parameter(torch.zeros(len(self.modalities)))

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.weight_logits, dim=0)

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.einsum("k,bkc->bc", self.weights(), scores)

    def interpretation(self) -> dict[str, Any]:
        return {"weights": dict(zip(self.modalities, self.weights().tolist(), strict=True))}


class LateFusion(UnimodalHeadsFusion):
    """``fusion=late_fusion``: p = alpha p_1 + (1 - alpha) p_2, alpha = sigmoid(a) trainable, a = 0 at init."""

    min_modalities = 2
    max_modalities = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alpha_logit = nn.Parameter(torch.zeros(()))

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit)

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        return self.alpha * scores[:, 0] + (1 - self.alpha) * scores[:, 1]

    def interpretation(self) -> dict[str, Any]:
        return {"alpha": self.alpha.item(), "alpha_weighs": self.modalities[0]}
