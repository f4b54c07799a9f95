"""Task losses built from a plain dict (``model.loss``).

- ``bce``: binary cross-entropy on logits for multilabel tasks. ``pos_weight`` may be a constant
  (CentralNet Eq. 4 uses 2.0), a per-class list, or ``neg_pos_ratio`` (negatives / positives per
  class on the training split, as in the 2025 MM-IMDb comparison; resolved by ``src.train``).
- ``cross_entropy`` for multiclass, ``l1`` / ``mse`` for regression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from src.metrics import MULTICLASS, MULTILABEL, REGRESSION

LOSSES_BY_TASK = {MULTILABEL: ("bce",), MULTICLASS: ("cross_entropy",), REGRESSION: ("l1", "mse")}


def neg_pos_ratio(label_counts: Sequence[int], n_samples: int) -> list[float]:
    """Per-class negatives / positives; a class with no positive gets weight 1."""
    counts = np.asarray(label_counts, dtype=np.float64)
    ratio = np.divide(n_samples - counts, counts, out=np.ones_like(counts), where=counts > 0)
    return ratio.tolist()


def build_loss(spec: Mapping[str, Any], task: str, num_outputs: int) -> nn.Module:
    name = spec.get("name")
    if name not in LOSSES_BY_TASK[task]:
        raise ValueError(
            f"model.loss.name={name!r} does not fit a {task} task; use one of {LOSSES_BY_TASK[task]}"
        )
    if name == "bce":
        pos_weight = spec.get("pos_weight")
        if isinstance(pos_weight, str):
            raise ValueError(
                f"model.loss.pos_weight={pos_weight!r} must be resolved to numbers before the model is built"
            )
        weight = (
            None
            if pos_weight is None
            else torch.as_tensor(pos_weight, dtype=torch.float32).expand(num_outputs).clone()
        )
        return nn.BCEWithLogitsLoss(pos_weight=weight)
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=float(spec.get("label_smoothing", 0.0)))
    return nn.L1Loss() if name == "l1" else nn.MSELoss()
