"""Start-up validation of the settings that cannot be right, before any data is read or step taken.

:func:`check_config` collects every problem and raises one :class:`src.errors.ConfigError` that
names each key, its value and what is expected. Without ``task`` it checks what is known from the
config alone (types and ranges: seed, epochs, batch sizes, learning rate, thresholds); with the
dataset's task it also checks the names that depend on it (``monitor.metric``, the thresholds'
``metric``, ``optimized_metric``), so a typo fails at start-up instead of after the first epoch.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
from omegaconf import DictConfig

from src.errors import ConfigError
from src.metrics import compute_metrics
from src.tasks import MULTICLASS, MULTILABEL
from src.thresholds import STRATEGIES

#: multilabel metrics whose value depends on the thresholds and grows with quality: what a
#: ``global`` threshold may maximise (``hamming`` is a loss; AP and AUC ignore thresholds)
THRESHOLD_METRICS = (
    "f1_micro",
    "f1_macro",
    "f1_weighted",
    "f1_samples",
    "precision_micro",
    "precision_macro",
    "recall_micro",
    "recall_macro",
    "subset_acc",
)
MAX_SEED = 2**32 - 1  # numpy's seed range, as Lightning's seed_everything


@cache
def metric_names(task: str) -> tuple[str, ...]:
    """The names :func:`src.metrics.compute_metrics` returns for ``task`` (computed, not listed)."""
    if task == MULTILABEL:
        outputs, targets = np.array([[0.9, 0.2], [0.1, 0.8]]), np.array([[1, 0], [0, 1]])
    elif task == MULTICLASS:
        outputs, targets = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1])
    else:
        outputs, targets = np.array([0.5, -1.0]), np.array([1.0, -2.0])
    return tuple(sorted(compute_metrics(task, outputs, targets)))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _get(cfg: DictConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if node is None or part not in node:
            return None
        node = node[part]
    return node


def check_config(cfg: DictConfig, task: str | None = None) -> None:
    """Raise :class:`ConfigError` listing every impossible value (see the module docstring)."""
    problems: list[str] = []

    def expect(key: str, ok: bool, expected: str) -> None:
        if not ok:
            problems.append(f"{key}={_get(cfg, key)!r}: expected {expected}")

    seed = cfg.get("seed")
    expect(
        "seed",
        seed is None or (_is_int(seed) and 0 <= seed <= MAX_SEED),
        f"an integer in [0, {MAX_SEED}] or null",
    )
    trainer = cfg.get("trainer") or {}
    max_epochs, min_epochs = trainer.get("max_epochs"), trainer.get("min_epochs")
    expect(
        "trainer.max_epochs",
        max_epochs is None or (_is_int(max_epochs) and (max_epochs >= 1 or max_epochs == -1)),
        "an integer >= 1 (or -1: no limit)",
    )
    if min_epochs is not None:
        expect("trainer.min_epochs", _is_int(min_epochs) and min_epochs >= 0, "an integer >= 0")
        if _is_int(min_epochs) and _is_int(max_epochs) and max_epochs >= 1 and min_epochs > max_epochs:
            problems.append(f"trainer.min_epochs={min_epochs} is more than trainer.max_epochs={max_epochs}")
    every = trainer.get("check_val_every_n_epoch")
    expect(
        "trainer.check_val_every_n_epoch",
        every is None or (_is_int(every) and every >= 1),
        "an integer >= 1 or null",
    )
    data = cfg.get("data") or {}
    for key in ("batch_size", "eval_batch_size"):
        if key in data:
            value = data[key]
            expect(
                f"data.{key}",
                (value is None and key == "eval_batch_size") or (_is_int(value) and value >= 1),
                "an integer >= 1",
            )
    if "num_workers" in data:
        expect("data.num_workers", _is_int(data.num_workers) and data.num_workers >= 0, "an integer >= 0")
    model = cfg.get("model") or {}
    optimizer = model.get("optimizer") or {}
    if "lr" in optimizer:
        expect("model.optimizer.lr", _is_number(optimizer.lr) and optimizer.lr > 0, "a number > 0")
    if "weight_decay" in optimizer:
        expect(
            "model.optimizer.weight_decay",
            _is_number(optimizer.weight_decay) and optimizer.weight_decay >= 0,
            "a number >= 0",
        )
    thresholds = model.get("thresholds") or {}
    if thresholds:
        expect(
            "model.thresholds.strategy",
            thresholds.get("strategy") in STRATEGIES,
            f"one of {list(STRATEGIES)}",
        )
        value = thresholds.get("value")
        expect(
            "model.thresholds.value",
            _is_number(value) and 0 < value < 1,
            "a probability strictly between 0 and 1",
        )
        if thresholds.get("strategy") == "global":
            expect(
                "model.thresholds.metric",
                thresholds.get("metric") in THRESHOLD_METRICS,
                f"a metric the global threshold can maximise: {list(THRESHOLD_METRICS)}",
            )
    monitor = cfg.get("monitor") or {}
    expect("monitor.mode", monitor.get("mode") in ("auto", "min", "max"), "auto, min or max")
    if "train" in cfg and not cfg.train and not cfg.get("ckpt_path"):
        problems.append(
            "train=false without ckpt_path: there would be nothing to evaluate but random weights; "
            "give ckpt_path=<run>/checkpoints/<file>.ckpt (or use python -m src.eval)"
        )
    if task is not None:
        _check_task_names(cfg, task, problems)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _check_task_names(cfg: DictConfig, task: str, problems: list[str]) -> None:
    val_metrics = ["val/loss", *(f"val/{m}" for m in metric_names(task))]
    metric = _get(cfg, "monitor.metric")
    if metric != "auto" and metric not in val_metrics:
        problems.append(
            f"monitor.metric={metric!r} is not a validation metric of this {task} task; expected one of {val_metrics}"
        )
    optimized = cfg.get("optimized_metric")
    if optimized and optimized not in val_metrics:
        kind = (
            "a test metric: selecting on it would tune on the test split"
            if str(optimized).startswith("test/")
            else "not among this run's metrics"
        )
        problems.append(f"optimized_metric {optimized!r} is {kind}; expected one of {val_metrics}")
