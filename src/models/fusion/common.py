"""Helpers shared by the late-fusion methods: moving between logits and class scores.

Late fusions (average of probabilities, mixtures of experts, learned weighted means) combine
*scores*, while the LightningModule's losses take *logits*. The conversion depends on the task:
sigmoid / logit for multilabel, softmax / log for multiclass, identity for regression.
"""

from __future__ import annotations

import torch

from src.tasks import MULTICLASS, MULTILABEL, REGRESSION

TASKS = (MULTILABEL, MULTICLASS, REGRESSION)
EPS = 1e-6


def check_task(task: str, method: str) -> str:
    """``task`` itself, or a clear error naming ``method`` when it is not a known task."""
    if task not in TASKS:
        raise ValueError(
            f"{method} needs the task to combine scores; got task={task!r}, expected one of {TASKS}"
        )
    return task


def to_scores(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Probabilities (multilabel: sigmoid, multiclass: softmax) or raw outputs (regression)."""
    if task == MULTILABEL:
        return torch.sigmoid(logits)
    if task == MULTICLASS:
        return torch.softmax(logits, dim=-1)
    return logits


def to_logits(scores: torch.Tensor, task: str) -> torch.Tensor:
    """The inverse of :func:`to_scores`, so that the task loss applies to combined scores.

    Multilabel: logit(p) (sigmoid(logit(p)) = p); multiclass: log p (softmax(log p) = p when p sums
    to 1); probabilities are clamped to [EPS, 1 - EPS] to keep the loss finite.
    """
    if task == MULTILABEL:
        p = scores.clamp(EPS, 1 - EPS)
        return torch.log(p) - torch.log1p(-p)
    if task == MULTICLASS:
        return torch.log(scores.clamp_min(EPS))
    return scores
