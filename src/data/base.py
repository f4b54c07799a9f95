"""What every dataset of the repo shares: sample dicts, collation with masks, and the split discipline.

A dataset module subclasses :class:`FusionDataModule` and implements ``load_split(name)`` for
``train``, ``val`` and ``test``; ``load_split`` reads and validates the split's files (and applies
the bad-input policy). :meth:`FusionDataModule.preflight` loads and validates all three splits
before training starts (``src.train`` calls it), so a broken file of any split stops the run before
the first step. A split reaches a DataLoader (and so a model, a metric or a selection) only through
``_ensure``, recorded in ``loaded_splits``: fitting hands out ``train`` and ``val`` only, so no test
sample is seen before ``trainer.test``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, RandomSampler

from src.data.resident import MB, ResidentLoader, ResidentSplit, split_nbytes
from src.data.validate import check_split_ids
from src.errors import ConfigError, UserError
from src.spec import Batch, DatasetSpec, ModalitySpec
from src.utils.rng import restore_rng_state, rng_state

log = logging.getLogger("mmfusion")

SPLITS = ("train", "val", "test")


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset's files are not where the config says; the message tells where and how to get them."""


def _batchable(values: Any) -> bool:
    return (isinstance(values, np.ndarray) and values.dtype != object) or torch.is_tensor(values)


class SampleDataset(Dataset):
    """In-memory samples: one array (or list of variable-length arrays) per modality, labels and ids.

    ``__getitem__`` returns ``{modality: tensor or str, "labels": tensor, "index": int, "ids": str}`` plus
    any ``extras`` (per-sample arrays such as the synthetic task's latent variable).
    """

    def __init__(
        self,
        ids: Sequence[str],
        modalities: Mapping[str, np.ndarray | Sequence[np.ndarray]],
        labels: np.ndarray,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.ids = [str(i) for i in ids]
        n = len(self.ids)
        for name, values in {**modalities, "labels": labels, **(extras or {})}.items():
            if len(values) != n:
                raise ValueError(f"{name!r} has {len(values)} rows but there are {n} sample ids")
        check_unique_ids(self.ids)
        self.modalities = dict(modalities)
        self.labels = labels
        self.extras = dict(extras or {})

    def __len__(self) -> int:
        return len(self.ids)

    def __getitems__(self, indices: Sequence[int]) -> Batch | list[dict[str, Any]]:
        """A whole batch by fancy indexing when every field is one array (one copy per field instead
        of one tensor per sample and field); otherwise the samples one by one."""
        fields = [*self.modalities.values(), *self.extras.values(), self.labels]
        if not all(_batchable(values) for values in fields):
            return [self[i] for i in indices]
        rows = np.asarray(indices, dtype=np.int64)
        batch = Batch({name: torch.as_tensor(values[rows]) for name, values in self.modalities.items()})
        batch.update({name: torch.as_tensor(values[rows]) for name, values in self.extras.items()})
        batch["labels"] = torch.as_tensor(self.labels[rows])
        batch["index"] = torch.from_numpy(rows)
        batch["ids"] = [self.ids[i] for i in rows.tolist()]
        return batch

    def column(self, modality: str) -> Sequence[Any]:
        """Every sample's raw value of one modality (what data-fitted encoders are fitted on)."""
        return self.modalities[modality]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample: dict[str, Any] = {name: _as_item(values[index]) for name, values in self.modalities.items()}
        sample.update({name: torch.as_tensor(values[index]) for name, values in self.extras.items()})
        sample["labels"] = torch.as_tensor(self.labels[index])
        sample["index"] = index
        sample["ids"] = self.ids[index]
        return sample


class RowReader:
    """``reader(row)`` over an in-memory or memory-mapped array (picklable for loader workers)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __call__(self, row: int) -> np.ndarray:
        return np.array(self.array[row])  # a writable copy (memory maps are read-only)


#: ``compute(split, dataset) -> (n_samples, ...) array`` of one modality's features (see ``use_features``)
FeatureStep = Callable[[str, Any], np.ndarray]


def replace_modality(dataset: Any, modality: str, features: np.ndarray) -> None:
    """``dataset`` (a :class:`SampleDataset` or a lazy one with ``readers``) now delivers ``features``
    (one row per sample) as ``modality``; the modality's padding mask, if any, goes."""
    if len(features) != len(dataset):
        raise ValueError(
            f"{modality} features have {len(features)} rows, the split has {len(dataset)} samples"
        )
    if hasattr(dataset, "readers"):
        dataset.readers[modality] = RowReader(features)
    else:
        dataset.modalities[modality] = features
    dataset.extras.pop(f"{modality}_mask", None)


def check_unique_ids(ids: Sequence[str]) -> None:
    """Raise naming the repeated sample ids of a split (each sample must be one row)."""
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        repeated = [i for i in ids if i in seen or seen.add(i)]
        raise ValueError(f"sample ids are not unique: {sorted(set(repeated))[:5]} appear more than once")


def _as_item(value: Any) -> Any:
    """Tensors for numeric values; raw strings (``kind: text``) pass through for the text encoders."""
    return value if isinstance(value, str) else torch.as_tensor(value)


def collate_samples(samples: Sequence[Mapping[str, Any]] | Batch, sequence_keys: Sequence[str] = ()) -> Batch:
    """Stack samples into a :class:`~src.spec.Batch`; pad the ``sequence_keys`` to the longest and add
    ``<key>_mask``.

    A sequence modality that arrives with its own ``<key>_mask`` (fixed-length padded files) is
    stacked as is. A batch the dataset already assembled (:meth:`SampleDataset.__getitems__`)
    passes through.
    """
    if isinstance(samples, Batch):  # assembled by the dataset: sequences of one length, all steps real
        for key in sequence_keys:
            if key in samples and f"{key}_mask" not in samples:
                samples[f"{key}_mask"] = torch.ones(samples[key].shape[:2], dtype=torch.bool)
        return samples
    batch = Batch()
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], str):
            batch[key] = values
        elif key in sequence_keys and f"{key}_mask" not in samples[0]:
            lengths = torch.tensor([v.shape[0] for v in values])
            padded = torch.zeros(len(values), int(lengths.max()), *values[0].shape[1:], dtype=values[0].dtype)
            for i, v in enumerate(values):
                padded[i, : v.shape[0]] = v
            batch[key] = padded
            batch[f"{key}_mask"] = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
        else:
            batch[key] = torch.stack([torch.as_tensor(v) for v in values])
    return batch


class FusionDataModule(LightningDataModule):
    """Base DataModule; subclasses set ``task`` and ``name`` and implement ``load_split``.

    ``modalities`` maps each modality name to its :class:`~src.spec.ModalitySpec` (kind, shape,
    dtype; a text modality arrives in the batch as a list of strings) and ``class_names`` fixes the
    output order, both known once ``__init__`` returns: :attr:`spec` never loads a split.
    """

    task: str
    #: the dataset's name in cache keys and messages
    name: str = "dataset"

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | str = "auto",
        resident_mb: float = 0,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        if pin_memory not in (True, False, "auto"):
            raise ValueError(f"data.pin_memory={pin_memory!r}; expected true, false or auto")
        self.pin_memory = pin_memory
        self.resident_mb = resident_mb
        self._resident: dict[tuple[str, str], ResidentSplit] = {}
        self.splits: dict[str, SampleDataset] = {}
        self.loaded_splits: list[str] = []
        self._validated: dict[str, Any] = {}
        self._resumed_rng_state: dict[str, Any] | None = None
        self.class_names: list[str] = []
        self.modalities: dict[str, ModalitySpec] = {}
        #: {modality: compute(split, dataset) -> (n, D) features} set by the feature step
        self.feature_steps: dict[str, FeatureStep] = {}

    # subclasses -----------------------------------------------------------------------------
    def load_split(self, split: str) -> SampleDataset:
        raise NotImplementedError

    # shared ---------------------------------------------------------------------------------
    @property
    def spec(self) -> DatasetSpec:
        """What this dataset delivers (task, classes, modalities), without loading any split."""
        return DatasetSpec(self.name, self.task, tuple(self.class_names), dict(self.modalities))

    def _validated_split(self, split: str) -> Any:
        """``load_split(split)`` once: the split's files read and validated (nothing handed out)."""
        if split not in self._validated:
            self._validated[split] = self.load_split(split)
        return self._validated[split]

    def preflight(self) -> None:
        """Read and validate every split's files, and check that no sample id is in two splits.

        Called before training: a broken file, a bad label or an overlap of any split (the test
        split's included) stops the run before the first step. It only reads and checks: no sample
        reaches an encoder, a model, a metric or a selection (``_ensure`` hands splits out)."""
        for split in SPLITS:
            self._validated_split(split)
        check_split_ids(f"{type(self).__name__} sample ids", {s: self._validated[s].ids for s in SPLITS})

    def preprocessing(self, modality: str) -> dict[str, Any]:
        """Settings that change what a modality delivers (part of a feature-cache key)."""
        return {}

    def use_features(self, modality: str, spec: ModalitySpec, compute: FeatureStep) -> None:
        """Deliver ``modality`` as the features ``compute(split, dataset)`` makes of it (``spec``: their
        kind and shape), split by split when a split is handed out. The feature step
        (:mod:`src.precompute`) calls this for the encoders that run once, before training."""
        if modality not in self.modalities:
            raise ConfigError(f"{self.name} has no modality {modality!r}; it has {sorted(self.modalities)}")
        if self.splits:
            raise RuntimeError(
                f"use_features({modality!r}) after splits were handed out: {sorted(self.splits)}"
            )
        self.modalities[modality] = spec
        self.feature_steps[modality] = compute

    def _ensure(self, split: str) -> SampleDataset:
        if split not in self.splits:
            dataset = self._validated_split(split)
            for modality, compute in self.feature_steps.items():
                replace_modality(dataset, modality, compute(split, dataset))
            self.splits[split] = dataset
            self.loaded_splits.append(split)
        return self.splits[split]

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage, ("train", "val")):
            self._ensure(split)

    def train_label_counts(self) -> tuple[list[int], int]:
        """Positives per class on the training split and its size (for ``pos_weight: neg_pos_ratio``)."""
        labels = np.asarray(self._ensure("train").labels)
        return labels.reshape(len(labels), -1).sum(0).astype(int).tolist(), len(labels)

    def _resident_split(self, split: str, dataset: SampleDataset) -> ResidentSplit | None:
        """The split on the trainer's device when ``resident_mb`` allows it (see src/data/resident.py):
        every field one fixed-shape array, its bytes within the budget, one process, no workers."""
        if not self.resident_mb or self.num_workers > 0 or not isinstance(dataset, SampleDataset):
            return None
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            log.info(
                "data.resident_mb: %d processes, %s split through a DataLoader", trainer.world_size, split
            )
            return None  # each rank needs its DistributedSampler shard
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        key = (split, str(device))
        if key not in self._resident:
            fields = [*dataset.modalities.values(), *dataset.extras.values(), dataset.labels]
            nbytes = split_nbytes(fields)
            if nbytes is None or nbytes > self.resident_mb * MB:
                size = "not fixed-shape arrays" if nbytes is None else f"{nbytes / MB:.1f} MB"
                log.info(
                    "data.resident_mb=%s: %s split (%s) through a DataLoader", self.resident_mb, split, size
                )
                return None
            self._resident[key] = ResidentSplit(dataset, device)
            log.info("%s split resident on %s (%.1f MB)", split, device, nbytes / MB)
        return self._resident[key]

    def _loader(self, split: str, shuffle: bool) -> DataLoader | ResidentLoader:
        sequence_keys = [m for m, spec in self.modalities.items() if spec.kind == "sequence"]
        dataset = self._ensure(split)
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        sampler = ResumingRandomSampler(dataset, self._restore_resumed_rng) if shuffle else None
        resident = self._resident_split(split, dataset)
        if resident is not None:
            return ResidentLoader(resident, batch_size, sampler, sequence_keys)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self._pins_memory(),
            persistent_workers=self.num_workers > 0,
            collate_fn=partial(collate_samples, sequence_keys=sequence_keys),
        )

    def _pins_memory(self) -> bool:
        """``pin_memory``; ``auto``: pinned batches when the trainer runs on a CUDA device (page-locked
        host memory lets the copy to the GPU run asynchronously), not on CPU."""
        if self.pin_memory != "auto":
            return bool(self.pin_memory)
        trainer = getattr(self, "trainer", None)
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def train_dataloader(self) -> DataLoader | ResidentLoader:
        if self.num_workers == 0:  # a new iterator per epoch: its creation is the first draw
            self._restore_resumed_rng()
        return self._loader("train", shuffle=True)

    # exact resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint (Lightning calls it at the end of an epoch): the global
        random-number state, from which the next epoch draws its training order, the loader
        workers' seeds and the model's dropout (``src.utils.rng``)."""
        return {"rng_state": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """On resume: keep the checkpoint's random-number state and restore it right before the
        draw that the uninterrupted run made first after writing the checkpoint. Without loader
        workers that is the creation of the epoch's loader iterator (its base seed), so the state is
        restored when the training loader is requested; with (persistent) workers the iterator is
        reused and the first draw is the epoch's order (:class:`ResumingRandomSampler`, after the
        resumed run started its workers); when a distributed sampler replaced ours (DDP), it is the
        first training batch's dropout. Lightning's sanity check in between runs with the state
        isolated."""
        self._resumed_rng_state = state_dict.get("rng_state")

    def _restore_resumed_rng(self) -> None:
        if self._resumed_rng_state is not None:
            restore_rng_state(self._resumed_rng_state)
            self._resumed_rng_state = None

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self._resumed_rng_state is not None and self.trainer is not None and self.trainer.training:
            self._restore_resumed_rng()
        return batch

    def val_dataloader(self) -> DataLoader | ResidentLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader | ResidentLoader:
        return self._loader("test", shuffle=False)


class ResumingRandomSampler(RandomSampler):
    """``RandomSampler`` (the same order as ``shuffle=True``) that calls ``before_draw`` right before
    it draws an epoch's order: a resumed run restores its random-number state there."""

    def __init__(self, data_source: Dataset, before_draw: Any) -> None:
        super().__init__(data_source)
        self.before_draw = before_draw

    def __iter__(self):
        self.before_draw()
        yield from super().__iter__()


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> dict[str, np.ndarray]:
    """Seeded stratified train/val/test indices of a single-label array (sorted within each split)."""
    if len(fractions) != 3 or not np.isclose(sum(fractions), 1.0):
        raise ConfigError(f"data.split_fractions={list(fractions)}: expected three numbers summing to 1")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        n_train = int(round(fractions[0] * len(members)))
        n_val = int(round(fractions[1] * len(members)))
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train : n_train + n_val])
        parts["test"].append(members[n_train + n_val :])
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}
