"""``python -m src.eval ckpt_path=<run>/checkpoints/<file>.ckpt``: re-evaluate a checkpoint.

Everything needed comes from the checkpoint: the model's hyper-parameters, its decision thresholds
(tuned on validation when it was trained) and the run's resolved config (for the data). The
checkpoint is verified first (``src.utils.checkpoints.read_checkpoint``: its checksum sidecar,
torch's weights-only loading, and every class its stored configs name must be on the allow-list),
so a checkpoint cannot run code. Options: ``split=test|val`` and ``+data.<key>=<value>`` to override
a data setting (e.g. a moved ``data.root``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning import LightningDataModule, LightningModule
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig, OmegaConf

import src  # noqa: F401  (registers the config resolvers)
from src.callbacks import CHECKPOINT_RUN_CONFIG_KEY
from src.errors import CheckpointError, ConfigError
from src.precompute import prepare_encoders
from src.utils.checkpoints import allowed_class, read_checkpoint
from src.utils.provenance import recorded_run
from src.utils.run import instantiate_group, print_metrics_table, run_job, write_metrics
from src.utils.run_dir import claim_run_dir, hydra_job_entries
from src.utils.sweep import config_hash


def upgrade_run_config(run_config: dict[str, Any], where: str = "checkpoint") -> dict[str, Any]:
    """The run config of a checkpoint in today's layout. Before the feature step (issue 15, commit
    29b8611) the DataModules took ``data.frozen`` ({modality: encoder}, now ``model.encoders.<m>`` with
    ``precompute: true``) and ``data.feature_cache_dir`` (now ``features.cache_dir``). MM-IMDb then
    delivered the plot as a hashed vector (``data.text_features: hashing``), which no encoder of today
    reproduces: such a checkpoint is refused, naming the key."""
    data = dict(run_config.get("data") or {})
    if not {"frozen", "feature_cache_dir", "text_features"} & data.keys():
        return run_config
    upgraded = {**run_config, "data": data}
    text_features = data.pop("text_features", "string")
    data.pop("hashing_features", None)
    if text_features != "string":
        raise CheckpointError(
            f"{where}: data.text_features={text_features!r}: written when MM-IMDb delivered the plot as a "
            "hashed vector; today the data delivers the text and an encoder hashes it (encoder/text=hashing): "
            "train the model again"
        )
    if "feature_cache_dir" in data:
        cache_dir = data.pop("feature_cache_dir")
        upgraded["features"] = {"cache_dir": cache_dir, **(run_config.get("features") or {})}
    frozen = data.pop("frozen", None) or {}
    if frozen:
        model = dict(run_config.get("model") or {})
        model["encoders"] = {
            **(model.get("encoders") or {}),
            **{m: {**spec, "precompute": True} for m, spec in frozen.items()},
        }
        upgraded["model"] = model
    return upgraded


def load_checkpoint_run(
    ckpt_path: Path, data_overrides: Any, map_location: str = "cpu"
) -> tuple[dict[str, Any], LightningDataModule, LightningModule]:
    """A checkpoint written by ``src.train``, verified (sidecar, weights-only, allow-list: see the
    module docstring): its run config, the data module of that config (with ``data_overrides``
    merged in) and the model. The one checkpoint loader of ``src.eval`` and :mod:`src.ensemble`."""
    checkpoint, data = read_checkpoint(ckpt_path, CHECKPOINT_RUN_CONFIG_KEY)
    run_config = checkpoint.get(CHECKPOINT_RUN_CONFIG_KEY)
    if not run_config:
        raise CheckpointError(
            f"{ckpt_path} has no '{CHECKPOINT_RUN_CONFIG_KEY}': it was not written by src.train"
        )
    run_config = upgrade_run_config(run_config, str(ckpt_path))
    model_class = allowed_class(
        run_config["model"].get("_target_"), f"{CHECKPOINT_RUN_CONFIG_KEY}.model._target_", str(ckpt_path)
    )
    if not issubclass(model_class, L.LightningModule):
        raise CheckpointError(f"{ckpt_path}: model._target_ {model_class.__name__} is not a LightningModule")
    datamodule = instantiate(OmegaConf.merge(run_config["data"], data_overrides))
    prepare_encoders(run_config, datamodule)  # precomputed modalities: the same features as in training
    model = model_class.load_from_checkpoint(io.BytesIO(data), map_location=map_location, weights_only=True)
    return run_config, datamodule, model


def test_callbacks(run_config: dict[str, Any], output_dir: Path) -> list[Any]:
    """The run's own test-time callbacks (``src.callbacks.*`` of its ``callbacks``: artifacts and
    diagnostics; the run config passed the allow-list) writing into ``output_dir`` instead."""
    own = {}
    for name, spec in (run_config.get("callbacks") or {}).items():
        if spec and str(spec.get("_target_", "")).startswith("src.callbacks."):
            own[name] = {**spec, **({"output_dir": str(output_dir)} if "output_dir" in spec else {})}
    return instantiate_group(OmegaConf.create(own))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split={cfg.split!r}; expected 'val' or 'test'")
    ckpt_path = Path(cfg.ckpt_path)
    output_dir = Path(cfg.paths.output_dir)
    with (
        claim_run_dir(output_dir, overwrite=bool(cfg.overwrite_run_dir), ignore=hydra_job_entries()),
        recorded_run(output_dir, "src.eval", config_hash(cfg), checkpoint=str(ckpt_path)) as record,
    ):
        run_config, datamodule, model = load_checkpoint_run(ckpt_path, cfg.data)
        record.add_data(datamodule)
        callbacks = [RichProgressBar(), *test_callbacks(run_config, output_dir)]
        trainer: L.Trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks)
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
