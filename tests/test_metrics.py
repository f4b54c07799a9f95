"""Every metric of src.metrics against scikit-learn (or a hand-computed value)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from src.metrics import (
    average_precision,
    binary_weighted_accuracy,
    multiclass_metrics,
    multilabel_metrics,
    multilabel_per_class,
    regression_metrics,
    roc_auc,
)


@pytest.fixture
def multilabel_case() -> tuple[np.ndarray, np.ndarray]:
    """40 samples x 6 classes: class 5 has no positive, sample 0 has no label, ties in the scores."""
    rng = np.random.default_rng(3)
    targets = (rng.random((40, 6)) < 0.35).astype(int)
    targets[:, 5] = 0
    targets[0] = 0
    probs = np.round(np.clip(targets * 0.4 + rng.random((40, 6)) * 0.6, 0, 1), 1)  # rounding makes ties
    return probs, targets


def test_multilabel_threshold_metrics_match_sklearn(multilabel_case):
    probs, targets = multilabel_case
    thresholds = np.array([0.5, 0.4, 0.6, 0.5, 0.3, 0.5])
    preds = (probs >= thresholds).astype(int)
    ours = multilabel_metrics(probs, targets, thresholds)
    for average in ("micro", "macro", "weighted", "samples"):
        assert ours[f"f1_{average}"] == pytest.approx(
            skm.f1_score(targets, preds, average=average, zero_division=0)
        )
    for average in ("micro", "macro"):
        assert ours[f"precision_{average}"] == pytest.approx(
            skm.precision_score(targets, preds, average=average, zero_division=0)
        )
        assert ours[f"recall_{average}"] == pytest.approx(
            skm.recall_score(targets, preds, average=average, zero_division=0)
        )
    assert ours["hamming"] == pytest.approx(skm.hamming_loss(targets, preds))
    assert ours["subset_acc"] == pytest.approx(skm.accuracy_score(targets, preds))


def test_multilabel_ranking_metrics_match_sklearn_on_defined_classes(multilabel_case):
    probs, targets = multilabel_case
    ours = multilabel_metrics(probs, targets, 0.5)
    defined = targets.sum(0) > 0  # class 5 has no positive: undefined AP/AUC, left out and counted
    assert ours["n_classes_undefined_ap"] == 1 and ours["n_classes_undefined_auc"] == 1
    assert ours["ap_macro"] == pytest.approx(
        skm.average_precision_score(targets[:, defined], probs[:, defined], average="macro")
    )
    assert ours["ap_micro"] == pytest.approx(skm.average_precision_score(targets, probs, average="micro"))
    assert ours["roc_auc_macro"] == pytest.approx(
        skm.roc_auc_score(targets[:, defined], probs[:, defined], average="macro")
    )
    labelled = targets.sum(1) > 0  # sample 0 has no label: left out of ap_samples
    assert ours["ap_samples"] == pytest.approx(
        skm.average_precision_score(targets[labelled], probs[labelled], average="samples")
    )


def test_per_class_rows_match_sklearn(multilabel_case):
    probs, targets = multilabel_case
    rows = multilabel_per_class(probs, targets, 0.5, [f"c{i}" for i in range(6)])
    per_class_f1 = skm.f1_score(targets, (probs >= 0.5).astype(int), average=None, zero_division=0)
    assert [r["class"] for r in rows] == [f"c{i}" for i in range(6)]
    assert [r["f1"] for r in rows] == pytest.approx(per_class_f1)
    assert rows[0]["ap"] == pytest.approx(skm.average_precision_score(targets[:, 0], probs[:, 0]))
    assert np.isnan(rows[5]["ap"]) and rows[5]["support"] == 0


def test_average_precision_and_auc_by_hand():
    # ranking 0.9(+), 0.8(-), 0.7(+): AP = 1/2 * 1 + 1/2 * 2/3; AUC = 1 of 2 pairs ordered... (+0.9>-0.8, +0.7<-0.8)
    scores = np.array([0.9, 0.8, 0.7])
    targets = np.array([1, 0, 1])
    assert average_precision(scores, targets) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert roc_auc(scores, targets) == pytest.approx(0.5)
    assert np.isnan(average_precision(scores, np.zeros(3)))
    assert np.isnan(roc_auc(scores, np.ones(3)))


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, 50)
    probs = rng.random((50, 4))
    probs[:, 3] = 0  # class 3 is never predicted
    preds = probs.argmax(1)
    ours = multiclass_metrics(probs, targets)
    assert ours["acc"] == pytest.approx(skm.accuracy_score(targets, preds))
    assert ours["f1_macro"] == pytest.approx(
        skm.f1_score(targets, preds, average="macro", labels=range(4), zero_division=0)
    )
    assert ours["errors"] == (preds != targets).sum()


def test_regression_metrics_follow_mult():
    targets = np.array([-3.0, -1.2, 0.0, 0.4, 2.6, 1.0])
    preds = np.array([-2.4, 0.3, 0.2, 0.6, 3.5, 1.4])
    ours = regression_metrics(preds, targets)
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(targets, preds))
    assert ours["corr"] == pytest.approx(np.corrcoef(preds, targets)[0, 1])
    # acc_7: round(clip(., -3, 3)): preds -> [-2, 0, 0, 1, 3, 1], targets -> [-3, -1, 0, 0, 3, 1]
    assert ours["acc_7"] == pytest.approx(3 / 6)
    nonzero = targets != 0
    assert ours["acc_2"] == pytest.approx(skm.accuracy_score(targets[nonzero] > 0, preds[nonzero] > 0))
    assert ours["f1_weighted"] == pytest.approx(
        skm.f1_score(targets[nonzero] > 0, preds[nonzero] > 0, average="weighted")
    )


def test_weighted_accuracy_formula():
    targets = np.array([1, 1, 0, 0, 0, 0])
    preds = np.array([1, 0, 0, 0, 1, 0])
    # TP=1, TN=3, P=2, N=4: (1 * 4/2 + 3) / 8
    assert binary_weighted_accuracy(preds, targets) == pytest.approx(5 / 8)
