"""ModDrop (Neverova et al. 2016, "ModDrop: adaptive multi-modal gesture recognition", Sec. 3.3).

During training every modality of every sample is dropped (its features set to zero) independently
with probability ``p``, so the fused network learns to cope with missing modalities and does not
rely on one of them; at evaluation nothing is dropped. Features are not rescaled (as in the paper:
a dropped modality is an absent one, not a noisy one), and a sample may lose all its modalities.

It is a module of the model, applied to the encoders' outputs before any fusion
(:class:`src.models.model.MultimodalModel`), and it has no parameters:
- ``fusion=<name> +fusion.moddrop_p=0.25`` puts it before any fusion;
- ``fusion=moddrop`` (the "ModDrop" rows of CentralNet's tables) is the same on concatenation:
  ``conf/fusion/moddrop.yaml`` is ``fusion=concat`` with ``moddrop_p: 0.25``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class ModalityDropout(nn.Module):
    """Zero each modality of each sample with probability ``p`` while training (identity in eval).

    Modalities are drawn in ``modalities`` order (the fusion's), one uniform per sample each.
    """

    def __init__(self, modalities: Sequence[str], p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"fusion.moddrop_p (the ModDrop probability) must be in [0, 1), got {p}")
        self.modalities = list(modalities)
        self.p = float(p)

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dropped = dict(features)
        if not self.training or self.p == 0:
            return dropped
        for modality in self.modalities:
            x = features[modality]
            keep = (torch.rand(x.shape[0], device=x.device) >= self.p).to(x.dtype)
            dropped[modality] = x * keep.view(-1, *([1] * (x.dim() - 1)))
        return dropped

    def extra_repr(self) -> str:
        return f"p={self.p}, modalities={self.modalities}"
