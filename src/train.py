"""``python -m src.train [group=option ...] [key=value ...]``: fit, select on validation, test once.

Before the first step: the configuration is checked (``src.utils.config_checks``), the run
directory claimed (``src.utils.run_dir``: locked, never shared with another run; ``ckpt_path`` into
the same directory resumes it in place, ``overwrite_run_dir=true`` clears it), a checkpoint to
resume from is verified (``src.utils.checkpoints``) and every split's files are validated
(``FusionDataModule.preflight``; the counts of skipped/blanked samples go to ``data_issues.json``).

Outputs in the run directory: ``config.yaml`` (resolved), ``metrics.json`` (``val/*`` and ``test/*``
of the checkpoint selected on validation), ``checkpoints/`` (best and last), ``thresholds.json`` and
``per_class_test.csv`` (multilabel), ``interpret_test.npz`` / ``interpretation.json`` when the
fusion exposes gates or weights, and the loggers' folders.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict

import src  # noqa: F401  (registers the config resolvers)
from src.data.base import FusionDataModule
from src.data.issues import write_issue_counts
from src.errors import ConfigError
from src.models.losses import DATA_DEPENDENT_WEIGHTS, neg_pos_ratio
from src.models.module import CHECKPOINT_RUN_CONFIG_KEY
from src.precompute import prepare_encoders
from src.tasks import DEFAULT_MONITOR, MULTICLASS, MULTILABEL, REGRESSION
from src.utils.checkpoints import ChecksummedCheckpointIO, read_checkpoint
from src.utils.config_checks import check_config
from src.utils.run import (
    flatten,
    instantiate_group,
    print_metrics_table,
    run_job,
    to_plain,
    write_metrics,
)
from src.utils.run_dir import claim_run_dir, hydra_job_entries, is_global_rank_zero

log = logging.getLogger("mmfusion")

DEFAULT_LOSS = {MULTILABEL: "bce", MULTICLASS: "cross_entropy", REGRESSION: "l1"}


def resolve_data_dependent(cfg: DictConfig, datamodule: FusionDataModule) -> None:
    """Fill the ``auto`` settings that depend on the dataset: monitor, loss, pos_weight / class_weight."""
    metric, mode = DEFAULT_MONITOR[datamodule.task]
    with open_dict(cfg):
        if cfg.seed is None:
            cfg.seed = random.SystemRandom().randrange(2**31)
        if cfg.monitor.metric == "auto":
            cfg.monitor.metric = metric
        if cfg.monitor.mode == "auto":
            cfg.monitor.mode = (
                mode
                if cfg.monitor.metric == metric
                else ("min" if cfg.monitor.metric.endswith("loss") else "max")
            )
        if cfg.model.loss.name == "auto":
            cfg.model.loss.name = DEFAULT_LOSS[datamodule.task]
        for key in DATA_DEPENDENT_WEIGHTS:
            if cfg.model.loss.get(key) == "neg_pos_ratio":
                counts, n = datamodule.train_label_counts()
                cfg.model.loss[key] = neg_pos_ratio(counts, n)
        if (
            HydraConfig.initialized()
            and HydraConfig.get().mode == RunMode.MULTIRUN
            and cfg.trainer.get("strategy") == "ddp"
        ):
            # `ddp` re-executes sys.argv in every rank, which would re-run the whole sweep.
            log.warning("multirun: trainer.strategy ddp -> ddp_spawn (ranks must not re-launch the sweep)")
            cfg.trainer.strategy = "ddp_spawn"


def build_model(cfg: DictConfig, datamodule: FusionDataModule) -> L.LightningModule:
    """The LightningModule from plain values: data-derived fields, then ``cfg.model``; the encoders
    after the feature step (``src.precompute``: precomputed modalities arrive as cached features)."""
    encoders = prepare_encoders(to_plain(cfg), datamodule)
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
    (after the start-up checks of the module docstring)."""
    check_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = Path(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    checkpoint = read_checkpoint(ckpt_path, CHECKPOINT_RUN_CONFIG_KEY)[0] if ckpt_path else None
    resume_from = ckpt_path if cfg.train else None
    with claim_run_dir(
        output_dir,
        resume_from=resume_from,
        resume_epoch=checkpoint.get("epoch") if checkpoint and resume_from else None,
        overwrite=bool(cfg.get("overwrite_run_dir")),
        ignore=hydra_job_entries(),
    ):
        del checkpoint
        return _train(cfg, output_dir, ckpt_path)


def _train(cfg: DictConfig, output_dir: Path, resume_path: Path | None) -> dict[str, float]:
    datamodule: FusionDataModule = instantiate(cfg.data)
    resolve_data_dependent(cfg, datamodule)
    check_config(cfg, datamodule.task)
    datamodule.preflight()
    if hasattr(datamodule, "issue_counts") and is_global_rank_zero():  # skipped/blanked/fixed
        write_issue_counts(output_dir / "data_issues.json", datamodule.issue_counts)
    L.seed_everything(cfg.seed, workers=True)

    model = build_model(cfg, datamodule)
    run_config = to_plain(cfg)
    model.run_config = run_config
    model.output_dir = output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(run_config), output_dir / "config.yaml")
    sources = {m: spec.source for m, spec in datamodule.spec.modalities.items()}
    provenance = {m: sources.get(m) or encoder.provenance for m, encoder in model.encoders.items()}
    (output_dir / "encoders.json").write_text(json.dumps(provenance, indent=2) + "\n")

    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    if not loggers and any(isinstance(c, LearningRateMonitor) for c in callbacks):
        log.info("logger=none: the learning-rate monitor has nothing to write to and is left out")
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[ChecksummedCheckpointIO()]
    )
    for logger in loggers:
        logger.log_hyperparams(flatten(run_config))

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
        print_metrics_table(
            metrics,
            output_dir,
            title=f"{cfg.fusion._target_.rsplit('.', 1)[-1]} on {type(datamodule).__name__}",
        )
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = run_job(train, cfg)  # optimized_metric was checked against the task's metrics at start-up
    return metrics.get(cfg.get("optimized_metric") or cfg.monitor.metric)


if __name__ == "__main__":
    main()
