"""Task losses built from a plain dict (``model.loss``).

- ``bce``: binary cross-entropy on logits for multilabel tasks, the mean over samples and classes.
  ``pos_weight`` (on the positive term only) may be a constant (CentralNet Eq. 4 uses 2.0), a
  per-class list, or ``neg_pos_ratio`` (negatives / positives per class on the training split;
  resolved by ``src.train``).
- ``weighted_bce``: Eq. 3.32 of the 2025 MM-IMDb comparison (Hessnawi et al.),
  L = -(1/N) sum_i sum_j w_j [y_ij log p_ij + (1 - y_ij) log(1 - p_ij)]: ``class_weight`` w_j
  multiplies *both* terms of class j, summed over the classes and averaged over the samples;
  ``class_weight: neg_pos_ratio`` is the paper's w_j = N_neg,j / N_pos,j on the training split.
- ``cross_entropy`` for multiclass, ``l1`` / ``mse`` for regression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from src.tasks import MULTICLASS, MULTILABEL, REGRESSION

LOSSES_BY_TASK = {
    MULTILABEL: ("bce", "weighted_bce"),
    MULTICLASS: ("cross_entropy",),
    REGRESSION: ("l1", "mse"),
}
#: loss options that ``src.train`` may resolve from the training split's label counts
DATA_DEPENDENT_WEIGHTS = ("pos_weight", "class_weight")
WEIGHT_OF = {"bce": "pos_weight", "weighted_bce": "class_weight"}


def neg_pos_ratio(label_counts: Sequence[int], n_samples: int) -> list[float]:
    """Per-class negatives / positives; a class with no positive gets weight 1."""
    counts = np.asarray(label_counts, dtype=np.float64)
    ratio = np.divide(n_samples - counts, counts, out=np.ones_like(counts), where=counts > 0)
    return ratio.tolist()


class ClassWeightedBCE(nn.Module):
    """Eq. 3.32 of Hessnawi et al. 2025: per-class weights on both BCE terms, summed over classes, mean over samples."""

    def __init__(self, class_weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("class_weight", class_weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        per_entry = nn.functional.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), reduction="none"
        )
        return (per_entry * self.class_weight).sum(-1).mean()


def _class_vector(spec: Mapping[str, Any], key: str, num_outputs: int) -> torch.Tensor | None:
    value = spec.get(key)
    if isinstance(value, str):
        raise ValueError(f"model.loss.{key}={value!r} must be resolved to numbers before the model is built")
    return None if value is None else torch.as_tensor(value, dtype=torch.float32).expand(num_outputs).clone()


def build_loss(spec: Mapping[str, Any], task: str, num_outputs: int) -> nn.Module:
    name = spec.get("name")
    if name not in LOSSES_BY_TASK[task]:
        raise ValueError(
            f"model.loss.name={name!r} does not fit a {task} task; use one of {LOSSES_BY_TASK[task]}"
        )
    ignored = [k for k in DATA_DEPENDENT_WEIGHTS if spec.get(k) is not None and k != WEIGHT_OF.get(name)]
    if ignored:
        raise ValueError(f"model.loss.{ignored[0]} is not an option of model.loss.name={name!r}")
    if name == "bce":
        return nn.BCEWithLogitsLoss(pos_weight=_class_vector(spec, "pos_weight", num_outputs))
    if name == "weighted_bce":
        weight = _class_vector(spec, "class_weight", num_outputs)
        if weight is None:
            raise ValueError(
                "model.loss.name=weighted_bce needs model.loss.class_weight (numbers or neg_pos_ratio)"
            )
        return ClassWeightedBCE(weight)
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=float(spec.get("label_smoothing", 0.0)))
    return nn.L1Loss() if name == "l1" else nn.MSELoss()
