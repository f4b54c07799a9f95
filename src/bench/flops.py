"""``python -m src.bench flops``: achieved FLOP/s of MulT and BPMuLT, repo path against a plain loop.

For each method (``conf/fusion/<method>.yaml`` at its defaults) and each workload (random sequences
with the MulT feature widths of IEMOCAP and CMU-MOSEI: text 300, audio 74, vision 35; word-aligned
IEMOCAP T=20, aligned MOSEI T=50, unaligned MOSEI 50/500/500, ../shared/reference/data_formats.md),
it times training steps twice on the same device and precision (CUDA: bf16 autocast, CPU: fp32):

- ``repo``: the FusionClassifier built by ``src.train.build_model``, fitted by a Lightning Trainer on
  a FusionDataModule whose splits are resident on the device (``data.resident_mb``);
- ``plain``: the same fusion, loss and Adam in a hand-written loop over tensors already on the device.

The FLOPs of one training step (forward and backward) are counted once with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and attention; elementwise work is
not counted), so TFLOP/s = FLOPs per step x steps / seconds. ``ratio`` is repo / plain samples/s
(target >= 0.9). Peak memory: CUDA peak allocated (CPU: growth of the peak resident set).

    python -m src.bench flops [--methods mult bpmult] [--workloads iemocap mosei mosei_unaligned]
                              [--batch-size 32] [--steps 20] [--warmup 5] [--device auto|cpu|cuda]
                              [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

import src  # noqa: F401  (resolvers)
from src.bench.fusion import PeakMemory, _sync, bench_trainer
from src.data.base import FusionDataModule, SampleDataset
from src.models.losses import build_loss
from src.models.model import build_model as build_plain_model
from src.spec import ModalitySpec
from src.tasks import MULTILABEL, REGRESSION
from src.train import build_model
from src.utils.resolvers import REPO_ROOT

METHODS = ("mult", "bpmult")
WIDTHS = {"text": 300, "audio": 74, "vision": 35}
#: name: (task, outputs, steps per modality)
WORKLOADS = {
    "iemocap": (MULTILABEL, 4, {"text": 20, "audio": 20, "vision": 20}),
    "mosei": (REGRESSION, 1, {"text": 50, "audio": 50, "vision": 50}),
    "mosei_unaligned": (REGRESSION, 1, {"text": 50, "audio": 500, "vision": 500}),
}
LOSS = {MULTILABEL: "bce", REGRESSION: "l1"}


class SequenceWorkload(FusionDataModule):
    """Seeded random fixed-length sequences of one workload (all steps real), resident on the device."""

    def __init__(self, workload: str, n_samples: int, seed: int = 0, **loader_options: Any) -> None:
        super().__init__(resident_mb=1e6, **loader_options)
        self.task, outputs, steps = WORKLOADS[workload]
        rng = np.random.default_rng(seed)
        self.arrays = {
            m: rng.standard_normal((n_samples, t, WIDTHS[m]), dtype=np.float32) for m, t in steps.items()
        }
        shape = (n_samples, outputs)
        self.labels = (
            (rng.random(shape) < 0.3).astype(np.float32)
            if self.task == MULTILABEL
            else rng.standard_normal(shape, dtype=np.float32)
        )
        self.class_names = [f"class{i}" for i in range(outputs)] if self.task == MULTILABEL else ["score"]
        self.modalities = {m: ModalitySpec("sequence", (t, WIDTHS[m])) for m, t in steps.items()}

    def load_split(self, split: str) -> SampleDataset:
        return SampleDataset([f"{split}{i}" for i in range(len(self.labels))], self.arrays, self.labels)


def method_config(method: str, task: str):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[f"fusion={method}", "logger=none", "callbacks=none", f"model.loss.name={LOSS[task]}"],
        )


class StepTimes(L.Callback):
    """Wall time of the training batches after ``warmup`` (device synchronised at both ends)."""

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.start = self.end = 0.0
        self.timed = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            _sync(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step > self.warmup:
            _sync(self.device)
            self.end = time.perf_counter()
            self.timed += 1


def repo_run(
    method: str, data: SequenceWorkload, batch_size: int, steps: int, warmup: int, device: str
) -> dict:
    cfg = method_config(method, data.task)
    L.seed_everything(0, verbose=False)
    model = build_model(cfg, data)
    timer = StepTimes(warmup, device)
    trainer = bench_trainer(
        device, timer, precision="bf16-mixed" if device == "cuda" else "32-true", max_steps=steps
    )
    with PeakMemory(device) as memory:
        trainer.fit(model, datamodule=data)
    seconds = timer.end - timer.start
    return {
        "samples_per_s": timer.timed * batch_size / seconds,
        "seconds": seconds,
        "steps": timer.timed,
        "peak_mb": memory.peak / 2**20,
    }


def plain_run(
    method: str, data: SequenceWorkload, batch_size: int, steps: int, warmup: int, device: str
) -> dict:
    """The same fusion, loss and optimiser in a plain loop; also counts one step's FLOPs."""
    cfg = method_config(method, data.task)
    L.seed_everything(0, verbose=False)
    model = build_plain_model(data.spec, dict(cfg.fusion), dict(cfg.model.head)).to(device)
    model.train()
    criterion = build_loss(dict(cfg.model.loss), data.task, data.spec.num_outputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.model.optimizer.lr)
    features = {m: torch.from_numpy(a).to(device) for m, a in data.arrays.items()}
    labels = torch.from_numpy(data.labels).to(device)
    masks = {m: torch.ones(a.shape[:2], dtype=torch.bool, device=device) for m, a in features.items()}
    n = len(labels)

    def step(rows: torch.Tensor) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            output = model.fuse(
                {m: x[rows] for m, x in features.items()}, {m: k[rows] for m, k in masks.items()}
            )
            loss = criterion(output.logits.float(), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    order = torch.randperm(n, device=device)
    batches = [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    with FlopCounterMode(display=False) as counter:
        step(batches[0])
    flops = counter.get_total_flops()
    with PeakMemory(device) as memory:
        for i in range(steps):
            if i == warmup:
                _sync(device)
                start = time.perf_counter()
            step(batches[i % len(batches)])
        _sync(device)
    seconds = time.perf_counter() - start
    timed = steps - warmup
    return {
        "samples_per_s": timed * batch_size / seconds,
        "seconds": seconds,
        "steps": timed,
        "peak_mb": memory.peak / 2**20,
        "flops_per_step": flops,
        "params": sum(p.numel() for p in model.parameters()),
    }


def run(method: str, workload: str, batch_size: int, steps: int, warmup: int, device: str) -> dict[str, Any]:
    data = SequenceWorkload(workload, n_samples=batch_size * 4, batch_size=batch_size)
    plain = plain_run(method, data, batch_size, steps, warmup, device)
    repo = repo_run(method, data, batch_size, steps, warmup, device)
    flops = plain["flops_per_step"]
    return {
        "method": method,
        "workload": workload,
        "lengths": {m: spec.shape[0] for m, spec in data.modalities.items()},
        "batch_size": batch_size,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "precision": "bf16-mixed" if device == "cuda" else "fp32",
        "params": plain["params"],
        "gflop_per_step": round(flops / 1e9, 3),
        "plain_samples_per_s": round(plain["samples_per_s"], 2),
        "repo_samples_per_s": round(repo["samples_per_s"], 2),
        "plain_tflops": round(flops * plain["steps"] / plain["seconds"] / 1e12, 4),
        "repo_tflops": round(flops * repo["steps"] / repo["seconds"] / 1e12, 4),
        "ratio": round(repo["samples_per_s"] / plain["samples_per_s"], 3),
        "plain_peak_mb": round(plain["peak_mb"], 1),
        "repo_peak_mb": round(repo["peak_mb"], 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.bench flops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="training steps per path, warm-up included")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.steps:
        parser.error(f"--warmup {args.warmup} must be between 0 and --steps {args.steps}")
    device = (
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    rows = []
    print(
        f"{'method':<8} {'workload':<16} {'GFLOP/step':>10} {'plain/s':>9} {'repo/s':>9} {'TFLOP/s':>8} {'ratio':>6} {'peak MB':>8}"
    )
    for method in args.methods:
        for workload in args.workloads:
            row = run(method, workload, args.batch_size, args.steps, args.warmup, device)
            rows.append(row)
            print(
                f"{method:<8} {workload:<16} {row['gflop_per_step']:>10.3f} {row['plain_samples_per_s']:>9.1f} "
                f"{row['repo_samples_per_s']:>9.1f} {row['repo_tflops']:>8.4f} {row['ratio']:>6.3f} {row['repo_peak_mb']:>8.1f}",
                flush=True,
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0
