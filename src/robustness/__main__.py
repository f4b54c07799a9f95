"""``python -m src.robustness ckpt_path=<run>/checkpoints/<file>.ckpt``: a checkpoint under missing and
corrupted modalities (issue 18; docs/robustness.md).

Options (conf/robustness.yaml): ``robustness=default|missing|noise|corruptions|full`` (the sweep),
``robustness.modalities=[image]``, ``robustness.seeds=[0,1]``, ``metric=auto`` (the task's selection
metric on test), ``device=auto|cpu|cuda``, ``logger=wandb`` (curves and gate plots as W&B media) and
``+data.<key>=<value>`` (a moved ``data.root``). ``-m ckpt_path=<a>,<b>,<c>`` sweeps several checkpoints;
the multirun then writes the comparison of ``python -m src.report <sweep dir> --robustness`` into its
sweep directory (relative robustness, and effective robustness against a unimodal or late-fusion
checkpoint of the same data and seed).

The checkpoint is verified as ``src.eval`` verifies it, and the plan is resolved against the
checkpoint's modalities before any data is read: an unknown perturbation, an inadmissible kind or a
modality the checkpoint lacks stops the run with one message (exit code 2). Decision thresholds are the
checkpoint's; nothing is tuned on a perturbed test set.

Outputs in the run directory: ``robustness.json`` (points, summary, gate rows, meta with hardware and
wall time), ``robustness.csv``, ``robustness_gates.csv`` (fusions that export gates),
``robustness_curves.png`` and ``gates_<modality>_<perturbation>.png``.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import src  # noqa: F401  (registers the config resolvers)
from src.callbacks import CHECKPOINT_RUN_CONFIG_KEY
from src.errors import CheckpointError, ConfigError
from src.eval import load_checkpoint_run
from src.robustness.gates import plot_mean_gates
from src.robustness.plan import SweepPlan, n_evaluations, plan_sweep
from src.robustness.results import plot_curves, summary_rows, write_csv, write_csv_rows, write_json
from src.robustness.sweep import SweepResult, sweep
from src.tasks import DEFAULT_MONITOR
from src.utils.checkpoints import read_checkpoint
from src.utils.run import instantiate_group, run_job, to_plain
from src.utils.run_dir import claim_run_dir, hydra_job_entries
from src.utils.wandb_run import configure_loggers, write_summary

log = logging.getLogger("mmfusion")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device={name!r}: expected auto, cpu or cuda[:N] ({err})") from None


def modality_kinds(hparams: dict[str, Any]) -> dict[str, str]:
    return {m: str(spec["kind"]) for m, spec in hparams["modalities"].items()}


def checkpoint_plan(ckpt_path: Path, robustness: Any) -> tuple[dict[str, Any], SweepPlan]:
    """The verified checkpoint's hyper-parameters and the sweep plan resolved against all its
    modalities (checked before any work; :func:`model_plan` then leaves out what the model ignores)."""
    checkpoint, _ = read_checkpoint(ckpt_path, CHECKPOINT_RUN_CONFIG_KEY)
    hparams = checkpoint.get("hyper_parameters") or {}
    modalities = hparams.get("modalities")
    if not isinstance(modalities, dict) or not modalities or "task" not in hparams:
        raise CheckpointError(
            f"{ckpt_path}: its hyper_parameters name no modalities/task (not written by src.train)"
        )
    return hparams, plan_sweep(robustness, modality_kinds(hparams))


def model_plan(robustness: Any, hparams: dict[str, Any], fusion: Any) -> SweepPlan:
    """The sweep plan without the modalities ``fusion`` does not read (``Fusion.reads``: a unimodal
    baseline's other modalities, the inputs no ensemble member sees), whose curves would be flat."""
    reads, kinds = list(fusion.reads), modality_kinds(hparams)
    unread = {m: f"{type(fusion).__name__} reads only {reads}" for m in kinds if m not in reads}
    return plan_sweep(robustness, kinds, unread)


def describe_run(run_config: dict[str, Any], hparams: dict[str, Any]) -> dict[str, Any]:
    """What identifies the checkpoint's run for comparisons: its method, fusion, data and seed."""
    fusion = run_config.get("fusion") or hparams.get("fusion") or {}
    fusion_class = str(fusion.get("_target_", "")).rsplit(".", 1)[-1]
    return {
        "method": run_config.get("method_name") or fusion_class,
        "fusion": fusion_class,
        "fusion_modality": fusion.get("modality"),
        "data": run_config.get("data"),
        "seed": run_config.get("seed"),
        "task": hparams["task"],
        "experiment": run_config.get("task_name"),
    }


def hardware(device: torch.device) -> dict[str, Any]:
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def write_outputs(
    out: Path,
    result: SweepResult,
    metric: str,
    meta: dict[str, Any],
    gate_modalities: list[str],
    loggers: list,
) -> list[dict[str, Any]]:
    summary = summary_rows(result.points, metric)
    write_json(out / "robustness.json", result.points, summary, result.gates, meta)
    write_csv(out / "robustness.csv", result.points)
    title = f"{meta['run']['method']} (seed {meta['run']['seed']})"
    images = [plot_curves(out / "robustness_curves.png", result.points, metric, title)]
    if result.gates:
        write_csv_rows(out / "robustness_gates.csv", result.gates)
        first_seed = result.gates[0]["seed"]
        curves = dict.fromkeys((r["perturbed"], r["perturbation"]) for r in result.gates)
        for perturbed, perturbation in curves:
            rows = [
                r
                for r in result.gates
                if (r["perturbed"], r["perturbation"], r["seed"]) == (perturbed, perturbation, first_seed)
            ]
            images.append(
                plot_mean_gates(
                    out / f"gates_{perturbed}_{perturbation}.png",
                    rows,
                    gate_modalities,
                    f"{title}: {perturbation} on {perturbed}",
                    quantity=rows[0]["quantity"],
                )
            )
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            columns = ["modality", "perturbation", "clean", "last", "relative_robustness"]
            logger.log_table(
                key="robustness/summary", columns=columns, data=[[r[c] for c in columns] for r in summary]
            )
            for image in images:
                logger.log_image(key=f"robustness/{image.stem}", images=[str(image)])
    return summary


def robustness(cfg: DictConfig) -> dict[str, float]:
    """Sweep one checkpoint (module docstring); returns the clean metrics."""
    started = time.perf_counter()
    ckpt_path = Path(cfg.ckpt_path)
    device = resolve_device(str(cfg.device))
    hparams, _ = checkpoint_plan(ckpt_path, cfg.robustness)
    task = hparams["task"]
    metric = DEFAULT_MONITOR[task][0].replace("val/", "test/") if cfg.metric == "auto" else str(cfg.metric)
    output_dir = Path(cfg.paths.output_dir)
    with claim_run_dir(output_dir, overwrite=bool(cfg.overwrite_run_dir), ignore=hydra_job_entries()):
        run_config, datamodule, model = load_checkpoint_run(ckpt_path, cfg.data, map_location=str(device))
        plan = model_plan(cfg.robustness, hparams, model.fusion)
        log.info(
            "%s: %d curves x %d seeds, %d test passes%s",
            ckpt_path,
            len(plan.items),
            len(plan.seeds),
            n_evaluations(plan),
            f"; not swept: {plan.not_swept}" if plan.not_swept else "",
        )
        model.to(device)
        datamodule.setup("test")
        precomputed = sorted(
            m for m, spec in datamodule.spec.modalities.items() if (spec.source or {}).get("precomputed")
        )
        if precomputed:
            log.warning(
                "%s arrive as precomputed frozen-encoder features: their perturbations act on the features",
                precomputed,
            )
        result = sweep(
            model,
            datamodule.test_dataloader(),
            plan,
            device,
            train_loader=datamodule.train_dataloader,
            required_metric=metric,
            log=log.info,
        )
        meta = {
            "ckpt_path": str(ckpt_path.resolve()),
            "run": describe_run(run_config, hparams),
            "metric": metric,
            "split": "test",
            "modalities": {m: spec["kind"] for m, spec in hparams["modalities"].items()},
            "gate_modalities": list(getattr(model.fusion, "modalities", [])),
            "perturbs_features": precomputed,
            "not_swept": plan.not_swept,
            "seeds": list(plan.seeds),
            "robustness": OmegaConf.to_container(cfg.robustness, resolve=True),
            "clean": result.clean,
            "n_test": result.n_test,
            "n_passes": result.n_passes,
            "seconds": {**result.seconds, "wall": time.perf_counter() - started},
            "hardware": hardware(device),
            "command_config": to_plain(cfg),
        }
        loggers = instantiate_group(cfg.get("logger"))
        # W&B identity from the checkpoint's run (name <method>-s<seed>), job type and group of this sweep
        identity = {
            **run_config,
            "task_name": cfg.task_name,
            "tags": [*cfg.tags, *(run_config.get("tags") or [])],
        }
        configure_loggers(loggers, OmegaConf.create(identity), to_plain(cfg), [], output_dir)
        summary = write_outputs(output_dir, result, metric, meta, meta["gate_modalities"], loggers)
        write_summary(
            loggers,
            {
                **result.clean,
                **{
                    f"robustness/{r['modality']}/{r['perturbation']}/relative": r["relative_robustness"]
                    for r in summary
                },
            },
        )
        for row in summary:
            log.info(
                "%s %s: %s clean %.4f -> %.4f, relative robustness %.4f",
                row["modality"],
                row["perturbation"],
                metric,
                row["clean"],
                row["last"],
                row["relative_robustness"],
            )
        log.info("written: %s/robustness.json (%.0f s)", output_dir, meta["seconds"]["wall"])
    return result.clean


@hydra.main(version_base="1.3", config_path="../../conf", config_name="robustness")
def main(cfg: DictConfig) -> None:
    run_job(robustness, cfg)


if __name__ == "__main__":
    main()
