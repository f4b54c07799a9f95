"""Evaluation metrics, defined once for every task and checked against scikit-learn in the tests.

All functions take whole-split numpy arrays (predictions are gathered over the epoch and over
ranks before they get here), so a metric is a plain formula, not a stateful accumulator.

Conventions (they match scikit-learn with ``zero_division=0``):
- an F1/precision/recall whose denominator is 0 counts as 0;
- average precision and ROC-AUC are undefined for a class without positives (AUC also without
  negatives): such classes are left out of the macro averages and counted in
  ``n_classes_undefined_ap`` / ``n_classes_undefined_auc``; a sample without any positive label is
  likewise left out of ``ap_samples``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from src.tasks import MULTICLASS, MULTILABEL, REGRESSION, TASKS


def _safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def confusion_counts(preds: np.ndarray, targets: np.ndarray, axis: int = 0) -> tuple[np.ndarray, ...]:
    """True positives, false positives and false negatives of binary arrays, summed along ``axis``."""
    preds = preds.astype(bool)
    targets = targets.astype(bool)
    tp = (preds & targets).sum(axis)
    fp = (preds & ~targets).sum(axis)
    fn = (~preds & targets).sum(axis)
    return tp, fp, fn


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _safe_div(2 * tp, 2 * tp + fp + fn)


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Step-wise average precision, sum_n (R_n - R_{n-1}) P_n over distinct score thresholds.

    Returns ``nan`` when ``targets`` holds no positive.
    """
    targets = np.asarray(targets).astype(bool)
    n_pos = targets.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    sorted_targets = targets[order]
    # index of the last element of each run of equal scores
    last_of_run = np.r_[np.nonzero(np.diff(sorted_scores))[0], sorted_targets.size - 1]
    tps = np.cumsum(sorted_targets)[last_of_run]
    precision = tps / (last_of_run + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) identity; ties count one half.

    Returns ``nan`` when ``targets`` is all positive or all negative.
    """
    targets = np.asarray(targets).astype(bool)
    n_pos = targets.sum()
    n_neg = targets.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[targets].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    valid = ~np.isnan(values)
    return float(values[valid].mean()) if valid.any() else float("nan")


def multilabel_metrics(
    probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray | float
) -> dict[str, float]:
    """Threshold-dependent and ranking metrics of a multilabel task.

    ``probs`` and ``targets`` are (N, C); ``thresholds`` is a scalar or (C,); a label is predicted
    when its probability is >= its threshold.
    """
    targets = targets.astype(bool)
    preds = probs >= np.asarray(thresholds, dtype=probs.dtype)
    tp, fp, fn = confusion_counts(preds, targets, axis=0)
    f1_per_class = f1_from_counts(tp, fp, fn)
    support = targets.sum(0)
    s_tp, s_fp, s_fn = confusion_counts(preds, targets, axis=1)
    ap_per_class = np.array([average_precision(probs[:, c], targets[:, c]) for c in range(targets.shape[1])])
    auc_per_class = np.array([roc_auc(probs[:, c], targets[:, c]) for c in range(targets.shape[1])])
    ap_per_sample = np.array([average_precision(probs[i], targets[i]) for i in range(targets.shape[0])])
    return {
        "f1_micro": float(f1_from_counts(tp.sum(), fp.sum(), fn.sum())),
        "f1_macro": float(f1_per_class.mean()),
        "f1_weighted": float(_safe_div((f1_per_class * support).sum(), support.sum())),
        "f1_samples": float(f1_from_counts(s_tp, s_fp, s_fn).mean()),
        "precision_micro": float(_safe_div(tp.sum(), tp.sum() + fp.sum())),
        "precision_macro": float(_safe_div(tp, tp + fp).mean()),
        "recall_micro": float(_safe_div(tp.sum(), tp.sum() + fn.sum())),
        "recall_macro": float(_safe_div(tp, tp + fn).mean()),
        "ap_micro": average_precision(probs.ravel(), targets.ravel()),
        "ap_macro": _nanmean(ap_per_class),
        "ap_samples": _nanmean(ap_per_sample),
        "roc_auc_macro": _nanmean(auc_per_class),
        "hamming": float((preds != targets).mean()),
        "subset_acc": float((preds == targets).all(1).mean()),
        "n_classes_undefined_ap": float(np.isnan(ap_per_class).sum()),
        "n_classes_undefined_auc": float(np.isnan(auc_per_class).sum()),
    }


def multilabel_per_class(
    probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray | float, class_names: list[str]
) -> list[dict[str, float | str]]:
    """One row per class: support, threshold, precision, recall, F1, AP, ROC-AUC, accuracy and
    weighted accuracy (Dai et al. 2021, used for CMU-MOSEI emotions)."""
    targets = targets.astype(bool)
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (targets.shape[1],))
    preds = probs >= thresholds.astype(probs.dtype)
    tp, fp, fn = confusion_counts(preds, targets, axis=0)
    rows = []
    for c, name in enumerate(class_names):
        rows.append(
            {
                "class": name,
                "support": int(targets[:, c].sum()),
                "threshold": float(thresholds[c]),
                "precision": float(_safe_div(tp[c], tp[c] + fp[c])),
                "recall": float(_safe_div(tp[c], tp[c] + fn[c])),
                "f1": float(f1_from_counts(tp[c], fp[c], fn[c])),
                "ap": average_precision(probs[:, c], targets[:, c]),
                "roc_auc": roc_auc(probs[:, c], targets[:, c]),
                "accuracy": float((preds[:, c] == targets[:, c]).mean()),
                "wacc": binary_weighted_accuracy(preds[:, c], targets[:, c]),
            }
        )
    return rows


def binary_weighted_accuracy(preds: np.ndarray, targets: np.ndarray) -> float:
    """Weighted accuracy (TP * N / P + TN) / (2 N) of one binary label (Dai et al. 2021)."""
    preds = preds.astype(bool)
    targets = targets.astype(bool)
    n_pos = targets.sum()
    n_neg = (~targets).sum()
    tp = (preds & targets).sum()
    tn = (~preds & ~targets).sum()
    return float(_safe_div(tp * _safe_div(n_neg, n_pos) + tn, 2 * n_neg))


def multiclass_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 over all classes and the error count of a single-label task."""
    preds = probs.argmax(1)
    n_classes = probs.shape[1]
    onehot_pred = np.eye(n_classes, dtype=bool)[preds]
    onehot_true = np.eye(n_classes, dtype=bool)[targets.astype(int)]
    tp, fp, fn = confusion_counts(onehot_pred, onehot_true, axis=0)
    return {
        "acc": float((preds == targets).mean()),
        "f1_macro": float(f1_from_counts(tp, fp, fn).mean()),
        "errors": float((preds != targets).sum()),
    }


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; ``nan`` when either input is constant."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    xc = x - x.mean()
    yc = y - y.mean()
    den = np.sqrt((xc**2).sum() * (yc**2).sum())
    return float((xc * yc).sum() / den) if den > 0 else float("nan")


def regression_metrics(preds: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """MulT's sentiment metrics (Tsai et al. 2019, ``eval_mosei_senti``).

    acc_7 / acc_5: rounded predictions clipped to [-3, 3] / [-2, 2]; acc_2 and f1_weighted: sign
    agreement on the samples whose label is non-zero (the "non-negative" variant is not used).
    """
    preds = np.asarray(preds, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.float64).ravel()
    nonzero = targets != 0
    binary_true = targets[nonzero] > 0
    binary_pred = preds[nonzero] > 0
    f1_weighted = 0.0
    if nonzero.any():
        scores = []
        supports = []
        for positive in (False, True):
            tp = ((binary_pred == positive) & (binary_true == positive)).sum()
            fp = ((binary_pred == positive) & (binary_true != positive)).sum()
            fn = ((binary_pred != positive) & (binary_true == positive)).sum()
            scores.append(f1_from_counts(tp, fp, fn))
            supports.append((binary_true == positive).sum())
        f1_weighted = float(_safe_div(np.dot(scores, supports), sum(supports)))
    return {
        "mae": float(np.abs(preds - targets).mean()),
        "corr": pearson(preds, targets),
        "acc_7": float((np.round(np.clip(preds, -3, 3)) == np.round(np.clip(targets, -3, 3))).mean()),
        "acc_5": float((np.round(np.clip(preds, -2, 2)) == np.round(np.clip(targets, -2, 2))).mean()),
        "acc_2": float((binary_pred == binary_true).mean()) if nonzero.any() else float("nan"),
        "f1_weighted": f1_weighted,
    }


def compute_metrics(
    task: str, outputs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray | float = 0.5
) -> dict[str, float]:
    """Dispatch on the task. ``outputs`` are probabilities (classification) or predictions."""
    if task == MULTILABEL:
        return multilabel_metrics(outputs, targets, thresholds)
    if task == MULTICLASS:
        return multiclass_metrics(outputs, targets)
    if task == REGRESSION:
        return regression_metrics(outputs, targets)
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
