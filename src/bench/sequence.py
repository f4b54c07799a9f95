"""``python -m src.bench sequence``: training cost of the sequence fusions as sequences grow.

For every method (``conf/fusion/<method>.yaml`` at its default settings) and every sequence length
(default 50 and 500), it times full training steps (forward, cross-entropy, backward, Adam) on
random unaligned inputs of three modalities with the MOSEI feature widths (text 300, audio 74,
video 35; MMBT gets the text as token ids), and reports training samples/s, peak memory and the
parameter count. CPU runs use fp32 and each case runs in its own process, so its peak resident
memory (``ru_maxrss``) is its own; the increase over the process's memory before the first step is
reported as ``peak_mem_mb``. On a GPU the steps run under bf16 autocast and ``peak_mem_mb`` is
``torch.cuda.max_memory_allocated``.

    python -m src.bench sequence [--methods mult bpmult] [--lengths 50 500] [--batch-size 8]
                                 [--steps 3] [--device auto|cpu|cuda] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from src.models.model import MultimodalModel, build_model
from src.spec import DatasetSpec, ModalitySpec
from src.tasks import MULTICLASS
from src.utils.resolvers import REPO_ROOT

METHODS = ("mult", "mult_gmu", "bpmult", "hybrid_early_late", "mmbt")
WIDTHS = {"text": 300, "audio": 74, "video": 35}
NUM_CLASSES = 4


def fusion_config(method: str) -> dict[str, Any]:
    """The default ``fusion=<method>`` config as a plain dict."""
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"fusion={method}"])
    return OmegaConf.to_container(cfg.fusion, resolve=True)


def build_method(method: str) -> MultimodalModel:
    """The plain model of ``fusion=<method>`` (identity encoders, a linear head) on the three sequences."""
    dims = (
        dict(WIDTHS) if method != "mmbt" else {"text": 1, "audio": WIDTHS["audio"], "video": WIDTHS["video"]}
    )
    spec = DatasetSpec(
        "bench",
        MULTICLASS,
        tuple(str(i) for i in range(NUM_CLASSES)),
        {m: ModalitySpec("sequence", (1, d)) for m, d in dims.items()},
    )
    return build_model(spec, fusion_config(method), {"name": "linear"})


def random_batch(
    method: str, length: int, batch_size: int, device: torch.device
) -> tuple[dict, dict, torch.Tensor]:
    """Unaligned inputs: text ``length`` steps, audio and video 1.5x and 0.8x that, the second sample half padded."""
    steps = {"text": length, "audio": int(1.5 * length), "video": max(1, int(0.8 * length))}
    features, masks = {}, {}
    for modality, t in steps.items():
        if method == "mmbt" and modality == "text":
            features[modality] = torch.randint(1000, 20000, (batch_size, t), device=device)
            features[modality][:, 0] = 101
        else:
            features[modality] = torch.randn(batch_size, t, WIDTHS[modality], device=device)
        mask = torch.ones(batch_size, t, dtype=torch.bool, device=device)
        mask[1::2, t // 2 + 1 :] = False
        masks[modality] = mask
    return features, masks, torch.randint(0, NUM_CLASSES, (batch_size,), device=device)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def run_case(method: str, length: int, batch_size: int, steps: int, device: torch.device) -> dict[str, Any]:
    """Time ``steps`` training steps after one warm-up step."""
    torch.manual_seed(0)
    model = build_method(method).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    features, masks, labels = random_batch(method, length, batch_size, device)
    cuda = device.type == "cuda"
    before = rss_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model.fuse(features, masks).logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    )
    return {
        "method": method,
        "length": length,
        "batch_size": batch_size,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "precision": "bf16-autocast" if cuda else "fp32",
        "params": sum(p.numel() for p in model.parameters()),
        "samples_per_s": round(batch_size * steps / elapsed, 2),
        "peak_mem_mb": round(peak, 1),
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.bench sequence", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--lengths", nargs="+", type=int, default=[50, 500])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads on CPU (default: torch's)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument(
        "--case", default=None, help=argparse.SUPPRESS
    )  # METHOD:LENGTH, one case in this process
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    device = torch.device(
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.case:
        method, length = args.case.split(":")
        print(json.dumps(run_case(method, int(length), args.batch_size, args.steps, device)))
        return 0
    results = []
    print(f"{'method':<18} {'length':>6} {'params':>10} {'samples/s':>10} {'peak MB':>9}  device")
    for method in args.methods:
        for length in args.lengths:
            common = [
                "--batch-size",
                str(args.batch_size),
                "--steps",
                str(args.steps),
                "--device",
                device.type,
            ]
            common += ["--threads", str(args.threads)] if args.threads else []
            proc = subprocess.run(
                [sys.executable, "-m", "src.bench", "sequence", "--case", f"{method}:{length}", *common],
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
            )
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                raise RuntimeError(
                    f"benchmark case {method} at length {length} failed (exit {proc.returncode})"
                )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(row)
            print(
                f"{method:<18} {length:>6} {row['params']:>10,} {row['samples_per_s']:>10.2f} "
                f"{row['peak_mem_mb']:>9.1f}  {row['device']} {row['precision']}",
                flush=True,
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0
