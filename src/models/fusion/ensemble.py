"""``fusion=ensemble``: "Ensemble 2/3 classifiers" of Vielzeuf et al. 2018 (Table 2).

The prediction is the average of the probabilities of independently parameterised classifiers. A
member is named by the modality it sees, or ``fused`` for one on the concatenation of all
modalities; ``members: null`` means one classifier per modality. Names may repeat: ``[original,
original, original]`` is three classifiers of the same input, the paper's "Ensemble of 3 models
applied on original images" (Sec. 3.1).

What a member is: by default the configured head on its modality's encoder features (members of one
modality then share that encoder). With ``networks`` (the options of
:func:`src.models.fusion.branches.build_stages`: ``conv_channels``, ``conv_kernel``,
``hidden_dims``, ``batch_norm``, ``dropout``) every member is a whole network of its own on the
modality's input (give that modality the identity encoder), e.g. three Table 1 LeNets. Each member is
also trained on its own loss (``aux_logits`` keyed ``member<i>_<name>``) unless ``aux_losses:
false``, so the members stay classifiers in their own right (how the paper trains its ensembles is
not stated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionOutput, Predictor
from src.models.fusion.branches import build_stages, reshape_input
from src.models.heads import HeadFactory
from src.tasks import TaskLink

FUSED = "fused"


class EnsembleFusion(Predictor):
    """Average of the members' probabilities (the mean output for regression)."""

    def __init__(
        self,
        inputs: FusionInputs,
        make_head: HeadFactory,
        link: TaskLink,
        members: Sequence[str] | None = None,
        networks: Mapping[str, Any] | None = None,
        aux_losses: bool = True,
    ) -> None:
        super().__init__(inputs, make_head, link)
        self.members = list(members) if members is not None else list(self.modalities)
        if not self.members:
            raise ValueError("fusion.members is empty: an ensemble needs at least one classifier")
        for name in self.members:
            if name != FUSED and name not in self.input_dims:
                raise ValueError(
                    f"fusion.members entry {name!r} is neither {FUSED!r} nor a modality of {self.modalities}"
                )
        if networks is not None and FUSED in self.members:
            raise ValueError(
                f"fusion.networks builds each member on one modality's input; {FUSED!r} has none"
            )
        self.shapes = dict(inputs.shapes)
        self.keys = [f"member{i}_{name}" for i, name in enumerate(self.members)]
        self.classifiers = nn.ModuleDict()
        for key, name in zip(self.keys, self.members, strict=True):
            if networks is not None:
                self.classifiers[key], _ = build_stages(
                    self.shapes[name], out_dim=self.num_outputs, **networks
                )
                continue
            in_dim = sum(self.input_dims.values()) if name == FUSED else self.input_dims[name]
            self.classifiers[key] = make_head(in_dim)
        self.networks = networks is not None
        self.aux_losses = aux_losses

    @property
    def reads(self) -> list[str]:
        """The members' modalities (every modality when one member is ``fused``)."""
        if FUSED in self.members:
            return list(self.modalities)
        return [m for m in self.modalities if m in self.members]

    def member_logits(self, key: str, name: str, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if name == FUSED:
            return self.classifiers[key](torch.cat([features[m] for m in self.modalities], dim=-1))
        if not self.networks:
            return self.classifiers[key](features[name])
        x = reshape_input(features[name], self.shapes[name])
        for stage in self.classifiers[key]:
            x = stage(x)
        return x

    def forward(self, features, masks=None) -> FusionOutput:
        logits = {
            key: self.member_logits(key, name, features)
            for key, name in zip(self.keys, self.members, strict=True)
        }
        mean = torch.stack([self.link.to_scores(v) for v in logits.values()]).mean(0)
        return FusionOutput(logits=self.link.to_logits(mean), aux_logits=logits if self.aux_losses else {})
