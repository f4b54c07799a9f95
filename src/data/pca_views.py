"""CentralNet's multimodal-MNIST construction (Vielzeuf et al. 2018, Sec. 3.1): two PCA 'views'.

A PCA is fitted on the training images only. "Each one of the 2 (artificial) modalities is created
by associating with it a set of singular vectors", which sets

- the *energy* of a view, "the sum of the energy contained in the chosen vectors" (Table 2: 50%),
- and the *share ratio*, "the percentage of the singular vectors shared between modalities"
  (Table 2: 50%).

``share_by="vectors"`` (the paper's definition) counts vectors: the components are taken in order of
decreasing variance, each step adding either the next component to every view (shared) or the next
``n_views`` components, one private component per view (the largest to the view holding the least
variance so far, which keeps the views' energies level). A step is shared when that keeps the fraction of each view's vectors that are
shared closer to ``share_ratio`` (ties go to sharing); steps continue until every view holds
``energy`` of the variance. Which vectors are chosen is not stated in the paper; ours interleaves
shared and private ones across the spectrum.

``share_by="energy"`` (an earlier reading of ours, kept as an option) shares variance instead: the
leading components are shared until their variance reaches ``share_ratio * energy``, then the
remaining ones are dealt alternately to the views until each view's private variance reaches
``(1 - share_ratio) * energy``.

Either way ``share_ratio=1`` gives identical views and ``share_ratio=0`` disjoint ones. The builder
works on any (N, P) image matrix: 8x8 scikit-learn digits, 28x28 MNIST, or a single view
(``n_views=1``) as avMNIST's image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from src.errors import ConfigError
from src.spec import ModalitySpec

SHARE_BY = ("vectors", "energy")
#: how far below ``energy`` a view may end when the components run out (share ratio 0 with two
#: views of energy 0.5 needs every component, and the two halves never split exactly)
ENERGY_SLACK = 0.01


def share_vectors(
    ratio: np.ndarray, energy: float, share_ratio: float, n_views: int
) -> tuple[list[int], list[list[int]]]:
    """Shared and per-view private component indices, ``share_ratio`` counted in vectors."""
    shared: list[int] = []
    private: list[list[int]] = [[] for _ in range(n_views)]
    held = np.zeros(n_views)  # each view's variance so far
    k = 0
    while held.min() < energy - 1e-12 and k < len(ratio):
        n_shared, n_private = len(shared), len(private[0])
        if_shared = abs((n_shared + 1) / (n_shared + 1 + n_private) - share_ratio)
        if_private = abs(n_shared / (n_shared + n_private + 1) - share_ratio)
        if if_shared <= if_private:
            shared.append(k)
            held += ratio[k]
            k += 1
        elif k + n_views <= len(ratio):  # the largest of the n_views components to the poorest view
            for j, view in enumerate(np.argsort(held, kind="stable")):
                private[view].append(k + j)
                held[view] += ratio[k + j]
            k += n_views
        else:
            break
    if held.min() < energy - ENERGY_SLACK:
        raise ConfigError(
            f"{n_views} views of energy {energy} sharing {share_ratio:.0%} of their vectors reach only "
            f"{[round(float(r), 3) for r in held]} of the variance; lower the energy or raise the share ratio"
        )
    return shared, private


def share_energy(
    ratio: np.ndarray, energy: float, share_ratio: float, n_views: int
) -> tuple[list[int], list[list[int]]]:
    """Shared and per-view private component indices, ``share_ratio`` counted in variance."""
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
    return shared, private


@dataclass
class PCAViews:
    mean: np.ndarray  # (P,)
    components: np.ndarray  # (K, P), rows sorted by decreasing variance
    view_components: list[np.ndarray]  # indices into ``components`` per view
    view_energy: list[float]  # achieved share of the total variance per view
    shared_energy: float  # variance share of the components common to all views

    @classmethod
    def fit(
        cls,
        images: np.ndarray,
        energy: float,
        share_ratio: float,
        n_views: int = 2,
        share_by: str = "vectors",
    ) -> PCAViews:
        """Fit the PCA on ``images`` (N, P) and choose each view's components (see module docstring)."""
        if not 0 < energy <= 1 or not 0 <= share_ratio <= 1:
            raise ConfigError(
                f"energy must be in (0, 1] and share_ratio in [0, 1]; got {energy}, {share_ratio}"
            )
        if share_by not in SHARE_BY:
            raise ConfigError(f"share_by={share_by!r}; expected one of {SHARE_BY}")
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
        choose = share_vectors if share_by == "vectors" else share_energy
        shared, private = choose(ratio, energy, share_ratio, n_views)
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

    def modality_specs(self, image_shape: Sequence[int], include_original: bool) -> dict[str, ModalitySpec]:
        """``view1`` .. ``viewK`` (and ``original``, the undegraded image) as (1, H, W) image modalities."""
        names = [f"view{i + 1}" for i in range(len(self.view_components))]
        names += ["original"] if include_original else []
        return {name: ModalitySpec("image", (1, *image_shape)) for name in names}

    def modality_arrays(self, images: np.ndarray, include_original: bool) -> dict[str, np.ndarray]:
        """The views of ``images`` (N, H, W) as (N, 1, H, W) arrays, keyed as :meth:`modality_specs`.

        ``original`` is CentralNet Table 2's "baseline (original MNIST)" input.
        """
        arrays = {f"view{i + 1}": v[:, None] for i, v in enumerate(self.transform(images))}
        if include_original:
            arrays["original"] = images[:, None]
        return arrays
