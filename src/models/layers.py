"""Layers and tensor helpers that encoders and fusions share: one place for each.

Masks are (B, T) booleans, True on real steps; ``None`` means every step is real.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SUMMARY_TOKENS = ("first", "last")


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over time of (B, T, D) ``x`` using only the real steps; a row without any is zero."""
    if mask is None:
        return x.mean(1)
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (zero_padding(x, mask) * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Set padded steps of (B, T, D) ``x`` to exactly zero (``torch.where``, so NaN padding is cleared too)."""
    if mask is None:
        return x
    return torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))


def full_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``mask`` as bool, or all True for the first two dimensions of ``x`` when there is none."""
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return mask.bool()


def sinusoidal_positions(
    length: int,
    dim: int,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    interleaved: bool = False,
) -> torch.Tensor:
    """(length, dim) fixed sin/cos position table (Vaswani et al. 2017, Sec. 3.5), positions from 0.

    Two published layouts of the same idea:

    - ``interleaved=False`` (MulT's released code, fairseq's ``SinusoidalPositionalEmbedding``):
      [sin(p w_0), ..., sin(p w_{h-1}), cos(p w_0), ..., cos(p w_{h-1})], h = dim // 2,
      w_i = 10000^(-i / (h - 1)); an odd ``dim`` gets a zero last column;
    - ``interleaved=True`` (the paper's formula): PE[p, 2i] = sin(p / 10000^(2i/dim)),
      PE[p, 2i+1] = cos(p / 10000^(2i/dim)).
    """
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    if interleaved:
        frequency = torch.exp(
            torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
        )
        table = torch.zeros(length, dim, device=device)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
        return table.to(dtype)
    half = dim // 2
    frequency = torch.exp(
        torch.arange(half, device=device, dtype=torch.float32) * (-math.log(10000.0) / max(half - 1, 1))
    )
    angles = position * frequency[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return table.to(dtype)


class SequenceProjection(nn.Module):
    """Conv1d(kernel_size) over time without bias, same length (MulT Sec. 3.1, Eq. 1).

    Padded steps are cleared before the convolution (NaN included, so padding never leaks into a
    real step through the kernel) and in the output.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 1) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"conv kernel_size must be odd and positive (same-length output), got {kernel_size}"
            )
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return zero_padding(self.conv(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2), mask)


def summary_token(x: torch.Tensor, mask: torch.Tensor, which: str) -> torch.Tensor:
    """(B, D) first step, or last real step, of a (B, T, D) sequence."""
    if which == "first":
        return x[:, 0]
    last = (mask.long().sum(dim=1) - 1).clamp_min(0)
    return x[torch.arange(x.shape[0], device=x.device), last]
