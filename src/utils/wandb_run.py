"""W&B the way its users expect: one group per sweep, named runs, the selected checkpoint's metrics
in the summary, and the test tables and gate histograms as media.

- :func:`configure_loggers` sets each :class:`~lightning.pytorch.loggers.WandbLogger`'s run before
  it starts: ``group`` = ``<task_name>-<sweep directory>`` in a multirun (every job of a sweep, and
  of its resumes, in one group), ``<task_name>-<run directory>`` for a single run; ``job_type`` =
  ``task_name`` for train/eval/robustness and ``train`` for experiments; ``name`` =
  ``<method_name or fusion>-s<seed>``; tags = the config's ``tags`` plus ``data:``, ``fusion:``,
  ``encoder:<modality>:<encoder>`` and ``experiment:``; the resolved config (nested) as the run
  config. Values the logger config sets explicitly are kept. ``define_metric`` puts ``val/*`` on the
  epoch axis and marks the monitored metric's best (``summary=max|min``).
- :func:`write_summary` puts the ``val/*`` and ``test/*`` values of the checkpoint selected on
  validation (what ``metrics.json`` holds) into the summary, replacing the last epoch's.
- :class:`WandbMedia` (conf/callbacks/default.yaml) logs per validation epoch a histogram of the
  per-sample mean gate of each modality, and at test the per-class metrics table and a table of
  test predictions (id, labels, prediction, mean gate per modality; at most ``max_prediction_rows``).
  The gate-share and alpha figures come from :func:`src.interpret.write_interpretability`.

Offline (``WANDB_MODE=offline``) everything is written under ``<run>/wandb/offline-run-*`` and
``wandb sync`` uploads it later; :mod:`src.utils.wandb_offline` reads it back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lightning import LightningModule, Trainer
from omegaconf import DictConfig

from src.callbacks import EveryTestBatch

log = logging.getLogger("mmfusion")

#: task names that are W&B job types of their own; experiments (task_name = the table) train
JOB_TYPES = ("train", "eval", "robustness")


def _wandb_loggers(loggers: Sequence[Any]) -> list[Any]:
    from lightning.pytorch.loggers import WandbLogger

    return [logger for logger in loggers if isinstance(logger, WandbLogger)]


def _hydra_choices() -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def run_group(task_name: str) -> str:
    """``<task_name>-<sweep dir name>`` in a multirun, ``<task_name>-<run dir name>`` otherwise."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return task_name
    hydra = HydraConfig.get()
    where = hydra.sweep.dir if hydra.mode == RunMode.MULTIRUN else hydra.run.dir
    return f"{task_name}-{Path(str(where)).name}"


def _class_name(spec: Any) -> str:
    target = (spec or {}).get("_target_", "") if isinstance(spec, Mapping) else ""
    return target.rsplit(".", 1)[-1] or "unknown"


def run_identity(cfg: DictConfig | Mapping[str, Any], encoders: Mapping[str, Any]) -> dict[str, Any]:
    """group, job_type, name and tags of a run (module docstring); ``encoders``: ``encoders.json``."""
    choices = _hydra_choices()
    fusion = choices.get("fusion") or _class_name(cfg.get("fusion"))
    data = choices.get("data") or _class_name(cfg.get("data"))
    task_name = str(cfg.get("task_name") or "train")
    tags = [str(t) for t in (cfg.get("tags") or [])]
    tags += [f"data:{data}", f"fusion:{fusion}"]
    tags += [f"encoder:{m}:{(e or {}).get('encoder', 'unknown')}" for m, e in sorted(encoders.items())]
    if choices.get("experiment"):
        tags.append(f"experiment:{choices['experiment']}")
    return {
        "group": run_group(task_name),
        "job_type": task_name if task_name in JOB_TYPES else "train",
        "name": f"{cfg.get('method_name') or fusion}-s{cfg.get('seed')}",
        "tags": list(dict.fromkeys(t[:64] for t in tags)),  # W&B caps a tag at 64 characters
    }


def _monitor(callbacks: Sequence[Any]) -> tuple[str, str] | None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor:
            return callback.monitor, callback.mode
    return None


def configure_loggers(
    loggers: Sequence[Any],
    cfg: DictConfig,
    run_config: Mapping[str, Any],
    callbacks: Sequence[Any],
    output_dir: Path,
) -> None:
    """Log the run config to every logger; W&B runs get their identity first (module docstring)."""
    from src.utils.run import flatten

    encoders_file = Path(output_dir) / "encoders.json"
    encoders = json.loads(encoders_file.read_text()) if encoders_file.is_file() else {}
    identity = run_identity(cfg, encoders)
    wandb_loggers = _wandb_loggers(loggers)
    for logger in wandb_loggers:
        init = logger._wandb_init  # the arguments of wandb.init, used when the run starts
        for key, value in identity.items():
            if key == "tags":
                init[key] = list(dict.fromkeys([*(init.get(key) or []), *value]))
            elif not init.get(key):
                init[key] = value
        init["config"] = dict(run_config)
        experiment = logger.experiment
        if not hasattr(experiment, "define_metric"):  # another rank's stand-in
            continue
        experiment.define_metric("epoch")
        for pattern in ("val/*", "train/*"):
            experiment.define_metric(pattern, step_metric="epoch")
        monitor = _monitor(callbacks)
        if monitor:
            experiment.define_metric(monitor[0], step_metric="epoch", summary=monitor[1])
    for logger in loggers:
        if logger not in wandb_loggers:
            logger.log_hyperparams(flatten(run_config))


def write_summary(loggers: Sequence[Any], metrics: Mapping[str, float]) -> None:
    """The selected checkpoint's ``val/*`` and ``test/*`` as the W&B summary (module docstring)."""
    for logger in _wandb_loggers(loggers):
        experiment = logger.experiment
        if hasattr(experiment, "summary"):
            experiment.summary.update(dict(metrics))


def mean_gates(interpret: Mapping[str, np.ndarray], modalities: Sequence[str]) -> dict[str, np.ndarray]:
    """Per modality, each sample's mean gate (``gates`` is (N, M, ...) with modalities on axis 1)."""
    gates = interpret.get("gates")
    if gates is None or gates.ndim < 2 or gates.shape[1] != len(modalities):
        return {}
    return {m: gates[:, i].reshape(len(gates), -1).mean(1) for i, m in enumerate(modalities)}


def per_class_rows(
    task: str, scores: np.ndarray, targets: np.ndarray, class_names: Sequence[str], out: Path | None
) -> list[dict[str, Any]]:
    """The per-class test table: ``per_class_test.csv`` (multilabel), else precision/recall/F1/support
    per class of the argmax prediction (multiclass); empty for regression."""
    import csv

    from sklearn.metrics import precision_recall_fscore_support

    if out is not None and (Path(out) / "per_class_test.csv").is_file():
        with open(Path(out) / "per_class_test.csv", newline="") as handle:
            return list(csv.DictReader(handle))
    if task != "multiclass":
        return []
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        targets.reshape(-1), scores.argmax(1), labels=labels, zero_division=0
    )
    return [
        {"class": name, "precision": p, "recall": r, "f1": f, "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
    ]


class WandbMedia(EveryTestBatch):
    """Gate histograms per validation epoch; per-class and prediction tables at test (module
    docstring). Does nothing without a W&B logger. Reads ``pl_module.gathered[stage]``: the epoch's
    outputs gathered over batches and ranks by the LightningModule; the prediction table's sample ids
    are the ones this rank saw (under DDP another rank's samples show their index)."""

    def __init__(self, max_prediction_rows: int = 1000) -> None:
        self.max_prediction_rows = int(max_prediction_rows)
        self._ids: dict[int, str] = {}

    def reset(self) -> None:
        self._ids = {}

    def record(self, outputs: Any, batch: Mapping[str, Any]) -> None:
        if "ids" in batch:
            self._ids.update(zip(batch["index"].tolist(), batch["ids"], strict=True))

    def _experiment(self, trainer: Trainer) -> Any | None:
        if not trainer.is_global_zero:
            return None
        loggers = _wandb_loggers(trainer.loggers)
        return loggers[0].experiment if loggers else None

    @staticmethod
    def _gathered(pl_module: LightningModule, stage: str) -> tuple[dict[str, np.ndarray], list[str]]:
        gathered = dict(getattr(pl_module, "gathered", {}).get(stage) or {})
        interpret = {k.split("/", 1)[1]: v for k, v in gathered.items() if k.startswith("interpret/")}
        modalities = list(getattr(pl_module.fusion, "modalities", []) or [])
        return {"_all": gathered, **interpret}, modalities

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        experiment = self._experiment(trainer)
        if experiment is None or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        import wandb

        interpret, modalities = self._gathered(pl_module, "val")
        gates = mean_gates(interpret, modalities)
        if gates:
            row = {f"val/gate_hist/{m}": wandb.Histogram(v) for m, v in gates.items()}
            experiment.log({**row, "epoch": trainer.current_epoch})

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        experiment = self._experiment(trainer)
        if experiment is None:
            return
        import wandb

        interpret, modalities = self._gathered(pl_module, "test")
        gathered = interpret.pop("_all")
        if not gathered:
            return
        hparams = pl_module.hparams
        class_names = list(hparams.class_names)
        scores, targets = gathered["scores"], gathered["targets"]
        media: dict[str, Any] = {}
        rows = per_class_rows(
            hparams.task, scores, targets, class_names, getattr(pl_module, "output_dir", None)
        )
        if rows:
            columns = list(rows[0])
            media["test/per_class"] = wandb.Table(
                columns=columns, data=[[r[c] for c in columns] for r in rows]
            )
        gates = mean_gates(interpret, modalities)
        for m, v in gates.items():
            media[f"test/gate_hist/{m}"] = wandb.Histogram(v)
        media["test/predictions"] = self._predictions(pl_module, gathered, gates, class_names)
        experiment.log(media)

    def _predictions(
        self,
        pl_module: LightningModule,
        gathered: Mapping[str, np.ndarray],
        gates: Mapping[str, np.ndarray],
        class_names: Sequence[str],
    ) -> Any:
        import wandb

        n = min(len(gathered["index"]), self.max_prediction_rows)
        ids = [self._ids.get(i, str(i)) for i in gathered["index"][:n].tolist()]
        predicted = pl_module.predicted(gathered["scores"][:n])
        targets = gathered["targets"][:n]
        columns = ["id", "labels", "prediction", *(f"gate_{m}" for m in gates)]
        data = []
        for i in range(n):
            if predicted is None:  # regression
                labels, prediction = (
                    float(targets[i].reshape(-1)[0]),
                    float(gathered["scores"][i].reshape(-1)[0]),
                )
            else:
                truth = (
                    targets[i] if targets.ndim > 1 else np.eye(len(class_names), dtype=bool)[int(targets[i])]
                )
                labels = ", ".join(c for c, t in zip(class_names, truth, strict=True) if t)
                prediction = ", ".join(c for c, p in zip(class_names, predicted[i], strict=True) if p)
            data.append([str(ids[i]), labels, prediction, *(float(v[i]) for v in gates.values())])
        return wandb.Table(columns=columns, data=data)
