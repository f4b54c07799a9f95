"""CentralNet's two PCA views: energy, sharing and reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from src.data.pca_views import PCAViews


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return load_digits().images[:600] / 16.0


def test_views_reach_energy_and_share_ratio(images):
    views = PCAViews.fit(images, energy=0.5, share_ratio=0.5)
    shared = set(views.view_components[0]) & set(views.view_components[1])
    assert len(shared) > 0
    for energy in views.view_energy:
        assert 0.5 <= energy < 0.6  # reached, overshooting by at most a component or two
    assert 0.25 <= views.shared_energy < 0.25 + 0.15  # the leading component alone holds ~12%


def test_share_ratio_extremes(images):
    same = PCAViews.fit(images, energy=0.5, share_ratio=1.0)
    assert same.view_components[0].tolist() == same.view_components[1].tolist()
    disjoint = PCAViews.fit(images, energy=0.4, share_ratio=0.0)
    assert not set(disjoint.view_components[0]) & set(disjoint.view_components[1])


def test_full_energy_view_reconstructs_the_image(images):
    views = PCAViews.fit(images, energy=1.0, share_ratio=1.0)
    (first, second) = views.transform(images[:5])
    np.testing.assert_allclose(first, images[:5], atol=1e-5)
    assert first.shape == images[:5].shape and first.dtype == np.float32


def test_infeasible_request_is_a_clear_error(images):
    with pytest.raises(ValueError, match="need 160% of the variance"):
        PCAViews.fit(images, energy=0.8, share_ratio=0.0)
