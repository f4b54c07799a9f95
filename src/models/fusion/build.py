"""Building a fusion from its config dict: the one place that knows the fusion-wide options.

``fusion`` is the plain dict of ``conf/fusion/<name>.yaml``: ``_target_`` names the class, the rest
are its options, except two that every fusion accepts and the model builder takes out first
(:func:`split_fusion_config`):

- ``modality_order``: the order the fusion walks the modalities in (null = sorted names), part of
  the :class:`~src.models.fusion.base.FusionInputs`;
- ``moddrop_p`` (e.g. ``fusion=concat +fusion.moddrop_p=0.25``): whole modalities dropped with that
  probability while training, before the fusion (:class:`~src.models.fusion.moddrop.ModalityDropout`).

The class's ``predicts`` attribute says what it is: a fusion layer gets only its inputs and options
and the model puts ``make_head(fusion.out_dim)`` after it; a predictor also gets the head factory and
the task link.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import get_class
from torch import nn

from src.models.fusion.base import Fusion, FusionInputs
from src.models.heads import HeadFactory
from src.tasks import TaskLink

#: options of every fusion config that are not the fusion class's own
FUSION_WIDE_OPTIONS = ("modality_order", "moddrop_p")


def split_fusion_config(
    spec: Mapping[str, Any],
) -> tuple[type[Fusion], dict[str, Any], list[str] | None, float]:
    """The class ``spec`` names (``_target_``), its own options, and the fusion-wide ones: the
    modality order and the ModDrop probability."""
    options = dict(spec)
    if "_target_" not in options:
        raise ValueError(f"the fusion config {sorted(options)} has no _target_")
    fusion_cls = get_class(options.pop("_target_"))
    order = options.pop("modality_order", None)
    moddrop_p = float(options.pop("moddrop_p", 0.0) or 0.0)
    return fusion_cls, options, (None if order is None else list(order)), moddrop_p


def build_fusion(
    fusion_cls: type[Fusion],
    options: Mapping[str, Any],
    inputs: FusionInputs,
    make_head: HeadFactory,
    link: TaskLink,
) -> tuple[Fusion, nn.Module | None]:
    """``fusion_cls`` with its ``options`` and the head after it: a fusion layer's
    ``make_head(out_dim)``, or None for a predictor (which has its own outputs)."""
    if not getattr(fusion_cls, "accepts_sequences", False):
        inputs = inputs.pooled()
    if getattr(fusion_cls, "predicts", False):
        return fusion_cls(inputs, make_head, link, **options), None
    fusion = fusion_cls(inputs, **options)
    return fusion, make_head(fusion.out_dim)
