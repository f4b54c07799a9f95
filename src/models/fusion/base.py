"""The interfaces every fusion method implements.

A fusion never knows which dataset it runs on: it receives ``features`` keyed by modality name
(vectors (B, D) or sequences (B, T, D) with boolean ``masks`` (B, T), True = real step) and walks the
modalities in one fixed order (:class:`FusionInputs`), so the same method works with 2, 3 or N
modalities. There are two kinds (the split of facebookresearch/multimodal, whose fusion modules
return a tensor and expose ``out_dim`` while the head lives outside):

- a :class:`FusionLayer` maps the features to one representation ``h`` (B, out_dim) and returns
  ``(h, interpret)``; the model's head turns ``h`` into logits;
- a :class:`Predictor` is a method with several outputs of its own (late fusions, ensembles,
  CentralNet, ...): it gets a head factory and the task link and returns a :class:`FusionOutput`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from src.models.heads import HeadFactory
from src.tasks import TaskLink

#: a fusion layer's result: the fused representation (B, out_dim) and per-sample interpretation tensors
LayerOutput = tuple[torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class FusionOutput:
    """What a model (or a predictor) returns.

    logits: (B, num_outputs) class scores (or regression outputs).
    aux_logits: per-modality predictions for multi-task losses (CentralNet, late fusion, ...).
    interpret: per-sample tensors with a leading batch dimension (e.g. ``gates``: (B, K, H) gate
        activations, modality k in the fusion's order); written out for the test split.
    """

    logits: torch.Tensor
    aux_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    interpret: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionInputs:
    """What a fusion is built for: each modality's feature size and shape, which modalities arrive as
    (B, T, D) sequences, and the validated modality order.

    ``shapes[m]`` is the feature shape before flattening (an image through the identity encoder keeps
    (C, H, W), so CentralNet / layer fusion can apply convolutions); ``dims[m]`` its flat size.
    """

    dims: Mapping[str, int]
    shapes: Mapping[str, tuple[int, ...]]
    sequences: frozenset[str]
    order: tuple[str, ...]

    @classmethod
    def of(
        cls,
        dims: Mapping[str, int],
        shapes: Mapping[str, Sequence[int]] | None = None,
        sequences: Sequence[str] = (),
        order: Sequence[str] | None = None,
    ) -> FusionInputs:
        """Validated inputs; ``order`` (``fusion.modality_order``) defaults to the sorted names."""
        if order is None:
            order = sorted(dims)
        elif sorted(order) != sorted(dims):
            raise ValueError(
                f"fusion.modality_order {list(order)} does not list exactly the modalities {sorted(dims)}"
            )
        shapes = shapes or {}
        return cls(
            dims={m: int(dims[m]) for m in order},
            shapes={m: tuple(int(s) for s in shapes.get(m, (dims[m],))) for m in order},
            sequences=frozenset(sequences),
            order=tuple(order),
        )

    def pooled(self) -> FusionInputs:
        """The same inputs after the model mean-pools every sequence to a vector."""
        return replace(self, sequences=frozenset())


class Fusion(nn.Module):
    """Base class: checks the modality count against ``min_modalities`` / ``max_modalities``.

    ``accepts_sequences``: the fusion takes (B, T, D) sequences with their masks (MulT, the hybrid,
    MMBT, cross-attention); every other fusion receives the masked mean (B, D) of a sequence.
    ``predicts``: a :class:`Predictor` (True) or a :class:`FusionLayer` (False); the model builder
    decides by it whether a head follows.
    """

    min_modalities: int = 1
    max_modalities: int | None = None
    accepts_sequences: bool = False
    predicts: bool = False

    def __init__(self, inputs: FusionInputs) -> None:
        super().__init__()
        order = list(inputs.order)
        name = type(self).__name__
        if len(order) < self.min_modalities:
            raise ValueError(f"{name} needs at least {self.min_modalities} modalities, got {order}")
        if self.max_modalities is not None and len(order) > self.max_modalities:
            raise ValueError(f"{name} takes at most {self.max_modalities} modalities, got {order}")
        self.inputs = inputs
        self.modalities: list[str] = order
        self.input_dims = dict(inputs.dims)

    @property
    def reads(self) -> list[str]:
        """The modalities whose features reach the output, in dataset order (all, unless overridden):
        ``src.robustness`` does not sweep the others, whose curves would be flat by construction."""
        return list(self.modalities)

    def interpretation(self) -> dict[str, Any]:
        """Learned, sample-independent quantities worth reporting (e.g. CentralNet alphas)."""
        return {}


class FusionLayer(Fusion):
    """Features -> ``(h, interpret)`` with ``h`` of size :attr:`out_dim`; no head, no task."""

    out_dim: int

    def forward(
        self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None = None
    ) -> LayerOutput:
        raise NotImplementedError


class Predictor(Fusion):
    """A method with outputs of its own: heads from ``make_head(in_dim)``, scores <-> logits by ``link``.

    ``make_head.num_outputs`` is the number of outputs every prediction has.
    """

    predicts = True

    def __init__(self, inputs: FusionInputs, make_head: HeadFactory, link: TaskLink) -> None:
        super().__init__(inputs)
        self.make_head = make_head
        self.link = link
        self.num_outputs = make_head.num_outputs

    def forward(
        self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        raise NotImplementedError
