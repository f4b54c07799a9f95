"""What the sequence fusions (MulT, MuLT-GMU, BPMuLT, hybrid early-late) share.

Inputs. ``features[m]`` is a (B, T_m, D_m) sequence with ``masks[m]`` (B, T_m) bool (True = real
step; ``None`` = all real) for every *sequence* modality, and a (B, D_m) vector for every
modality named in the ``extras`` option (non-sequential inputs such as a poster or metadata).
Which is which is configured (``fusion.extras=[poster,metadata]``), never guessed; a tensor of the
wrong rank is an error naming the modality. Lengths may differ across modalities (unaligned).

Each sequence is projected to the common width ``d_model`` by a 1-D convolution over time (MulT
Sec. 3.1) after its padded steps are zeroed, so padding content never leaks into real steps.
A sequence's summary is its last real step, or its first step for a modality whose first token is
a [CLS] (``summary_tokens: {text: first}``), as in MulT and BPMuLT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from src.models.fusion.base import Fusion, FusionInputs
from src.models.layers import SUMMARY_TOKENS, SequenceProjection, summary_token


class SequenceFusion(Fusion):
    """Base of the sequence fusions: modality roles, conv projections and summary tokens.

    MulT, MuLT-GMU and the hybrid are fusion layers on it, BPMuLT a predictor.
    """

    accepts_sequences = True
    requires_sequences = True  # every modality not named in ``extras`` is a (B, T, D) sequence
    min_sequences = 2

    def __init__(
        self,
        inputs: FusionInputs,
        d_model: int,
        extras: Sequence[str] = (),
        kernel_sizes: int | Mapping[str, int] = 1,
        summary_tokens: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(inputs)
        unknown = sorted(set(extras) - set(self.modalities))
        if unknown:
            raise ValueError(
                f"fusion.extras names {unknown}, which are not modalities of the data {self.modalities}"
            )
        self.extras = [m for m in self.modalities if m in set(extras)]
        self.sequences = [m for m in self.modalities if m not in set(extras)]
        name = type(self).__name__
        if len(self.sequences) < self.min_sequences:
            raise ValueError(
                f"{name} needs at least {self.min_sequences} sequence modalities, got {self.sequences} "
                f"(extras: {self.extras})"
            )
        self.summary_tokens = {m: "last" for m in self.sequences}
        for modality, which in (summary_tokens or {}).items():
            if modality not in self.summary_tokens or which not in SUMMARY_TOKENS:
                raise ValueError(
                    f"fusion.summary_tokens.{modality}={which!r}: expected a sequence modality of {self.sequences} "
                    f"mapped to one of {SUMMARY_TOKENS}"
                )
            self.summary_tokens[modality] = which
        sizes = (
            dict.fromkeys(self.sequences, kernel_sizes)
            if isinstance(kernel_sizes, int)
            else dict(kernel_sizes)
        )
        missing = sorted(set(self.sequences) - set(sizes))
        if missing:
            raise ValueError(f"fusion.kernel_sizes lacks the sequence modalities {missing}")
        self.d_model = d_model
        self.projections = nn.ModuleDict(
            {m: SequenceProjection(self.input_dims[m], d_model, int(sizes[m])) for m in self.sequences}
        )

    def project(
        self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor | None] | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Validated inputs: projected sequences (B, T_m, d_model), their bool masks, and the extras (B, D)."""
        masks = masks or {}
        sequences, sequence_masks, extras = {}, {}, {}
        for m in self.sequences:
            x = features[m]
            if x.ndim != 3:
                raise ValueError(
                    f"{type(self).__name__}: modality {m!r} must be a (B, T, D) sequence, got shape {tuple(x.shape)}; "
                    "list vector inputs in fusion.extras"
                )
            mask = masks.get(m)
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.bool()
            sequences[m] = self.projections[m](x, mask)
            sequence_masks[m] = mask
        for m in self.extras:
            x = features[m]
            if x.ndim != 2:
                raise ValueError(
                    f"{type(self).__name__}: extra {m!r} must be a (B, D) vector, got shape {tuple(x.shape)}"
                )
            extras[m] = x
        return sequences, sequence_masks, extras

    def summary(self, modality: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return summary_token(x, mask, self.summary_tokens[modality])


class ResidualBlock(nn.Module):
    """h + W_1 dropout(ReLU(W_2 h)): the residual projection before MulT's output layer, BPMuLT Eq. 24.

    MulT's code has biases (``bias=True``); BPMuLT Eq. 24 prints none (``bias=False``).
    """

    def __init__(self, dim: int, dropout: float, bias: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim, bias=bias), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim, bias=bias)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)
