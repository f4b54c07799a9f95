"""``python -m src.eval ckpt_path=<run>/checkpoints/<file>.ckpt``: re-evaluate a checkpoint.

Everything needed comes from the checkpoint: the model's hyper-parameters, its decision thresholds
(tuned on validation when it was trained) and the run's resolved config (for the data). Options:
``split=test|val`` and ``data.<key>=<value>`` to override a data setting (e.g. a moved ``data.root``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import get_class, instantiate
from lightning import LightningDataModule, LightningModule
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig, OmegaConf

import src  # noqa: F401  (registers the config resolvers)
from src.models.module import CHECKPOINT_RUN_CONFIG_KEY
from src.utils.run import print_metrics_table, run_job, write_metrics


def load_checkpoint_run(
    ckpt_path: Path, data_overrides: Any, map_location: str = "cpu"
) -> tuple[dict[str, Any], LightningDataModule, LightningModule]:
    """A checkpoint written by ``src.train``: its run config, the data module of that config (with
    ``data_overrides`` merged in) and the model (also used by :mod:`src.ensemble`)."""
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} is not a file")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    run_config = checkpoint.get(CHECKPOINT_RUN_CONFIG_KEY)
    if not run_config:
        raise ValueError(f"{ckpt_path} has no '{CHECKPOINT_RUN_CONFIG_KEY}': it was not written by src.train")
    datamodule = instantiate(OmegaConf.merge(run_config["data"], data_overrides))
    model_cls = get_class(run_config["model"]["_target_"])
    return run_config, datamodule, model_cls.load_from_checkpoint(ckpt_path, map_location=map_location)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    ckpt_path = Path(cfg.ckpt_path)
    if cfg.split not in ("val", "test"):
        raise ValueError(f"split={cfg.split!r}; expected 'val' or 'test'")
    _, datamodule, model = load_checkpoint_run(ckpt_path, cfg.data)
    output_dir = Path(cfg.paths.output_dir)
    model.output_dir = output_dir
    trainer: L.Trainer = instantiate(cfg.trainer, logger=False, callbacks=[RichProgressBar()])
    run = trainer.test if cfg.split == "test" else trainer.validate
    metrics: dict[str, float] = {}
    for result in run(model, datamodule=datamodule, verbose=False):
        metrics.update({k: float(v) for k, v in result.items()})
    write_metrics(output_dir / "metrics.json", metrics)
    print_metrics_table(metrics, output_dir, title=f"{ckpt_path.name} on {cfg.split}")
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    run_job(evaluate, cfg)


if __name__ == "__main__":
    main()
