"""The batched 1000-experiment runner of Arevalo et al. 2017, Sec. 5.1 (src/experiments/synthetic_gmu.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from src.experiments.synthetic_gmu import (
    BatchedGMU,
    SyntheticSetup,
    draw_experiments,
    fit_logistic_regressions,
    gate_latent_auc,
    gate_latent_correlation,
    main,
    run_experiments,
)
from src.models.fusion.gmu import GatedMultimodalUnit
from tests.helpers import compose_train, train_cli

SETUP = SyntheticSetup(max_steps=200)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_draws_are_balanced_and_split_disjointly():
    data = draw_experiments([0, 1, 2], SETUP)
    assert data.x_v.shape == (3, 400, 2) and data.x_t.shape == (3, 400, 2)
    assert (data.c.sum(1) == 200).all()  # 200 samples per class, as in the paper
    masks = np.stack([data.masks[s] for s in ("train", "val", "test")])
    assert (masks.sum(0) == 1).all()  # every sample in exactly one split
    assert masks[0].sum(1).tolist() == [240, 240, 240]
    again = draw_experiments([1], SETUP)
    np.testing.assert_array_equal(again.x_v[0], data.x_v[1])
    np.testing.assert_array_equal(again.masks["test"][0], data.masks["test"][1])


@pytest.mark.parametrize("bias", [True, False])
def test_batched_forward_is_the_gmu_layer_of_each_experiment(bias: bool):
    """Experiment e of the batch computes GatedMultimodalUnit + a linear output with its own weights."""
    model = BatchedGMU([7, 8, 9], dim=2, hidden_dim=3, bias=bias)
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    logits, z = model(x)
    for e in range(3):
        layers = model.layers(e)
        gmu = GatedMultimodalUnit([2, 2], 3, tied=True, bias=bias).double()
        with torch.no_grad():
            for i, name in enumerate(("v", "t")):
                gmu.hidden[i].weight.copy_(layers[name])
                if bias:
                    gmu.hidden[i].bias.copy_(layers[f"{name}_bias"])
            gmu.gate.weight.copy_(layers["z"])
            if bias:
                gmu.gate.bias.copy_(layers["z_bias"])
            fused, gates = gmu([x[e, :, :2], x[e, :, 2:]])
        torch.testing.assert_close(z[e], gates[:, 0])
        torch.testing.assert_close(logits[e], fused @ layers["out"][0] + layers["out_bias"])
    # the same seed gives the same initial weights alone or in a batch
    alone = BatchedGMU([8], dim=2, hidden_dim=3, bias=bias)
    torch.testing.assert_close(alone.w_in[0], model.w_in[1])


def test_batched_training_equals_training_each_experiment_alone():
    seeds = list(range(12))
    batch = run_experiments(seeds, SETUP)
    for i in (7,):
        alone = run_experiments([seeds[i]], SETUP)
        assert alone.gmu.best_step[0] == batch.gmu.best_step[i]
        np.testing.assert_allclose(alone.gmu.best_val_loss[0], batch.gmu.best_val_loss[i], rtol=1e-9)
        assert alone.gmu_errors[0] == batch.gmu_errors[i]
        assert alone.logreg_errors[0] == batch.logreg_errors[i]
        np.testing.assert_allclose(alone.gate_corr[0], batch.gate_corr[i], rtol=1e-9)
    assert batch.wins + batch.ties + batch.losses == 12


def test_batched_logistic_regression_matches_sklearn():
    data = draw_experiments([0, 1, 2], SETUP)
    x = np.concatenate([data.x_v, data.x_t], axis=-1)
    mask = data.masks["train"]
    for c_reg in (0.01, 1.0):
        w = fit_logistic_regressions(
            torch.as_tensor(x, dtype=torch.float64),
            torch.as_tensor(data.c, dtype=torch.float64),
            torch.as_tensor(mask, dtype=torch.float64),
            c_reg,
        ).numpy()
        for e in range(3):
            ref = LogisticRegression(C=c_reg, tol=1e-10, max_iter=10_000).fit(
                x[e, mask[e]], data.c[e, mask[e]]
            )
            np.testing.assert_allclose(w[e], np.r_[ref.coef_[0], ref.intercept_], atol=1e-3)


def test_gate_latent_correlation_known_values():
    gates = np.array([[0.9, 0.8, 0.1, 0.2], [0.5, 0.5, 0.5, 0.5]])
    latent = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    corr = gate_latent_correlation(gates, latent, np.ones_like(latent, dtype=bool))
    np.testing.assert_allclose(corr[0], np.corrcoef(gates[0], latent[0])[0, 1])
    assert corr[0] > 0.98 and np.isnan(corr[1])  # a constant gate has no correlation
    auc = gate_latent_auc(gates, latent, np.ones_like(latent, dtype=bool))
    assert auc.tolist() == [1.0, 0.5]  # z orders M perfectly / not at all


def test_small_run_gives_sensible_numbers():
    """Random layout: the GMU is not worse than logistic regression on average and its gate rises with M."""
    result = run_experiments(
        list(range(100, 140)), SyntheticSetup(layout="random", noise_std=1.0, hidden_dim=4)
    )
    assert result.gmu_errors.mean() <= result.logreg_errors.mean()
    assert result.wins > result.losses
    assert np.nanmedian(result.gate_corr) > 0.5
    assert (result.gate_corr > 0).mean() > 0.9  # z weights h_v: it must rise with M


def test_orthogonal_layout_needs_the_gate_and_the_gate_finds_m():
    """Default (orthogonal) layout: logistic regression cannot ignore the noise modality, the one-unit
    GMU can, and its gate is the paper's switch (r(z, M) ~ 1)."""
    result = run_experiments(list(range(100, 140)), SyntheticSetup())
    assert result.wins == 40
    assert (1 - result.logreg_errors / result.n_test).mean() < 0.8
    assert (1 - result.gmu_errors / result.n_test).mean() > 0.95
    assert np.median(result.gate_corr) > 0.99
    assert (result.gate_corr >= 0.95).mean() >= 0.85


def test_paper_output_is_the_sigmoid_of_h():
    """``output="sigmoid_h"``: the paper's "sigmoid function over h" (no trainable output unit)."""
    model = BatchedGMU([3, 4], dim=2, hidden_dim=1, bias=False, output="sigmoid_h")
    assert {name for name, _ in model.named_parameters()} == {"w_in"}
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    logits, z = model(x)
    layers = model.layers(0)
    h = (
        z[0, :, 0] * torch.tanh(x[0, :, :2] @ layers["v"].T)[:, 0]
        + (1 - z[0, :, 0]) * torch.tanh(x[0, :, 2:] @ layers["t"].T)[:, 0]
    )
    torch.testing.assert_close(logits[0], h)
    with pytest.raises(ValueError, match="needs hidden_dim 1"):
        BatchedGMU([3], dim=2, hidden_dim=2, bias=False, output="sigmoid_h")
    result = run_experiments(list(range(100, 110)), SyntheticSetup(output="sigmoid_h", bias=False))
    assert result.gmu_errors.shape == (10,)


def test_pages_state_the_layout_choice_and_the_output_unit(tmp_path):
    for layout, words in (
        ("orthogonal", "identifiable by construction"),
        ("random", "draws every mean at random"),
    ):
        out = tmp_path / f"{layout}.md"
        assert main(["--experiments", "2", "--max-steps", "20", "--layout", layout, "--out", str(out)]) == 0
        text = out.read_text()
        assert words in text and "applied a sigmoid function over h" in text


def test_cli_writes_the_summary(tmp_path):
    out = tmp_path / "summary.md"
    assert main(["--experiments", "4", "--max-steps", "50", "--out", str(out)]) == 0
    text = out.read_text()
    assert "of 4 |" in text and "Wall time" in text and "370 of 1000" in text
    with pytest.raises(SystemExit):
        main(["--experiments", "0"])


@pytest.mark.slow  # an end-to-end CLI run (>10 s on 2 cores); the fast suite keeps `make test` under 10 min
def test_lightning_experiment_config(tmp_path):
    cfg = compose_train(["experiment=arevalo2017_synthetic"], tmp_path)
    assert cfg.paper_table == "arevalo2017_synthetic"
    assert cfg.data.n_samples == 400 and cfg.data.balanced_classes
    assert cfg.fusion._target_.endswith("GMUFusion") and cfg.fusion.tied and cfg.fusion.hidden_dim == 1
    assert cfg.data.layout == "orthogonal"
    assert cfg.model.head.name == "linear"
    metrics = train_cli(
        tmp_path / "run", "experiment=arevalo2017_synthetic", "trainer.max_epochs=20", "callbacks=none"
    )
    assert -1.0 <= metrics["test/gate_corr_latent"] <= 1.0
    assert metrics["test/f1_micro"] > 0.5
