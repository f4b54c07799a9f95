"""The feature step: frozen encoders that run once per split, before training, through the feature cache.

Data delivers modalities (a poster, a plot); encoders make features. An encoder whose config says
``precompute: true`` (e.g. ``encoder/image=efficientnet_lite0``: a frozen pretrained backbone) is
not run at every step: :func:`run_feature_step` builds it (parameters frozen, eval mode), computes
its features of every split once, stores them in the verified :class:`src.data.feature_cache.FeatureCache`
(keyed by dataset, split, sample ids, encoder name, weights sha256 and the dataset's preprocessing
settings) and hands them to the DataModule (``use_features``); the model then sees that modality
as a ``vector`` of the encoder's width through the identity encoder. A later run (or ``src.eval``)
with the same key reads the cache instead of decoding and encoding again.

Batches are read by a DataLoader with ``features.num_workers`` worker processes, so decoding the
next batches overlaps the encoder's forward pass; the encoder runs in this process, so the
features are the same, bit for bit, with any number of workers. A progress bar shows rate and ETA.

Which encoder each modality gets (:func:`encoder_specs`): ``model.encoders.<modality>`` (set by
``encoder/<modality>=...``), else the dataset's default for the modality's kind,
``model.default_encoders.<kind>`` (from the defaults list of ``conf/data/<dataset>.yaml``), else
the identity encoder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src.data.base import FusionDataModule, collate_samples
from src.data.feature_cache import FeatureCache
from src.errors import ConfigError
from src.models.encoders.base import IDENTITY_SPEC, Encoder, build_encoder, freeze, state_sha256
from src.models.layers import masked_mean
from src.spec import DatasetSpec, ModalitySpec, unit_pixels

log = logging.getLogger("mmfusion")

#: the key of an encoder config that selects the feature step
PRECOMPUTE = "precompute"
#: ``features`` of the run config (conf/train.yaml) where a config predates it
FEATURE_DEFAULTS: dict[str, Any] = {"cache_dir": "feature_cache", "batch_size": 64, "num_workers": 0}


def encoder_specs(
    encoders: Mapping[str, Any] | None, default_encoders: Mapping[str, Any] | None, spec: DatasetSpec
) -> dict[str, dict[str, Any]]:
    """{modality: encoder config} for every modality of ``spec``: the per-modality choice
    (``model.encoders``), else the dataset default of its kind (``model.default_encoders``), else identity."""
    chosen = {m: s for m, s in (encoders or {}).items() if s}
    unknown = sorted(set(chosen) - set(spec.modalities))
    if unknown:
        raise ConfigError(
            f"model.encoders names {unknown}; {spec.name} has the modalities {sorted(spec.modalities)}"
        )
    defaults = {k: s for k, s in (default_encoders or {}).items() if s}
    return {
        m: dict(chosen.get(m) or defaults.get(ms.kind) or IDENTITY_SPEC) for m, ms in spec.modalities.items()
    }


def weights_sha256(encoder: Encoder) -> str:
    """The provenance's ``sha256`` when it has one, else a hash of the encoder's state."""
    recorded = encoder.provenance.get("sha256")
    return str(recorded) if recorded else state_sha256(encoder)


def encode_batches(
    encoder: Encoder, batches: Iterable[tuple[Any, torch.Tensor | None]]
) -> Iterator[np.ndarray]:
    """Run a frozen encoder (eval mode, no grad) over ``(inputs, mask)`` batches; sequences are mean-pooled."""
    encoder.eval()
    with torch.no_grad():
        for x, mask in batches:
            y, out_mask = encoder.encode(unit_pixels(x), mask)
            if encoder.returns_sequence:
                y = y.mean(1) if out_mask is None else masked_mean(y, out_mask)
            yield y.detach().cpu().numpy()


class ModalityView(Dataset):
    """One modality of a split (and its mask), read sample by sample: what the feature step encodes."""

    def __init__(self, dataset: Any, modality: str) -> None:
        self.dataset, self.modality = dataset, modality
        self.mask_key = f"{modality}_mask"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, row: int) -> dict[str, Any]:
        readers = getattr(self.dataset, "readers", None)
        value = (
            readers[self.modality](row)
            if readers is not None
            else self.dataset.modalities[self.modality][row]
        )
        sample = {self.modality: value if isinstance(value, str) else torch.as_tensor(value)}
        masks = self.dataset.extras.get(self.mask_key)
        if masks is not None:
            sample[self.mask_key] = torch.as_tensor(masks[row])
        return sample


def modality_batches(
    dataset: Any, modality: str, is_sequence: bool, batch_size: int, num_workers: int, desc: str
) -> Iterator[tuple[Any, torch.Tensor | None]]:
    """``(inputs, mask)`` batches of one modality in sample order, decoded by ``num_workers`` loader
    workers (0: in this process) while the caller encodes, with a progress bar (rate, ETA)."""
    view = ModalityView(dataset, modality)
    collate = partial(collate_samples, sequence_keys=[modality] if is_sequence else [])
    loader = DataLoader(
        view,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    with tqdm(total=len(view), desc=desc, unit="sample", mininterval=1.0) as bar:
        for batch in loader:
            x = batch[modality]
            yield x, batch.get(view.mask_key)
            bar.update(len(x))


def build_frozen(options: Mapping[str, Any], modality: str, spec: ModalitySpec, seed: int) -> Encoder:
    """The encoder of ``options`` (without ``precompute``), frozen, in eval mode. Its construction
    draws from a generator seeded with ``seed``, so a random-weight encoder is the same in every run
    (and in ``src.eval``) of that seed."""
    options = {k: v for k, v in options.items() if k != PRECOMPUTE}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(options, spec.shape, spec.kind)
    if getattr(encoder, "frozen", True) is False:  # a pretrained backbone configured to fine-tune
        raise ConfigError(
            f"model.encoders.{modality}: {options.get('_target_')} is configured to train some layers but has "
            "precompute: true (features computed once cannot be fine-tuned); drop one of the two"
        )
    freeze(encoder)
    encoder.eval()
    if not encoder.cacheable:
        raise ConfigError(
            f"model.encoders.{modality}: {options.get('_target_')} has precompute: true but its outputs are not "
            "fixed (it is fitted on data or augments at training time); drop precompute for it"
        )
    if encoder.provenance.get("weights") == "random init":
        log.warning(
            "model.encoders.%s: %s is precomputed with random weights (no pretrained provenance)",
            modality,
            type(encoder).__name__,
        )
    return encoder


def run_feature_step(
    datamodule: FusionDataModule,
    encoders: Mapping[str, Mapping[str, Any]],
    cache_dir: str | Path,
    batch_size: int = 64,
    num_workers: int = 0,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Hand the features of every ``precompute: true`` encoder to ``datamodule`` (computed when a
    split is first handed out, cached); returns the encoder configs the model is built with (the
    precomputed modalities get the identity encoder) and records each encoder's provenance in the
    modality's ``ModalitySpec.source``."""
    cache = FeatureCache(cache_dir)
    model_encoders = {m: dict(s) for m, s in encoders.items()}
    for modality, options in encoders.items():
        if not options.get(PRECOMPUTE):
            model_encoders[modality] = {k: v for k, v in options.items() if k != PRECOMPUTE}
            continue
        spec = datamodule.spec.modalities[modality]
        encoder = build_frozen(options, modality, spec, seed)
        provenance = {**encoder.provenance, "precomputed": True}
        compute = partial(_features, cache, datamodule, modality, encoder, batch_size, num_workers)
        datamodule.use_features(
            modality, ModalitySpec("vector", (int(encoder.out_dim),), source=provenance), compute
        )
        model_encoders[modality] = dict(IDENTITY_SPEC)
    return model_encoders


def _features(
    cache: FeatureCache,
    datamodule: FusionDataModule,
    modality: str,
    encoder: Encoder,
    batch_size: int,
    num_workers: int,
    split: str,
    dataset: Any,
) -> np.ndarray:
    name = str(encoder.provenance.get("encoder", type(encoder).__name__))
    key = cache.key(
        datamodule.name, split, dataset.ids, name, weights_sha256(encoder), datamodule.preprocessing(modality)
    )
    is_sequence = encoder.kind == "sequence"
    desc = f"features {datamodule.name}/{split}/{modality} ({name})"
    return cache.get_or_compute(
        key,
        lambda: encode_batches(
            encoder, modality_batches(dataset, modality, is_sequence, batch_size, num_workers, desc)
        ),
        len(dataset),
        width=int(encoder.out_dim),
    )


def prepare_encoders(config: Mapping[str, Any], datamodule: FusionDataModule) -> dict[str, dict[str, Any]]:
    """The model's encoder configs for ``datamodule`` under a run config (``model.encoders``,
    ``model.default_encoders``, ``features``, ``seed``), after the feature step has handed the
    precomputed modalities to ``datamodule``. ``src.train`` and ``src.eval`` both call it."""
    model = config.get("model") or {}
    options = {**FEATURE_DEFAULTS, **(config.get("features") or {})}
    chosen = encoder_specs(model.get("encoders"), model.get("default_encoders"), datamodule.spec)
    return run_feature_step(
        datamodule,
        chosen,
        options["cache_dir"],
        int(options["batch_size"]),
        int(options["num_workers"]),
        int(config.get("seed") or 0),
    )
