"""The plain model: encoders -> modality dropout -> pooling -> fusion layer + head, or a predictor.

:class:`MultimodalModel` is an ``nn.Module`` with no Lightning in it: the LightningModule
(:mod:`src.models.module`) holds one and adds the loss, the epoch evaluation and the thresholds; the
bench, the notebook and the tests build it with :func:`build_model` from a config and a
:class:`~src.spec.DatasetSpec` and call it on a batch (the layout of facebookresearch/multimodal's
``late_fusion.py``: encoders, fusion and head composed in one module, the fusion returning a tensor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from src.models.compat import check_compatible
from src.models.encoders import build_encoder
from src.models.encoders.base import Encoder
from src.models.fusion.base import Fusion, FusionInputs, FusionOutput
from src.models.fusion.build import build_fusion, split_fusion_config
from src.models.fusion.moddrop import ModalityDropout
from src.models.heads import HeadFactory
from src.models.layers import masked_mean
from src.spec import DatasetSpec, unit_pixels
from src.tasks import TaskLink


def fusion_inputs(encoders: Mapping[str, Encoder], order: list[str] | None = None) -> FusionInputs:
    """What the encoders hand a fusion: each output's flat size and shape before flattening
    (``Encoder.feature_shape``: an image through the identity encoder keeps (C, H, W), as do a CNN's
    last conv maps), and which of them are sequences."""
    return FusionInputs.of(
        dims={m: e.out_dim for m, e in encoders.items()},
        shapes={m: [int(s) for s in e.feature_shape] for m, e in encoders.items()},
        sequences=[m for m, e in encoders.items() if e.returns_sequence],
        order=order,
    )


class MultimodalModel(nn.Module):
    """Encode every modality, drop whole modalities (ModDrop, training only), mean-pool sequences the
    fusion does not take as sequences, fuse; a fusion layer's ``h`` goes through ``head``.

    A sequence encoder's output reaches a fusion that declares ``accepts_sequences`` (MulT, the
    hybrid, MMBT) as (B, T, D) with its mask; any other fusion gets the masked mean (B, D).
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        fusion: Fusion,
        head: nn.Module | None = None,
        modality_dropout: ModalityDropout | None = None,
    ) -> None:
        super().__init__()
        if (head is None) != fusion.predicts:
            raise ValueError(
                f"{type(fusion).__name__} is a {'predictor' if fusion.predicts else 'fusion layer'}: "
                f"it takes {'no head' if fusion.predicts else 'a head'}"
            )
        self.encoders = nn.ModuleDict(dict(encoders))
        self.modality_dropout = modality_dropout
        self.fusion = fusion
        self.head = head

    def forward(self, batch: Mapping[str, Any]) -> FusionOutput:
        return self.fuse(*self.encode(batch))

    def encode(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every modality's encoder output and mask (None for vectors); uint8 pixels enter as [0, 1] floats."""
        features, masks = {}, {}
        for modality, encoder in self.encoders.items():
            features[modality], masks[modality] = encoder.encode(
                unit_pixels(batch[modality]), batch.get(f"{modality}_mask")
            )
        return features, masks

    def fuse(self, features: Mapping[str, Any], masks: Mapping[str, Any] | None = None) -> FusionOutput:
        """Encoded features -> modality dropout -> pooling -> fusion (+ head) -> :class:`FusionOutput`."""
        masks = dict(masks or {})
        if self.modality_dropout is not None:
            features = self.modality_dropout(features)
        if not self.fusion.accepts_sequences:
            features = {
                m: masked_mean(x, masks.get(m)) if self.encoders[m].returns_sequence else x
                for m, x in features.items()
            }
        if self.head is None:
            return self.fusion(features, masks)
        fused, interpret = self.fusion(features, masks)
        return FusionOutput(logits=self.head(fused), interpret=interpret)


def build_model(
    spec: DatasetSpec,
    fusion: Mapping[str, Any],
    head: Mapping[str, Any],
    encoders: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> MultimodalModel:
    """The model for ``spec``'s modalities and task from plain config dicts.

    ``encoders`` maps a modality to its encoder config (``_target_`` + options; a missing one is the
    identity); ``fusion`` is a ``conf/fusion/`` dict and ``head`` a ``model.head`` dict. Weights are
    drawn in a fixed order so that seeded runs reproduce: the encoders (in the data's modality order),
    then the fusion, then the head.
    """
    encoders = dict(encoders or {})
    unknown = sorted(set(encoders) - set(spec.modalities))
    if unknown:
        raise ValueError(
            f"model.encoders names modalities {unknown} that the dataset lacks; it has {sorted(spec.modalities)}"
        )
    check_compatible(spec, fusion, encoders)
    built = {m: build_encoder(encoders.get(m), s.shape, s.kind) for m, s in spec.modalities.items()}
    fusion_cls, options, order, moddrop_p = split_fusion_config(fusion)
    inputs = fusion_inputs(built, order)
    make_head, link = HeadFactory(head, spec.num_outputs), TaskLink(spec.task)
    fused, fused_head = build_fusion(fusion_cls, options, inputs, make_head, link)
    dropout = ModalityDropout(fused.modalities, moddrop_p) if moddrop_p else None
    return MultimodalModel(built, fused, fused_head, dropout)
