"""What a dataset promises the model: the only types :mod:`src.data` and :mod:`src.models` share.

A DataModule exposes a :class:`DatasetSpec` (task, class names, and per modality a
:class:`ModalitySpec` of kind, shape and dtype) without loading any split; the model is built from
it (``src.models.model.build_model``), never the other way round. Batches are :class:`Batch`
mappings.

Modality kinds:

- ``vector``: (B, D) floats, shape (D,);
- ``image``: (B, C, H, W) floats, shape (C, H, W); or, with dtype ``uint8``, the pixels' bytes
  (0..255: a quarter of the float32 bytes through loader workers and to the device), which the
  model side turns into floats in [0, 1] with :func:`unit_pixels`, exactly as the data's float
  path does (:data:`PIXEL_SCALE`);
- ``sequence``: (B, T, D) padded steps with ``<modality>_mask`` (B, T) bool (True = real step),
  shape (T_max, D) (T_max is the longest length the data holds, not a fixed length);
- ``text``: a list of B strings per batch, shape () and dtype ``str``; no mask (the text encoder
  tokenizes and makes its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from src.tasks import REGRESSION, check_task

MODALITY_KINDS = ("vector", "image", "sequence", "text")
#: rank of one sample's value per kind (text: a string, no tensor rank)
KIND_RANKS = {"vector": 1, "image": 3, "sequence": 2, "text": 0}
#: the batch keys that are not modalities (``<modality>_mask`` aside)
BATCH_KEYS = ("labels", "index", "ids")
#: pixel byte -> [0, 1]: the one factor the data's float path and :func:`unit_pixels` multiply by
PIXEL_SCALE = np.float32(1 / 255)


def unit_pixels(value: Any) -> Any:
    """A uint8 tensor (an image modality delivered as bytes) as float32 in [0, 1], the same values
    as the data's float path; anything else unchanged. The model, the feature step and the
    robustness sweep apply it before an encoder or a perturbation sees the pixels."""
    if torch.is_tensor(value) and value.dtype == torch.uint8:
        return value.to(torch.float32).mul_(float(PIXEL_SCALE))
    return value


@dataclass(frozen=True)
class ModalitySpec:
    """One modality as the data delivers it (see the module docstring for the kinds).

    ``source`` records how the values were made when they are not the raw files' (e.g. the
    provenance of an encoder whose features were precomputed by the feature step).
    """

    kind: str
    shape: tuple[int, ...]
    dtype: str = ""
    source: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in MODALITY_KINDS:
            raise ValueError(f"modality kind {self.kind!r} is not one of {MODALITY_KINDS}")
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != KIND_RANKS[self.kind]:
            raise ValueError(
                f"a {self.kind} modality has a shape of {KIND_RANKS[self.kind]} dimensions, got {list(shape)}"
            )
        object.__setattr__(self, "shape", shape)
        if not self.dtype:
            object.__setattr__(self, "dtype", "str" if self.kind == "text" else "float32")

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape), "dtype": self.dtype}
        if self.source is not None:
            plain["source"] = dict(self.source)
        return plain

    @classmethod
    def from_dict(cls, plain: Mapping[str, Any]) -> ModalitySpec:
        return cls(plain["kind"], tuple(plain["shape"]), plain.get("dtype", ""), plain.get("source"))


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's task, its output classes (in output order) and its modalities (in data order)."""

    name: str
    task: str
    class_names: tuple[str, ...]
    modalities: Mapping[str, ModalitySpec]

    def __post_init__(self) -> None:
        check_task(self.task, f"dataset {self.name}")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "modalities", dict(self.modalities))
        if not self.modalities:
            raise ValueError(f"dataset {self.name} has no modality")

    @property
    def num_outputs(self) -> int:
        """Model outputs: one per class, one for regression."""
        return 1 if self.task == REGRESSION else len(self.class_names)

    def of_kind(self, *kinds: str) -> list[str]:
        """The modalities of the given kinds, in data order."""
        return [m for m, spec in self.modalities.items() if spec.kind in kinds]

    def with_modalities(self, changed: Mapping[str, ModalitySpec]) -> DatasetSpec:
        """A copy with some modalities replaced (the feature step's output)."""
        return replace(self, modalities={**self.modalities, **changed})

    def to_dict(self) -> dict[str, Any]:
        """Plain values (checkpoint hyper-parameters, ``config.yaml``)."""
        return {
            "name": self.name,
            "task": self.task,
            "class_names": list(self.class_names),
            "modalities": {m: spec.to_dict() for m, spec in self.modalities.items()},
        }

    @classmethod
    def from_dict(cls, plain: Mapping[str, Any]) -> DatasetSpec:
        return cls(
            name=plain.get("name", "dataset"),
            task=plain["task"],
            class_names=tuple(plain["class_names"]),
            modalities={m: ModalitySpec.from_dict(s) for m, s in plain["modalities"].items()},
        )


class Batch(dict):
    """One batch: ``{modality: tensor | list[str]}``, ``<modality>_mask`` for sequences, ``labels``,
    ``index`` (each sample's row in its split, for gathering without duplicates) and ``ids``; any
    other per-sample key a dataset adds (e.g. the synthetic task's ``latent``) travels along."""

    def mask(self, modality: str) -> Any:
        return self.get(f"{modality}_mask")

    def modalities(self, names: Iterable[str]) -> dict[str, Any]:
        return {m: self[m] for m in names}
