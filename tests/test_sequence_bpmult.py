"""BPMuLT as the paper writes it (Moreno-Galvan et al., Eq. 9-27, Table 2, Fig. 9): stubbed crossmodal
stacks and hand-set weights check each equation; every ablation removes exactly its part."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.models.fusion.base import FusionInputs
from src.models.fusion.bpmult import ABLATIONS, BPMuLTFusion, ParallelBranch
from src.models.fusion.mult import MulTFusion
from src.models.fusion.transformer import CrossmodalTransformer
from src.models.layers import summary_token
from tests.helpers import compose_train, predictor
from tests.test_sequence_fusion import DIMS
from tests.test_sequence_fusion import TINY as SEQUENCE_TINY

SEQUENCES = ("audio", "text", "video")
LENGTHS = {"audio": 7, "text": 5, "video": 4}
REAL = {"audio": [7, 3], "text": [5, 2], "video": [1, 4]}
D = SEQUENCE_TINY["d_model"]
C = 3
TINY = SEQUENCE_TINY | {
    "summary_tokens": {"text": "first"},
    "parallel_len": 4,
    "parallel_max_len": 16,
    "parallel_layers": 1,
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(ablation: str = "none", dims: dict[str, int] = DIMS, **options) -> BPMuLTFusion:
    torch.manual_seed(0)
    return predictor(BPMuLTFusion, dims, C, ablation=ablation, **(TINY | options)).eval()


def batch(seed: int = 1) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    features = {m: torch.randn(2, LENGTHS[m], DIMS[m], generator=generator) for m in SEQUENCES}
    masks = {m: torch.arange(LENGTHS[m])[None, :] < torch.tensor(REAL[m])[:, None] for m in SEQUENCES}
    features["poster"] = torch.randn(2, DIMS["poster"], generator=generator)
    return features, masks


def others(t: str) -> tuple[str, str]:
    a, b = (m for m in SEQUENCES if m != t)
    return a, b


def capture_inputs(module: nn.Module, store: dict, key: str) -> None:
    """Record the list of tensors ``module`` is called with (an FGMU or a GMU: ``module(inputs)``)."""
    module.register_forward_pre_hook(
        lambda _m, args, k=key: store.__setitem__(k, [x.clone() for x in args[0]])
    )


def capture_output(module: nn.Module, store: dict, key: str) -> None:
    module.register_forward_hook(lambda _m, _args, out, k=key: store.__setitem__(k, out))


class StubTransformer(nn.Module):
    """Stands for a crossmodal stack: returns a fixed random (B, T_query, d) sequence (recorded as ``out``)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed
        self.anchor = nn.Parameter(torch.zeros(()))  # so that gradients and devices behave as in a real stack

    def forward(self, x, x_mask, source=None, source_mask=None):
        generator = torch.Generator().manual_seed(self.seed * 1000 + x.shape[1])
        self.out = torch.randn(x.shape, generator=generator) + self.anchor
        return self.out


def stub_stacks(model: BPMuLTFusion) -> None:
    for i, key in enumerate(sorted(model.single)):
        model.single[key] = StubTransformer(i + 1)
    for i, key in enumerate(sorted(model.bi)):
        model.bi[key] = StubTransformer(100 + i)


def token(model: BPMuLTFusion, modality: str, sequence: torch.Tensor, masks: dict) -> torch.Tensor:
    return summary_token(sequence, masks[modality], model.summary_tokens[modality])


# ----------------------------------------------------------------------------- Eq. 25-27
def test_eq25_26_biprojection_tokens_carry_their_single_projection_and_eq27_fuses_its_mirror_pair():
    model = build()
    stub_stacks(model)
    seen: dict[str, list[torch.Tensor]] = {}
    for t in SEQUENCES:
        capture_inputs(model.fuse_bi[t], seen, f"bi_{t}")
        capture_inputs(model.fuse_middle[t], seen, f"middle_{t}")
    features, masks = batch()
    with torch.no_grad():
        model(features, masks)
    for t in SEQUENCES:
        a, b = others(t)
        s_ab = token(model, b, model.single[f"{a}_to_{b}"].out, masks)  # [Z_{a->b}]_{S_b - 1}
        s_ba = token(model, a, model.single[f"{b}_to_{a}"].out, masks)
        b_abt = token(model, t, model.bi[f"{a}_to_{b}_to_{t}"].out, masks)  # [Z_{a->b=>t}]_{S_t - 1}
        b_bat = token(model, t, model.bi[f"{b}_to_{a}_to_{t}"].out, masks)
        # Eq. 25-26: L'_1 = B(a->b=>t) + S(a->b), L'_2 = B(b->a=>t) + S(b->a)
        torch.testing.assert_close(seen[f"bi_{t}"], [b_abt + s_ab, b_bat + s_ba])
        # Eq. 27: the middle FGMU of t fuses the single projections that feed t's biprojections
        torch.testing.assert_close(seen[f"middle_{t}"], [s_ab, s_ba])
    # the text target reads its [CLS] (first) step, the others their last real step
    assert model.summary_tokens == {"audio": "last", "text": "first", "video": "last"}


def test_h_prime_is_the_top_fgmu_plus_the_middle_fgmu_and_reaches_the_final_gmu():
    model = build()
    seen: dict = {}
    for t in SEQUENCES:
        capture_output(model.fuse_bi[t], seen, f"bi_{t}")
        capture_output(model.fuse_middle[t], seen, f"middle_{t}")
    capture_inputs(model.top, seen, "top")
    with torch.no_grad():
        model(*batch())
    assert model.top_inputs == ["H_audio", "poster", "H_text", "H_video", "H_parallel"]
    for i, name in enumerate(model.top_inputs):
        if name.startswith("H_") and name != "H_parallel":
            t = name[2:]
            torch.testing.assert_close(seen["top"][i], seen[f"bi_{t}"][0] + seen[f"middle_{t}"][0])


# ------------------------------------------------------------------------ FGMU gates, Eq. 9-12 / 20-22
def test_every_two_input_fgmu_has_one_gate_z_and_1_minus_z_and_k_inputs_one_gate_each():
    model = build()
    two_input = [*model.fuse_bi.values(), *model.fuse_middle.values()]
    assert len(two_input) == 6
    for fgmu in two_input:
        assert fgmu.tied and fgmu.gate.out_features == D  # W_z in R^{d x 2d}
        assert fgmu.gate.in_features == 2 * D and fgmu.gate.bias is None
        assert all(layer.weight.shape == (D, D) and layer.bias is None for layer in fgmu.hidden)
    assert not model.fuse_parallel.tied and model.fuse_parallel.gate.out_features == 3 * D  # Eq. 21, k = 3
    with torch.no_grad():
        interpret = model(*batch()).interpret
    for t in SEQUENCES:
        for name in (f"fgmu_bi_{t}", f"fgmu_middle_{t}"):
            assert interpret[name].shape == (2, 2, D)
            torch.testing.assert_close(interpret[name].sum(1), torch.ones(2, D))
    parallel = interpret["fgmu_parallel"]
    assert parallel.shape == (2, 3, D) and not torch.allclose(parallel.sum(1), torch.ones(2, D))


def test_fgmu_eq12_with_hand_set_weights():
    model = build()
    fgmu = model.fuse_bi["text"]
    x1, x2 = torch.randn(2, D), torch.randn(2, D)
    with torch.no_grad():
        fgmu.hidden[0].weight.copy_(torch.eye(D))
        fgmu.hidden[1].weight.copy_(-2 * torch.eye(D))
        fgmu.gate.weight.zero_()
        fgmu.gate.weight[:, :D] = torch.eye(D)  # z = sigmoid(x_1)
        h, gates = fgmu([x1, x2])
    z = torch.sigmoid(x1)
    torch.testing.assert_close(h, z * torch.tanh(x1) * x1 + (1 - z) * torch.tanh(-2 * x2) * x2)
    torch.testing.assert_close(gates, torch.stack([z, 1 - z], 1))


def test_more_than_three_sequences_use_the_k_input_fgmu():
    dims4 = {"audio": 5, "face": 3, "text": 6, "video": 4}
    four = build(dims=dims4, extras=[], summary_tokens=None)
    assert len(four.single) == 12 and len(four.bi) == 24
    for t in dims4:
        assert not four.fuse_bi[t].tied and four.fuse_bi[t].gate.out_features == 6 * D
        assert not four.fuse_middle[t].tied and four.fuse_middle[t].gate.out_features == 6 * D
    inputs = {m: torch.randn(2, 3 + i, d) for i, (m, d) in enumerate(dims4.items())}
    with torch.no_grad():
        output = four(inputs)
    assert output.logits.shape == (2, C) and output.interpret["fgmu_middle_text"].shape == (2, 6, D)


# ------------------------------------------------------------------ final GMU and output, Eq. 23-24
def test_final_gmu_outputs_c_class_scores_and_the_residual_block_is_c_by_c():
    model = build()
    assert not hasattr(model, "head")
    assert [layer.weight.shape for layer in model.top.hidden] == [(C, D), (C, 3), (C, D), (C, D), (C, D)]
    assert model.top.gate.weight.shape == (5 * C, 4 * D + 3) and model.top.gate.bias is None
    linears = [m for m in model.residual.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(C, C), (C, C)] and all(
        m.bias is None for m in linears
    )
    w2, w1 = linears
    with torch.no_grad():
        w2.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [1.0, 1.0, 1.0]]))
        w1.weight.copy_(2 * torch.eye(C))
    seen: dict = {}
    capture_output(model.top, seen, "top")
    with torch.no_grad():
        output = model(*batch())
    scores = seen["top"][0]  # O in R^c (Eq. 23)
    assert scores.shape == (2, C)
    expected = torch.relu(scores @ w2.weight.T) @ w1.weight.T + scores  # O_f = W_f1 ReLU(W_f2 O) + O (Eq. 24)
    torch.testing.assert_close(output.logits, expected)
    assert output.interpret["gates"].shape == (2, 4, C) and output.interpret["gates_top"].shape == (2, 5, C)


def test_paper_depth_d_3_is_the_default_of_both_levels_and_the_parallel_stack(tmp_path):
    cfg = compose_train(["fusion=bpmult"], tmp_path)
    assert (cfg.fusion.num_layers, cfg.fusion.parallel_layers, cfg.fusion.parallel_len) == (3, 3, 32)
    assert "top_hidden" not in cfg.fusion
    options = {k: v for k, v in cfg.fusion.items() if k != "_target_"}
    model = predictor(BPMuLTFusion, {"audio": 4, "text": 4, "video": 4}, 2, **options)
    assert {len(s.blocks) for s in model.single.values()} == {3}  # D = 3 (Eq. 2, 25: Z^[D])
    assert {len(b.blocks) for b in model.bi.values()} == {3}  # "stacking again D = 3"
    assert {len(p.encoder.blocks) for p in model.parallel.values()} == {3}  # Eq. 17-19


# ------------------------------------------------------------------------------ parallel branch
class Identity(nn.Module):
    def forward(self, x, x_mask, source=None, source_mask=None):
        self.source = source
        return x


class Scramble(nn.Module):
    """Returns its input with every position except ``keep`` replaced by noise."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep

    def forward(self, x, x_mask, source=None, source_mask=None):
        out = 100 * torch.randn_like(x)
        out[:, self.keep] = x[:, self.keep]
        return out


def test_parallel_branch_reads_the_first_text_and_last_video_audio_positions():
    model = build()
    features, masks = batch()
    with torch.no_grad():
        projected, seq_masks, _ = model.project(features, masks)
        for m in SEQUENCES:
            branch = model.parallel[m]
            assert isinstance(branch.encoder, CrossmodalTransformer)  # sinusoidal positions, sqrt(d) scale
            assert not [n for n, _ in branch.named_parameters() if "position" in n]
            reduced = branch.reduce(projected[m], seq_masks[m])
            assert reduced.shape == (2, 4, D)
            branch.encoder = Identity()
            read = branch(projected[m], seq_masks[m])
            position = 0 if m == "text" else -1
            torch.testing.assert_close(read, reduced[:, position])
            torch.testing.assert_close(branch.encoder.source, reduced)  # Eq. 18: keys from Z^[0]
            branch.encoder = Scramble(keep=position)
            torch.testing.assert_close(branch(projected[m], seq_masks[m]), read)


def test_parallel_reduction_is_a_learned_matrix_over_the_real_steps():
    branch = ParallelBranch(3, 6, "last", CrossmodalTransformer(4, 1, 2))
    x, mask = torch.randn(2, 5, 4), torch.tensor([[True] * 5, [True, True, False, False, False]])
    reduced = branch.reduce(x, mask)
    torch.testing.assert_close(reduced[0], branch.reduction[:, :5] @ x[0])
    torch.testing.assert_close(reduced[1], branch.reduction[:, :2] @ x[1, :2])


# ------------------------------------------------------------------------------------ ablations
def child_modules(model: nn.Module) -> set[str]:
    return {name for name, _ in model.named_children()}


def copy_shared_weights(source: nn.Module, target: nn.Module) -> None:
    """Load every parameter of ``source`` whose name and shape ``target`` shares."""
    own = target.state_dict()
    shared = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    target.load_state_dict(shared, strict=False)


def run_capturing(model: BPMuLTFusion, features, masks) -> dict:
    """Forward pass that records the FGMU and final-GMU inputs and outputs."""
    seen: dict = {}
    for group in ("fuse_bi", "fuse_middle"):
        for t, module in getattr(model, group, {}).items():
            capture_inputs(module, seen, f"{group}_in_{t}")
            capture_output(module, seen, f"{group}_out_{t}")
    capture_inputs(model.top, seen, "top")
    with torch.no_grad():
        seen["logits"] = model(features, masks).logits
    seen["top"] = dict(zip(model.top_inputs, seen["top"], strict=True))
    return seen


FULL_CHILDREN = {
    "projections",
    "single",
    "bi",
    "fuse_bi",
    "fuse_middle",
    "parallel",
    "fuse_parallel",
    "top",
    "residual",
}
REMOVED = {
    "none": set(),
    "no_parallel": {"parallel", "fuse_parallel"},
    "no_fgmu": {"fuse_bi"},
    "no_fgmu_middle": {"fuse_middle"},
    "no_rc": set(),
    "no_fgmu_nor_rc": {"fuse_bi"},
    "with_transformer": set(),
    "translating": set(),
    "all_transformers": {"fuse_bi", "fuse_middle", "parallel", "fuse_parallel"},
}
PER_TARGET = ["B_audio_to_video_to_text", "B_video_to_audio_to_text"]


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_each_ablation_removes_exactly_its_part(ablation):
    full, variant = build(), build(ablation)
    assert child_modules(full) == FULL_CHILDREN
    assert child_modules(variant) == FULL_CHILDREN - REMOVED[ablation]
    # everything that is not removed keeps its parameters' names and shapes, except the final GMU's
    # input width where its inputs change, and the replaced top fusion of with_transformer
    kept = {k: v.shape for k, v in full.state_dict().items() if k.split(".")[0] not in REMOVED[ablation]}
    own = {k: v.shape for k, v in variant.state_dict().items()}
    changed = {k for k in kept if own.get(k) != kept[k]}
    allowed = {"top"} | ({"fuse_bi"} if ablation == "with_transformer" else set())
    allowed |= {"bi"} if ablation == "translating" else set()
    assert {k.split(".")[0] for k in changed} <= allowed, changed
    assert variant.interpretation()["ablation"] == ablation


def test_ablation_forward_differs_from_the_full_model_in_exactly_the_removed_part():
    features, masks = batch()
    full = build()
    reference = run_capturing(full, features, masks)
    variants = {}
    for ablation in ABLATIONS:
        model = build(ablation)
        copy_shared_weights(full, model)
        variants[ablation] = (model, run_capturing(model, features, masks))

    # no_parallel: the final GMU gets the same H'_t, without H_P
    model, seen = variants["no_parallel"]
    assert model.top_inputs == ["H_audio", "poster", "H_text", "H_video"]
    for name in model.top_inputs:
        torch.testing.assert_close(seen["top"][name], reference["top"][name])

    # no_fgmu_middle: H'_t = H_t, the top FGMU's output, unchanged
    model, seen = variants["no_fgmu_middle"]
    for t in SEQUENCES:
        torch.testing.assert_close(seen["top"][f"H_{t}"], reference[f"fuse_bi_out_{t}"][0])
    torch.testing.assert_close(seen["top"]["H_parallel"], reference["top"]["H_parallel"])

    # no_rc: the top FGMU receives L_i = L'_i - S(a->b); the middle FGMU is still there, same inputs
    model, seen = variants["no_rc"]
    for t in SEQUENCES:
        a, b = others(t)
        torch.testing.assert_close(seen[f"fuse_middle_in_{t}"], reference[f"fuse_middle_in_{t}"])
        s_ab, s_ba = reference[f"fuse_middle_in_{t}"]
        full_ab, full_ba = reference[f"fuse_bi_in_{t}"]
        torch.testing.assert_close(seen[f"fuse_bi_in_{t}"], [full_ab - s_ab, full_ba - s_ba])

    # no_fgmu: L'_i and the middle FGMU's output go to the final GMU as inputs of their own
    model, seen = variants["no_fgmu"]
    assert model.top_inputs[:4] == [
        "B_text_to_video_to_audio",
        "B_video_to_text_to_audio",
        "M_audio",
        "poster",
    ]
    assert model.top_inputs[4:7] == [*PER_TARGET, "M_text"] and model.top_inputs[-1] == "H_parallel"
    for t in SEQUENCES:
        a, b = others(t)
        torch.testing.assert_close(
            [seen["top"][f"B_{a}_to_{b}_to_{t}"], seen["top"][f"B_{b}_to_{a}_to_{t}"]],
            reference[f"fuse_bi_in_{t}"],
        )
        torch.testing.assert_close(seen["top"][f"M_{t}"], reference[f"fuse_middle_out_{t}"][0])

    # no_fgmu_nor_rc: as no_fgmu with L_i for L'_i
    model, seen = variants["no_fgmu_nor_rc"]
    assert model.top_inputs == variants["no_fgmu"][0].top_inputs
    for t in SEQUENCES:
        a, b = others(t)
        s_ab, s_ba = reference[f"fuse_middle_in_{t}"]
        full_ab, full_ba = reference[f"fuse_bi_in_{t}"]
        torch.testing.assert_close(seen["top"][f"B_{a}_to_{b}_to_{t}"], full_ab - s_ab)
        torch.testing.assert_close(seen["top"][f"M_{t}"], reference[f"fuse_middle_out_{t}"][0])

    # with_transformer: the top fusion receives the same tokens; only its computation differs
    model, seen = variants["with_transformer"]
    for t in SEQUENCES:
        torch.testing.assert_close(seen[f"fuse_bi_in_{t}"], reference[f"fuse_bi_in_{t}"])
        torch.testing.assert_close(seen[f"fuse_middle_out_{t}"][0], reference[f"fuse_middle_out_{t}"][0])
    model.fuse_bi["text"].transformer = Identity()  # the read-out is the mean of the transformer's outputs
    tokens = reference["fuse_bi_in_text"]
    with torch.no_grad():
        fused, _ = model.fuse_bi["text"](tokens)
    torch.testing.assert_close(fused, (tokens[0] + tokens[1]) / 2)

    # all_transformers (Fig. 9, on the no-parallel model): every B (without RC) and S token, no H_P
    model, seen = variants["all_transformers"]
    assert model.top_inputs[4:10] == [
        "poster",
        *PER_TARGET,
        "S_audio_to_text",
        "S_video_to_text",
        "B_audio_to_text_to_video",
    ]
    assert len(model.top_inputs) == 6 + 6 + 1 and "H_parallel" not in model.top_inputs
    for t in SEQUENCES:
        a, b = others(t)
        s_ab, s_ba = reference[f"fuse_middle_in_{t}"]
        full_ab, _ = reference[f"fuse_bi_in_{t}"]
        torch.testing.assert_close(seen["top"][f"B_{a}_to_{b}_to_{t}"], full_ab - s_ab)
        torch.testing.assert_close(seen["top"][f"S_{a}_to_{b}"], s_ab)

    # translating: the single projections are untouched; the biprojections differ
    model, seen = variants["translating"]
    for t in SEQUENCES:
        torch.testing.assert_close(seen[f"fuse_middle_in_{t}"], reference[f"fuse_middle_in_{t}"])
        assert not torch.allclose(seen[f"fuse_bi_in_{t}"][0], reference[f"fuse_bi_in_{t}"][0])


def test_no_rc_is_the_full_model_with_the_eq25_26_additions_zeroed():
    """Subtracting S(a->b) from the tokens the full model's top FGMUs receive gives no_rc exactly."""
    features, masks = batch()
    full, no_rc = build(), build("no_rc")
    assert full.state_dict().keys() == no_rc.state_dict().keys()
    no_rc.load_state_dict(full.state_dict())
    singles: dict = {}
    for key, module in full.single.items():
        capture_output(module, singles, key)

    def zero_residual(_module, args, t):
        a, b = others(t)
        _, seq_masks, _ = full.project(features, masks)
        s_ab = token(full, b, singles[f"{a}_to_{b}"], seq_masks)
        s_ba = token(full, a, singles[f"{b}_to_{a}"], seq_masks)
        first, second = args[0]
        return ([first - s_ab, second - s_ba],)

    for t in SEQUENCES:
        full.fuse_bi[t].register_forward_pre_hook(lambda m, args, t=t: zero_residual(m, args, t))
    with torch.no_grad():
        torch.testing.assert_close(full(features, masks).logits, no_rc(features, masks).logits)
        assert not torch.allclose(build()(features, masks).logits, no_rc(features, masks).logits)


# ------------------------------------------------------------------------------------- MuLT-GMU
def test_mult_gmu_without_the_transformer_encoder_gives_every_crossmodal_token_to_the_gmu():
    torch.manual_seed(0)
    options = {k: v for k, v in TINY.items() if not k.startswith("parallel")}
    model = MulTFusion(
        FusionInputs.of(DIMS), combine="gmu", gmu_hidden=6, transformer_encoder=False, **options
    )
    model.eval()
    assert not hasattr(model, "memory")
    assert model.top_inputs == [
        "text_to_audio",
        "video_to_audio",
        "poster",
        "audio_to_text",
        "video_to_text",
        "audio_to_video",
        "text_to_video",
    ]
    assert [layer.in_features for layer in model.gmu.hidden] == [D, D, 3, D, D, D, D]
    outputs: dict = {}
    for key, module in model.crossmodal.items():
        capture_output(module, outputs, key)
    seen: dict = {}
    capture_inputs(model.gmu, seen, "gmu")
    features, masks = batch()
    with torch.no_grad():
        _, interpret = model(features, masks)
    for name, given in zip(model.top_inputs, seen["gmu"], strict=True):
        expected = (
            features["poster"]
            if name == "poster"
            else token(model, name.split("_to_")[1], outputs[name], masks)
        )
        torch.testing.assert_close(given, expected)
    assert interpret["gates_top"].shape == (2, 7, 6) and "gates" not in interpret
    assert model.interpretation()["top_gmu_inputs"] == model.top_inputs


def test_translating_block_applies_self_attention_then_layernorm_before_the_crossmodal_attention():
    """Fig. 11: "adding a self-attention module followed by a normalization layer": LN(x + SA(x))."""
    from src.models.fusion.transformer import CrossmodalBlock

    torch.manual_seed(0)
    block = CrossmodalBlock(4, 2, 0.0, 0.0, 0.0, decoder=True).eval()
    x, source = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    seen: dict = {}
    block.attention.register_forward_pre_hook(lambda _m, args: seen.__setitem__("query", args[0]))
    with torch.no_grad():
        block(x, None, source, None)
        decoded = block.self_norm(x + block.self_attention(x, x, None))
    torch.testing.assert_close(seen["query"], block.query_norm(decoded))
