"""``data=synthetic_gmu``: the generative model of Arevalo et al. 2017, Sec. 5.1 (Figure 6).

    C ~ Bernoulli(p_C)                      the class
    M ~ Bernoulli(p_M)                      which modality carries the class (kept per sample)
    y_v ~ N(gamma_v^C, s^2 I), yhat_v ~ N(gammahat_v, s^2 I)   visual class signal / noise
    y_t ~ N(gamma_t^C, s^2 I), yhat_t ~ N(gammahat_t, s^2 I)   textual class signal / noise
    x_v = M y_v + (1 - M) yhat_v,   x_t = M yhat_t + (1 - M) y_t

The paper gives neither the means nor the covariances; ``layout`` chooses them (drawn once with
``data_seed``):

* ``random``: every gamma and gammahat from N(0, mean_scale^2 I), all clusters isotropic with std
  ``noise_std``. Here a classifier rarely *needs* the gate: some projection puts the noise cluster
  at the midpoint between the two class clusters, so an additive h_v + h_t fits almost as well and
  the gate is free to carry class information instead of M (docs/fusion.md has the measurements).
* ``orthogonal`` (the default of ``data=synthetic_gmu``): per modality a random orthonormal pair
  (class axis a, offset axis b); gamma^C = (C - 1/2) mean_scale a, gammahat = noise_offset b, and
  the noise cluster spreads along the class axis (std ``noise_spread`` along a, ``noise_std``
  elsewhere). The noise modality then looks like either class at random, so no fixed combination
  of the two modalities can ignore it: the classifier must find M (which lies along b, orthogonal
  to the class axis) and gate. Only this layout uses ``noise_offset`` and ``noise_spread``.

Modalities are ``image`` (x_v) and ``text`` (x_t); the task is binary (one sigmoid output, as in the
paper).
The latent M of every sample travels in the batch as ``latent`` so the test can correlate the GMU
gate with it (``test/gate_corr_latent``; the paper reports 1.0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from src.data.base import FusionDataModule, SampleDataset, stratified_split
from src.errors import ConfigError
from src.spec import ModalitySpec
from src.tasks import MULTILABEL

Layout = Literal["random", "orthogonal"]
LAYOUTS: tuple[str, ...] = ("random", "orthogonal")


def sample_synthetic_gmu(
    n_samples: int,
    dim: int,
    p_c: float,
    p_m: float,
    mean_scale: float,
    noise_std: float,
    seed: int,
    balanced: bool = False,
    layout: Layout = "random",
    noise_offset: float = 3.0,
    noise_spread: float = 2.0,
) -> dict[str, np.ndarray]:
    """Draw ``n_samples`` of the generative model; returns x_v, x_t, C and M.

    ``balanced``: exactly ``round(p_c * n_samples)`` samples of class 1 in random order instead of
    Bernoulli draws (the paper's "200 samples per class"). ``layout``: see the module docstring.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"synthetic_gmu: layout must be one of {list(LAYOUTS)}, got {layout!r}")
    for name, std in (("noise_std", noise_std), ("noise_spread", noise_spread)):
        if std < 0:
            raise ConfigError(f"synthetic_gmu: {name}={std}: a standard deviation must be >= 0")
    if layout == "orthogonal" and dim < 2:
        raise ConfigError(
            f"synthetic_gmu: layout='orthogonal' needs dim >= 2 (a class and an offset axis), got {dim}"
        )
    rng = np.random.default_rng(seed)
    noise_scale_v = noise_scale_t = noise_std * np.eye(dim)
    if layout == "random":
        gamma_v = rng.normal(0, mean_scale, (2, dim))
        gamma_t = rng.normal(0, mean_scale, (2, dim))
        gammahat_v = rng.normal(0, mean_scale, dim)
        gammahat_t = rng.normal(0, mean_scale, dim)
    else:
        (gamma_v, gammahat_v, noise_scale_v), (gamma_t, gammahat_t, noise_scale_t) = (
            _orthogonal_modality(rng, dim, mean_scale, noise_std, noise_offset, noise_spread)
            for _ in range(2)
        )
    if balanced:
        n_pos = int(round(p_c * n_samples))
        c = rng.permutation(np.repeat(np.array([0, 1], dtype=np.int64), [n_samples - n_pos, n_pos]))
    else:
        c = (rng.random(n_samples) < p_c).astype(np.int64)
    m = (rng.random(n_samples) < p_m).astype(np.float32)[:, None]
    y_v = gamma_v[c] + noise_std * rng.standard_normal((n_samples, dim))
    y_t = gamma_t[c] + noise_std * rng.standard_normal((n_samples, dim))
    yhat_v = gammahat_v + rng.standard_normal((n_samples, dim)) @ noise_scale_v
    yhat_t = gammahat_t + rng.standard_normal((n_samples, dim)) @ noise_scale_t
    return {
        "x_v": (m * y_v + (1 - m) * yhat_v).astype(np.float32),
        "x_t": (m * yhat_t + (1 - m) * y_t).astype(np.float32),
        "c": c,
        "m": m[:, 0],
    }


def _orthogonal_modality(
    rng: np.random.Generator,
    dim: int,
    mean_scale: float,
    noise_std: float,
    noise_offset: float,
    noise_spread: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One modality of the ``orthogonal`` layout: class means (2, dim), noise mean (dim,) and the
    (dim, dim) matrix S with noise = gammahat + S^T e, e ~ N(0, I): std ``noise_spread`` along the class
    axis a, ``noise_std`` along every other direction."""
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    class_axis, offset_axis = basis[:, 0], basis[:, 1]
    gamma = np.outer([-0.5, 0.5], mean_scale * class_axis)
    scale = noise_std * np.eye(dim) + (noise_spread - noise_std) * np.outer(class_axis, class_axis)
    return gamma, noise_offset * offset_axis, scale


class SyntheticGMUDataModule(FusionDataModule):
    task = MULTILABEL
    name = "synthetic_gmu"

    def __init__(
        self,
        n_samples: int = 2000,
        dim: int = 2,
        p_c: float = 0.5,
        p_m: float = 0.5,
        mean_scale: float = 2.0,
        noise_std: float = 0.5,
        data_seed: int = 0,
        balanced_classes: bool = False,
        layout: Layout = "orthogonal",
        noise_offset: float = 3.0,
        noise_spread: float = 2.0,
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        **loader_options,
    ) -> None:
        super().__init__(**loader_options)
        self._data = sample_synthetic_gmu(
            n_samples,
            dim,
            p_c,
            p_m,
            mean_scale,
            noise_std,
            data_seed,
            balanced=balanced_classes,
            layout=layout,
            noise_offset=noise_offset,
            noise_spread=noise_spread,
        )
        self._indices = stratified_split(
            self._data["c"] * 2 + self._data["m"].astype(np.int64), split_fractions, data_seed
        )
        self.class_names = ["C"]
        self.modalities = {
            "image": ModalitySpec("vector", (dim,)),
            "text": ModalitySpec("vector", (dim,)),
        }

    def load_split(self, split: str) -> SampleDataset:
        idx = self._indices[split]
        return SampleDataset(
            ids=[f"synthetic{i:05d}" for i in idx],
            modalities={"image": self._data["x_v"][idx], "text": self._data["x_t"][idx]},
            labels=self._data["c"][idx, None].astype(np.float32),
            extras={"latent": self._data["m"][idx]},
        )
