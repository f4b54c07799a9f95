"""Small splits resident on the accelerator: copied once, batches sliced there.

A split whose fields are all fixed-shape arrays and whose bytes fit ``data.resident_mb`` is moved to
the trainer's device once (:class:`ResidentSplit`); :class:`ResidentLoader` then hands out batches
by indexing those device tensors, with no loader workers, no collation on the host and no per-step
host-to-device copy. It draws from the global generators exactly what a ``DataLoader`` without
workers draws (each iterator's base seed, then the sampler's order), so under the same seed it yields
the same samples in the same order, and exact resume (``src.utils.rng``) holds unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

MB = 2**20


def split_nbytes(fields: Sequence[Any]) -> int | None:
    """Bytes of a split's arrays, or None when a field is not one fixed-shape numeric array."""
    total = 0
    for values in fields:
        if isinstance(values, np.ndarray) and values.dtype != object:
            total += values.nbytes
        elif torch.is_tensor(values):
            total += values.numel() * values.element_size()
        else:
            return None
    return total


class ResidentSplit:
    """One split's modalities, extras and labels as tensors on ``device`` (copied once)."""

    def __init__(self, dataset: Any, device: torch.device) -> None:
        self.dataset = dataset
        self.device = device
        self.modalities = {k: torch.as_tensor(v).to(device) for k, v in dataset.modalities.items()}
        self.extras = {k: torch.as_tensor(v).to(device) for k, v in dataset.extras.items()}
        self.labels = torch.as_tensor(dataset.labels).to(device)
        self.index = torch.arange(len(dataset), device=device)

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, rows: torch.Tensor, host_rows: list[int], sequence_keys: Sequence[str]) -> dict[str, Any]:
        """The batch ``collate_samples`` would build for ``rows``, from tensors already on the device."""
        batch: dict[str, Any] = {k: v[rows] for k, v in self.modalities.items()}
        batch.update({k: v[rows] for k, v in self.extras.items()})
        batch["labels"] = self.labels[rows]
        batch["index"] = self.index[rows]
        batch["ids"] = [self.dataset.ids[i] for i in host_rows]
        for key in sequence_keys:
            if key in batch and f"{key}_mask" not in batch:
                batch[f"{key}_mask"] = torch.ones(batch[key].shape[:2], dtype=torch.bool, device=self.device)
        return batch


class ResidentLoader:
    """Batches of a :class:`ResidentSplit`, in a sampler's order (or in order), sliced on the device.

    Like a ``DataLoader`` without workers, each ``iter()`` first draws a base seed from torch's
    global generator, then the sampler draws the epoch's order; ``before_iter`` runs before both
    (a resumed run restores its random-number state there, as ``train_dataloader`` does)."""

    batch_sampler = None  # what Lightning reads of a loader to tell whether it shuffles

    def __init__(
        self,
        split: ResidentSplit,
        batch_size: int,
        sampler: Sampler | None = None,
        sequence_keys: Sequence[str] = (),
        before_iter: Callable[[], None] | None = None,
    ) -> None:
        self.split = split
        self.dataset = split.dataset
        self.batch_size = batch_size
        self.sampler = sampler
        self.sequence_keys = list(sequence_keys)
        self.before_iter = before_iter

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.before_iter is not None:
            self.before_iter()
        order_iter = iter(self.sampler) if self.sampler is not None else None
        torch.empty((), dtype=torch.int64).random_()  # the base seed a DataLoader iterator draws
        host = list(order_iter) if order_iter is not None else list(range(len(self.split)))
        order = torch.as_tensor(host, dtype=torch.int64).to(self.split.device)  # one copy per epoch
        for start in range(0, len(host), self.batch_size):
            stop = start + self.batch_size
            yield self.split.batch(order[start:stop], host[start:stop], self.sequence_keys)
