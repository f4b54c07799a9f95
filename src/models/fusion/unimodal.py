"""``fusion=unimodal``: the single-modality baselines of every table (e.g. ``fusion.modality=text``).

The configured head on one modality's features; the other modalities are ignored.
"""

from __future__ import annotations

from src.models.fusion.base import FusionInputs, FusionOutput, Predictor
from src.models.heads import HeadFactory
from src.tasks import TaskLink


class UnimodalFusion(Predictor):
    """Head on ``features[modality]`` only; ``modality`` may be left null when there is one modality."""

    def __init__(
        self, inputs: FusionInputs, make_head: HeadFactory, link: TaskLink, modality: str | None = None
    ) -> None:
        super().__init__(inputs, make_head, link)
        if modality is None:
            if len(self.modalities) != 1:
                raise ValueError(f"fusion=unimodal needs fusion.modality=<one of {self.modalities}>")
            modality = self.modalities[0]
        if modality not in self.input_dims:
            raise ValueError(
                f"fusion.modality={modality!r} is not a modality of this dataset; expected one of {self.modalities}"
            )
        self.modality = modality
        self.head = make_head(self.input_dims[modality])

    @property
    def reads(self) -> list[str]:
        return [self.modality]

    def forward(self, features, masks=None) -> FusionOutput:
        return FusionOutput(logits=self.head(features[self.modality]))
