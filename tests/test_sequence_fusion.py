"""Sequence fusions (MulT, MuLT-GMU, BPMuLT and ablations, hybrid early-late): exact small cases,
padding invariance, unaligned shapes, gradients and one training step per ablation."""

from __future__ import annotations

import math

import pytest
import torch

from src.models.fusion.bpmult import ABLATIONS, BPMuLTFusion, fusion_gated_unit
from src.models.fusion.hybrid import HybridEarlyLateFusion
from src.models.fusion.mult import MulTFusion
from src.models.fusion.transformer import MultiHeadAttention
from src.models.layers import SequenceProjection, sinusoidal_positions, summary_token
from tests.helpers import fusion_model, predictor

DIMS = {"audio": 5, "poster": 3, "text": 6, "video": 4}
TINY = {
    "d_model": 8,
    "num_heads": 2,
    "num_layers": 1,
    "self_layers": 1,
    "attn_dropout": 0.0,
    "relu_dropout": 0.0,
    "res_dropout": 0.0,
    "embed_dropout": 0.0,
    "extras": ["poster"],
}
BPMULT_TINY = {"parallel_len": 4, "parallel_max_len": 600, "parallel_layers": 1}
HEAD = {"name": "linear"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


SEQUENCES = ("audio", "text", "video")


def build(method: str, **options):
    """The plain model around the fusion (identity encoders: audio, text, video sequences, a poster vector);
    ``model.fuse(features, masks)`` runs it on features."""
    torch.manual_seed(0)
    if method == "mult":
        return fusion_model(MulTFusion, DIMS, 3, HEAD, sequences=SEQUENCES, **TINY, **options)
    if method == "mult_gmu":
        return fusion_model(
            MulTFusion, DIMS, 3, HEAD, sequences=SEQUENCES, combine="gmu", gmu_hidden=12, **TINY, **options
        )
    if method == "hybrid":
        return fusion_model(
            HybridEarlyLateFusion,
            DIMS,
            3,
            HEAD,
            sequences=SEQUENCES,
            gmu_hidden=12,
            early_hidden=12,
            final_hidden=12,
            **TINY,
            **options,
        )
    return fusion_model(
        BPMuLTFusion,
        DIMS,
        3,
        HEAD,
        sequences=SEQUENCES,
        ablation=method.removeprefix("bpmult").removeprefix("_") or "none",
        **TINY,
        **BPMULT_TINY,
        **options,
    )


def make_batch(lengths: dict[str, int], real: dict[str, list[int]], seed: int = 1) -> tuple[dict, dict]:
    generator = torch.Generator().manual_seed(seed)
    features, masks = {}, {}
    for modality, steps in lengths.items():
        features[modality] = torch.randn(len(real[modality]), steps, DIMS[modality], generator=generator)
        masks[modality] = torch.arange(steps)[None, :] < torch.tensor(real[modality])[:, None]
    features["poster"] = torch.randn(len(real["text"]), DIMS["poster"], generator=generator)
    return features, masks


METHODS = ["mult", "mult_gmu", "hybrid", "bpmult", "bpmult_translating", "bpmult_all_transformers"]


# ------------------------------------------------------------------------------- building blocks
def test_sinusoidal_positions_known_values() -> None:
    table = sinusoidal_positions(3, 4, torch.device("cpu"), torch.float32)
    # half = 2 frequencies: 1 and 10000^-1
    expected = torch.tensor(
        [
            [0.0, 0.0, 1.0, 1.0],
            [math.sin(1.0), math.sin(1e-4), math.cos(1.0), math.cos(1e-4)],
            [math.sin(2.0), math.sin(2e-4), math.cos(2.0), math.cos(2e-4)],
        ]
    )
    torch.testing.assert_close(table, expected)


def test_attention_ignores_padded_keys_and_zeroes_empty_rows() -> None:
    torch.manual_seed(0)
    attention = MultiHeadAttention(4, 2, 0.0).eval()
    query = torch.randn(2, 3, 4)
    keys = torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    out = attention(query, keys, mask)
    changed = keys.clone()
    changed[0, 2:] = 1e4
    torch.testing.assert_close(attention(query, changed, mask)[0], out[0])
    # a sample with no real key attends to nothing: only the output projection's bias remains
    torch.testing.assert_close(out[1], attention.out.bias.expand(3, 4))
    # with all keys real and one key, attention returns that key's value through the projections
    single = attention(query[:1], keys[:1, :1], None)
    torch.testing.assert_close(single, attention.out(attention.value(keys[:1, :1])).expand(1, 3, 4))


def test_fgmu_known_values() -> None:
    x1, x2 = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 2.0]])
    outputs = {}
    for residual_product in (True, False):
        fgmu = fusion_gated_unit(dim=2, num_inputs=2, residual_product=residual_product)
        with torch.no_grad():
            fgmu.hidden[0].weight.copy_(torch.eye(2))
            fgmu.hidden[1].weight.copy_(2 * torch.eye(2))
            fgmu.gate.weight.zero_()  # z = sigmoid(0) = 0.5 everywhere
        outputs[residual_product] = fgmu([x1, x2])
    fused, gates = outputs[True]
    torch.testing.assert_close(fused, 0.5 * torch.tanh(x1) * x1 + 0.5 * torch.tanh(2 * x2) * x2)
    torch.testing.assert_close(gates, torch.full((1, 2, 2), 0.5))
    torch.testing.assert_close(outputs[False][0], 0.5 * torch.tanh(x1) + 0.5 * torch.tanh(2 * x2))


def test_projection_zeroes_padding_and_summary_tokens() -> None:
    projection = SequenceProjection(3, 2, kernel_size=3)
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    out = projection(x, mask)
    assert out.shape == (2, 4, 2)
    assert torch.all(out[~mask] == 0)
    poisoned = x.clone()
    poisoned[~mask] = float("nan")  # padded content cannot leak into real steps through the kernel
    torch.testing.assert_close(projection(poisoned, mask), out)
    seq = torch.arange(8.0).view(2, 4, 1)
    assert summary_token(seq, mask, "last").flatten().tolist() == [2.0, 4.0]
    assert summary_token(seq, mask, "first").flatten().tolist() == [0.0, 4.0]


# ------------------------------------------------------------------------------------ fusions
@pytest.mark.parametrize("method", METHODS)
def test_padding_never_changes_outputs(method: str) -> None:
    model = build(method, kernel_sizes=3).eval()
    lengths = {"audio": 9, "text": 7, "video": 5}
    real = {"audio": [9, 4], "text": [7, 3], "video": [2, 5]}
    features, masks = make_batch(lengths, real)
    with torch.no_grad():
        reference = model.fuse(features, masks)
        noisy = {m: v.clone() for m, v in features.items()}
        for m in lengths:
            noisy[m][~masks[m]] = 1e3 * torch.randn(int((~masks[m]).sum()), DIMS[m])
        longer = {
            m: torch.cat([v, torch.full((2, 6, DIMS[m]), 7.0)], 1) if m in lengths else v
            for m, v in features.items()
        }
        longer_masks = {m: torch.cat([k, torch.zeros(2, 6, dtype=torch.bool)], 1) for m, k in masks.items()}
        for other, other_masks in ((noisy, masks), (longer, longer_masks)):
            output = model.fuse(other, other_masks)
            torch.testing.assert_close(output.logits, reference.logits, atol=1e-5, rtol=1e-5)
            for key, value in reference.interpret.items():
                torch.testing.assert_close(output.interpret[key], value, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["mult_gmu", "bpmult", "hybrid"])
def test_unaligned_lengths_shapes_and_gates(method: str) -> None:
    model = build(method).eval()
    features, masks = make_batch(
        {"audio": 500, "text": 50, "video": 500}, {"audio": [500, 123], "text": [50, 7], "video": [17, 500]}
    )
    with torch.no_grad():
        output = model.fuse(features, masks)
    assert output.logits.shape == (2, 3)
    assert torch.isfinite(output.logits).all()
    gates = output.interpret["gates"]
    width = 3 if method == "bpmult" else 12  # BPMuLT's final GMU outputs the c = 3 class scores (Eq. 23)
    assert gates.shape == (2, len(model.fusion.modalities), width)  # K = audio, poster, text, video
    assert model.fusion.modalities == ["audio", "poster", "text", "video"]
    assert ((gates > 0) & (gates < 1)).all()


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_every_parameter(method: str) -> None:
    model = build(method, kernel_sizes=3)
    features, masks = make_batch(
        {"audio": 6, "text": 5, "video": 4}, {"audio": [6, 2], "text": [5, 5], "video": [1, 4]}
    )
    model.fuse(features, masks).logits.pow(2).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_every_bpmult_ablation_trains_a_step(ablation: str) -> None:
    model = build(f"bpmult_{ablation}")
    features, masks = make_batch(
        {"audio": 6, "text": 5, "video": 4}, {"audio": [6, 2], "text": [5, 3], "video": [1, 4]}
    )
    labels = torch.tensor([0, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = torch.nn.functional.cross_entropy(model.fuse(features, masks).logits, labels)
    before.backward()
    optimizer.step()
    after = torch.nn.functional.cross_entropy(model.fuse(features, masks).logits, labels)
    assert after < before
    assert model.fusion.interpretation()["ablation"] == ablation


def test_bpmult_ablation_structure() -> None:
    full = build("bpmult")
    # K = 3: a single projection per ordered pair, two biprojections per target
    assert len(full.fusion.single) == 6 and len(full.fusion.bi) == 6
    assert sorted(full.fusion.bi) == sorted(
        f"{a}_to_{b}_to_{t}"
        for t in ("audio", "text", "video")
        for a in ("audio", "text", "video")
        for b in ("audio", "text", "video")
        if len({a, b, t}) == 3
    )
    assert full.fusion.top_inputs == ["H_audio", "poster", "H_text", "H_video", "H_parallel"]
    assert build("bpmult_no_parallel").fusion.top_inputs == ["H_audio", "poster", "H_text", "H_video"]
    assert hasattr(build("bpmult_no_rc").fusion, "fuse_middle")  # No-RC removes Eq. 25-26 only
    assert not hasattr(build("bpmult_no_fgmu_middle").fusion, "fuse_middle")
    assert not hasattr(build("bpmult_no_fgmu").fusion, "fuse_bi")  # its tokens go straight to the final GMU
    assert len(build("bpmult_all_transformers").fusion.top_inputs) == 6 + 6 + 1  # Fig. 9: no parallel branch
    assert (
        build("bpmult_translating").fusion.bi["audio_to_text_to_video"].blocks[0].self_attention is not None
    )


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="at least 3 sequence modalities"):
        predictor(BPMuLTFusion, {"text": 4, "audio": 4}, 2, HEAD, **TINY | {"extras": []})
    with pytest.raises(ValueError, match="not modalities of the data"):
        fusion_model(MulTFusion, DIMS, 2, HEAD, sequences=SEQUENCES, **TINY | {"extras": ["metadata"]})
    with pytest.raises(ValueError, match="fusion.ablation='bogus'"):
        build("bpmult_bogus")
    model = build("mult")
    features, masks = make_batch(
        {"audio": 3, "text": 3, "video": 3}, {"audio": [3], "text": [3], "video": [3]}
    )
    features["text"] = features["text"].mean(1)
    with pytest.raises(ValueError, match="modality 'text' must be a \\(B, T, D\\) sequence"):
        model.fuse(features, masks)


def test_two_and_four_sequence_modalities() -> None:
    torch.manual_seed(0)
    two = fusion_model(
        MulTFusion, {"audio": 5, "text": 6}, 2, HEAD, sequences=("audio", "text"), **TINY | {"extras": []}
    ).eval()
    assert sorted(two.fusion.crossmodal) == ["audio_to_text", "text_to_audio"]
    dims4 = {"audio": 5, "face": 3, "text": 6, "video": 4}
    four = predictor(BPMuLTFusion, dims4, 2, HEAD, **TINY | {"extras": []}, **BPMULT_TINY).eval()
    assert len(four.single) == 12 and len(four.bi) == 24  # 4 * 3 ordered pairs, 6 biprojections per target
    inputs = {m: torch.randn(2, 3 + i, d) for i, (m, d) in enumerate(dims4.items())}
    with torch.no_grad():
        assert four(inputs).logits.shape == (2, 2)
        assert four(inputs).interpret["fgmu_bi_text"].shape == (2, 6, 8)
        assert two.fuse({m: inputs[m] for m in ("audio", "text")}).logits.shape == (2, 2)


def test_first_token_summary_for_cls_led_text() -> None:
    model = build("mult", summary_tokens={"text": "first"}).eval()
    assert model.fusion.summary_tokens == {"audio": "last", "text": "first", "video": "last"}
    features, masks = make_batch(
        {"audio": 4, "text": 5, "video": 3}, {"audio": [4, 2], "text": [5, 3], "video": [3, 1]}
    )
    memories = {}
    for modality in ("text", "audio"):
        model.fusion.memory[modality].register_forward_hook(
            lambda _m, _i, out, key=modality: memories.__setitem__(key, out)
        )
    with torch.no_grad():
        sequences, seq_masks, _ = model.fusion.project(features, masks)
        summaries = model.fusion.target_summaries(sequences, seq_masks)
    torch.testing.assert_close(summaries["text"], memories["text"][:, 0])  # [CLS] position
    torch.testing.assert_close(summaries["audio"], memories["audio"][[0, 1], [3, 1]])  # last real steps
    with pytest.raises(ValueError, match="fusion.summary_tokens.text='middle'"):
        build("mult", summary_tokens={"text": "middle"})
