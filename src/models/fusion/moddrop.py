"""ModDrop (Neverova et al. 2016, "ModDrop: adaptive multi-modal gesture recognition", Sec. 3.3).

During training every modality of every sample is dropped (its features set to zero) independently
with probability ``p``, so the fused network learns to cope with missing modalities and does not
rely on one of them; at evaluation nothing is dropped. Features are not rescaled (as in the paper:
a dropped modality is an absent one, not a noisy one), and a sample may lose all its modalities.

Two ways to use it:
- as a wrapper around any fusion: ``fusion=concat +fusion.moddrop_p=0.25`` (see
  :func:`src.models.fusion.build.build_fusion`);
- as its own method, ``fusion=moddrop`` (the "ModDrop" rows of CentralNet's tables): the inner
  fusion is ``fusion.inner`` (concatenation by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from src.models.fusion.base import Fusion, FusionOutput


class ModDropFusion(Fusion):
    """Whole-modality dropout on the fusion's inputs, then the ``inner`` fusion (a fusion config dict)."""

    context_args = ("task", "input_shapes")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        task: str,
        input_shapes: Mapping[str, Sequence[int]],
        inner: Mapping[str, Any],
        p: float = 0.25,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        from src.models.fusion.build import build_fusion  # build.py imports this module

        if not 0.0 <= p < 1.0:
            raise ValueError(f"fusion ModDrop probability p must be in [0, 1), got {p}")
        inner_spec = dict(inner)
        if modality_order is not None:
            inner_spec["modality_order"] = modality_order
        fused = build_fusion(inner_spec, input_dims, num_outputs, head, task, input_shapes)
        super().__init__(input_dims, num_outputs, fused.modalities)
        self.inner = fused
        self.p = float(p)
        self.accepts_sequences = getattr(fused, "accepts_sequences", False)

    def interpretation(self) -> dict[str, Any]:
        return self.inner.interpretation()

    def drop(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Zero each modality of each sample with probability ``p`` (training only)."""
        if not self.training or self.p == 0:
            return dict(features)
        dropped = {}
        for modality in self.modalities:
            x = features[modality]
            keep = (torch.rand(x.shape[0], device=x.device) >= self.p).to(x.dtype)
            dropped[modality] = x * keep.view(-1, *([1] * (x.dim() - 1)))
        return dropped

    def forward(self, features, masks=None) -> FusionOutput:
        return self.inner(self.drop(features), masks)
