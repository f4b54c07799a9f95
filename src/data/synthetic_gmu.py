"""``data=synthetic_gmu``: the generative model of Arevalo et al. 2017, Sec. 5.1 (Figure 5).

    C ~ Bernoulli(p_C)                      the class
    M ~ Bernoulli(p_M)                      which modality carries the class (kept per sample)
    y_v ~ N(gamma_v^C, s^2 I), yhat_v ~ N(gammahat_v, s^2 I)   visual class signal / noise
    y_t ~ N(gamma_t^C, s^2 I), yhat_t ~ N(gammahat_t, s^2 I)   textual class signal / noise
    x_v = M y_v + (1 - M) yhat_v,   x_t = M yhat_t + (1 - M) y_t

The means gamma, gammahat are drawn once from N(0, mean_scale^2 I) with ``data_seed``. Modalities
are ``image`` (x_v) and ``text`` (x_t); the task is binary (one sigmoid output, as in the paper).
The latent M of every sample travels in the batch as ``latent`` so the test can correlate the GMU
gate with it (``test/gate_corr_latent``; the paper reports 1.0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from src.data.base import FusionDataModule, SampleDataset, stratified_split
from src.metrics import MULTILABEL


def sample_synthetic_gmu(
    n_samples: int,
    dim: int,
    p_c: float,
    p_m: float,
    mean_scale: float,
    noise_std: float,
    seed: int,
    balanced: bool = False,
) -> dict[str, np.ndarray]:
    """Draw ``n_samples`` of the generative model; returns x_v, x_t, C and M.

    ``balanced``: exactly ``round(p_c * n_samples)`` samples of class 1 in random order instead of
    Bernoulli draws (the paper's "200 samples per class").
    """
    rng = np.random.default_rng(seed)
    gamma_v = rng.normal(0, mean_scale, (2, dim))
    gamma_t = rng.normal(0, mean_scale, (2, dim))
    gammahat_v = rng.normal(0, mean_scale, dim)
    gammahat_t = rng.normal(0, mean_scale, dim)
    if balanced:
        n_pos = int(round(p_c * n_samples))
        c = rng.permutation(np.repeat(np.array([0, 1], dtype=np.int64), [n_samples - n_pos, n_pos]))
    else:
        c = (rng.random(n_samples) < p_c).astype(np.int64)
    m = (rng.random(n_samples) < p_m).astype(np.float32)[:, None]
    y_v = gamma_v[c] + noise_std * rng.standard_normal((n_samples, dim))
    y_t = gamma_t[c] + noise_std * rng.standard_normal((n_samples, dim))
    yhat_v = gammahat_v + noise_std * rng.standard_normal((n_samples, dim))
    yhat_t = gammahat_t + noise_std * rng.standard_normal((n_samples, dim))
    return {
        "x_v": (m * y_v + (1 - m) * yhat_v).astype(np.float32),
        "x_t": (m * yhat_t + (1 - m) * y_t).astype(np.float32),
        "c": c,
        "m": m[:, 0],
    }


class SyntheticGMUDataModule(FusionDataModule):
    task = MULTILABEL

    def __init__(
        self,
        n_samples: int = 2000,
        dim: int = 2,
        p_c: float = 0.5,
        p_m: float = 0.5,
        mean_scale: float = 2.0,
        noise_std: float = 1.0,
        data_seed: int = 0,
        balanced_classes: bool = False,
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        **loader_options,
    ) -> None:
        super().__init__(**loader_options)
        self._data = sample_synthetic_gmu(
            n_samples, dim, p_c, p_m, mean_scale, noise_std, data_seed, balanced=balanced_classes
        )
        self._indices = stratified_split(
            self._data["c"] * 2 + self._data["m"].astype(np.int64), split_fractions, data_seed
        )
        self.class_names = ["C"]
        self.modalities = {
            "image": {"shape": [dim], "kind": "vector"},
            "text": {"shape": [dim], "kind": "vector"},
        }

    def load_split(self, split: str) -> SampleDataset:
        idx = self._indices[split]
        return SampleDataset(
            ids=[f"synthetic{i:05d}" for i in idx],
            modalities={"image": self._data["x_v"][idx], "text": self._data["x_t"][idx]},
            labels=self._data["c"][idx, None].astype(np.float32),
            extras={"latent": self._data["m"][idx]},
        )
