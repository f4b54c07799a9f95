"""``data=synthetic_gmu``: the GMU paper's generative model (Arevalo et al. 2017, Sec. 5.1) and its layouts."""

from __future__ import annotations

import numpy as np
import pytest

from src.data.synthetic_gmu import SyntheticGMUDataModule, sample_synthetic_gmu


def draw(layout: str, dim: int = 3, n: int = 40000, seed: int = 5) -> dict[str, np.ndarray]:
    return sample_synthetic_gmu(
        n,
        dim,
        0.5,
        0.5,
        mean_scale=2.0,
        noise_std=0.5,
        seed=seed,
        layout=layout,
        noise_offset=3.0,
        noise_spread=2.0,
    )


@pytest.mark.parametrize("dim", [2, 3])
def test_orthogonal_layout_geometry(dim: int):
    """Class means mean_scale apart; noise mean noise_offset from their midpoint, off the class axis;
    the noise cluster has std noise_spread along the class axis and noise_std across it."""
    d = draw("orthogonal", dim=dim)
    m, c = d["m"] == 1, d["c"]
    for x, informative in ((d["x_v"], m), (d["x_t"], ~m)):
        class_means = np.stack([x[informative & (c == k)].mean(0) for k in (0, 1)])
        noise = x[~informative]
        axis = class_means[1] - class_means[0]
        assert np.linalg.norm(axis) == pytest.approx(2.0, abs=0.05)
        offset = noise.mean(0) - class_means.mean(0)
        assert np.linalg.norm(offset) == pytest.approx(3.0, abs=0.05)
        assert abs(offset @ axis) / (np.linalg.norm(offset) * np.linalg.norm(axis)) < 0.03
        unit = axis / np.linalg.norm(axis)
        assert (noise @ unit).std() == pytest.approx(2.0, rel=0.03)
        across = noise - np.outer(noise @ unit, unit)
        assert np.sqrt((across - across.mean(0)).var(0).sum() / (dim - 1)) == pytest.approx(0.5, rel=0.03)
        for k in (0, 1):  # class clusters: isotropic, std noise_std
            assert x[informative & (c == k)].std(0) == pytest.approx(np.full(dim, 0.5), rel=0.05)


def test_orthogonal_layout_orientation_follows_the_seed():
    a, b, again = (
        draw("orthogonal", n=50, seed=1),
        draw("orthogonal", n=50, seed=2),
        draw("orthogonal", n=50, seed=1),
    )
    np.testing.assert_array_equal(a["x_v"], again["x_v"])
    assert not np.allclose(a["x_v"], b["x_v"])


def test_the_noise_modality_is_uninformative_in_both_layouts():
    """Given M, the modality that does not carry C is independent of C (its mean does not move with C)."""
    for layout in ("random", "orthogonal"):
        d = draw(layout)
        noise_v = d["m"] == 0
        gap = d["x_v"][noise_v & (d["c"] == 1)].mean(0) - d["x_v"][noise_v & (d["c"] == 0)].mean(0)
        assert np.abs(gap).max() < 0.1, layout


def test_bad_layouts_are_named():
    with pytest.raises(ValueError, match="layout must be one of .*'diagonal'"):
        draw("diagonal")
    with pytest.raises(ValueError, match="needs dim >= 2"):
        draw("orthogonal", dim=1)
    with pytest.raises(ValueError, match=r"noise_spread=-1.0: a standard deviation must be >= 0"):
        sample_synthetic_gmu(10, 2, 0.5, 0.5, 2.0, 0.5, 0, layout="orthogonal", noise_spread=-1.0)


def test_datamodule_defaults_are_the_orthogonal_layout():
    data = SyntheticGMUDataModule()
    expected = sample_synthetic_gmu(2000, 2, 0.5, 0.5, 2.0, 0.5, 0, layout="orthogonal")
    test = data.load_split("test")
    idx = [int(i.removeprefix("synthetic")) for i in test.ids]
    np.testing.assert_array_equal(test.modalities["image"], expected["x_v"][idx])
    np.testing.assert_array_equal(test.extras["latent"], expected["m"][idx])
