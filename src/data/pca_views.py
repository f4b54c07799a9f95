"""CentralNet's multimodal-MNIST construction (Vielzeuf et al. 2018, Sec. 4.1): two PCA 'views'.

A PCA is fitted on the training images only. Each view is the reconstruction of an image from a
subset of principal components chosen so that

- the view keeps ``energy`` of the total variance (Table 2: 50%), and
- a fraction ``share_ratio`` of that energy comes from components both views share (Table 2: 50%).

Our reading of the paper, stated exactly: the shared components are the leading ones, taken until
their variance reaches ``share_ratio * energy``; the remaining components are then dealt
alternately to view 1 and view 2 (1st to view 1, 2nd to view 2, ...), each view taking components
until its private variance reaches ``(1 - share_ratio) * energy``. ``share_ratio=1`` gives two
identical views; ``share_ratio=0`` two disjoint ones. The builder works on any (N, P) image matrix:
8x8 scikit-learn digits, 28x28 MNIST, or a single view (``n_views=1``) as avMNIST's image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from src.errors import ConfigError


@dataclass
class PCAViews:
    mean: np.ndarray  # (P,)
    components: np.ndarray  # (K, P), rows sorted by decreasing variance
    view_components: list[np.ndarray]  # indices into ``components`` per view
    view_energy: list[float]  # achieved share of the total variance per view
    shared_energy: float  # variance share of the components common to all views

    @classmethod
    def fit(cls, images: np.ndarray, energy: float, share_ratio: float, n_views: int = 2) -> PCAViews:
        """Fit the PCA on ``images`` (N, P) and choose each view's components (see module docstring)."""
        if not 0 < energy <= 1 or not 0 <= share_ratio <= 1:
            raise ConfigError(
                f"data.energy must be in (0, 1] and data.share_ratio in [0, 1]; got {energy}, {share_ratio}"
            )
        x = images.reshape(len(images), -1).astype(np.float64)
        mean = x.mean(0)
        centred = x - mean
        if len(x) >= x.shape[1]:  # eigenvectors of the (P, P) scatter matrix: the same axes, much faster
            variance, vectors = np.linalg.eigh(centred.T @ centred)
            order = np.argsort(variance)[::-1]
            variance, vt = np.clip(variance[order], 0.0, None), vectors[:, order].T
        else:
            _, singular, vt = np.linalg.svd(centred, full_matrices=False)
            variance = singular**2
        ratio = variance / variance.sum()
        shared_target = share_ratio * energy
        private_target = (1 - share_ratio) * energy
        needed = shared_target + n_views * private_target
        if needed > 1 + 1e-9:
            raise ConfigError(
                f"{n_views} views of energy {energy} with share ratio {share_ratio} need {needed:.0%} of the variance; "
                "lower the energy or raise the share ratio"
            )
        k = 0
        shared: list[int] = []
        while sum(ratio[shared]) < shared_target - 1e-12 and k < len(ratio):
            shared.append(k)
            k += 1
        private: list[list[int]] = [[] for _ in range(n_views)]
        view = 0
        while k < len(ratio) and any(sum(ratio[p]) < private_target - 1e-12 for p in private):
            while sum(ratio[private[view]]) >= private_target - 1e-12:
                view = (view + 1) % n_views
            private[view].append(k)
            k += 1
            view = (view + 1) % n_views
        views = [np.array(shared + p, dtype=int) for p in private]
        return cls(
            mean=mean,
            components=vt,
            view_components=views,
            view_energy=[float(ratio[v].sum()) for v in views],
            shared_energy=float(ratio[shared].sum()),
        )

    def transform(self, images: np.ndarray) -> list[np.ndarray]:
        """Each view's reconstruction of ``images``, in the images' own shape, as float32."""
        x = images.reshape(len(images), -1).astype(np.float64) - self.mean
        views = []
        for idx in self.view_components:
            basis = self.components[idx]
            views.append(((x @ basis.T) @ basis + self.mean).reshape(images.shape).astype(np.float32))
        return views

    def modality_specs(self, image_shape: Sequence[int], include_original: bool) -> dict[str, dict]:
        """``view1`` .. ``viewK`` (and ``original``, the undegraded image) as (1, H, W) image modalities."""
        names = [f"view{i + 1}" for i in range(len(self.view_components))]
        names += ["original"] if include_original else []
        return {name: {"shape": [1, *image_shape], "kind": "image"} for name in names}

    def modality_arrays(self, images: np.ndarray, include_original: bool) -> dict[str, np.ndarray]:
        """The views of ``images`` (N, H, W) as (N, 1, H, W) arrays, keyed as :meth:`modality_specs`.

        ``original`` is CentralNet Table 2's "baseline (original MNIST)" input.
        """
        arrays = {f"view{i + 1}": v[:, None] for i, v in enumerate(self.transform(images))}
        if include_original:
            arrays["original"] = images[:, None]
        return arrays
