"""``fusion=hybrid_early_late``: early GMU fusion combined with late MuLT-GMU fusion (Moreno 2021).

Early: every projected sequence is averaged over its real steps and a K-input GMU fuses them
with the extras (h_early). Late: MuLT-GMU's fused per-target summaries (h_late, see
:mod:`src.models.fusion.mult`). A final bimodal GMU, z * tanh(W_e h_early) +
(1 - z) * tanh(W_l h_late), combines the two before the residual block and the head.

Interpretation: ``gates`` (B, K, H) of the late MuLT-GMU, ``gates_early`` (B, K, H) of the
early GMU, both in ``self.modalities`` order, and ``gates_final`` (B, 2, H) = [z, 1 - z] for
[early, late].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from src.models.fusion.base import FusionOutput
from src.models.fusion.gmu import GatedMultimodalUnit
from src.models.fusion.mult import MulTFusion
from src.models.fusion.sequence import ResidualBlock
from src.models.heads import build_head
from src.models.module import masked_mean


class HybridEarlyLateFusion(MulTFusion):
    """See the module docstring; options are MulT's plus ``early_hidden`` and ``final_hidden``."""

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        early_hidden: int = 128,
        final_hidden: int = 128,
        **mult_options: Any,
    ) -> None:
        mult_options["combine"] = "gmu"
        super().__init__(input_dims, num_outputs, head, **mult_options)
        dims = [self.d_model if m in self.sequences else self.input_dims[m] for m in self.modalities]
        self.early = GatedMultimodalUnit(dims, early_hidden, tied=False)
        self.final = GatedMultimodalUnit([early_hidden, self.fused_dim], final_hidden, tied=True)
        self.residual = ResidualBlock(final_hidden, mult_options.get("out_dropout", 0.0))
        self.head = build_head(head, final_hidden, num_outputs)

    def forward(self, features, masks=None) -> FusionOutput:
        sequences, sequence_masks, extras = self.project(features, masks)
        late, interpret = self.late_representation(sequences, sequence_masks, extras)
        pooled = {m: masked_mean(sequences[m], sequence_masks[m]) for m in self.sequences}
        early, early_gates = self.early([pooled[m] if m in pooled else extras[m] for m in self.modalities])
        fused, final_gates = self.final([early, late])
        logits = self.head(self.out_dropout(self.residual(fused)))
        interpret = {**interpret, "gates_early": early_gates, "gates_final": final_gates}
        return FusionOutput(logits=logits, interpret=interpret)
