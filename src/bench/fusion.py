"""``python -m src.bench fusion --out FILE``: throughput and peak memory of every fusion method.

Workload: random features shaped like MM-IMDb's (4096-d image, 300-d text, 23 labels, multilabel),
batch 128. Per method: training and inference samples/s of the repo's path (the FusionClassifier
LightningModule built from ``conf/fusion/<name>.yaml`` and ``conf/model/default.yaml``, fitted by a
Lightning Trainer on a FusionDataModule) and the peak memory while training (CPU: growth of the
process's peak resident set; CUDA: peak allocated). For ``gmu`` the same model and data also run
through a plain PyTorch loop (TensorDataset + DataLoader, Adam, BCE), and the table reports
repo / plain throughput (target >= 0.9 on CPU). Timings skip ``--warmup`` steps; the gmu
comparison alternates repo and plain runs ``--repeats`` times and keeps each one's best.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from torch.utils.data import DataLoader, TensorDataset

import src  # noqa: F401  (resolvers)
from src.data.base import FusionDataModule, SampleDataset
from src.models.model import build_model as build_plain_model
from src.spec import DatasetSpec, ModalitySpec
from src.tasks import MULTILABEL
from src.train import build_model
from src.utils.resolvers import REPO_ROOT

METHODS = [
    "unimodal",
    "concat",
    "linear_sum",
    "avg_probs",
    "weighted_mean",
    "late_fusion",
    "moe",
    "gmu",
    "fgmu",
    "concat_multitask",
    "moddrop",
    "ensemble",
    "layer_fusion",
    "centralnet",
    "attention",
]
# vector inputs: unimodal needs its modality; layer_fusion has 2 stages (1 hidden + output), merge after the first
METHOD_OVERRIDES = {"unimodal": ["fusion.modality=text"], "layer_fusion": ["fusion.layer=1"]}
IMAGE_DIM, TEXT_DIM, NUM_LABELS, BATCH = 4096, 300, 23, 128


class FeatureWorkload(FusionDataModule):
    """Seeded random MM-IMDb-shaped features: ``image`` (4096,), ``text`` (300,), 23 labels (~15% positive)."""

    task = MULTILABEL
    name = "feature_workload"

    def __init__(self, n_samples: int, seed: int = 0, **loader_options: Any) -> None:
        super().__init__(**loader_options)
        rng = np.random.default_rng(seed)
        self.arrays = {
            "image": rng.standard_normal((n_samples, IMAGE_DIM), dtype=np.float32),
            "text": rng.standard_normal((n_samples, TEXT_DIM), dtype=np.float32),
            "labels": (rng.random((n_samples, NUM_LABELS)) < 0.15).astype(np.float32),
        }
        self.class_names = [f"genre{i}" for i in range(NUM_LABELS)]
        self.modalities = {
            "image": ModalitySpec("vector", (IMAGE_DIM,)),
            "text": ModalitySpec("vector", (TEXT_DIM,)),
        }

    def load_split(self, split: str) -> SampleDataset:
        n = len(self.arrays["labels"])
        return SampleDataset(
            ids=[f"{split}{i}" for i in range(n)],
            modalities={"image": self.arrays["image"], "text": self.arrays["text"]},
            labels=self.arrays["labels"],
        )


class PeakMemory:
    """Peak memory of a phase: CUDA peak allocated, or on CPU the growth of the peak RSS (Linux VmHWM).

    On CPU the process first returns freed heap to the OS (glibc ``malloc_trim``); memory the
    allocator still keeps from earlier methods can make a method's growth read low.
    """

    def __init__(self, device: str) -> None:
        self.device = device

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{key} not in /proc/self/status")

    def __enter__(self) -> PeakMemory:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            gc.collect()
            ctypes.CDLL("libc.so.6").malloc_trim(
                0
            )  # hand freed heap back, so earlier methods' memory is not reused unseen
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.start = self._status("VmRSS")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device == "cuda":
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.peak = self._status("VmHWM") - self.start


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class StepTimer(L.Callback):
    """Times the batches after ``warmup`` (data loading between them included), in training or predict."""

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.start: float | None = None
        self.end = 0.0
        self.batches = 0

    def _begin(self, batch_idx: int) -> None:
        if batch_idx == self.warmup and self.start is None:
            _sync(self.device)
            self.start = time.perf_counter()

    def _finish(self, batch_idx: int) -> None:
        if self.start is not None:
            _sync(self.device)
            self.end = time.perf_counter()
            self.batches += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._begin(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._finish(batch_idx)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._begin(batch_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._finish(batch_idx)

    def samples_per_s(self) -> float:
        return self.batches * BATCH / (self.end - self.start)


def method_config(method: str):
    """The composed ``src.train`` config for ``fusion=<method>`` with :data:`METHOD_OVERRIDES`."""
    overrides = [f"fusion={method}", "logger=none", "callbacks=none"]
    overrides += METHOD_OVERRIDES.get(method, [])
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.model.loss.name = "bce"
    return cfg


def bench_trainer(device: str, timer: L.Callback, **options: Any) -> L.Trainer:
    """A one-device Trainer that only steps and times (no logging, checkpoints, sanity or validation)."""
    return L.Trainer(
        accelerator=device,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
        **options,
    )


def repo_run(method: str, data: FeatureWorkload, steps: int, warmup: int, device: str) -> dict[str, float]:
    """Train ``steps`` batches, then predict ``steps`` batches, through the repo's Lightning path."""
    cfg = method_config(method)
    L.seed_everything(0, verbose=False)
    model = build_model(cfg, data)
    timer = StepTimer(warmup, device)
    with PeakMemory(device) as memory:
        bench_trainer(device, timer, max_steps=steps).fit(model, datamodule=data)
    infer = StepTimer(warmup, device)
    bench_trainer(device, infer, limit_predict_batches=steps).predict(
        model, dataloaders=data.test_dataloader()
    )
    params = sum(p.numel() for p in model.parameters())
    return {
        "train": timer.samples_per_s(),
        "infer": infer.samples_per_s(),
        "memory": memory.peak,
        "params": params,
    }


def plain_run(data: FeatureWorkload, steps: int, warmup: int, device: str) -> dict[str, float]:
    """The same GMU fusion and head (the plain model), loss and optimiser in a hand-written PyTorch loop."""
    cfg = method_config("gmu")
    L.seed_everything(0, verbose=False)
    spec = DatasetSpec(
        "bench",
        MULTILABEL,
        tuple(f"label{i}" for i in range(NUM_LABELS)),
        {"image": ModalitySpec("vector", (IMAGE_DIM,)), "text": ModalitySpec("vector", (TEXT_DIM,))},
    )
    fusion = build_plain_model(spec, dict(cfg.fusion), dict(cfg.model.head))
    fusion.to(device)
    optimizer = torch.optim.Adam(fusion.parameters(), lr=cfg.model.optimizer.lr)
    criterion = torch.nn.BCEWithLogitsLoss()
    arrays = {k: torch.from_numpy(v) for k, v in data.arrays.items()}
    loader = DataLoader(
        TensorDataset(arrays["image"], arrays["text"], arrays["labels"]), batch_size=BATCH, shuffle=True
    )
    step, start = 0, 0.0
    with PeakMemory(device) as memory:
        while step < steps:
            for image, text, labels in loader:
                if step == warmup:
                    _sync(device)
                    start = time.perf_counter()
                image, text, labels = image.to(device), text.to(device), labels.to(device)
                loss = criterion(fusion({"image": image, "text": text}).logits, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                if step == steps:
                    break
        _sync(device)
    train = (steps - warmup) * BATCH / (time.perf_counter() - start)
    fusion.eval()
    with torch.inference_mode():
        for i, (image, text, _) in enumerate(loader):
            if i == warmup:
                _sync(device)
                start = time.perf_counter()
            fusion({"image": image.to(device), "text": text.to(device)})
            if i + 1 == steps:
                break
        _sync(device)
    infer = (min(steps, len(loader)) - warmup) * BATCH / (time.perf_counter() - start)
    return {"train": train, "infer": infer, "memory": memory.peak}


def hardware(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{model}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def render(
    results: dict[str, dict[str, float]], plain: dict[str, float], ratio: float, args: argparse.Namespace
) -> str:
    lines = [
        f"Fusion benchmark: MM-IMDb-shaped features (image {IMAGE_DIM}, text {TEXT_DIM}, {NUM_LABELS} labels), "
        f"batch {BATCH}, {args.steps} steps ({args.warmup} warm-up) on {args.device}: {hardware(args.device)}.",
        "",
        "| method | train samples/s | inference samples/s | peak train memory (MiB) | parameters |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, r in results.items():
        lines.append(
            f"| {method} | {r['train']:.0f} | {r['infer']:.0f} | {r['memory'] / 2**20:.1f} | {r['params']:,} |"
        )
    lines.append(
        f"| gmu, plain PyTorch loop | {plain['train']:.0f} | {plain['infer']:.0f} | {plain['memory'] / 2**20:.1f} | |"
    )
    lines += ["", f"gmu training throughput, repo / plain loop: **{ratio:.3f}** (target >= 0.9 on CPU).", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.bench fusion", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="write the Markdown table here (default: stdout only)"
    )
    parser.add_argument("--steps", type=int, default=60, help="training / inference batches per method")
    parser.add_argument("--warmup", type=int, default=10, help="batches not timed")
    parser.add_argument(
        "--repeats", type=int, default=2, help="alternating repo/plain gmu runs; best of each kept"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated fusion configs")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda")
    )
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < args.steps:
        parser.error("--warmup must be in [0, --steps)")
    warnings.filterwarnings("ignore", module="lightning")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    data = FeatureWorkload(n_samples=BATCH * args.steps, batch_size=BATCH)
    results = {}
    for method in args.methods.split(","):
        results[method] = repo_run(method, data, args.steps, args.warmup, args.device)
        print(f"{method}: {results[method]['train']:.0f} train samples/s", file=sys.stderr, flush=True)
    repo_gmu = [results["gmu"]] if "gmu" in results else []
    plains = []
    for i in range(args.repeats):
        plains.append(plain_run(data, args.steps, args.warmup, args.device))
        if i + 1 < args.repeats or not repo_gmu:
            repo_gmu.append(repo_run("gmu", data, args.steps, args.warmup, args.device))
    plain = max(plains, key=lambda r: r["train"])
    best = max(repo_gmu, key=lambda r: r["train"])
    if "gmu" in results:
        results["gmu"] = best
    ratio = best["train"] / plain["train"]
    table = render(results, plain, ratio, args)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return 0
