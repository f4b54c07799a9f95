"""What the file-backed datasets share: a root folder, the bad-input policy, and frozen-encoder features.

``FileDataModule`` adds to :class:`src.data.base.FusionDataModule`:

- ``issues``: the :class:`src.data.issues.IssueLog` that applies ``data.on_problem`` and counts;
  ``issue_counts`` is what ``src.train`` writes to ``data_issues.json``;
- ``frozen``: ``{modality: encoder spec}``; each such modality is encoded once by the frozen encoder
  through the :class:`src.data.feature_cache.FeatureCache` (``data.feature_cache_dir``), and the model
  then sees it as a ``vector`` modality of the encoder's output size (identity encoder by default);
- ``verify_media``: decode every media file (MM-IMDb's posters) when a split is loaded, so that
  training never meets a broken one (the pre-flight). ``src.data.check`` turns it off: it decodes
  each file itself while it reads every sample, and once is enough.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from src.data.base import FusionDataModule, SampleDataset, collate_samples
from src.data.feature_cache import FeatureCache, encode_batches, weights_sha256
from src.data.issues import IssueLog
from src.data.lazy import LazyDataset, RowReader
from src.errors import ConfigError
from src.models.encoders.base import IDENTITY_SPEC, Encoder, build_encoder
from src.spec import ModalitySpec

log = logging.getLogger("mmfusion")

Dataset = SampleDataset | LazyDataset


class FileDataModule(FusionDataModule):
    """Base of the datasets read from published files (see the module docstring)."""

    def __init__(
        self,
        on_problem: Mapping[str, str] | None = None,
        frozen: Mapping[str, Mapping[str, Any]] | None = None,
        feature_cache_dir: str | None = None,
        frozen_batch_size: int = 64,
        report_problems: bool = False,
        verify_media: bool = True,
        **loader_options,
    ) -> None:
        super().__init__(**loader_options)
        self.issues = IssueLog(on_problem, report=report_problems)
        self.verify_media = verify_media
        frozen = OmegaConf.to_container(frozen) if isinstance(frozen, DictConfig) else frozen
        self.frozen_specs = {m: dict(spec) for m, spec in (frozen or {}).items() if spec}
        self.frozen_encoders: dict[str, Encoder] = {}
        if self.frozen_specs and not feature_cache_dir:
            raise ConfigError(
                "data.frozen needs data.feature_cache_dir (where the computed features are stored)"
            )
        self.feature_cache = FeatureCache(feature_cache_dir) if feature_cache_dir else None
        self.frozen_batch_size = frozen_batch_size

    @property
    def issue_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """{split: {problem: {action: count}}} of everything skipped, blanked or fixed so far."""
        return self.issues.as_dict()

    def preprocessing(self, modality: str) -> dict[str, Any]:
        """Settings that change a modality's encoder input (part of the feature-cache key)."""
        return {}

    def setup_frozen(self) -> None:
        """Build the frozen encoders (call at the end of ``__init__``, once ``modalities`` is set)."""
        for modality, spec in self.frozen_specs.items():
            if modality not in self.modalities:
                raise ConfigError(
                    f"data.frozen names {modality!r}; {self.name} has modalities {sorted(self.modalities)}"
                )
            shape, kind = self.modalities[modality].shape, self.modalities[modality].kind
            encoder = build_encoder(spec, shape, kind)
            for p in encoder.parameters():
                p.requires_grad_(False)
            self.frozen_encoders[modality] = encoder
            if encoder.provenance.get("weights") == "random init":
                log.warning(
                    "data.frozen.%s: %s has random weights (no pretrained provenance)",
                    modality,
                    type(encoder).__name__,
                )
            self.modalities[modality] = ModalitySpec("vector", (encoder.out_dim,), source=encoder.provenance)
            self.default_encoders[modality] = dict(IDENTITY_SPEC)

    def _validated_split(self, split: str) -> Dataset:
        fresh = split not in self._validated
        dataset = super()._validated_split(split)
        if fresh:
            self.issues.summarise(split)
        return dataset

    def _ensure(self, split: str) -> Dataset:
        if split not in self.splits:
            dataset = self._validated_split(split)
            for modality, encoder in self.frozen_encoders.items():
                self._attach_features(dataset, split, modality, encoder)
            self.splits[split] = dataset
            self.loaded_splits.append(split)
        return self.splits[split]

    # frozen features ----------------------------------------------------------------------
    def _attach_features(self, dataset: Dataset, split: str, modality: str, encoder: Encoder) -> None:
        assert self.feature_cache is not None
        name = encoder.provenance.get("encoder", type(encoder).__name__)
        key = self.feature_cache.key(
            self.name, split, dataset.ids, str(name), weights_sha256(encoder), self.preprocessing(modality)
        )
        features = self.feature_cache.get_or_compute(
            key,
            lambda: encode_batches(encoder, self._modality_batches(dataset, modality)),
            len(dataset),
            width=int(encoder.out_dim),
        )
        if isinstance(dataset, LazyDataset):
            dataset.readers[modality] = RowReader(features)
        else:
            dataset.modalities[modality] = features
        dataset.extras.pop(f"{modality}_mask", None)

    def _modality_batches(self, dataset: Dataset, modality: str):
        read = (
            dataset.readers[modality]
            if isinstance(dataset, LazyDataset)
            else RowReader(dataset.modalities[modality])
        )
        mask_values = dataset.extras.get(f"{modality}_mask")
        is_sequence = self.frozen_encoders[modality].kind == "sequence"
        for start in range(0, len(dataset), self.frozen_batch_size):
            rows = range(start, min(start + self.frozen_batch_size, len(dataset)))
            values = [read(i) for i in rows]
            if isinstance(values[0], str):
                yield values, None
                continue
            samples = [{modality: torch.as_tensor(v)} for v in values]
            if mask_values is not None:
                for s, i in zip(samples, rows, strict=True):
                    s[f"{modality}_mask"] = torch.as_tensor(mask_values[i])
            batch = collate_samples(samples, sequence_keys=[modality] if is_sequence else [])
            yield batch[modality], batch.get(f"{modality}_mask")


def finite_or_problem(
    issues: IssueLog, split: str, where: str, array: np.ndarray
) -> tuple[np.ndarray, str | None]:
    """Apply the ``nonfinite`` policy to one array: returns (array, None | 'skip' | 'blank')."""
    if np.isfinite(array).all():
        return array, None
    action = issues.problem(split, "nonfinite", f"{where}: {int((~np.isfinite(array)).sum())} NaN/inf values")
    return (
        (np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0), action)
        if action == "blank"
        else (array, action)
    )
