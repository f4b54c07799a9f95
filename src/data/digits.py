"""``data=digits``: CentralNet's two-view construction on scikit-learn's bundled 8x8 digits.

Embedded (no download): 1,797 images, 10 classes, a seeded stratified split fixed by
``split_seed`` (independent of the training seed, so seeds vary only the model).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.datasets import load_digits

from src.data.base import FusionDataModule, SampleDataset, stratified_split
from src.data.pca_views import PCAViews
from src.tasks import MULTICLASS


class DigitsDataModule(FusionDataModule):
    task = MULTICLASS
    name = "digits"

    def __init__(
        self,
        energy: float = 0.5,
        share_ratio: float = 0.5,
        share_by: str = "vectors",
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        split_seed: int = 0,
        include_original: bool = False,
        **loader_options,
    ) -> None:
        super().__init__(**loader_options)
        digits = load_digits()
        self._images = (digits.images / 16.0).astype(np.float32)  # (N, 8, 8) in [0, 1]
        self._labels = digits.target.astype(np.int64)
        self._indices = stratified_split(self._labels, split_fractions, split_seed)
        self.views = PCAViews.fit(
            self._images[self._indices["train"]], energy, share_ratio, share_by=share_by
        )
        self.class_names = [str(d) for d in range(10)]
        self.include_original = include_original
        self.modalities = self.views.modality_specs([8, 8], include_original)

    def load_split(self, split: str) -> SampleDataset:
        idx = self._indices[split]
        return SampleDataset(
            ids=[f"digit{i:04d}" for i in idx],
            modalities=self.views.modality_arrays(self._images[idx], self.include_original),
            labels=self._labels[idx],
        )
