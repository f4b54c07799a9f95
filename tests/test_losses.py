"""Task losses: the 2025 comparison's Eq. 3.32 against a hand computation, and its data-derived weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from src.models.losses import build_loss
from src.tasks import MULTICLASS, MULTILABEL
from src.train import resolve, training_defaults
from tests.helpers import compose_train

LOGITS = torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
TARGETS = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
WEIGHTS = [1.0, 3.0]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_weighted_bce_is_eq_3_32_by_hand():
    """L = -(1/N) sum_i sum_j w_j [y log p + (1 - y) log(1 - p)], N = 2 samples, C = 2 classes."""
    by_hand = (
        -(1.0 * math.log(_sigmoid(0.0)) + 3.0 * math.log(1 - _sigmoid(2.0)))  # sample 0: y = (1, 0)
        - (1.0 * math.log(1 - _sigmoid(-1.0)) + 3.0 * math.log(_sigmoid(0.0)))  # sample 1: y = (0, 1)
    ) / 2
    assert by_hand == pytest.approx(4.733317, abs=1e-6)
    loss = build_loss({"name": "weighted_bce", "class_weight": WEIGHTS}, MULTILABEL, 2)
    assert loss(LOGITS, TARGETS).item() == pytest.approx(by_hand, rel=1e-6)


def test_pos_weight_bce_differs_from_eq_3_32():
    """``bce`` + pos_weight weighs only the positive term and averages over N x C entries."""
    by_hand = (
        -math.log(_sigmoid(0.0))
        - math.log(1 - _sigmoid(2.0))  # a negative: not weighted
        - math.log(1 - _sigmoid(-1.0))
        - 3.0 * math.log(_sigmoid(0.0))
    ) / 4
    loss = build_loss({"name": "bce", "pos_weight": WEIGHTS}, MULTILABEL, 2)
    assert loss(LOGITS, TARGETS).item() == pytest.approx(by_hand, rel=1e-6)
    assert by_hand != pytest.approx(4.733317, abs=1e-3)


@pytest.mark.parametrize(
    ("spec", "task", "message"),
    [
        ({"name": "weighted_bce"}, MULTILABEL, "needs model.loss.class_weight"),
        ({"name": "weighted_bce", "class_weight": "neg_pos_ratio"}, MULTILABEL, "must be resolved"),
        ({"name": "bce", "class_weight": [1.0, 2.0]}, MULTILABEL, "class_weight is not an option"),
        ({"name": "weighted_bce", "class_weight": [1.0, 2.0], "pos_weight": 2.0}, MULTILABEL, "pos_weight"),
        ({"name": "weighted_bce", "class_weight": [1.0, 2.0]}, MULTICLASS, "does not fit a multiclass"),
    ],
)
def test_bad_loss_options_are_named(spec, task, message):
    with pytest.raises(ValueError, match=message):
        build_loss(spec, task, 2)


def test_class_weight_neg_pos_ratio_is_resolved_on_the_training_split(tmp_path):
    cfg = compose_train(
        ["data=synthetic_gmu", "model.loss.name=weighted_bce", "model.loss.class_weight=neg_pos_ratio"],
        tmp_path,
    )
    datamodule = instantiate(cfg.data)
    resolved = resolve(cfg, training_defaults(datamodule.spec, cfg, datamodule.train_label_counts))
    counts, n = datamodule.train_label_counts()
    expected = (n - np.asarray(counts)) / np.asarray(counts)
    assert np.allclose(list(resolved.model.loss.class_weight), expected)
    assert resolved.model.loss.pos_weight is None
    assert cfg.model.loss.class_weight == "neg_pos_ratio"  # the composed config is left as it was
