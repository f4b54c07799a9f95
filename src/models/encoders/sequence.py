"""Sequence encoders for the MulT family: temporal 1-D convolution to the model width plus positions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from src.models.encoders.base import Encoder


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(...) (Vaswani et al. 2017, Sec. 3.5)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class SequenceProjection(Encoder):
    """MulT's input stage (Tsai et al. 2019, Sec. 3.1 "Temporal Convolutions", Eq. 1-2).

    (B, T, D_in) -> Conv1d(D_in, d_model, kernel_size, no bias, same length) -> optionally scaled by
    sqrt(d_model) plus sinusoidal positions -> dropout. Padded steps (mask False) are zeroed before the
    convolution (so they cannot leak into real steps) and in the output. Returns (B, T, d_model).
    """

    returns_sequence = True

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
        if kind != "sequence" or len(self.input_shape) != 2:
            raise ValueError(
                f"SequenceProjection needs a (T, D) sequence modality, got kind {kind!r} shape {list(input_shape)}"
            )
        if kernel_size % 2 != 1:
            raise ValueError(
                f"SequenceProjection kernel_size must be odd to keep the length, got {kernel_size}"
            )
        self.conv = nn.Conv1d(self.input_shape[1], d_model, kernel_size, padding=kernel_size // 2, bias=False)
        self.positions, self.dropout = positions, dropout
        self.scale = math.sqrt(d_model) if scale else 1.0
        self.out_dim = d_model

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.float()
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        h = self.conv(x.transpose(1, 2)).transpose(1, 2) * self.scale
        if self.positions:
            h = h + sinusoidal_positions(h.shape[1], h.shape[2]).to(h.device)
        h = F.dropout(h, self.dropout, self.training)
        return h if mask is None else h * mask.unsqueeze(-1).to(h.dtype)
