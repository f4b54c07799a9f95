"""Samples read from disk on access (posters, per-id pickles) rather than held in memory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.base import RowReader, check_unique_ids

__all__ = ["LazyDataset", "RowReader"]


class LazyDataset(Dataset):
    """Like :class:`src.data.base.SampleDataset`, but each modality is a ``reader(row) -> tensor | str``.

    A reader that returns a ``str`` (raw text) reaches the encoder as a list of strings per batch
    (``collate_samples`` keeps strings as lists), so a text encoder receives ``list[str]``.
    """

    def __init__(
        self,
        ids: Sequence[str],
        readers: Mapping[str, Callable[[int], Any]],
        labels: np.ndarray,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.ids = [str(i) for i in ids]
        if len(labels) != len(self.ids):
            raise ValueError(f"labels have {len(labels)} rows but there are {len(self.ids)} sample ids")
        check_unique_ids(self.ids)
        self.readers = dict(readers)
        self.labels = labels
        self.extras = dict(extras or {})

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, modality: str) -> list[Any]:
        """Every sample's raw value of one modality (what data-fitted encoders are fitted on)."""
        return [self.readers[modality](i) for i in range(len(self.ids))]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample: dict[str, Any] = {}
        for name, reader in self.readers.items():
            value = reader(index)
            sample[name] = value if isinstance(value, str) else torch.as_tensor(value)
        sample.update({name: torch.as_tensor(values[index]) for name, values in self.extras.items()})
        sample["labels"] = torch.as_tensor(self.labels[index])
        sample["index"] = index
        sample["ids"] = self.ids[index]
        return sample
