"""Sequence encoders for the MulT family: temporal 1-D convolution to the model width plus positions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from src.models.encoders.base import Encoder
from src.models.layers import SequenceProjection, sinusoidal_positions, zero_padding


class TemporalConvEncoder(Encoder):
    """MulT's input stage (Tsai et al. 2019, Sec. 3.1 "Temporal Convolutions", Eq. 1-2) as an encoder.

    (B, T, D_in) -> :class:`~src.models.layers.SequenceProjection` (Conv1d to ``d_model``, no bias,
    same length, padding cleared) -> optionally scaled by sqrt(d_model) plus the interleaved
    sinusoidal positions of Vaswani et al. -> dropout; padded steps are zero in the output.
    """

    returns_sequence = True
    accepts_kinds = ("sequence",)

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        d_model: int = 30,
        kernel_size: int = 1,
        positions: bool = True,
        scale: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_shape, kind)
        if len(self.input_shape) != 2:
            raise ValueError(
                f"TemporalConvEncoder needs a (T, D) sequence modality, got kind {kind!r} shape {list(input_shape)}"
            )
        self.projection = SequenceProjection(self.input_shape[1], d_model, kernel_size)
        self.positions, self.dropout = positions, dropout
        self.scale = math.sqrt(d_model) if scale else 1.0
        self.out_dim = d_model

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.projection(x.float(), mask) * self.scale
        if self.positions:
            h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device, h.dtype, interleaved=True)
        return zero_padding(F.dropout(h, self.dropout, self.training), mask)
