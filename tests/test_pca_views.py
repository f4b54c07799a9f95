"""CentralNet's two PCA views: energy, sharing and reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from src.data.pca_views import PCAViews

#: variance shares of the 8 principal axes of :func:`known_spectrum` (distinct, summing to 1)
SPECTRUM = [0.22, 0.16, 0.14, 0.12, 0.11, 0.10, 0.08, 0.07]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return load_digits().images[:600] / 16.0


def known_spectrum() -> np.ndarray:
    """16 'images' of 8 pixels, +-a_i e_i: zero mean, principal axis i = pixel i, variance ~ a_i^2."""
    amplitudes = np.sqrt(SPECTRUM)
    return np.concatenate([np.diag(amplitudes), -np.diag(amplitudes)])


def test_share_ratio_counts_singular_vectors_on_a_known_spectrum():
    """Sec. 3.1: "the share ratio, defined here as the percentage of the singular vectors shared".
    Energy 0.5, share 0.5: shared 0, private (1 | 2), shared 3, private (5 | 4: the larger to the
    poorer view) -- each view holds 4 vectors, 2 of them shared, and reaches half of the variance."""
    views = PCAViews.fit(known_spectrum(), energy=0.5, share_ratio=0.5)
    assert [v.tolist() for v in views.view_components] == [[0, 3, 1, 5], [0, 3, 2, 4]]
    assert views.view_energy == pytest.approx([0.60, 0.59])
    assert views.shared_energy == pytest.approx(0.34)
    disjoint = PCAViews.fit(known_spectrum(), energy=0.45, share_ratio=0.0)
    assert [sorted(v.tolist()) for v in disjoint.view_components] == [[0, 3, 5, 7], [1, 2, 4, 6]]
    assert disjoint.shared_energy == 0.0


def test_views_reach_energy_and_share_ratio(images):
    for share_ratio in (0.1, 0.5, 0.9):
        views = PCAViews.fit(images, energy=0.5, share_ratio=share_ratio)
        first, second = (set(v.tolist()) for v in views.view_components)
        assert len(first) == len(second)
        assert abs(len(first & second) / len(first) - share_ratio) <= 1 / len(first)
        for energy in views.view_energy:
            assert 0.5 <= energy < 0.6  # reached, overshooting by at most a component or two


def test_energy_sharing_stays_an_option(images):
    views = PCAViews.fit(images, energy=0.5, share_ratio=0.5, share_by="energy")
    assert len(set(views.view_components[0]) & set(views.view_components[1])) > 0
    for energy in views.view_energy:
        assert 0.5 <= energy < 0.6
    assert 0.25 <= views.shared_energy < 0.25 + 0.15  # the leading component alone holds ~12%
    with pytest.raises(ValueError, match="share_by='variance'"):
        PCAViews.fit(images, energy=0.5, share_ratio=0.5, share_by="variance")


@pytest.mark.parametrize("share_by", ["vectors", "energy"])
def test_share_ratio_extremes(images, share_by):
    same = PCAViews.fit(images, energy=0.5, share_ratio=1.0, share_by=share_by)
    assert same.view_components[0].tolist() == same.view_components[1].tolist()
    disjoint = PCAViews.fit(images, energy=0.4, share_ratio=0.0, share_by=share_by)
    assert not set(disjoint.view_components[0]) & set(disjoint.view_components[1])


def test_full_energy_view_reconstructs_the_image(images):
    views = PCAViews.fit(images, energy=1.0, share_ratio=1.0)
    (first, second) = views.transform(images[:5])
    np.testing.assert_allclose(first, images[:5], atol=1e-5)
    assert first.shape == images[:5].shape and first.dtype == np.float32


def test_infeasible_request_is_a_clear_error(images):
    with pytest.raises(ValueError, match=r"sharing 0% of their vectors reach only \[0\.5"):
        PCAViews.fit(images, energy=0.8, share_ratio=0.0)
    with pytest.raises(ValueError, match="need 160% of the variance"):
        PCAViews.fit(images, energy=0.8, share_ratio=0.0, share_by="energy")
