"""``python -m src.train [group=option ...] [key=value ...]``: fit, select on validation, test once.

Before the first step: the configuration is checked (``src.utils.config_checks``), the run
directory claimed (``src.utils.run_dir``: locked, never shared with another run; ``ckpt_path`` into
the same directory resumes it in place, ``overwrite_run_dir=true`` clears it), a checkpoint to
resume from is verified (``src.utils.checkpoints``) and every split's files are validated
(``FusionDataModule.preflight``; the counts of skipped/blanked samples go to ``data_issues.json``).

The composed config is never modified: :func:`training_defaults` derives seed, monitor, loss
(weights) and strategy from the dataset's spec, :func:`resolve` merges them into a new config, which
is what the run uses and saves as ``config.yaml``; :class:`src.callbacks.RunConfigInCheckpoint` puts
it in every checkpoint.

Outputs in the run directory: ``config.yaml`` (resolved), ``metrics.json`` (``val/*`` and ``test/*``
of the checkpoint selected on validation), ``checkpoints/`` (best and last), the test-time files of
the ``src.callbacks`` composed from ``conf/callbacks/`` (``thresholds.json``, ``per_class_test.csv``,
``interpret_test.npz``, ``interpretation.json``, figures) and the loggers' folders.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict

import src  # noqa: F401  (registers the config resolvers)
from src.callbacks import CHECKPOINT_RUN_CONFIG_KEY, RunConfigInCheckpoint
from src.data.base import FusionDataModule
from src.data.issues import write_issue_counts
from src.errors import ConfigError
from src.models.compat import check_compatible
from src.models.losses import DATA_DEPENDENT_WEIGHTS, neg_pos_ratio
from src.precompute import encoder_specs, prepare_encoders
from src.spec import DatasetSpec
from src.tasks import DEFAULT_MONITOR, MULTICLASS, MULTILABEL, REGRESSION
from src.utils.checkpoints import ChecksummedCheckpointIO, read_checkpoint
from src.utils.config_checks import check_config
from src.utils.launchers import cluster_plugins, job_device, multirun_launcher, strategy_for
from src.utils.provenance import RunRecord, recorded_run
from src.utils.run import (
    instantiate_group,
    print_metrics_table,
    run_job,
    to_plain,
    write_metrics,
)
from src.utils.run_dir import claim_run_dir, hydra_job_entries, is_global_rank_zero
from src.utils.sweep import job_start
from src.utils.wandb_run import configure_loggers, write_summary

log = logging.getLogger("mmfusion")

DEFAULT_LOSS = {MULTILABEL: "bce", MULTICLASS: "cross_entropy", REGRESSION: "l1"}


@dataclass(frozen=True)
class TrainingDefaults:
    """What ``src.train`` derives from the dataset and the run for the ``auto`` settings; it is
    merged into a new resolved config (:func:`resolve`), never written into the composed one."""

    seed: int
    monitor: dict[str, str]  # metric, mode
    loss: dict[str, Any]  # model.loss with name and data-dependent weights filled in
    strategy: str | None  # trainer.strategy when it must differ from the composed one, else None

    def as_config(self) -> dict[str, Any]:
        """The overrides of the composed config that this resolution amounts to."""
        resolved: dict[str, Any] = {"seed": self.seed, "monitor": self.monitor, "model": {"loss": self.loss}}
        if self.strategy is not None:
            resolved["trainer"] = {"strategy": self.strategy}
        return resolved


def training_defaults(
    spec: DatasetSpec,
    cfg: DictConfig,
    label_counts: Callable[[], tuple[list[int], int]],
    launcher: str | None = None,
) -> TrainingDefaults:
    """Seed (``null`` draws one), monitor (``auto``: the task's default metric and its mode), loss
    (``auto``: the task's default; ``neg_pos_ratio`` weights from ``label_counts()``, the training
    split's positives per class and size, read only when asked for) and the DDP strategy of a
    multirun on ``launcher`` (``ddp`` re-executes ``sys.argv`` in every rank, which would re-run the
    whole sweep: :func:`src.utils.launchers.strategy_for`)."""
    default_metric, default_mode = DEFAULT_MONITOR[spec.task]
    metric = default_metric if cfg.monitor.metric == "auto" else cfg.monitor.metric
    mode = cfg.monitor.mode
    if mode == "auto":
        mode = default_mode if metric == default_metric else ("min" if metric.endswith("loss") else "max")
    loss = to_plain(cfg.model.loss)
    if loss["name"] == "auto":
        loss["name"] = DEFAULT_LOSS[spec.task]
    for key in DATA_DEPENDENT_WEIGHTS:
        if loss.get(key) == "neg_pos_ratio":
            loss[key] = neg_pos_ratio(*label_counts())
    configured = cfg.trainer.get("strategy")
    strategy = strategy_for(configured, launcher)
    if strategy != configured:
        log.warning(
            "multirun: trainer.strategy %s -> %s (ranks must not re-launch the sweep)", configured, strategy
        )
    else:
        strategy = None
    seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**31)
    return TrainingDefaults(seed, {"metric": metric, "mode": mode}, loss, strategy)


def resolve(cfg: DictConfig, defaults: TrainingDefaults) -> DictConfig:
    """A new config: ``cfg`` with ``defaults`` merged in (interpolations such as the callbacks'
    ``${monitor.metric}`` then see the resolved values); ``cfg`` itself is left as composed."""
    resolved = cfg.copy()
    with open_dict(resolved):  # a composed trainer may have no strategy key
        resolved.merge_with(defaults.as_config())
    return resolved


def fit_data_encoders(model: L.LightningModule, datamodule: FusionDataModule) -> None:
    """Fit the data-dependent encoders (TF-IDF) on the training split's raw inputs, never on val/test."""
    fitted = [m for m, encoder in model.encoders.items() if encoder.requires_fit]
    if fitted:
        datamodule.setup("fit")
        for modality in fitted:
            model.encoders[modality].fit(datamodule.splits["train"].column(modality))


def build_model(cfg: DictConfig, datamodule: FusionDataModule) -> L.LightningModule:
    """The LightningModule from plain values: data-derived fields, then ``cfg.model``; the encoders
    after the feature step (``src.precompute``: precomputed modalities arrive as cached features)."""
    features = cfg.get("features")
    run = {
        "model": to_plain(cfg.model),
        "seed": cfg.get("seed"),
        "features": to_plain(features) if features else None,
    }
    model = run["model"]
    chosen = encoder_specs(model.get("encoders"), model.get("default_encoders"), datamodule.spec)
    check_compatible(datamodule.spec, model["fusion"], chosen)  # before the feature step spends any time
    encoders = prepare_encoders(run, datamodule)
    options: dict[str, Any] = to_plain(cfg.model)
    target = options.pop("_target_")
    options.pop("encoders", None)
    options.pop("default_encoders", None)
    try:
        return get_class(target)(
            task=datamodule.task,
            num_outputs=datamodule.spec.num_outputs,
            class_names=list(datamodule.class_names),
            modalities=datamodule.spec.to_dict()["modalities"],
            encoders=encoders,
            **options,
        )
    except (ValueError, TypeError, KeyError) as err:  # the modules' own checks of what they were given
        raise ConfigError(f"the model cannot be built from this configuration: {err}") from err


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit on train, select on validation, then evaluate the selected checkpoint on val and test
    (after the start-up checks of the module docstring); ``cfg`` is not modified."""
    return run(cfg)[0]


def run(cfg: DictConfig) -> tuple[dict[str, float], DictConfig]:
    """:func:`train`, also returning the resolved config the run used."""
    output_dir = Path(cfg.paths.output_dir)
    start = job_start(cfg, output_dir)  # a sweep resume or a requeued job continues (src/utils/sweep.py)
    if start.finished is not None:
        saved = output_dir / "config.yaml"
        return start.finished, OmegaConf.load(saved) if saved.is_file() else cfg
    ckpt_path = start.ckpt_path
    checkpoint = read_checkpoint(ckpt_path, CHECKPOINT_RUN_CONFIG_KEY)[0] if ckpt_path else None
    resume_from = ckpt_path if cfg.train else None
    with (
        claim_run_dir(
            output_dir,
            resume_from=resume_from,
            resume_epoch=checkpoint.get("epoch") if checkpoint and resume_from else None,
            overwrite=start.overwrite,
            ignore=hydra_job_entries(),
        ),
        recorded_run(output_dir, "src.train", start.config_sha256, resumed_from=resume_from) as record,
    ):
        del checkpoint
        check_config(cfg)  # inside the record: a job that fails its checks says why in provenance.json
        return _train(cfg, output_dir, ckpt_path, record)


def _train(
    composed: DictConfig, output_dir: Path, resume_path: Path | None, record: RunRecord
) -> tuple[dict[str, float], DictConfig]:
    datamodule: FusionDataModule = instantiate(composed.data)
    defaults = training_defaults(
        datamodule.spec, composed, datamodule.train_label_counts, multirun_launcher()
    )
    cfg = resolve(composed, defaults)
    check_config(cfg, datamodule.task)
    datamodule.preflight()
    record.add_data(datamodule)
    if hasattr(datamodule, "issue_counts") and is_global_rank_zero():  # skipped/blanked/fixed
        write_issue_counts(output_dir / "data_issues.json", datamodule.issue_counts)
    L.seed_everything(cfg.seed, workers=True)

    model = build_model(cfg, datamodule)
    fit_data_encoders(model, datamodule)
    run_config = to_plain(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(run_config), output_dir / "config.yaml")
    sources = {m: spec.source for m, spec in datamodule.spec.modalities.items()}
    provenance = {m: sources.get(m) or encoder.provenance for m, encoder in model.encoders.items()}
    (output_dir / "encoders.json").write_text(json.dumps(provenance, indent=2) + "\n")

    callbacks = [*instantiate_group(cfg.get("callbacks")), RunConfigInCheckpoint(run_config)]
    loggers = instantiate_group(cfg.get("logger"))
    if not loggers and any(isinstance(c, LearningRateMonitor) for c in callbacks):
        log.info("logger=none: the learning-rate monitor has nothing to write to and is left out")
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[ChecksummedCheckpointIO(), *cluster_plugins()],
        **job_device(cfg.trainer),  # one GPU per job of a local parallel sweep
    )
    configure_loggers(
        loggers, cfg, run_config, callbacks, output_dir
    )  # W&B group/name/tags (src/utils/wandb_run.py)

    ckpt_path = None
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_path, weights_only=True)
        ckpt_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        if not ckpt_path:
            log.warning(
                "no best checkpoint (no checkpoint callback or no validation): evaluating the final weights"
            )
            ckpt_path = None
        else:
            log.info("selected on %s: %s", cfg.monitor.metric, ckpt_path)
    else:
        ckpt_path = resume_path

    metrics: dict[str, float] = {}
    evaluate = {"datamodule": datamodule, "ckpt_path": ckpt_path, "verbose": False, "weights_only": True}
    for result in trainer.validate(model, **evaluate):
        metrics.update(result)
    if cfg.test:
        for result in trainer.test(model, **evaluate):
            metrics.update(result)
    metrics = {k: float(v) for k, v in metrics.items()}
    if trainer.is_global_zero:
        write_metrics(output_dir / "metrics.json", metrics)
        write_summary(loggers, metrics)
        print_metrics_table(
            metrics,
            output_dir,
            title=f"{cfg.fusion._target_.rsplit('.', 1)[-1]} on {type(datamodule).__name__}",
        )
    return metrics, cfg


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics, resolved = run_job(run, cfg)  # optimized_metric was checked against the task's metrics
    return metrics.get(resolved.get("optimized_metric") or resolved.monitor.metric)


if __name__ == "__main__":
    main()
