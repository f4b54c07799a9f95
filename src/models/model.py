"""The plain model: per-modality encoders -> pooling -> fusion (+ head) -> :class:`FusionOutput`.

:class:`MultimodalModel` is an ``nn.Module`` with no Lightning in it: the LightningModule
(:mod:`src.models.module`) holds one and adds the loss, the epoch evaluation and the thresholds; the
bench, the notebook and the tests build it with :func:`build_model` from a config and a
:class:`~src.spec.DatasetSpec` and call it on a batch (the layout of facebookresearch/multimodal's
``late_fusion.py``: encoders and fusion composed in one module).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from src.models.compat import check_compatible
from src.models.encoders import build_encoder
from src.models.encoders.base import Encoder
from src.models.fusion import FusionOutput
from src.models.fusion.base import Fusion
from src.models.fusion.build import build_fusion, feature_shapes
from src.models.layers import masked_mean
from src.spec import DatasetSpec


class MultimodalModel(nn.Module):
    """Encode every modality, mean-pool sequences the fusion does not take as sequences, fuse.

    A sequence encoder's output reaches a fusion that declares ``accepts_sequences`` (MulT, the
    hybrid, MMBT) as (B, T, D) with its mask; any other fusion gets the masked mean (B, D).
    """

    def __init__(self, encoders: Mapping[str, Encoder], fusion: Fusion) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion

    def forward(self, batch: Mapping[str, Any]) -> FusionOutput:
        features, masks = {}, {}
        accepts_sequences = getattr(self.fusion, "accepts_sequences", False)
        for modality, encoder in self.encoders.items():
            feature, mask = encoder.encode(batch[modality], batch.get(f"{modality}_mask"))
            if encoder.returns_sequence and not accepts_sequences:
                feature = masked_mean(feature, mask)
            features[modality] = feature
            masks[modality] = mask
        return self.fusion(features, masks)


def build_model(
    spec: DatasetSpec,
    fusion: Mapping[str, Any],
    head: Mapping[str, Any],
    encoders: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> MultimodalModel:
    """The model for ``spec``'s modalities and task from plain config dicts.

    ``encoders`` maps a modality to its encoder config (``_target_`` + options; a missing one is the
    identity); ``fusion`` is a ``conf/fusion/`` dict and ``head`` a ``model.head`` dict. Encoders are
    built first, in the data's modality order, then the fusion (so seeded runs draw the same weights).
    """
    encoders = dict(encoders or {})
    unknown = sorted(set(encoders) - set(spec.modalities))
    if unknown:
        raise ValueError(
            f"model.encoders names modalities {unknown} that the dataset lacks; it has {sorted(spec.modalities)}"
        )
    check_compatible(spec, fusion, encoders)
    built = {m: build_encoder(encoders.get(m), s.shape, s.kind) for m, s in spec.modalities.items()}
    fused = build_fusion(
        fusion,
        input_dims={m: e.out_dim for m, e in built.items()},
        num_outputs=spec.num_outputs,
        head=dict(head),
        task=spec.task,
        input_shapes=feature_shapes(built),
    )
    return MultimodalModel(built, fused)
