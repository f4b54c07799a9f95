"""One checkpoint under a sweep plan: the clean test pass, then one pass per (curve, seed, level).

A pass is the checkpoint's own forward (``model(batch) -> FusionOutput``) over the test loader of its
run config, with one modality of every batch perturbed by :func:`src.robustness.perturbations.perturb_batch`
before it reaches the model. Predictions are gathered by sample index (as the LightningModule gathers a
test epoch) and scored by :func:`src.metrics.compute_metrics` with the checkpoint's own decision
thresholds (tuned on validation when it was trained; nothing is tuned here), so the clean pass gives
the metrics of ``python -m src.eval`` on the same checkpoint exactly (``tests/test_robustness_cli.py``).
The loss is not a robustness metric and is not computed.

The training mean of a modality (``missing_mean``) is measured on the train split only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader

from src.errors import ConfigError
from src.metrics import MULTICLASS, MULTILABEL, REGRESSION, compute_metrics
from src.robustness.gates import exported_quantity, mean_gate_rows
from src.robustness.perturbations import PERTURBATIONS, MeanAccumulator, perturb_batch
from src.robustness.plan import SweepPlan
from src.robustness.results import CurvePoint

Batch = Mapping[str, Any]


@dataclass
class TestPass:
    """The gathered outputs of one pass over the test split, one row per sample, ordered by index."""

    index: np.ndarray
    scores: np.ndarray
    targets: np.ndarray
    interpret: dict[str, np.ndarray] = field(default_factory=dict)
    #: the batch's ``latent*`` tensors (a synthetic dataset's known generative factors, e.g. which
    #: modality carries the class), recorded as the LightningModule records them for its test split
    latents: dict[str, np.ndarray] = field(default_factory=dict)


def run_pass(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    transform: Callable[[Batch], Batch] | None = None,
) -> TestPass:
    """``model`` (in eval mode, without gradients) over ``loader``; ``transform`` perturbs each batch
    on the CPU before it is moved to ``device``. Duplicated indices (a padding sampler) count once."""
    model.eval()
    records: dict[str, list[np.ndarray]] = {"index": [], "scores": [], "targets": []}
    with torch.inference_mode():
        for batch in loader:
            if transform is not None:
                batch = transform(batch)
            output = model(move_data_to_device(batch, device))
            records["index"].append(batch["index"].cpu().numpy())
            records["scores"].append(model.predict_scores(output.logits).float().cpu().numpy())
            records["targets"].append(batch["labels"].cpu().numpy())
            for key, value in output.interpret.items():
                records.setdefault(f"interpret/{key}", []).append(value.float().cpu().numpy())
            for key, value in batch.items():
                if key.startswith("latent") and torch.is_tensor(value):
                    records.setdefault(f"latents/{key}", []).append(value.cpu().numpy())
    merged = {k: np.concatenate(v) for k, v in records.items()}
    _, first = np.unique(merged["index"], return_index=True)
    merged = {k: v[first] for k, v in merged.items()}
    return TestPass(
        index=merged.pop("index"),
        scores=merged.pop("scores"),
        targets=merged.pop("targets"),
        interpret={k.split("/", 1)[1]: v for k, v in merged.items() if k.startswith("interpret/")},
        latents={k.split("/", 1)[1]: v for k, v in merged.items() if k.startswith("latents/")},
    )


def score(model: torch.nn.Module, gathered: TestPass) -> dict[str, float]:
    """``test/<metric>`` of a pass, as the LightningModule scores its test epoch (the checkpoint's
    decision thresholds for multilabel, argmax for multiclass)."""
    task = model.hparams.task
    scores, targets = gathered.scores, gathered.targets
    if task == MULTILABEL:
        metrics = compute_metrics(task, scores, targets, model.decision_thresholds.cpu().numpy())
    elif task == REGRESSION:
        metrics = compute_metrics(task, scores.squeeze(-1), targets.squeeze(-1))
    else:
        metrics = compute_metrics(task, scores, targets)
    return {f"test/{k}": float(v) for k, v in metrics.items()}


def predictions(model: torch.nn.Module, gathered: TestPass) -> np.ndarray | None:
    """Predicted classes: (N,) argmax (multiclass), (N, C) thresholded (multilabel), None (regression)."""
    task = model.hparams.task
    if task == MULTICLASS:
        return gathered.scores.argmax(1)
    if task == MULTILABEL:
        return gathered.scores >= model.decision_thresholds.cpu().numpy()
    return None


def training_means(loader: DataLoader, modalities: list[str]) -> dict[str, torch.Tensor]:
    """The mean of each modality over the training split (``missing_mean``); sequences over valid steps."""
    if not modalities:
        return {}
    ordered = DataLoader(
        loader.dataset, batch_size=loader.batch_size, shuffle=False, collate_fn=loader.collate_fn
    )
    accumulators = {m: MeanAccumulator() for m in modalities}
    for batch in ordered:
        for modality, accumulator in accumulators.items():
            accumulator.update(batch[modality], batch.get(f"{modality}_mask"))
    return {m: a.result() for m, a in accumulators.items()}


def latent_gate_rows(
    gates_by_level: Mapping[float, np.ndarray],
    modalities: list[str],
    latents: Mapping[str, np.ndarray],
    context: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Mean gates per value of each discrete latent (``group=<latent>``, ``class=<latent>=<value>``):
    on synthetic_gmu the latent M says which modality carries the class, so these rows answer whether
    the gate follows the informative modality when one degrades."""
    rows = []
    for key, values in latents.items():
        values = np.asarray(values).reshape(len(values), -1)
        if values.shape[1] != 1:
            continue
        distinct, codes = np.unique(values[:, 0], return_inverse=True)
        if len(distinct) > 20:  # a continuous factor: no groups
            continue
        names = [f"{key}={v:g}" for v in distinct.tolist()]
        for row in mean_gate_rows(gates_by_level, modalities, names, codes, None, context):
            if row["group"] == "label":
                rows.append({**row, "group": key})
    return rows


@dataclass
class SweepResult:
    """What :func:`sweep` measured: the curve points, the gate rows, the clean metrics and timings."""

    points: list[CurvePoint]
    gates: list[dict[str, Any]]
    clean: dict[str, float]
    n_test: int
    n_passes: int
    seconds: dict[str, float]


def sweep(
    model: torch.nn.Module,
    test_loader: DataLoader,
    plan: SweepPlan,
    device: torch.device,
    train_loader: Callable[[], DataLoader] | None = None,
    required_metric: str | None = None,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Every curve of ``plan`` for every perturbation seed: level 0 is the one clean pass (shared by
    all curves), each other level one perturbed pass. Gates (``interpret["gates"]``, or CentralNet's
    ``interpret["branch_contributions"]``: :data:`src.robustness.gates.GATE_QUANTITIES`) are averaged per
    modality at every level, overall, per true and per predicted class. ``required_metric`` missing
    from the clean pass's metrics is a :class:`ConfigError` before any perturbed pass."""
    started = time.perf_counter()
    need_mean = sorted({i.modality for i in plan.items if PERTURBATIONS[i.perturbation].needs_mean})
    if need_mean and train_loader is None:
        raise ValueError(f"missing_mean on {need_mean} needs the training split")
    means = training_means(train_loader(), need_mean) if need_mean else {}
    seconds = {"training_means": time.perf_counter() - started}

    clean = run_pass(model, test_loader, device)
    clean_metrics = score(model, clean)
    seconds["clean_pass"] = time.perf_counter() - started - seconds["training_means"]
    log(f"clean: {clean_metrics}")
    if required_metric is not None and required_metric not in clean_metrics:
        raise ConfigError(
            f"metric={required_metric!r} is not a test metric of this task; it has {sorted(clean_metrics)}"
        )
    fusion = getattr(model, "fusion", None)
    gate_modalities = list(getattr(fusion, "modalities", []))
    class_names = list(model.hparams.get("class_names") or [])
    labels = clean.targets if model.hparams.task != REGRESSION else None
    quantity = exported_quantity(clean.interpret)
    has_gates = quantity is not None and bool(gate_modalities)

    points: list[CurvePoint] = []
    gate_rows: list[dict[str, Any]] = []
    n_passes = 1
    for item in plan.items:
        for seed in plan.seeds:
            points.append(CurvePoint(item.modality, item.perturbation, 0.0, seed, clean_metrics))
            gates = {0.0: clean.interpret.get(quantity)}
            predicted = {0.0: predictions(model, clean)}
            for level in item.levels[1:]:

                def perturb(batch: Batch, item=item, level=level, seed=seed) -> Batch:
                    return perturb_batch(
                        batch,
                        item.modality,
                        item.kind,
                        item.perturbation,
                        level,
                        seed,
                        means.get(item.modality),
                    )

                gathered = run_pass(model, test_loader, device, perturb)
                if not np.array_equal(gathered.index, clean.index):
                    raise RuntimeError("a perturbed pass saw other test samples than the clean pass")
                n_passes += 1
                metrics = score(model, gathered)
                points.append(CurvePoint(item.modality, item.perturbation, float(level), seed, metrics))
                gates[float(level)] = gathered.interpret.get(quantity)
                predicted[float(level)] = predictions(model, gathered)
                log(f"{item.modality} {item.perturbation} level {level:g} seed {seed}: {metrics}")
            if has_gates:
                gate_rows += mean_gate_rows(
                    gates,
                    gate_modalities,
                    class_names if labels is not None else (),
                    labels,
                    predicted if labels is not None else None,
                    context={
                        "quantity": quantity,
                        "perturbed": item.modality,
                        "perturbation": item.perturbation,
                        "seed": seed,
                    },
                )
                gate_rows += latent_gate_rows(
                    gates,
                    gate_modalities,
                    clean.latents,
                    {
                        "quantity": quantity,
                        "perturbed": item.modality,
                        "perturbation": item.perturbation,
                        "seed": seed,
                    },
                )
    seconds["total"] = time.perf_counter() - started
    return SweepResult(points, gate_rows, clean_metrics, len(clean.index), n_passes, seconds)
