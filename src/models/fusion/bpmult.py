"""BPMuLT, the Biprojection Multimodal Transformer (Moreno-Galvan et al.), and its ablations.

With sequence modalities M1..MK (K >= 3; L, V, A in the paper) projected to ``d_model``:

- single projections S(a->b) = CT(query b, source a) for every ordered pair a != b (MulT's
  crossmodal transformer);
- biprojections B(a->b=>t) = CT(query t, source S(a->b)) for every target t and ordered pair (a, b)
  of the other modalities (Eq. 2-8); for K = 3 each target has the two biprojections
  M1->M2=>M3 and M2->M1=>M3. Each is summarised by the target's prediction token (first token
  for a [CLS]-led text target, last real step otherwise);
- per target, an FGMU fuses the biprojection tokens (Eq. 9-12): h_i = tanh(W_i x_i),
  z_i = sigmoid(W_zi [x_1; ...; x_n]), h = sum_i z_i * h_i * x_i (the residual product);
- the middle FGMU fuses the single-projection tokens into the target, S(s->t) for s != t, and the
  two residual connections add it and the target's own projected token to the target's
  representation: H_t = FGMU_bi + FGMU_middle + x_t (Eq. 25-27);
- the parallel branch (Eq. 13-22): every sequence reduced to S_m steps by a learned (S_m x T_max)
  matrix over its zero-padded steps, learned positional embeddings, ``parallel_layers``
  self-attention layers, mean over the S_m steps, an FGMU over the K summaries -> H_P;
- a final GMU over H_t (in modality order), the extras H_E and H_P (Eq. 23), the residual block
  (Eq. 24) and the configured head.

``fusion.ablation`` selects a variant of BPMuLT Table 2:
``no_parallel`` (no H_P), ``no_fgmu`` (every FGMU replaced by concatenation + linear),
``no_fgmu_middle`` (no middle FGMU; the input residual stays), ``no_rc`` (no residual connections;
the middle FGMU, which only enters through one, goes with them), ``no_fgmu_nor_rc`` (both),
``with_transformer`` (a self-attention transformer over every biprojection before its token),
``translating`` (decoder-style biprojections: self-attention + LayerNorm on the target before the
crossmodal attention), ``all_transformers`` (every single-projection and biprojection token goes
straight into the final GMU, no per-target fusion).

Interpretation (per sample, batch first): ``gates`` (B, K, H) of the final GMU for the modalities in
``self.modalities`` order (not with ``all_transformers``), ``gates_parallel`` (B, H), ``gates_top``
(B, N, H) over all final-GMU inputs (names in ``interpretation()``), and ``fgmu_bi_<t>``,
``fgmu_middle_<t>``, ``fgmu_parallel`` (B, n, d) FGMU gates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import permutations
from typing import Any

import torch
from torch import nn

from src.models.fusion.base import FusionOutput
from src.models.fusion.fgmu import FusionGatedUnit
from src.models.fusion.gmu import GatedMultimodalUnit
from src.models.fusion.mult import pair_key
from src.models.fusion.sequence import ResidualBlock, SequenceFusion
from src.models.fusion.transformer import CrossmodalBlock, CrossmodalTransformer, zero_padding
from src.models.heads import build_head

ABLATIONS = (
    "none",
    "no_parallel",
    "no_fgmu",
    "no_fgmu_middle",
    "no_rc",
    "no_fgmu_nor_rc",
    "with_transformer",
    "translating",
    "all_transformers",
)


def fusion_gated_unit(dim: int, num_inputs: int, residual_product: bool = True) -> GatedMultimodalUnit:
    """Gated fusion of ``num_inputs`` same-width tokens with the residual product (BPMuLT Eq. 9-12).

    h_i = tanh(W_i x_i), z_i = sigmoid(W_zi [x_1; ...; x_n]), h = sum_i z_i * h_i * x_i: the
    Fusion-GMU of :mod:`src.models.fusion.fgmu` with one gate per input, no biases and the inputs
    used as they are (all streams share the model width); ``residual_product=False`` gives the plain
    GMU sum_i z_i * h_i. Called as ``fgmu(inputs) -> (h (B, d), gates (B, n, d))``.
    """
    if residual_product:
        return FusionGatedUnit([dim] * num_inputs, dim, tied=False, bias=False, project="identity")
    return GatedMultimodalUnit([dim] * num_inputs, dim, tied=False, bias=False)


class ConcatLinear(nn.Module):
    """The ``no_fgmu`` replacement of an FGMU: W [x_1; ...; x_n] (no gates)."""

    def __init__(self, dim: int, num_inputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_inputs * dim, dim)

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, None]:
        return self.linear(torch.cat(list(inputs), dim=-1)), None


class ParallelBranch(nn.Module):
    """BPMuLT's simple parallel branch for one modality (Eq. 13-20): length reduction, positions, self-attention.

    X' = R[:, :T] X with R a learned (S_m, T_max) matrix; padded steps of X are zero, so they add
    nothing. Then learned positions, ``num_layers`` pre-LN self-attention blocks, LayerNorm, and
    the mean over the S_m steps.
    """

    def __init__(
        self,
        dim: int,
        reduced_len: int,
        max_len: int,
        num_layers: int,
        num_heads: int,
        dropouts: Mapping[str, float],
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.reduction = nn.Parameter(torch.randn(reduced_len, max_len) / max_len**0.5)
        self.positions = nn.Parameter(torch.zeros(reduced_len, dim))
        nn.init.normal_(self.positions, std=0.02)
        self.blocks = nn.ModuleList(
            CrossmodalBlock(dim, num_heads, cross=False, **dropouts) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(
                f"parallel branch: sequence of {x.shape[1]} steps exceeds fusion.parallel_max_len={self.max_len}"
            )
        reduced = torch.einsum(
            "st,btd->bsd", self.reduction[:, : x.shape[1]].to(x.dtype), zero_padding(x, mask)
        )
        reduced = reduced + self.positions.to(x.dtype)
        for block in self.blocks:
            reduced = block(reduced, None)
        return self.norm(reduced).mean(dim=1)


class BPMuLTFusion(SequenceFusion):
    """``fusion=bpmult``; see the module docstring for the architecture and the ablations."""

    min_sequences = 3

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_outputs: int,
        head: Mapping[str, Any],
        ablation: str = "none",
        d_model: int = 30,
        num_heads: int = 5,
        num_layers: int = 5,
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
        top_hidden: int = 128,
        extras: Sequence[str] = (),
        kernel_sizes: int | Mapping[str, int] = 1,
        summary_tokens: Mapping[str, str] | None = None,
        modality_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            input_dims, num_outputs, d_model, extras, kernel_sizes, summary_tokens, modality_order
        )
        if ablation not in ABLATIONS:
            raise ValueError(f"fusion.ablation={ablation!r}: expected one of {ABLATIONS}")
        self.ablation = ablation
        self.use_parallel = ablation != "no_parallel"
        self.per_target = ablation != "all_transformers"
        self.residual_connections = self.per_target and ablation not in ("no_rc", "no_fgmu_nor_rc")
        self.use_middle = self.residual_connections and ablation != "no_fgmu_middle"
        gated = ablation not in ("no_fgmu", "no_fgmu_nor_rc")
        dropouts = {"attn_dropout": attn_dropout, "relu_dropout": relu_dropout, "res_dropout": res_dropout}

        def transformer(layers: int, decoder: bool = False, cross: bool = True) -> CrossmodalTransformer:
            return CrossmodalTransformer(
                d_model,
                layers,
                num_heads,
                embed_dropout=embed_dropout,
                decoder=decoder,
                cross=cross,
                **dropouts,
            )

        def fusion(n: int) -> nn.Module:
            return fusion_gated_unit(d_model, n, residual_product) if gated else ConcatLinear(d_model, n)

        self.pairs = list(permutations(self.sequences, 2))
        self.triples = [(a, b, t) for t in self.sequences for a, b in self.pairs if t not in (a, b)]
        self.single = nn.ModuleDict({pair_key(a, b): transformer(num_layers) for a, b in self.pairs})
        self.bi = nn.ModuleDict(
            {
                self._bi_key(*abt): transformer(num_layers, decoder=ablation == "translating")
                for abt in self.triples
            }
        )
        self.bi_memory = (
            nn.ModuleDict({self._bi_key(*abt): transformer(self_layers, cross=False) for abt in self.triples})
            if ablation == "with_transformer"
            else None
        )
        n_bi = len(self.triples) // len(self.sequences)
        if self.per_target:
            self.fuse_bi = nn.ModuleDict({t: fusion(n_bi) for t in self.sequences})
        if self.use_middle:
            self.fuse_middle = nn.ModuleDict({t: fusion(len(self.sequences) - 1) for t in self.sequences})
        if self.use_parallel:
            self.parallel = nn.ModuleDict(
                {
                    m: ParallelBranch(
                        d_model, parallel_len, parallel_max_len, parallel_layers, num_heads, dropouts
                    )
                    for m in self.sequences
                }
            )
            self.fuse_parallel = fusion(len(self.sequences))

        if self.per_target:
            self.top_inputs = [m if m in self.extras else f"H_{m}" for m in self.modalities]
        else:
            self.top_inputs = [f"S_{pair_key(a, b)}" for a, b in self.pairs] + [
                f"B_{self._bi_key(*abt)}" for abt in self.triples
            ]
            self.top_inputs += self.extras
        if self.use_parallel:
            self.top_inputs.append("H_parallel")
        dims = [self.input_dims[name] if name in self.extras else d_model for name in self.top_inputs]
        self.top = GatedMultimodalUnit(dims, top_hidden, tied=False)
        self.residual = ResidualBlock(top_hidden, out_dropout)
        self.out_dropout = nn.Dropout(out_dropout)
        self.head = build_head(head, top_hidden, num_outputs)

    @staticmethod
    def _bi_key(a: str, b: str, t: str) -> str:
        return f"{a}_to_{b}_to_{t}"

    def interpretation(self) -> dict[str, Any]:
        return {"ablation": self.ablation, "top_gmu_inputs": list(self.top_inputs)}

    def forward(self, features, masks=None) -> FusionOutput:
        x, mask, extras = self.project(features, masks)
        interpret: dict[str, torch.Tensor] = {}
        single = {(a, b): self.single[pair_key(a, b)](x[b], mask[b], x[a], mask[a]) for a, b in self.pairs}
        bi_tokens: dict[tuple[str, str, str], torch.Tensor] = {}
        for a, b, t in self.triples:
            key = self._bi_key(a, b, t)
            projected = self.bi[key](x[t], mask[t], single[a, b], mask[b])
            if self.bi_memory is not None:
                projected = self.bi_memory[key](projected, mask[t])
            bi_tokens[a, b, t] = self.summary(t, projected, mask[t])

        top: dict[str, torch.Tensor] = dict(extras)
        if self.per_target:
            for t in self.sequences:
                fused, gates = self.fuse_bi[t]([bi_tokens[abt] for abt in self.triples if abt[2] == t])
                self._record(interpret, f"fgmu_bi_{t}", gates)
                if self.residual_connections:
                    fused = fused + self.summary(t, x[t], mask[t])
                if self.use_middle:
                    middle, gates = self.fuse_middle[t](
                        [self.summary(t, single[s, t], mask[t]) for s in self.sequences if s != t]
                    )
                    self._record(interpret, f"fgmu_middle_{t}", gates)
                    fused = fused + middle
                top[f"H_{t}"] = fused
        else:
            top.update({f"S_{pair_key(a, b)}": self.summary(b, single[a, b], mask[b]) for a, b in self.pairs})
            top.update({f"B_{self._bi_key(*abt)}": token for abt, token in bi_tokens.items()})
        if self.use_parallel:
            summaries = [self.parallel[m](x[m], mask[m]) for m in self.sequences]
            top["H_parallel"], gates = self.fuse_parallel(summaries)
            self._record(interpret, "fgmu_parallel", gates)

        fused, gates = self.top([top[name] for name in self.top_inputs])
        interpret["gates_top"] = gates
        if self.per_target:
            interpret["gates"] = gates[:, : len(self.modalities)]
        if self.use_parallel:
            interpret["gates_parallel"] = gates[:, -1]
        logits = self.head(self.out_dropout(self.residual(fused)))
        return FusionOutput(logits=logits, interpret=interpret)

    @staticmethod
    def _record(interpret: dict[str, torch.Tensor], name: str, gates: torch.Tensor | None) -> None:
        if gates is not None:
            interpret[name] = gates
