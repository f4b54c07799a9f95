"""Encoder interface and the two encoders every dataset can use without extra weights."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hydra.utils import get_class
from torch import nn

from src.models.heads import ACTIVATIONS


class Encoder(nn.Module):
    """Maps one modality's batch tensor to features.

    Subclasses set ``out_dim`` and ``returns_sequence`` (True: (B, T, out_dim) aligned with the input
    mask; False: (B, out_dim)). ``provenance`` says where pretrained weights came from (name, source,
    sha256) so every run can record it.
    """

    out_dim: int
    returns_sequence: bool = False

    def __init__(self, input_shape: Sequence[int], kind: str) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.kind = kind

    @property
    def provenance(self) -> dict[str, Any]:
        return {"encoder": type(self).__name__, "weights": "random init"}

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class IdentityEncoder(Encoder):
    """Passes features through: sequences stay (B, T, D); anything else is flattened to (B, D)."""

    def __init__(self, input_shape: Sequence[int], kind: str) -> None:
        super().__init__(input_shape, kind)
        self.returns_sequence = kind == "sequence"
        self.out_dim = self.input_shape[-1] if self.returns_sequence else math.prod(self.input_shape)

    @property
    def provenance(self) -> dict[str, Any]:
        return {"encoder": "identity", "weights": "none"}

    def forward(self, x, mask=None):
        return x if self.returns_sequence else x.flatten(1)


class MLPEncoder(Encoder):
    """Flattened input through fully connected layers (e.g. CentralNet's per-modality MLP trunk)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        hidden_dims: Sequence[int] = (256,),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(input_shape, kind)
        layers: list[nn.Module] = [nn.Flatten(1)]
        dim = math.prod(self.input_shape)
        for hidden in hidden_dims:
            layers.append(nn.Linear(dim, hidden))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            dim = hidden
        self.net = nn.Sequential(*layers)
        self.out_dim = dim

    def forward(self, x, mask=None):
        return self.net(x)


IDENTITY_SPEC: dict[str, Any] = {"_target_": "src.models.encoders.base.IdentityEncoder"}


def build_encoder(spec: Mapping[str, Any] | None, input_shape: Sequence[int], kind: str) -> Encoder:
    """Instantiate ``spec`` (a plain dict with ``_target_``) for a modality of the given shape/kind."""
    options = dict(spec or IDENTITY_SPEC)
    target = options.pop("_target_", None)
    if target is None:
        raise ValueError(f"encoder spec {dict(spec)} has no _target_")
    encoder = get_class(target)(input_shape=input_shape, kind=kind, **options)
    if not isinstance(encoder, Encoder):
        raise TypeError(f"{target} is not a src.models.encoders.Encoder")
    return encoder
