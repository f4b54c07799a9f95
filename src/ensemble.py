"""``python -m src.ensemble``: average the probabilities of separately trained and selected checkpoints.

The GMU paper's "AVG probs" row (Arevalo et al. 2017, Sec. 4.2): "The probabilities obtained by the
best model of each modality are averaged and thresholded". Each member is a checkpoint written by
``src.train`` (selected on validation when it was trained); nothing is retrained here.

Two ways to call it:

- ``python -m src.ensemble ckpt_paths=[<run a>/checkpoints/epoch_012.ckpt,<run b>/...]``: the given
  checkpoints, written to the run directory like a training run (``config.yaml``, ``metrics.json``,
  ``thresholds.json``, ``per_class_test.csv``);
- ``python -m src.ensemble sweep_dir=<multirun dir>``: every ensemble row that the sweep's experiment
  declares under ``ensembles:`` (e.g. ``arevalo2017_mmimdb``'s ``avg_probs``), for every seed of the
  sweep: per modality the unimodal run of that seed with the best validation score (the runs'
  ``monitor.metric``), averaged; written to ``<sweep dir>/ensembles/<row>/seed_<seed>/``, which
  ``python -m src.report <sweep dir>`` then reports as the table's row.

Both compute the members' probabilities on the validation and the test split, check that every member
scores the same samples with the same labels and classes, average them, choose the decision
thresholds on validation only (``thresholds``, by default the members' own ``model.thresholds``) and
score the test split once with them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

import src  # noqa: F401  (registers the config resolvers)
from src.eval import load_checkpoint_run
from src.metrics import compute_metrics, multilabel_per_class
from src.tasks import MULTILABEL
from src.thresholds import tune_thresholds
from src.utils.run import print_metrics_table, run_job, write_metrics

log = logging.getLogger("mmfusion")

SPLITS = ("val", "test")
UNIMODAL = "src.models.fusion.unimodal.UnimodalFusion"


@dataclass
class Member:
    """One checkpoint's probabilities per split, with the sample ids and labels they belong to."""

    ckpt_path: Path
    run_config: dict[str, Any]
    task: str
    class_names: list[str]
    ids: dict[str, list[str]]
    scores: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def predict_member(ckpt_path: Path, data_overrides: Mapping[str, Any], device: str = "cpu") -> Member:
    """The probabilities of ``ckpt_path`` on val and test, with the data config it was trained on."""
    run_config, datamodule, model = load_checkpoint_run(ckpt_path, data_overrides, map_location=device)
    datamodule.setup("validate")
    datamodule.setup("test")
    target = torch.device(device)
    model.eval()
    ids, scores, targets = {}, {}, {}
    loaders = {"val": datamodule.val_dataloader(), "test": datamodule.test_dataloader()}
    with torch.no_grad():
        for split, loader in loaders.items():
            split_ids, split_scores, split_targets = [], [], []
            for batch in loader:
                output = model(_to_device(batch, target))
                split_scores.append(model.predict_scores(output.logits).float().cpu().numpy())
                split_targets.append(batch["labels"].cpu().numpy())
                split_ids += list(batch["ids"])
            ids[split] = split_ids
            scores[split] = np.concatenate(split_scores)
            targets[split] = np.concatenate(split_targets)
    return Member(
        ckpt_path=ckpt_path,
        run_config=run_config,
        task=model.hparams.task,
        class_names=list(model.hparams.class_names),
        ids=ids,
        scores=scores,
        targets=targets,
    )


def align(members: Sequence[Member]) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Per split: the first member's sample order, the members' scores stacked (M, N, C) and the labels.

    Every member must score the same task, classes and samples with the same labels; a difference is
    an error naming the member, never a silent intersection.
    """
    first = members[0]
    aligned = {}
    for member in members[1:]:
        if (member.task, member.class_names) != (first.task, first.class_names):
            raise ValueError(
                f"ensemble members differ: {first.ckpt_path} predicts {first.task} {first.class_names}, "
                f"{member.ckpt_path} predicts {member.task} {member.class_names}"
            )
    for split in SPLITS:
        order = first.ids[split]
        stacked, labels = [], first.targets[split]
        for member in members:
            if sorted(member.ids[split]) != sorted(order):
                extra = sorted(set(member.ids[split]) ^ set(order))
                raise ValueError(
                    f"ensemble members score different {split} samples: {member.ckpt_path} vs "
                    f"{first.ckpt_path} ({len(extra)} ids differ, e.g. {extra[:3]})"
                )
            rows = {sample: i for i, sample in enumerate(member.ids[split])}
            index = np.asarray([rows[sample] for sample in order])
            if not np.array_equal(member.targets[split][index], labels):
                raise ValueError(
                    f"ensemble members disagree on the {split} labels: {member.ckpt_path} vs {first.ckpt_path}"
                )
            stacked.append(member.scores[split][index])
        aligned[split] = (order, np.stack(stacked), labels)
    return aligned


def members_thresholds(members: Sequence[Member]) -> dict[str, Any]:
    """The members' shared ``model.thresholds`` (an error when they differ: then give ``thresholds``)."""
    specs = [m.run_config["model"].get("thresholds") or {"strategy": "fixed", "value": 0.5} for m in members]
    if any(spec != specs[0] for spec in specs[1:]):
        raise ValueError(
            f"the members were trained with different model.thresholds {specs}; set thresholds=... for the ensemble"
        )
    return dict(specs[0])


def evaluate_ensemble(
    members: Sequence[Member], thresholds: Mapping[str, Any] | None, out: Path, record: Mapping[str, Any]
) -> dict[str, float]:
    """Average the aligned members, tune thresholds on val, score val and test; write the run files."""
    aligned = align(members)
    task, class_names = members[0].task, members[0].class_names
    spec = dict(thresholds) if thresholds else members_thresholds(members)
    fused = {split: stack.mean(0) for split, (_, stack, _) in aligned.items()}
    chosen = None
    if task == MULTILABEL:  # on validation only; the test split is scored once with them
        chosen = tune_thresholds(fused["val"], aligned["val"][2], **spec)
    metrics = {}
    for split, (_, _, targets) in aligned.items():
        values = compute_metrics(task, fused[split], targets, chosen if chosen is not None else 0.5)
        metrics.update({f"{split}/{k}": v for k, v in values.items()})
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(out / "metrics.json", metrics)
    if chosen is not None:
        (out / "thresholds.json").write_text(
            json.dumps(
                {
                    "strategy": spec.get("strategy"),
                    "thresholds": dict(zip(class_names, chosen.tolist(), strict=True)),
                },
                indent=2,
            )
        )
        rows = multilabel_per_class(fused["test"], aligned["test"][2], chosen, class_names)
        with open(out / "per_class_test.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    config = {
        **record,
        "thresholds": spec,
        "members": [
            {
                "ckpt_path": str(m.ckpt_path),
                "method_name": m.run_config.get("method_name"),
                "modality": (m.run_config.get("fusion") or {}).get("modality"),
            }
            for m in members
        ],
    }
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return metrics


# ------------------------------------------------------------------------------- sweep mode
@dataclass
class Run:
    """A finished training run of a sweep: its directory, resolved config, metrics and best checkpoint."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, float]

    @property
    def checkpoint(self) -> Path:
        best = sorted((self.path / "checkpoints").glob("epoch_*.ckpt"))
        if len(best) != 1:
            raise ValueError(
                f"{self.path / 'checkpoints'}: expected the one checkpoint selected on validation "
                f"(epoch_*.ckpt, save_top_k 1), found {[p.name for p in best]}"
            )
        return best[0]


def finished_runs(sweep_dir: Path) -> list[Run]:
    """The sweep's training runs with a config.yaml and a metrics.json (ensemble outputs excluded)."""
    runs = []
    for config_path in sorted(sweep_dir.rglob("config.yaml")):
        job = config_path.parent
        if ".hydra" in config_path.parts or "ensembles" in job.relative_to(sweep_dir).parts:
            continue
        if not (job / "metrics.json").is_file():
            log.warning("%s has no metrics.json (failed or still running): not an ensemble candidate", job)
            continue
        metrics = {
            k: math.nan if v is None else float(v)
            for k, v in json.loads((job / "metrics.json").read_text()).items()
        }
        runs.append(Run(job, yaml.safe_load(config_path.read_text()) or {}, metrics))
    return runs


def best_unimodal(runs: Sequence[Run], seed: int, modality: str, candidates: Sequence[str] | None) -> Run:
    """The unimodal run of ``modality`` and ``seed`` with the best validation score (its ``monitor``)."""
    pool = [
        r
        for r in runs
        if r.config.get("seed") == seed
        and (r.config.get("fusion") or {}).get("_target_") == UNIMODAL
        and r.config["fusion"].get("modality") == modality
        and (candidates is None or r.config.get("method_name") in candidates)
    ]
    if not pool:
        raise ValueError(
            f"no finished unimodal {modality} run with seed {seed}"
            + (f" among the rows {list(candidates)}" if candidates else "")
            + ": train the table's unimodal rows first"
        )
    metric, mode = pool[0].config["monitor"]["metric"], pool[0].config["monitor"]["mode"]
    if any((r.config["monitor"]["metric"], r.config["monitor"]["mode"]) != (metric, mode) for r in pool):
        raise ValueError(f"the {modality} candidates of seed {seed} were selected on different monitors")
    missing = [str(r.path) for r in pool if not math.isfinite(r.metrics.get(metric, math.nan))]
    if missing:
        raise ValueError(f"{metric} is missing from the metrics.json of {missing}")
    sign = 1.0 if mode == "max" else -1.0
    return max(pool, key=lambda r: sign * r.metrics[metric])


def ensemble_protocol(
    run_config: Mapping[str, Any], row_protocol: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The members' protocol with the ensemble row's own entries replacing the same settings."""
    protocol = dict(run_config.get("protocol") or {})
    settings = {**(protocol.get("settings") or {}), **((row_protocol or {}).get("settings") or {})}
    return {
        **protocol,
        **{k: v for k, v in (row_protocol or {}).items() if k != "settings"},
        "settings": settings,
    }


def ensemble_sweep(
    sweep_dir: Path, data_overrides: Mapping[str, Any], device: str
) -> dict[str, dict[int, dict[str, float]]]:
    """Every ``ensembles:`` row of the sweep's experiment for every seed; returns row -> seed -> metrics."""
    runs = finished_runs(sweep_dir)
    declared = [r.config["ensembles"] for r in runs if r.config.get("ensembles")]
    if not declared:
        raise ValueError(f"no run under {sweep_dir} declares ensembles: (e.g. experiment=arevalo2017_mmimdb)")
    if any(spec != declared[0] for spec in declared[1:]):
        raise ValueError(
            f"the runs under {sweep_dir} declare different ensembles: one experiment per sweep_dir"
        )
    results: dict[str, dict[int, dict[str, float]]] = {}
    seeds = sorted({r.config["seed"] for r in runs})
    for row, spec in declared[0].items():
        results[row] = {}
        for seed in seeds:
            chosen = [best_unimodal(runs, seed, m, spec.get("candidates")) for m in spec["modalities"]]
            log.info("%s seed %s: %s", row, seed, ", ".join(str(r.path) for r in chosen))
            members = [predict_member(r.checkpoint, data_overrides, device) for r in chosen]
            first = chosen[0].config
            record = {
                "task_name": first.get("task_name"),
                "paper_table": first.get("paper_table"),
                "method_name": row,
                "seed": seed,
                "combine": spec.get("combine", "mean"),
                "protocol": ensemble_protocol(first, spec.get("protocol")),
            }
            out = sweep_dir / "ensembles" / row / f"seed_{seed}"
            results[row][seed] = evaluate_ensemble(members, spec.get("thresholds"), out, record)
    return results


def run(cfg: DictConfig) -> dict[str, Any]:
    data_overrides = OmegaConf.to_container(cfg.data, resolve=True)
    thresholds = OmegaConf.to_container(cfg.thresholds, resolve=True) if cfg.thresholds else None
    if bool(cfg.sweep_dir) == bool(cfg.ckpt_paths):
        raise ValueError("give exactly one of ckpt_paths=[a.ckpt,b.ckpt] and sweep_dir=<multirun dir>")
    if cfg.sweep_dir:
        sweep_dir = Path(cfg.sweep_dir)
        if not sweep_dir.is_dir():
            raise FileNotFoundError(f"sweep_dir={sweep_dir} is not a directory")
        return ensemble_sweep(sweep_dir, data_overrides, cfg.device)
    if len(cfg.ckpt_paths) < 2:
        raise ValueError(f"an ensemble needs at least two checkpoints, got ckpt_paths={list(cfg.ckpt_paths)}")
    members = [predict_member(Path(p), data_overrides, cfg.device) for p in cfg.ckpt_paths]
    out = Path(cfg.paths.output_dir)
    first = members[0].run_config
    record = {
        "task_name": cfg.task_name,
        "paper_table": first.get("paper_table"),
        "method_name": cfg.method_name,
        "seed": first.get("seed"),
        "combine": "mean",
    }
    metrics = evaluate_ensemble(members, thresholds, out, record)
    print_metrics_table(metrics, out, title=f"mean of {len(members)} checkpoints' probabilities")
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="ensemble")
def main(cfg: DictConfig) -> None:
    run_job(run, cfg)


if __name__ == "__main__":
    main()
