"""The three tasks and the task link: how a model's outputs become class scores and back.

A model emits *logits*; the losses take logits, the metrics take *scores* (probabilities for
classification, the outputs themselves for regression), and the late fusions combine scores and
hand the loss logits again. :class:`TaskLink` is that conversion, defined once:

- multilabel: scores = sigmoid(logits), logits = logit(scores);
- multiclass: scores = softmax(logits), logits = log(scores) (softmax(log p) = p when p sums to 1);
- regression: the identity both ways.

Both :mod:`src.data` (a dataset's task) and :mod:`src.models` (the heads, losses and predictors)
import this module; it imports nothing of the repo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MULTILABEL = "multilabel"
MULTICLASS = "multiclass"
REGRESSION = "regression"
TASKS = (MULTILABEL, MULTICLASS, REGRESSION)

#: the metric each task's runs are selected on when the config says ``monitor.metric: auto``
DEFAULT_MONITOR = {
    MULTILABEL: ("val/f1_micro", "max"),
    MULTICLASS: ("val/acc", "max"),
    REGRESSION: ("val/mae", "min"),
}
#: the loss of ``model.loss.name: auto``
DEFAULT_LOSS = {MULTILABEL: "bce", MULTICLASS: "cross_entropy", REGRESSION: "l1"}

#: probabilities are clamped to [EPS, 1 - EPS] before going back to logits, so the loss stays finite
EPS = 1e-6


def check_task(task: str, who: str = "the task") -> str:
    """``task`` itself, or a clear error naming ``who`` needed it."""
    if task not in TASKS:
        raise ValueError(f"{who}: task={task!r} is not one of {TASKS}")
    return task


@dataclass(frozen=True)
class TaskLink:
    """Scores <-> logits for one task (see the module docstring)."""

    task: str

    def __post_init__(self) -> None:
        check_task(self.task, "TaskLink")

    def to_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities (multilabel: sigmoid, multiclass: softmax) or raw outputs (regression)."""
        if self.task == MULTILABEL:
            return torch.sigmoid(logits)
        if self.task == MULTICLASS:
            return torch.softmax(logits, dim=-1)
        return logits

    def to_logits(self, scores: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_scores`, so that the task loss applies to combined scores."""
        if self.task == MULTILABEL:
            p = scores.clamp(EPS, 1 - EPS)
            return torch.log(p) - torch.log1p(-p)
        if self.task == MULTICLASS:
            return torch.log(scores.clamp_min(EPS))
        return scores

    def predicted(self, scores: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray | None:
        """(N, C) boolean predicted classes: scores >= thresholds (multilabel), the argmax
        (multiclass); None for regression."""
        if self.task == MULTILABEL:
            return scores >= thresholds
        if self.task == MULTICLASS:
            return np.eye(scores.shape[1], dtype=bool)[scores.argmax(1)]
        return None
