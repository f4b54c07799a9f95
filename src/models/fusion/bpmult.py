"""BPMuLT, the Biprojection Multimodal Transformer (Moreno-Galvan et al.), and its Table 2 ablations.

Paper: ``../shared/reference/papers/003_4d74a6aca0cdfc29.txt`` (Sec. 4-6, Eq. 2-27, Fig. 9,
Table 2). With sequence modalities M_1..M_K (K >= 3; L, V, A in the paper) projected to ``d_model``
by :class:`~src.models.fusion.sequence.SequenceFusion`:

1. Single projections S(a->b) = CT(query b, source a) for every ordered pair a != b (Sec. 4.1,
   "precisely the same in the MuLT model"): ``num_layers`` crossmodal layers.
2. Biprojections B(a->b=>t) = CT(query t, source S(a->b)) for every target t and ordered pair
   (a, b) of the other modalities (Sec. 4.2-4.3, Eq. 2-8): "stacking again D = 3, CT layers"
   (``num_layers``, default 3 for both levels: the paper names the first level's last state
   Z^[D] with the same D, Eq. 2 and 25). Eq. 7-8 are implemented as MulT's released code, see
   :mod:`src.models.fusion.transformer`.
3. Prediction tokens (Sec. 4.4): "last time step (last token) is used for prediction", the first
   token for the [CLS]-led text ("we use the first token ... because this is the corresponding
   attention of the [CLS] token"): the modality's ``summary_tokens`` entry, for S(a->b) that of b.
4. Residual connections, Eq. 25-26: L'_1 = [B(a->b=>t)]_last + [S(a->b)]_last, i.e. each
   biprojection token gets the token of the single projection that fed it.
5. Top FGMU per target, Eq. 9-12 over (L'_1, L'_2): h_i = tanh(W_i x_i), one gate
   z = sigmoid(W_z [x_1; x_2]) and H_t = z h_1 x_1 + (1 - z) h_2 x_2 (tied, z and 1 - z); for
   K > 3 a target has (K-1)(K-2) biprojections and the k-input form of Eq. 20-22 (one gate per
   input) applies -- paper: silent on K > 3 (it has K = 3); ours: Eq. 20-22.
6. Middle FGMU, Eq. 27: H'_t = FGMU([S(a->b)]_last, [S(b->a)]_last) + H_t, over the single
   projections that feed t's biprojections ("The Middle FGMU fuses the first crossmodal projections
   to add them to the last biprojection"; Sec. 7.3 for text: "features of (A->V) and (A->V)->L are
   mainly used"). Eq. 27 prints one argument, [Z_{M1->M2}]; we read the FGMU's two inputs as
   that token and its mirror [Z_{M2->M1}], as the top FGMU pairs L'_1 and L'_2.
7. Parallel branch, Eq. 13-22: each projected sequence reduced to S_m = ``parallel_len`` steps by a
   learned (S_m x S_M) matrix (Eq. 13; ours: S_M = the batch's padded length, a column slice of a
   (S_m x ``parallel_max_len``) matrix; padded steps are zero and add nothing), sqrt(d)-scaled
   sinusoidal positions "defined analogously as in the first crossmodal section", D =
   ``parallel_layers`` attention layers whose keys are the layer-0 sequence as Eq. 18 prints
   ("SA_M[LN(Z_M^[i-1]), LN(Z_M^[0])]"), then "the first sequence token of Z_L ... and the last
   of Z_V, Z_A" (ours: first where the modality's ``summary_tokens`` is first -- the paper's L
   is BERT with [CLS] --, last otherwise), fused by a k-input FGMU (Eq. 20-22) -> H_P.
8. Final GMU, Eq. 23: O = sum_i z_i tanh(W_i H_i) over H'_t (modality order), the extras H_E and
   H_P, with "W_{1,2,3,4,5} in R^{c x d}" -- c = the number of outputs, so O are class scores --
   and one gate per input, no biases (none printed). Paper: H_E in R^d, silent on how a
   4096-d poster gets there; ours: W_E in R^{c x d_E} on the extra's own width (for c <= d the
   same maps as a projection to d followed by W_5).
9. Output, Eq. 24: O_f = W_f1 dropout(ReLU(W_f2 O)) + O with W_f1, W_f2 in R^{c x c}, no biases
   (none printed); O_f are the logits. ``model.head`` is not used (the paper has no layer after
   Eq. 24; a warning says so).

``fusion.ablation`` (Table 2, Sec. 6.1) removes exactly what the paper removes (see ``PARTS``):

- ``no_parallel``: "the same architecture removing ... the reduced parallel fusion" (no H_P);
- ``no_fgmu``: the top FGMU ("fusing one modality's different information with an FGMU ...
  removing it and passing the information directly to the GMU"): each target's tokens L'_i enter
  the final GMU as inputs of their own; the middle FGMU stays and, with no H_t to be added to,
  enters the final GMU as its own input (paper: silent on where it goes; ours: the GMU's weighted
  sum takes the place of Eq. 27's +);
- ``no_fgmu_middle``: "the Fusion GMU in the middle" (Eq. 27): H'_t = H_t;
- ``no_rc``: "the residual links from the first crossmodal projections to the biprojection"
  (Eq. 25-26): L'_i = L_i; the middle FGMU stays (it has its own row);
- ``no_fgmu_nor_rc``: ``no_fgmu`` and ``no_rc`` together ("No-FGMU modules nor Residual
  Connections"; RC as the No-RC row defines it);
- ``with_transformer``: "substituting the FGMU at the top with a transformer that receives a
  concatenated vector": ``self_layers`` self-attention layers over the target's L'_i stacked as
  a short sequence, mean of its outputs -> H_t (paper: silent on the axis of the concatenation
  and on the read-out; ours: along the sequence, so that attention has positions to weigh and the
  width stays d for Eq. 27's sum; the mean is symmetric in the inputs as the FGMU's sum is);
- ``translating``: biprojections with "a self-attention module followed by a normalization layer"
  on the target before the crossmodal attention (Fig. 11);
- ``all_transformers``: on "the BPMult-no-parallel model" (Fig. 9), "all the information from the
  biprojections and the single projections to the top GMU": every B(a->b=>t) and S(a->b) token is
  a final-GMU input; no FGMU, no residual connection, no parallel branch.

Interpretation (per sample, batch first): ``gates`` (B, K, c) of the final GMU for the modalities in
``self.modalities`` order (only where each modality has one input H'_t), ``gates_parallel`` (B, c),
``gates_top`` (B, N, c) over all final-GMU inputs (names in ``interpretation()``), and the FGMU
gates ``fgmu_bi_<t>``, ``fgmu_middle_<t>``, ``fgmu_parallel`` (B, n, d; for two inputs [z, 1 - z]).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import permutations
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, FusionOutput
from src.models.fusion.fgmu import FusionGatedUnit
from src.models.fusion.gmu import GatedMultimodalUnit
from src.models.fusion.mult import pair_key
from src.models.fusion.sequence import ResidualBlock, SequenceFusion
from src.models.fusion.transformer import CrossmodalTransformer
from src.models.heads import HeadFactory
from src.models.layers import zero_padding
from src.tasks import TaskLink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parts:
    """Which parts of BPMuLT a variant keeps (Table 2 removes one or two of them)."""

    parallel: bool = True  # Eq. 13-22, H_P
    top: str = "fgmu"  # Eq. 9-12 per target: "fgmu" | "transformer" | "none" (tokens to the GMU)
    middle: bool = True  # Eq. 27
    residual: bool = True  # Eq. 25-26
    translating: bool = False  # Fig. 11 biprojections
    all_projections: bool = False  # Fig. 9: every S and B token into the final GMU


PARTS: dict[str, Parts] = {
    "none": Parts(),
    "no_parallel": Parts(parallel=False),
    "no_fgmu": Parts(top="none"),
    "no_fgmu_middle": Parts(middle=False),
    "no_rc": Parts(residual=False),
    "no_fgmu_nor_rc": Parts(top="none", residual=False),
    "with_transformer": Parts(top="transformer"),
    "translating": Parts(translating=True),
    "all_transformers": Parts(parallel=False, top="none", middle=False, residual=False, all_projections=True),
}
ABLATIONS = tuple(PARTS)


def fusion_gated_unit(dim: int, num_inputs: int, residual_product: bool = True) -> GatedMultimodalUnit:
    """The FGMU over ``num_inputs`` d-wide tokens, no biases (BPMuLT Eq. 9-12 / 20-22).

    Two inputs: the tied form of Eq. 11-12, one gate z and 1 - z. More: Eq. 20-22, one gate
    z_i = sigmoid(W_z^i [x_1; ...; x_k]) per input. h = sum_i z_i * tanh(W_i x_i) * x_i (the residual
    product); ``residual_product=False`` gives the plain GMU sum_i z_i * tanh(W_i x_i). Called as
    ``fgmu(inputs) -> (h (B, d), gates (B, n, d))``.
    """
    tied = num_inputs == 2
    if residual_product:
        return FusionGatedUnit([dim] * num_inputs, dim, tied=tied, bias=False, project="identity")
    return GatedMultimodalUnit([dim] * num_inputs, dim, tied=tied, bias=False)


class TokenTransformer(nn.Module):
    """``with_transformer``'s replacement of the top FGMU: self-attention over the stacked tokens, mean."""

    def __init__(self, transformer: CrossmodalTransformer) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, None]:
        return self.transformer(torch.stack(list(inputs), dim=1), None).mean(dim=1), None


class ParallelBranch(nn.Module):
    """BPMuLT's simple parallel branch for one modality (Eq. 13-19): reduction, positions, attention, one token.

    X^ = W_m X with W_m the first T columns of a learned (S_m, T_max) matrix (padded steps of X are
    zero, so they add nothing); ``encoder`` embeds X^ (sqrt(d) scale, sinusoidal positions) and runs
    its layers with the embedded X^ as the keys of every layer (Eq. 18); the branch returns the
    encoder's first (``token="first"``) or last (``"last"``) step of the S_m.
    """

    def __init__(self, reduced_len: int, max_len: int, token: str, encoder: CrossmodalTransformer) -> None:
        super().__init__()
        self.max_len = max_len
        self.token = token
        self.reduction = nn.Parameter(torch.randn(reduced_len, max_len) / max_len**0.5)
        self.encoder = encoder

    def reduce(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 13: (B, T, d) -> (B, S_m, d)."""
        if x.shape[1] > self.max_len:
            raise ValueError(
                f"parallel branch: sequence of {x.shape[1]} steps exceeds fusion.parallel_max_len={self.max_len}"
            )
        return torch.einsum("st,btd->bsd", self.reduction[:, : x.shape[1]].to(x.dtype), zero_padding(x, mask))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x, mask)
        encoded = self.encoder(reduced, None, reduced, None)
        return encoded[:, 0] if self.token == "first" else encoded[:, -1]


class BPMuLTFusion(SequenceFusion):
    """``fusion=bpmult``; see the module docstring for the architecture and the ablations.

    A predictor (``predicts``): its final GMU emits the class scores, so ``make_head`` only gives
    their count.
    """

    min_sequences = 3
    predicts = True

    def __init__(
        self,
        inputs: FusionInputs,
        make_head: HeadFactory,
        link: TaskLink,
        ablation: str = "none",
        d_model: int = 30,
        num_heads: int = 5,
        num_layers: int = 3,
        self_layers: int = 3,
        attn_dropout: float = 0.1,
        relu_dropout: float = 0.1,
        res_dropout: float = 0.1,
        embed_dropout: float = 0.25,
        out_dropout: float = 0.0,
        residual_product: bool = True,
        parallel_len: int = 32,
        parallel_max_len: int = 1024,
        parallel_layers: int = 3,
        extras: Sequence[str] = (),
        kernel_sizes: int | Mapping[str, int] = 1,
        summary_tokens: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(inputs, d_model, extras, kernel_sizes, summary_tokens)
        self.link = link
        self.num_outputs = num_outputs = make_head.num_outputs
        if ablation not in PARTS:
            raise ValueError(f"fusion.ablation={ablation!r}: expected one of {ABLATIONS}")
        self.ablation = ablation
        self.parts = parts = PARTS[ablation]
        self.head_config = dict(make_head.spec)
        log.warning(
            "fusion=bpmult ends in BPMuLT Eq. 24's %d class scores; model.head %s is not used",
            num_outputs,
            self.head_config,
        )

        def transformer(layers: int, decoder: bool = False, cross: bool = True) -> CrossmodalTransformer:
            return CrossmodalTransformer(
                d_model,
                layers,
                num_heads,
                attn_dropout=attn_dropout,
                relu_dropout=relu_dropout,
                res_dropout=res_dropout,
                embed_dropout=embed_dropout,
                decoder=decoder,
                cross=cross,
            )

        self.pairs = list(permutations(self.sequences, 2))
        self.triples = [(a, b, t) for t in self.sequences for a, b in self.pairs if t not in (a, b)]
        self.single = nn.ModuleDict({pair_key(a, b): transformer(num_layers) for a, b in self.pairs})
        self.bi = nn.ModuleDict(
            {self.bi_key(*abt): transformer(num_layers, decoder=parts.translating) for abt in self.triples}
        )
        n_bi = len(self.triples) // len(self.sequences)
        if parts.top == "fgmu":
            self.fuse_bi = nn.ModuleDict(
                {t: fusion_gated_unit(d_model, n_bi, residual_product) for t in self.sequences}
            )
        elif parts.top == "transformer":
            self.fuse_bi = nn.ModuleDict(
                {t: TokenTransformer(transformer(self_layers, cross=False)) for t in self.sequences}
            )
        if parts.middle:
            self.fuse_middle = nn.ModuleDict(
                {t: fusion_gated_unit(d_model, n_bi, residual_product) for t in self.sequences}
            )
        if parts.parallel:
            self.parallel = nn.ModuleDict(
                {
                    m: ParallelBranch(
                        parallel_len, parallel_max_len, self.summary_tokens[m], transformer(parallel_layers)
                    )
                    for m in self.sequences
                }
            )
            self.fuse_parallel = fusion_gated_unit(d_model, len(self.sequences), residual_product)

        self.top_inputs = []
        for m in self.modalities:
            if m in self.extras:
                self.top_inputs.append(m)
            elif parts.all_projections:
                self.top_inputs += [f"B_{self.bi_key(*abt)}" for abt in self.triples if abt[2] == m]
                self.top_inputs += [f"S_{pair_key(s, m)}" for s in self.sequences if s != m]
            elif parts.top == "none":
                self.top_inputs += [f"B_{self.bi_key(*abt)}" for abt in self.triples if abt[2] == m]
                self.top_inputs += [f"M_{m}"] if parts.middle else []
            else:
                self.top_inputs.append(f"H_{m}")
        if parts.parallel:
            self.top_inputs.append("H_parallel")
        dims = [self.input_dims[name] if name in self.extras else d_model for name in self.top_inputs]
        self.top = GatedMultimodalUnit(dims, num_outputs, tied=False, bias=False)
        self.residual = ResidualBlock(num_outputs, out_dropout, bias=False)

    @staticmethod
    def bi_key(a: str, b: str, t: str) -> str:
        """ModuleDict key of the biprojection B(a->b=>t)."""
        return f"{a}_to_{b}_to_{t}"

    def interpretation(self) -> dict[str, Any]:
        return {
            "ablation": self.ablation,
            "top_gmu_inputs": list(self.top_inputs),
            "head": f"not used: the outputs are Eq. 24's O_f (configured: {self.head_config})",
        }

    def forward(self, features, masks=None) -> FusionOutput:
        x, mask, extras = self.project(features, masks)
        parts = self.parts
        interpret: dict[str, torch.Tensor] = {}
        single = {(a, b): self.single[pair_key(a, b)](x[b], mask[b], x[a], mask[a]) for a, b in self.pairs}
        single_tokens = {(a, b): self.summary(b, z, mask[b]) for (a, b), z in single.items()}
        bi_tokens: dict[tuple[str, str, str], torch.Tensor] = {}
        for a, b, t in self.triples:
            projected = self.bi[self.bi_key(a, b, t)](x[t], mask[t], single[a, b], mask[b])
            bi_tokens[a, b, t] = self.summary(t, projected, mask[t])
            if parts.residual:  # Eq. 25-26
                bi_tokens[a, b, t] = bi_tokens[a, b, t] + single_tokens[a, b]

        top: dict[str, torch.Tensor] = dict(extras)
        for t in self.sequences:
            own = [abt for abt in self.triples if abt[2] == t]
            if parts.all_projections:
                top.update({f"B_{self.bi_key(*abt)}": bi_tokens[abt] for abt in own})
                top.update({f"S_{pair_key(s, t)}": single_tokens[s, t] for s in self.sequences if s != t})
                continue
            middle = None
            if parts.middle:  # Eq. 27
                middle, gates = self.fuse_middle[t]([single_tokens[a, b] for a, b, _ in own])
                self._record(interpret, f"fgmu_middle_{t}", gates)
            if parts.top == "none":
                top.update({f"B_{self.bi_key(*abt)}": bi_tokens[abt] for abt in own})
                if middle is not None:
                    top[f"M_{t}"] = middle
                continue
            fused, gates = self.fuse_bi[t]([bi_tokens[abt] for abt in own])  # Eq. 9-12
            self._record(interpret, f"fgmu_bi_{t}", gates)
            top[f"H_{t}"] = fused if middle is None else fused + middle
        if parts.parallel:
            summaries = [self.parallel[m](x[m], mask[m]) for m in self.sequences]
            top["H_parallel"], gates = self.fuse_parallel(summaries)  # Eq. 20-22
            self._record(interpret, "fgmu_parallel", gates)

        scores, gates = self.top([top[name] for name in self.top_inputs])  # Eq. 23
        interpret["gates_top"] = gates
        if len(self.top_inputs) == len(self.modalities) + parts.parallel:
            interpret["gates"] = gates[:, : len(self.modalities)]
        if parts.parallel:
            interpret["gates_parallel"] = gates[:, -1]
        return FusionOutput(logits=self.residual(scores), interpret=interpret)  # Eq. 24

    @staticmethod
    def _record(interpret: dict[str, torch.Tensor], name: str, gates: torch.Tensor | None) -> None:
        if gates is not None:
            interpret[name] = gates
