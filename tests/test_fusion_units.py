"""Fusion methods on tiny tensors with known expected values (issue 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from src.interpret import alpha_percentages, favoured_modality, gate_shares, write_interpretability
from src.models.fusion.centralnet import CentralNetFusion
from src.models.fusion.concat import ConcatFusion, ScoreConcatFusion
from src.models.fusion.ensemble import EnsembleFusion
from src.models.fusion.fgmu import FusionGatedUnit
from src.models.fusion.gmu import GatedMultimodalUnit
from src.models.fusion.late import AvgProbsFusion, LateFusion, WeightedMeanFusion
from src.models.fusion.layer_fusion import LayerFusion
from src.models.fusion.linear_sum import LinearSumFusion
from src.models.fusion.moddrop import ModalityDropout
from src.models.fusion.moe import MoEFusion
from src.models.fusion.unimodal import UnimodalFusion
from src.tasks import TaskLink
from tests.helpers import fusion_model, predictor, vector_fusion_methods

CONF = Path(__file__).resolve().parents[1] / "conf" / "fusion"
METHODS = vector_fusion_methods()
LINEAR = {"name": "linear"}
SMALL = {"name": "mlp", "hidden_dims": [8], "dropout": 0.0}


def spec(method: str, **overrides) -> dict:
    """conf/fusion/<method>.yaml with small sizes so the tests stay fast."""
    cfg = yaml.safe_load((CONF / f"{method}.yaml").read_text())
    for key, value in {
        "hidden_dim": 8,
        "dim": 16,
        "conv_channels": [4],
        "hidden_dims": [8],
        "layer": 1,
    }.items():
        if key in cfg:
            cfg[key] = value
    return {**cfg, **overrides}


def set_linear(layer: nn.Linear, weight, bias=None) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        if bias is not None:
            layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


def test_scores_and_logits_round_trip():
    logits = torch.tensor([[0.3, -1.2, 2.0]])
    for task in ("multilabel", "multiclass"):
        link = TaskLink(task)
        scores = link.to_scores(logits)
        assert torch.allclose(link.to_scores(link.to_logits(scores)), scores, atol=1e-6)
    assert torch.equal(TaskLink("regression").to_logits(logits), logits)


def test_gmu_gate_one_returns_first_hidden_state():
    """Hand-set GMU whose gate saturates at 1: h = tanh(W_1 x_1) exactly (Arevalo et al. Eq. 1-5)."""
    gmu = GatedMultimodalUnit([2, 3], hidden_dim=2, tied=True, bias=True)
    set_linear(gmu.hidden[0], [[1.0, 0.0], [0.0, -1.0]], [0.0, 0.0])
    set_linear(gmu.hidden[1], torch.ones(2, 3), [0.0, 0.0])
    set_linear(gmu.gate, torch.zeros(2, 5), [100.0, 100.0])
    x1, x2 = torch.tensor([[0.5, 0.25]]), torch.tensor([[1.0, 2.0, 3.0]])
    h, gates = gmu([x1, x2])
    assert torch.allclose(h, torch.tanh(torch.tensor([[0.5, -0.25]])))
    assert torch.allclose(gates, torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]))


def test_fgmu_residual_product_with_hand_set_gate():
    """FGMU (BPMuLT Eq. 9-12): z = 0.5 -> h = 0.5 tanh(W_v x_v) P_v x_v + 0.5 tanh(W_t x_t) P_t x_t."""
    unit = FusionGatedUnit([1, 1], hidden_dim=1, tied=True, bias=False)
    set_linear(unit.hidden[0], [[1.0]])
    set_linear(unit.hidden[1], [[2.0]])
    set_linear(unit.project[0], [[3.0]])
    set_linear(unit.project[1], [[-1.0]])
    set_linear(unit.gate, [[0.0, 0.0]])
    h, _ = unit([torch.tensor([[0.5]]), torch.tensor([[0.25]])])
    expected = 0.5 * np.tanh(0.5) * 1.5 + 0.5 * np.tanh(0.5) * -0.25
    assert h.item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="identity needs every input size"):
        FusionGatedUnit([3, 4], hidden_dim=4, project="identity")


def test_linear_sum_sums_the_maps():
    model = fusion_model(LinearSumFusion, {"a": 2, "b": 2}, 1, LINEAR, hidden_dim=2, bias=False)
    set_linear(model.fusion.maps["a"], torch.eye(2))
    set_linear(model.fusion.maps["b"], 2 * torch.eye(2))
    set_linear(model.head[0], [[1.0, 10.0]], [0.0])
    out = model.fuse({"a": torch.tensor([[1.0, 2.0]]), "b": torch.tensor([[3.0, 4.0]])})
    assert out.logits.item() == pytest.approx((1 + 6) + 10 * (2 + 8))


def _two_heads(fusion, logits_a, logits_b) -> None:
    """Make the per-modality heads output constants (zero weights, bias = the wanted logits)."""
    for m, value in (("a", logits_a), ("b", logits_b)):
        set_linear(fusion.heads[m][0], torch.zeros(len(value), 1), value)


def test_late_fusion_alpha_half_averages_probabilities():
    fusion = predictor(LateFusion, {"a": 1, "b": 1}, 2, task="multilabel")
    _two_heads(fusion, [0.0, 2.0], [1.0, -1.0])
    assert fusion.alpha.item() == 0.5
    out = fusion({"a": torch.zeros(1, 1), "b": torch.zeros(1, 1)})
    expected = 0.5 * torch.sigmoid(torch.tensor([0.0, 2.0])) + 0.5 * torch.sigmoid(torch.tensor([1.0, -1.0]))
    assert torch.allclose(torch.sigmoid(out.logits[0]), expected, atol=1e-6)
    with torch.no_grad():
        fusion.alpha_logit.fill_(20.0)
    assert torch.allclose(
        torch.sigmoid(fusion({"a": torch.zeros(1, 1), "b": torch.zeros(1, 1)}).logits[0]),
        torch.sigmoid(torch.tensor([0.0, 2.0])),
        atol=1e-5,
    )


def test_avg_probs_and_weighted_mean_multiclass():
    avg = predictor(AvgProbsFusion, {"a": 1, "b": 1}, 2, task="multiclass")
    _two_heads(avg, [0.0, 0.0], [np.log(3.0), 0.0])  # p_a = [.5, .5], p_b = [.75, .25]
    probs = torch.softmax(avg({"a": torch.zeros(1, 1), "b": torch.zeros(1, 1)}).logits, -1)
    assert torch.allclose(probs, torch.tensor([[0.625, 0.375]]), atol=1e-6)
    weighted = predictor(WeightedMeanFusion, {"a": 1, "b": 1}, 2, task="multiclass", aux_losses=True)
    _two_heads(weighted, [0.0, 0.0], [np.log(3.0), 0.0])
    with torch.no_grad():
        weighted.weight_logits.copy_(torch.tensor([0.0, np.log(3.0)]))  # weights 1/4, 3/4
    out = weighted({"a": torch.zeros(1, 1), "b": torch.zeros(1, 1)})
    assert torch.allclose(torch.softmax(out.logits, -1), torch.tensor([[0.6875, 0.3125]]), atol=1e-6)
    assert set(out.aux_logits) == {"a", "b"}


def test_score_concat_is_a_linear_perceptron_on_the_unimodal_scores():
    """CentralNet's "Concat": the unimodal softmax scores [p_a; p_b] concatenated, then W [p_a; p_b] + b
    (hand-set W, b); aux_losses=true ("Concat + Multi-Task") also returns the unimodal logits."""
    fusion = predictor(ScoreConcatFusion, {"a": 1, "b": 1}, 2, task="multiclass")
    _two_heads(fusion, [0.0, 0.0], [np.log(3.0), 0.0])  # p_a = [.5, .5], p_b = [.75, .25]
    assert fusion.perceptron.weight.shape == (2, 4)
    set_linear(fusion.perceptron, [[1.0, 0.0, 2.0, 0.0], [0.0, -1.0, 0.0, 4.0]], [0.5, 0.0])
    out = fusion({"a": torch.zeros(1, 1), "b": torch.zeros(1, 1)})
    assert torch.allclose(out.logits, torch.tensor([[0.5 + 0.5 + 1.5, -0.5 + 1.0]]), atol=1e-6)
    assert out.aux_logits == {}
    multitask = predictor(ScoreConcatFusion, {"a": 1, "b": 1}, 2, task="multiclass", aux_losses=True)
    assert set(multitask({"a": torch.zeros(1, 1), "b": torch.zeros(1, 1)}).aux_logits) == {"a", "b"}
    # multilabel scores are sigmoids: a head at logit 0 contributes 0.5 per label
    multilabel = predictor(ScoreConcatFusion, {"a": 1, "b": 1}, 1, task="multilabel")
    _two_heads(multilabel, [0.0], [0.0])
    set_linear(multilabel.perceptron, [[2.0, 4.0]], [0.0])
    assert multilabel({"a": torch.zeros(1, 1), "b": torch.zeros(1, 1)}).logits.item() == pytest.approx(3.0)


def test_ensemble_of_whole_networks_on_one_input():
    """Table 2's "Ensemble 3 classifiers" on the original images: three independent networks of the
    same input (conv stages on its (C, H, W) shape), their softmax scores averaged."""
    shapes = {"original": [1, 4, 4], "view1": [1, 4, 4]}
    networks = {"conv_channels": [2], "conv_kernel": 3, "hidden_dims": [3], "batch_norm": False}
    fusion = predictor(
        EnsembleFusion,
        {"original": 16, "view1": 16},
        2,
        task="multiclass",
        shapes=shapes,
        members=["original"] * 3,
        networks=networks,
    )
    assert list(fusion.classifiers) == ["member0_original", "member1_original", "member2_original"]
    assert isinstance(fusion.classifiers["member0_original"][0][0], nn.Conv2d)
    first, second = (fusion.classifiers[k][0][0].weight for k in ("member0_original", "member1_original"))
    assert first.data_ptr() != second.data_ptr()
    x = {"original": torch.randn(5, 16), "view1": torch.randn(5, 16)}
    out = fusion(x)
    members = []
    for key in fusion.keys:
        h = x["original"].reshape(5, 1, 4, 4)
        for stage in fusion.classifiers[key]:
            h = stage(h)
        members.append(h)
    assert torch.allclose(out.logits.softmax(-1), torch.stack(members).softmax(-1).mean(0), atol=1e-6)
    assert all(torch.allclose(out.aux_logits[k], h) for k, h in zip(fusion.keys, members, strict=True))
    assert torch.equal(fusion({**x, "view1": torch.randn(5, 16)}).logits, out.logits)  # view1 unused
    assert fusion.reads == ["original"]
    fused = predictor(EnsembleFusion, {"a": 2, "b": 2, "c": 2}, 2, task="multiclass", members=["c", "fused"])
    assert fused.reads == ["a", "b", "c"]
    assert predictor(EnsembleFusion, {"a": 2, "b": 2, "c": 2}, 2, members=["c", "a"]).reads == ["a", "c"]
    with pytest.raises(ValueError, match="'fused' has none"):
        predictor(
            EnsembleFusion, {"a": 2, "b": 2}, 2, task="multiclass", members=["a", "fused"], networks=networks
        )


def test_moe_uniform_gates_average_the_experts():
    moe = predictor(MoEFusion, {"a": 1, "b": 1}, 2, task="multilabel", gating="tied")
    for m, value in (("a", [0.0, 2.0]), ("b", [2.0, 0.0])):
        set_linear(moe.experts[m][0], torch.zeros(2, 1), value)
    set_linear(moe.gate, torch.zeros(2, 2), [0.0, 0.0])
    out = moe({"a": torch.ones(1, 1), "b": torch.ones(1, 1)})
    mean = (torch.sigmoid(torch.tensor([0.0, 2.0])) + torch.sigmoid(torch.tensor([2.0, 0.0]))) / 2
    assert torch.allclose(torch.sigmoid(out.logits[0]), mean, atol=1e-6)
    assert out.interpret["gates"].shape == (1, 2, 1)
    untied = predictor(MoEFusion, {"a": 1, "b": 1, "c": 2}, 3, task="multilabel", gating="untied")
    gates = untied({"a": torch.ones(4, 1), "b": torch.ones(4, 1), "c": torch.ones(4, 2)}).interpret["gates"]
    assert gates.shape == (4, 3, 3) and torch.allclose(gates.sum(1), torch.ones(4, 3))


def test_unimodal_ignores_the_other_modalities():
    fusion = predictor(UnimodalFusion, {"text": 2, "image": 3}, 2, modality="text")
    x = {"text": torch.randn(2, 2), "image": torch.randn(2, 3)}
    y = {"text": x["text"], "image": torch.randn(2, 3)}
    assert torch.equal(fusion(x).logits, fusion(y).logits)
    with pytest.raises(ValueError, match="fusion.modality='audio'"):
        predictor(UnimodalFusion, {"text": 2}, 2, modality="audio")
    with pytest.raises(ValueError, match="needs fusion.modality"):
        predictor(UnimodalFusion, {"text": 2, "image": 3}, 2)


def _dense_centralnet(**options) -> CentralNetFusion:
    """Dense CentralNet without batch norm on inputs a (2-d, padded to 3) and b (3-d), one hidden stage."""
    options = {"task": "multiclass", "hidden_dims": [4], "batch_norm": False, **options}
    return predictor(CentralNetFusion, {"a": 2, "b": 3}, 2, shapes={"a": [2], "b": [3]}, **options)


def _centralnet_by_hand(net: CentralNetFusion, xa, xb, scale: tuple[float, float, float]):
    """Eq. 3 recomputed from the stages (scale = alpha_modalities at depths 0, 1, 2; 1 = Eq. 1) with
    the alphas hand-set below; returns the central prediction and the two unimodal ones."""
    ha, hb = net.unimodal["a"][0](xa), net.unimodal["b"][0](xb)
    oa, ob = net.unimodal["a"][1](ha), net.unimodal["b"][1](hb)
    c1 = net.central[0](scale[0] * (0.2 * nn.functional.pad(xa, (0, 1)) + 0.8 * xb))  # a padded 2 -> 3
    c2 = net.central[1](0.5 * c1 + scale[1] * (0.3 * ha + 0.2 * hb))
    return c2, oa, ob


HAND_SET_ALPHAS = [[0.0, 0.2, 0.8], [0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]


def test_centralnet_hand_set_alphas_reproduce_eq1():
    """Eq. 1 at every depth, recomputed from the stages themselves; the output sums logits."""
    net = _dense_centralnet(form="eq1", output="logits")
    assert torch.allclose(net.alphas[0, 1:], torch.tensor([0.5, 0.5]))  # the first sum is an average
    assert torch.allclose(net.alphas[1], torch.full((3,), 1 / 3))
    assert net.modality_scale is None
    with torch.no_grad():
        net.alphas.copy_(torch.tensor(HAND_SET_ALPHAS))
    xa, xb = torch.randn(5, 2), torch.randn(5, 3)
    out = net({"a": xa, "b": xb})
    c2, oa, ob = _centralnet_by_hand(net, xa, xb, (1.0, 1.0, 1.0))
    assert torch.allclose(out.logits, 0.1 * c2 + 0.6 * oa + 0.3 * ob, atol=1e-6)
    assert torch.allclose(out.aux_logits["a"], oa) and torch.allclose(out.aux_logits["b"], ob)
    rows = net.interpretation()["centralnet_alphas"]
    assert rows[1] == pytest.approx({"depth": 1, "central": 0.5, "a": 0.3, "b": 0.2})


def test_centralnet_branch_contributions_are_alpha_weighted_shares_per_depth():
    """interpret["branch_contributions"] (B, K, depths): |alpha_k| mean|h_k| over the modalities at
    every sum, recomputed from the hand-set alphas and the stages' own hidden states."""
    net = _dense_centralnet(form="eq3", output="logits")
    with torch.no_grad():
        net.alphas.copy_(torch.tensor(HAND_SET_ALPHAS))
        net.modality_scale.fill_(2.0)  # scales every modality alike: no effect on the shares
    xa, xb = torch.tensor([[1.0, 1.0], [0.0, 0.0]]), torch.tensor([[3.0, 3.0, 3.0], [1.0, -1.0, 1.0]])
    shares = net({"a": xa, "b": xb}).interpret["branch_contributions"]
    assert shares.shape == (2, 2, 3)
    # depth 0: a padded to [1, 1, 0] (mean |.| 2/3) against b (3), alphas 0.2 and 0.8
    assert shares[0, :, 0].tolist() == pytest.approx(
        [0.2 * 2 / 3 / (0.2 * 2 / 3 + 0.8 * 3), 2.4 / (0.2 * 2 / 3 + 2.4)]
    )
    assert shares[1, :, 0].tolist() == pytest.approx([0.0, 1.0])  # a missing (zeros) contributes nothing
    ha, hb = net.unimodal["a"][0](xa), net.unimodal["b"][0](xb)
    oa, ob = net.unimodal["a"][1](ha), net.unimodal["b"][1](hb)
    for depth, (alpha_a, alpha_b), (ta, tb) in ((1, (0.3, 0.2), (ha, hb)), (2, (0.6, 0.3), (oa, ob))):
        size_a, size_b = alpha_a * ta.abs().mean(1), alpha_b * tb.abs().mean(1)
        expected = torch.stack([size_a, size_b], 1) / (size_a + size_b).unsqueeze(1)
        assert torch.allclose(shares[..., depth], expected, atol=1e-6)
    assert torch.allclose(shares.sum(1), torch.ones(2, 3))


def test_centralnet_eq3_has_one_alpha_modalities_for_every_depth():
    """Eq. 3 writes alpha_modalities without a layer index: one scalar scales the modality sum at
    every depth (eq3_per_depth keeps one per depth)."""
    net = _dense_centralnet(form="eq3", output="logits")
    assert net.modality_scale.shape == (1,)
    assert _dense_centralnet(form="eq3_per_depth").modality_scale.shape == (3,)
    with torch.no_grad():
        net.alphas.copy_(torch.tensor(HAND_SET_ALPHAS))
        net.modality_scale.fill_(2.0)
    xa, xb = torch.randn(5, 2), torch.randn(5, 3)
    c2, oa, ob = _centralnet_by_hand(net, xa, xb, (2.0, 2.0, 2.0))
    expected = 0.1 * c2 + 2.0 * (0.6 * oa + 0.3 * ob)
    assert torch.allclose(net({"a": xa, "b": xb}).logits, expected, atol=1e-6)
    rows = net.interpretation()["centralnet_alphas"]
    assert rows[2] == pytest.approx({"depth": 2, "central": 0.1, "a": 1.2, "b": 0.6})


def test_centralnet_output_sums_the_pred_layers_softmax_scores():
    """output=scores (Table 1: Pred = fully connected + softmax): the last weighted sum runs over the
    three softmax distributions and, renormalised, is the prediction (logits = its log)."""
    net = _dense_centralnet(form="eq1", output="scores")
    with torch.no_grad():
        net.alphas.copy_(torch.tensor(HAND_SET_ALPHAS))
    xa, xb = torch.randn(5, 2), torch.randn(5, 3)
    c2, oa, ob = _centralnet_by_hand(net, xa, xb, (1.0, 1.0, 1.0))
    p = 0.1 * c2.softmax(-1) + 0.6 * oa.softmax(-1) + 0.3 * ob.softmax(-1)  # alphas sum to 1 here
    out = net({"a": xa, "b": xb})
    assert torch.allclose(out.logits.softmax(-1), p, atol=1e-6)
    assert torch.allclose(out.logits, p.log(), atol=1e-5)
    with torch.no_grad():
        net.alphas[2].mul_(4.0)  # weights summing to 4: the same distribution after renormalising
    assert torch.allclose(net({"a": xa, "b": xb}).logits.softmax(-1), p, atol=1e-6)
    with pytest.raises(ValueError, match="fusion.output"):
        _dense_centralnet(output="probs")


def test_centralnet_eq3_conv_branch_and_bad_form():
    net = predictor(
        CentralNetFusion, {"a": 64, "b": 64}, 10, task="multiclass", shapes={"a": [1, 8, 8], "b": [1, 8, 8]}
    )
    assert net.form == "eq3" and net.output == "scores"  # the paper's form and Pred layers by default
    assert net.branch == "conv" and isinstance(net.central[0][0], nn.Conv2d)
    with torch.no_grad():
        net.modality_scale.fill_(2.0)
    rows = net.interpretation()["centralnet_alphas"]
    assert rows[0]["a"] == pytest.approx(1.0) and rows[1]["central"] == pytest.approx(1 / 3)
    assert net({"a": torch.randn(3, 64), "b": torch.randn(3, 64)}).logits.shape == (3, 10)
    with pytest.raises(ValueError, match="fusion.form"):
        _dense_centralnet(form="eq2")


@pytest.mark.parametrize(
    ("op", "expected"), [("sum", [4.0, 6.0]), ("subtract", [-2.0, -2.0]), ("product", [3.0, 8.0])]
)
def test_layer_fusion_merge_ops(op, expected):
    fusion = predictor(
        LayerFusion, {"a": 2, "b": 2}, 2, task="multiclass", shapes={"a": [2], "b": [2]}, op=op, layer=0
    )
    merged = fusion.merge([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])])
    assert merged.tolist() == expected


def test_layer_fusion_subtract_needs_two_modalities_and_valid_layer():
    dims = {"a": 2, "b": 2, "c": 2}
    with pytest.raises(ValueError, match="subtract takes exactly 2 modalities"):
        predictor(LayerFusion, dims, 2, task="multiclass", shapes={m: [2] for m in dims}, op="subtract")
    with pytest.raises(ValueError, match="fusion.layer=5"):
        predictor(LayerFusion, {"a": 2, "b": 2}, 2, task="multiclass", shapes={"a": [2], "b": [2]}, layer=5)


def test_moddrop_drops_whole_modalities_in_training_only():
    spec_ = {"_target_": "src.models.fusion.concat.ConcatFusion"}
    model = fusion_model({**spec_, "moddrop_p": 0.5}, {"a": 3, "b": 3}, 2)
    fusion = model.modality_dropout
    assert isinstance(fusion, ModalityDropout) and fusion.p == 0.5
    x = {"a": torch.ones(2000, 3), "b": torch.ones(2000, 3)}
    torch.manual_seed(0)
    dropped = fusion(x)
    rows_zero = (dropped["a"] == 0).all(1)
    assert ((dropped["a"] == 0) | (dropped["a"] == 1)).all() and (
        rows_zero == (dropped["a"] == 0).any(1)
    ).all()
    assert 0.45 < rows_zero.float().mean() < 0.55
    fusion.eval()
    assert torch.equal(fusion(x)["a"], x["a"])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        fusion_model({**spec_, "moddrop_p": 1.0}, {"a": 3, "b": 3}, 2)
    # fusion=moddrop is the same before concatenation
    sugar = fusion_model(spec("moddrop"), {"a": 3, "b": 3}, 2)
    assert sugar.modality_dropout.p == 0.25 and isinstance(sugar.fusion, ConcatFusion)


def _inputs(dims: dict[str, int], batch: int = 4) -> dict[str, torch.Tensor]:
    return {m: torch.randn(batch, d, requires_grad=True) for m, d in dims.items()}


@pytest.mark.parametrize("method", METHODS)
def test_gradient_reaches_every_branch(method):
    dims = {"a": 64, "b": 64}
    shapes = {"a": [1, 8, 8], "b": [1, 8, 8]}
    options = {"modality": "a"} if method == "unimodal" else {}
    torch.manual_seed(0)
    fusion = fusion_model(spec(method, **options), dims, 3, SMALL, "multiclass", shapes)
    if fusion.modality_dropout is not None:
        fusion.modality_dropout.p = 0.0  # the branch must see its input for the check
    x = _inputs(dims)
    out = fusion.fuse(x)
    loss = out.logits.sum() + sum(v.sum() for v in out.aux_logits.values())
    loss.backward()
    assert fusion.fusion.reads == (["a"] if method == "unimodal" else list(dims))
    for m in dims:
        reached = x[m].grad is not None and bool(x[m].grad.abs().sum() > 0)
        assert reached == (m in fusion.fusion.reads), (
            f"{method}: gradient to {m} but reads {fusion.fusion.reads}"
        )
    for name, param in fusion.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{method}: no gradient to {name}"


@pytest.mark.parametrize("method", METHODS)
def test_three_modalities_or_clear_error(method):
    dims = {"a": 4, "b": 6, "c": 5}
    options = {"modality": "b"} if method == "unimodal" else {}
    if method == "late_fusion":
        # refused at build time (src/models/compat.py), naming the fusion and the dataset side
        with pytest.raises(ValueError, match=r"LateFusion takes exactly 2 modalities; dataset test has 3"):
            fusion_model(spec(method), dims, 2, SMALL, "multilabel")
        return
    fusion = fusion_model(spec(method, **options), dims, 2, SMALL, "multilabel")
    fusion.eval()
    out = fusion.fuse(_inputs(dims, batch=3))
    assert out.logits.shape == (3, 2) and torch.isfinite(out.logits).all()
    gates = out.interpret.get("gates")
    if gates is not None:
        assert gates.shape[:2] == (3, 3)


@pytest.mark.parametrize(
    "method", ["gmu", "fgmu", "moe", "late_fusion", "layer_fusion", "attention", "centralnet"]
)
def test_fusions_needing_two_modalities_say_so(method):
    # refused at build time (src/models/compat.py), naming the fusion and the dataset side
    with pytest.raises(
        ValueError, match=r"takes (at least|exactly) 2 modalities; dataset test has 1 \(\['a'\]\)"
    ):
        fusion_model(spec(method), {"a": 4}, 2, SMALL, "multilabel")


def test_gate_shares_figure8_counts():
    """Three samples predicted as class x: two favour modality 0 (z > 0.5), one modality 1 (z = 0.5)."""
    z = np.array([0.9, 0.6, 0.5, 0.1])
    gates = np.stack([z, 1 - z], 1)[:, :, None]
    predicted = np.array([[1, 0], [1, 1], [1, 0], [0, 1]], dtype=bool)
    rows = gate_shares(gates, predicted, ["x", "y"], ["image", "text"])
    assert rows[0] == pytest.approx({"class": "x", "n_predicted": 3, "image": 2 / 3, "text": 1 / 3})
    assert rows[1] == pytest.approx({"class": "y", "n_predicted": 2, "image": 0.5, "text": 0.5})
    three = np.array([[[0.1], [0.7], [0.2]], [[0.5], [0.2], [0.3]]])
    assert favoured_modality(three).tolist() == [1, 0]


def test_alpha_percentages_and_files(tmp_path):
    rows = [
        {"depth": 0, "central": None, "a": 0.5, "b": 0.5},
        {"depth": 1, "central": 0.2, "a": -0.6, "b": 0.2},
    ]
    pct = alpha_percentages(rows, ["a", "b"])
    assert pct[0] == pytest.approx({"depth": 0, "central": None, "a": 50.0, "b": 50.0})
    assert pct[1] == pytest.approx({"depth": 1, "central": 20.0, "a": 60.0, "b": 20.0})
    gates = np.stack([np.array([0.9, 0.2]), np.array([0.1, 0.8])], 1)[:, :, None]
    written = write_interpretability(
        tmp_path, np.array([[True], [True]]), {"gates": gates}, {"centralnet_alphas": rows}, ["a", "b"], ["x"]
    )
    assert sorted(p.name for p in written) == [
        "centralnet_alphas.csv",
        "centralnet_alphas.png",
        "gate_shares.csv",
        "gate_shares.png",
    ]
    assert (tmp_path / "gate_shares.csv").read_text().splitlines() == ["class,n_predicted,a,b", "x,2,0.5,0.5"]


def test_per_modality_aux_loss_weights():
    """model.aux_loss_weight as {modality: beta}: total = loss_C + sum_k beta_k loss_k (CentralNet Eq. 2)."""
    from src.models.fusion import FusionOutput
    from src.models.module import FusionClassifier

    model = FusionClassifier(
        task="multiclass",
        num_outputs=2,
        class_names=["0", "1"],
        modalities={"a": {"shape": [2], "kind": "vector"}, "b": {"shape": [2], "kind": "vector"}},
        fusion={"_target_": "src.models.fusion.concat_multitask.ConcatMultitaskFusion"},
        head=LINEAR,
        loss={"name": "cross_entropy"},
        optimizer={"_target_": "torch.optim.SGD", "lr": 0.1},
        aux_loss_weight={"a": 0.5, "b": 2.0},
    )
    labels = torch.tensor([0, 1])
    logits = {k: torch.randn(2, 2) for k in ("main", "a", "b")}
    output = FusionOutput(logits=logits["main"], aux_logits={"a": logits["a"], "b": logits["b"]})
    total, parts = model._loss(output, labels)
    ce = nn.functional.cross_entropy
    expected = ce(logits["main"], labels) + 0.5 * ce(logits["a"], labels) + 2.0 * ce(logits["b"], labels)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6) and set(parts) == {
        "loss_main",
        "loss_a",
        "loss_b",
    }
    model.hparams.aux_loss_weight = {"a": 1.0}
    with pytest.raises(KeyError, match="no beta for 'b'"):
        model._loss(output, labels)


def test_wandb_logger_receives_tables_and_images(tmp_path):
    from lightning.pytorch.loggers import WandbLogger

    calls = []
    logger = WandbLogger.__new__(WandbLogger)
    logger.log_table = lambda key, columns, data: calls.append(("table", key, columns, data))
    logger.log_image = lambda key, images: calls.append(("image", key, images))
    rows = [{"depth": 0, "central": None, "a": 1.0, "b": 3.0}]
    write_interpretability(tmp_path, None, {}, {"centralnet_alphas": rows}, ["a", "b"], ["x"], [logger])
    assert calls[0] == (
        "table",
        "interpret/centralnet_alphas_table",
        ["depth", "central", "a", "b"],
        [[0, None, 25.0, 75.0]],
    )
    assert calls[1] == ("image", "interpret/centralnet_alphas", [str(tmp_path / "centralnet_alphas.png")])
