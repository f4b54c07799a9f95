"""``python -m src.bench data [--n N] [--epochs E] [--out FILE]``: poster loading throughput.

Writes ``N`` synthetic JPEG posters (182 x 268, the typical MM-IMDb size) in the MM-IMDb raw layout
into a temporary folder, then measures in the same process:

1. samples/s of the training loader decoding the JPEGs every epoch (``data=mmimdb`` raw, posters
   resized + cropped to 256 x 160);
2. samples/s of the same loader when the poster modality comes from the feature cache (a frozen
   encoder's features, precomputed once; the one-off precomputation time is reported separately);
3. a bare PIL loop doing the same decode + resize + crop, as the ceiling of (1).

Targets: (2) / (1) >= 10 and (1) / (3) >= 0.8. The loader runs in-process (``num_workers=0``) with
``--threads`` torch threads (1 by default, like the PIL loop and like loader worker processes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from src.data.images import decode_image
from src.data.mmimdb import GENRES, MMIMDbDataModule
from src.precompute import run_feature_step


def write_posters(root: Path, n: int, seed: int = 0) -> list[Path]:
    """``split.json`` + ``dataset/<id>.json`` + ``dataset/<id>.jpeg`` for ``n`` training movies."""
    rng = np.random.default_rng(seed)
    (root / "dataset").mkdir(parents=True)
    ids = [f"{i:07d}" for i in range(n + 4)]
    base = rng.integers(0, 255, (268, 182, 3), dtype=np.uint8)
    for i, movie_id in enumerate(ids):
        image = np.roll(base, i, axis=0)  # distinct images of realistic JPEG complexity
        Image.fromarray(image).save(root / "dataset" / f"{movie_id}.jpeg", "JPEG", quality=90)
        meta = {"plot": [f"plot {i}"], "genres": [GENRES[i % len(GENRES)]]}
        (root / "dataset" / f"{movie_id}.json").write_text(json.dumps(meta))
    (root / "split.json").write_text(
        json.dumps({"train": ids[:n], "dev": ids[n : n + 2], "test": ids[n + 2 :]})
    )
    return [root / "dataset" / f"{i}.jpeg" for i in ids[:n]]


def loader_pass(loader) -> float:
    """Samples/s of one pass of the training loader (every poster decoded, or read from the cache)."""
    count, start = 0, time.perf_counter()
    for batch in loader:
        count += int(batch["image"].shape[0])
    return count / (time.perf_counter() - start)


def bare_pil_pass(paths: list[Path]) -> float:
    """Samples/s of a plain loop: PIL decode + resize/crop + float pixels, nothing else."""
    start = time.perf_counter()
    for path in paths:
        np.multiply(decode_image(path, (256, 160), "resize_crop"), np.float32(1 / 255), dtype=np.float32)
    return len(paths) / (time.perf_counter() - start)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.bench data")
    parser.add_argument("--n", type=int, default=512, help="synthetic posters")
    parser.add_argument("--epochs", type=int, default=3, help="passes; the best pass of each is reported")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (the PIL loop uses one)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mmimdb"
        paths = write_posters(root, args.n)
        common = {"batch_size": args.batch_size, "num_workers": 0, "poster_size": [256, 160]}
        loader = MMIMDbDataModule(str(root), **common).train_dataloader()
        bare_rates, jpeg_rates = [], []
        for _ in range(args.epochs):  # interleaved, so both see the same machine load
            bare_rates.append(bare_pil_pass(paths))
            jpeg_rates.append(loader_pass(loader))
        bare, jpeg = max(bare_rates), max(jpeg_rates)
        frozen = {"_target_": "src.models.encoders.base.MLPEncoder", "hidden_dims": [256], "precompute": True}
        cached = MMIMDbDataModule(str(root), **common)
        run_feature_step(cached, {"text": {}, "image": frozen}, Path(tmp) / "cache")
        start = time.perf_counter()
        cached._ensure("train")  # the one-off precomputation through the cache
        precompute_s = time.perf_counter() - start
        cached_loader = cached.train_dataloader()
        cache = max(loader_pass(cached_loader) for _ in range(args.epochs))
    results = {
        "n_posters": args.n,
        "epochs": args.epochs,
        "torch_threads": args.threads,
        "jpeg_decode_samples_per_s": round(jpeg, 1),
        "feature_cache_samples_per_s": round(cache, 1),
        "cache_precompute_s": round(precompute_s, 2),
        "bare_pil_samples_per_s": round(bare, 1),
        "cache_speedup": round(cache / jpeg, 2),
        "cache_speedup_target": 10.0,
        "loader_vs_bare_pil": round(jpeg / bare, 3),
        "loader_vs_bare_pil_target": 0.8,
    }
    results["targets_met"] = results["cache_speedup"] >= 10.0 and results["loader_vs_bare_pil"] >= 0.8
    for key, value in results.items():
        print(f"{key:32s} {value}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
