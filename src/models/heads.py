"""Classification heads: linear, MLP and the GMU paper's MaxoutMLP.

A head maps a fused (or unimodal) representation of size ``in_dim`` to ``out_dim`` logits. Heads
are built from plain dicts (``{"name": "maxout", "hidden_dim": 512, ...}``) so that they can live
in a checkpoint's hyper-parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class Maxout(nn.Module):
    """Maxout unit (Goodfellow et al. 2013): the max over ``num_pieces`` affine maps."""

    def __init__(self, in_dim: int, out_dim: int, num_pieces: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.num_pieces = num_pieces
        self.linear = nn.Linear(in_dim, out_dim * num_pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = self.linear(x).view(*x.shape[:-1], self.out_dim, self.num_pieces)
        return pieces.max(dim=-1).values


def _hidden_block(layer: nn.Module, dim: int, batch_norm: bool, dropout: float) -> list[nn.Module]:
    block = [layer]
    if batch_norm:
        block.append(nn.BatchNorm1d(dim))
    if dropout > 0:
        block.append(nn.Dropout(dropout))
    return block


def dense_layers(
    in_dim: int, hidden_dims: Sequence[int], activation: str, batch_norm: bool, dropout: float
) -> tuple[list[nn.Module], int]:
    """Linear -> [BatchNorm] -> activation -> [Dropout] per hidden size; returns the layers and the last width."""
    layers: list[nn.Module] = []
    dim = in_dim
    for hidden in hidden_dims:
        layers += _hidden_block(nn.Linear(dim, hidden), hidden, batch_norm, 0.0)
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        dim = hidden
    return layers, dim


def mlp_head(
    in_dim: int,
    out_dim: int,
    hidden_dims: Sequence[int],
    dropout: float,
    activation: str = "relu",
    batch_norm: bool = False,
) -> nn.Sequential:
    """Fully connected layers with an activation (and optional BN/dropout), then a linear output.
    Widths and dropout have no default here: ``conf/model/head/mlp.yaml`` holds the repo's."""
    layers, dim = dense_layers(in_dim, hidden_dims, activation, batch_norm, dropout)
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def maxout_head(
    in_dim: int,
    out_dim: int,
    hidden_dim: int = 512,
    num_layers: int = 2,
    num_pieces: int = 2,
    dropout: float = 0.5,
    batch_norm: bool = True,
) -> nn.Sequential:
    """MaxoutMLP of Arevalo et al. 2017 (Sec. 4.1): ``num_layers`` maxout layers, then linear."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers):
        layers += _hidden_block(Maxout(dim, hidden_dim, num_pieces), hidden_dim, batch_norm, dropout)
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def linear_head(in_dim: int, out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """Logistic regression on the representation (optionally after dropout)."""
    return (
        nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
        if dropout > 0
        else nn.Sequential(nn.Linear(in_dim, out_dim))
    )


HEADS = {"linear": linear_head, "mlp": mlp_head, "maxout": maxout_head}


def build_head(spec: Mapping[str, Any], in_dim: int, out_dim: int) -> nn.Module:
    """Build the head named by ``spec["name"]`` with the remaining keys as its options.

    A null option means "not set" (the head's default): config variants inherit ``model.head`` from
    ``model/default.yaml`` and null out the keys their head does not take (e.g. ``hidden_dims``).
    """
    options = {key: value for key, value in spec.items() if value is not None}
    name = options.pop("name", None)
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r} in model.head; expected one of {sorted(HEADS)}")
    if "hidden_dims" in options:
        options["hidden_dims"] = list(options["hidden_dims"])
    return HEADS[name](in_dim, out_dim, **options)


class HeadFactory:
    """``make_head(in_dim)``: the configured ``model.head`` mapping ``in_dim`` to ``num_outputs`` logits
    (what a model puts after a fusion layer, and what a predictor builds its classifiers with)."""

    def __init__(self, spec: Mapping[str, Any], num_outputs: int) -> None:
        self.spec = dict(spec)
        self.num_outputs = int(num_outputs)

    def __call__(self, in_dim: int) -> nn.Module:
        return build_head(self.spec, in_dim, self.num_outputs)
