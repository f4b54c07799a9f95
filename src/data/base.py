"""What every dataset of the repo shares: sample dicts, collation with masks, and the split discipline.

A dataset module subclasses :class:`FusionDataModule` and implements ``load_split(name)`` for
``train``, ``val`` and ``test``. Splits are loaded lazily and recorded in ``loaded_splits``: fitting
loads ``train`` and ``val`` only, so the test split is provably untouched until ``trainer.test``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

SPLITS = ("train", "val", "test")
MODALITY_KINDS = ("vector", "image", "sequence", "text")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the config says; the message tells where and how to get them."""


class Batch(dict):
    """A batch a dataset assembled in one go (:meth:`SampleDataset.__getitems__`); collation keeps it."""


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
        if len(set(self.ids)) != n:
            raise ValueError("sample ids are not unique")
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


def _as_item(value: Any) -> Any:
    """Tensors for numeric values; raw strings (``kind: text``) pass through for the text encoders."""
    return value if isinstance(value, str) else torch.as_tensor(value)


def collate_samples(
    samples: Sequence[Mapping[str, Any]], sequence_keys: Sequence[str] = ()
) -> dict[str, Any]:
    """Stack samples into a batch; pad the ``sequence_keys`` to the longest and add ``<key>_mask``.

    A sequence modality that arrives with its own ``<key>_mask`` (fixed-length padded files) is
    stacked as is. A :class:`Batch` the dataset already assembled passes through.
    """
    if isinstance(samples, Batch):  # assembled by the dataset: sequences of one length, all steps real
        for key in sequence_keys:
            if key in samples and f"{key}_mask" not in samples:
                samples[f"{key}_mask"] = torch.ones(samples[key].shape[:2], dtype=torch.bool)
        return dict(samples)
    batch: dict[str, Any] = {}
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
    """Base DataModule; subclasses set ``task`` and implement ``load_split`` and ``describe``.

    ``modalities`` maps each modality name to ``{"shape": [...], "kind": vector|image|sequence|text}``
    (a sequence's shape is (T, D) with T the longest length; text is ``{"shape": [], "kind": "text"}``
    and arrives in the batch as a list of strings, see src/models/encoders/text.py); ``class_names`` fixes the output order.
    ``default_encoders`` proposes encoder specs per modality (``model.encoders`` overrides them).
    """

    task: str

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.splits: dict[str, SampleDataset] = {}
        self.loaded_splits: list[str] = []
        self.class_names: list[str] = []
        self.modalities: dict[str, dict[str, Any]] = {}
        self.default_encoders: dict[str, dict[str, Any]] = {}

    # subclasses -----------------------------------------------------------------------------
    def load_split(self, split: str) -> SampleDataset:
        raise NotImplementedError

    # shared ---------------------------------------------------------------------------------
    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "regression" else len(self.class_names)

    def _ensure(self, split: str) -> SampleDataset:
        if split not in self.splits:
            self.splits[split] = self.load_split(split)
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

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        sequence_keys = [m for m, spec in self.modalities.items() if spec["kind"] == "sequence"]
        return DataLoader(
            self._ensure(split),
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=partial(collate_samples, sequence_keys=sequence_keys),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> dict[str, np.ndarray]:
    """Seeded stratified train/val/test indices of a single-label array (sorted within each split)."""
    if len(fractions) != 3 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three numbers summing to 1, got {list(fractions)}")
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
