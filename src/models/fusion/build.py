"""Building a fusion from its config dict: the one place that knows the fusion-wide options.

``fusion`` is the plain dict of ``conf/fusion/<name>.yaml``: ``_target_`` names the class, the rest
are its options, except two options every fusion accepts here:

- ``moddrop_p`` (e.g. ``fusion=concat +fusion.moddrop_p=0.25``): wrap the fusion in
  :class:`~src.models.fusion.moddrop.ModDropFusion` (Neverova et al. 2016), which drops whole
  modalities with probability ``p`` during training.
- context values a fusion class asks for in ``context_args`` (``task``: the dataset's task, for
  late fusions that combine probabilities; ``input_shapes``: each modality's feature shape before
  flattening, for CentralNet / layer fusion conv branches on images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import get_class

from src.models.encoders.base import Encoder
from src.models.fusion.base import Fusion
from src.models.fusion.moddrop import ModDropFusion


def feature_shapes(encoders: Mapping[str, Encoder]) -> dict[str, list[int]]:
    """Shape of each modality's fusion input before flattening (``Encoder.feature_shape``).

    An image through the identity encoder keeps its (C, H, W) shape, and so do a CNN's last conv maps
    (so a fusion can apply convolutions to them); any other encoder output is a vector (out_dim,).
    """
    return {modality: [int(s) for s in encoder.feature_shape] for modality, encoder in encoders.items()}


def build_fusion(
    spec: Mapping[str, Any],
    input_dims: Mapping[str, int],
    num_outputs: int,
    head: Mapping[str, Any],
    task: str,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Fusion:
    """Instantiate ``spec`` (with ``_target_``), giving it the context it declares, wrapped in ModDrop if asked."""
    options = dict(spec)
    if "_target_" not in options:
        raise ValueError(f"the fusion config {sorted(options)} has no _target_")
    shapes = dict(input_shapes or {m: [d] for m, d in input_dims.items()})
    moddrop_p = float(options.pop("moddrop_p", 0.0) or 0.0)
    if moddrop_p > 0:
        return ModDropFusion(input_dims, num_outputs, head, task, shapes, inner=options, p=moddrop_p)
    fusion_cls = get_class(options.pop("_target_"))
    context = {"task": task, "input_shapes": shapes}
    for key in getattr(fusion_cls, "context_args", ()):
        options[key] = context[key]
    return fusion_cls(input_dims=dict(input_dims), num_outputs=num_outputs, head=dict(head), **options)
