"""``fusion=hybrid_early_late``: our reading of Moreno 2021's hybrid early-late fusion.

The report (``../shared/reference/papers/002_389f6b24beff01b6.txt``) prints no equations. What it
says of the design: "we propose a novel architecture that takes this architecture [MuLT-GMU, its
reference 7] ... and we add a hybrid fusion method to get a prediction of a movie genre" (Sec.
4.2); "Part in color corresponds to the exact architecture on [7]" (Fig. 1, whose drawing is not in
our copy); "We have proposed a novel way to fuse data with a GMU on early fusion and a hybrid
fusion to get a prediction" (Sec. 6); the idea comes from its reference 5, where "a hybrid
combination of features improves emotion detection by remembering original data" (Sec. 2).

Paper: silent on every layer below; ours, as one reading of those sentences:

- early: every projected sequence averaged over its real steps and a K-input GMU over them and the
  extras -> h_early (the "GMU on early fusion", fed the "original data" before any crossmodal
  attention);
- late: MuLT-GMU's fused per-target summaries -> h_late (the exact architecture of [7], see
  :mod:`src.models.fusion.mult`);
- hybrid: a bimodal tied GMU, z * tanh(W_e h_early) + (1 - z) * tanh(W_l h_late), then MulT's
  residual block (the model's head follows).

Interpretation: ``gates`` (B, K, H) of the late MuLT-GMU, ``gates_early`` (B, K, H) of the
early GMU, both in ``self.modalities`` order, and ``gates_final`` (B, 2, H) = [z, 1 - z] for
[early, late].
"""

from __future__ import annotations

from typing import Any

from src.models.fusion.base import FusionInputs, LayerOutput
from src.models.fusion.gmu import GatedMultimodalUnit
from src.models.fusion.mult import MulTFusion
from src.models.fusion.sequence import ResidualBlock
from src.models.layers import masked_mean


class HybridEarlyLateFusion(MulTFusion):
    """See the module docstring; options are MulT's plus ``early_hidden`` and ``final_hidden``."""

    def __init__(
        self,
        inputs: FusionInputs,
        early_hidden: int = 128,
        final_hidden: int = 128,
        **mult_options: Any,
    ) -> None:
        mult_options["combine"] = "gmu"
        super().__init__(inputs, **mult_options)
        dims = [self.d_model if m in self.sequences else self.input_dims[m] for m in self.modalities]
        self.early = GatedMultimodalUnit(dims, early_hidden, tied=False)
        self.final = GatedMultimodalUnit([early_hidden, self.fused_dim], final_hidden, tied=True)
        self.residual = ResidualBlock(final_hidden, mult_options.get("out_dropout", 0.0))
        self.out_dim = final_hidden

    def forward(self, features, masks=None) -> LayerOutput:
        sequences, sequence_masks, extras = self.project(features, masks)
        late, interpret = self.late_representation(sequences, sequence_masks, extras)
        pooled = {m: masked_mean(sequences[m], sequence_masks[m]) for m in self.sequences}
        early, early_gates = self.early([pooled[m] if m in pooled else extras[m] for m in self.modalities])
        fused, final_gates = self.final([early, late])
        interpret = {**interpret, "gates_early": early_gates, "gates_final": final_gates}
        return self.out_dropout(self.residual(fused)), interpret
