"""``fusion=ensemble``: "Ensemble 2/3 classifiers" of Vielzeuf et al. 2018 (Table 2).

The prediction is the average of the probabilities of independently parameterised classifiers,
each the configured head on one modality (a member named by the modality) or on the concatenation
of all modalities (a member named ``fused``). ``members: null`` means one classifier per modality.
Each member is also trained on its own loss (``aux_logits`` keyed ``member<i>_<name>``) unless
``aux_losses: false``, so the members stay classifiers in their own right as in an ensemble.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import Fusion, FusionOutput
from src.models.fusion.common import check_task, to_logits, to_scores
from src.models.heads import build_head

FUSED = "fused"


class EnsembleFusion(Fusion):
    """Average of the members' probabilities (the mean output for regression)."""

    context_args = ("task",)

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        task: str,
        members: Sequence[str] | None = None,
        aux_losses: bool = True,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(input_dims, num_outputs, modality_order)
        self.task = check_task(task, "EnsembleFusion")
        self.members = list(members) if members is not None else list(self.modalities)
        if not self.members:
            raise ValueError("fusion.members is empty: an ensemble needs at least one classifier")
        for name in self.members:
            if name != FUSED and name not in self.input_dims:
                raise ValueError(
                    f"fusion.members entry {name!r} is neither {FUSED!r} nor a modality of {self.modalities}"
                )
        self.keys = [f"member{i}_{name}" for i, name in enumerate(self.members)]
        self.classifiers = nn.ModuleDict(
            {
                key: build_head(
                    head,
                    sum(self.input_dims.values()) if name == FUSED else self.input_dims[name],
                    num_outputs,
                )
                for key, name in zip(self.keys, self.members, strict=True)
            }
        )
        self.aux_losses = aux_losses

    def forward(self, features, masks=None) -> FusionOutput:
        logits = {}
        for key, name in zip(self.keys, self.members, strict=True):
            x = torch.cat([features[m] for m in self.modalities], dim=-1) if name == FUSED else features[name]
            logits[key] = self.classifiers[key](x)
        mean = torch.stack([to_scores(v, self.task) for v in logits.values()]).mean(0)
        return FusionOutput(logits=to_logits(mean, self.task), aux_logits=logits if self.aux_losses else {})
