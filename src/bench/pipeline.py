"""``python -m src.bench pipeline [--root DIR | --n N] [--out FILE.md] [--epochs E] [--workers W]``

The MM-IMDb pipeline end to end on the synthetic MM-IMDb (:mod:`src.data.synthetic_mmimdb`; generated
into a temporary folder with ``--n`` movies unless ``--root`` names a generated folder, e.g. one of
the real size, 25,959 movies). Measures, with ``--workers`` processes (default: every available CPU):

1. check vs decode: wall time of ``python -m src.data.check data=mmimdb data.root=DIR --workers W``
   (a subprocess; its start-up alone, the imports, is timed too) against one plain decode pass of
   every poster (``decode_image`` in ``ordered_map``, same workers). Target: ratio <= 1.2.
2. extraction: posters/s of the feature step (``src.precompute``: loader workers decode while the
   frozen ``encoder/image=efficientnet_lite0`` encodes, every split, into a new feature cache; the
   cache build time) against the encoder's own forward throughput on pre-decoded batches of the
   same size. Target: ratio >= 0.8. Then the plot's feature cache (the default's GloVe mean) is
   built too, so that no training run below spends its start-up on a cache.
3. epochs: one ``python -m src.train`` per pipeline (``trainer.max_epochs=E``, csv logger): start-up
   (launch to the first epoch: imports, pre-flight, feature step), each epoch's time (training +
   validation, from the run's ``metrics.csv``: the :class:`EpochTimes` callback logs them), the
   wall time, the test macro-F1, the checkpoints' sizes and the peak memory of the process tree
   (PSS: the sum of ``Pss`` of ``/proc/<pid>/smaps_rollup`` over the run and its children, sampled
   every 0.2 s).
   Pipelines: ``default`` (what conf/data/mmimdb.yaml composes: the cached GloVe mean of the plot
   and the cached EfficientNet-Lite0 features of the poster, read from the caches of step 2),
   ``pixel_mlp`` (``encoder/image=mlp512`` on the poster's pixels, decoded every epoch) and ``hdf5``
   (``data.format=hdf5``: the word2vec and VGG stand-ins, when the folder has the hdf5 file).

Writes the tables (and the hardware: CPU model, cores, torch version) as Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import src  # noqa: F401  (resolvers)
from src.bench.encoders import to_markdown
from src.data.base import SPLITS
from src.data.images import decode_image
from src.data.mmimdb import read_split
from src.data.parallel import available_cpus, ordered_map
from src.data.synthetic_mmimdb import HDF5_NAME, generate
from src.precompute import build_frozen, encode_batches, prepare_encoders, run_feature_step
from src.utils.resolvers import REPO_ROOT
from src.utils.run import to_plain

CHECK_TARGET, EXTRACTION_TARGET = 1.2, 0.8
#: per pipeline, the overrides of ``python -m src.train data=mmimdb``
PIPELINES: dict[str, list[str]] = {
    "default": [],
    "pixel_mlp": ["encoder/image=mlp512"],
    "hdf5": ["data.format=hdf5"],
}
#: pre-decoded batches the encoder's own forward throughput is timed on (after one warm-up batch)
FORWARD_BATCHES = 4
PSS_INTERVAL_S = 0.2


class EpochTimes(L.Callback):
    """Logs ``time/startup_s`` (from ``launched_at``, a ``time.time()`` of the launching process, to
    the first training epoch) and ``time/epoch_s`` (each epoch, training and validation) to the
    run's loggers; added to a run with ``+callbacks.epoch_times._target_=src.bench.pipeline.EpochTimes``."""

    def __init__(self, launched_at: float) -> None:
        self.launched_at = launched_at
        self.startup_s: float | None = None
        self.epoch_started = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.startup_s is None:
            self.startup_s = time.time() - self.launched_at
        self.epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("time/epoch_s", time.perf_counter() - self.epoch_started, on_epoch=True)
        pl_module.log("time/startup_s", float(self.startup_s or 0.0), on_epoch=True)


# memory -----------------------------------------------------------------------------------------
def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/<pid>/task/<tid>/children``); vanished ones are left out."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                pending += [int(c) for c in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
            except OSError:
                continue
    return found


def pss_bytes(pid: int) -> int:
    """The proportional set size of one process (``Pss`` of ``/proc/<pid>/smaps_rollup``); 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PssSampler:
    """``with PssSampler(pid) as sampler: ...``: a thread sums the PSS of ``pid``'s process tree every
    ``interval`` seconds; ``sampler.peak_bytes`` is the largest sum seen."""

    def __init__(self, pid: int, interval: float = PSS_INTERVAL_S) -> None:
        self.pid, self.interval = pid, interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        total = sum(pss_bytes(p) for p in process_tree(self.pid))
        self.peak_bytes = max(self.peak_bytes, total)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# 1. check vs decode -----------------------------------------------------------------------------
def run_module(args: Sequence[str], ok_codes: Sequence[int] = (0,)) -> float:
    """Wall seconds of ``python -m <args>`` in the repository root; raises with its output on failure."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in ok_codes:
        raise RuntimeError(
            f"python -m {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return seconds


def poster_paths(root: Path) -> list[Path]:
    return [root / "dataset" / f"{i}.jpeg" for ids in read_split(root / "split.json").values() for i in ids]


def _decode(path: Path) -> None:
    decode_image(path, (256, 160), "resize_crop")


def check_vs_decode(root: Path, workers: int) -> dict[str, Any]:
    """The check's wall time (and its start-up: the same module without a dataset, which only imports
    and prints its usage) against one plain decode pass of every poster with ``workers``."""
    paths = poster_paths(root)
    start = time.perf_counter()
    for _ in ordered_map(_decode, paths, workers, "decode pass", chunksize=32):
        pass
    decode_s = time.perf_counter() - start
    check_s = run_module(["src.data.check", "data=mmimdb", f"data.root={root}", "--workers", str(workers)])
    startup_s = run_module(["src.data.check"], ok_codes=(2,))  # after the check: both find warm caches
    return {
        "posters": len(paths),
        "workers": workers,
        "check s": round(check_s, 2),
        "check start-up s": round(startup_s, 2),
        "decode pass s": round(decode_s, 2),
        "check / decode": round(check_s / decode_s, 2),
        "without start-up": round(max(check_s - startup_s, 0.0) / decode_s, 2),
        "target": f"<= {CHECK_TARGET}",
    }


# 2. extraction ----------------------------------------------------------------------------------
def compose_train(overrides: Sequence[str]):
    """The config ``python -m src.train <overrides>`` composes."""
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def extraction(root: Path, workers: int, cache_dir: Path) -> dict[str, Any]:
    """Posters/s of the feature step of the default poster encoder (frozen EfficientNet-Lite0) over
    every split, building its cache in ``cache_dir``, and of the encoder alone on pre-decoded batches
    of the same size; then the time to build the default plot encoder's cache."""
    cfg = compose_train(
        [
            "data=mmimdb",
            f"data.root={root}",
            f"features.cache_dir={cache_dir}",
            f"features.num_workers={workers}",
        ]
    )
    config = {"model": to_plain(cfg.model), "features": to_plain(cfg.features), "seed": int(cfg.seed)}
    batch_size = int(config["features"]["batch_size"])
    poster_encoder = config["model"]["default_encoders"]["image"]
    datamodule = instantiate(cfg.data, verify_media=False)  # the decode pass of step 1 is not repeated
    run_feature_step(datamodule, {"image": poster_encoder}, cache_dir, batch_size, workers, config["seed"])
    start = time.perf_counter()
    posters = sum(len(datamodule._ensure(split)) for split in SPLITS)
    build_s = time.perf_counter() - start
    step_rate = posters / build_s
    posters_only = instantiate(cfg.data, verify_media=False)
    forward_rate = forward_throughput(posters_only, poster_encoder, batch_size, config["seed"])
    both = instantiate(cfg.data, verify_media=False)
    prepare_encoders(config, both)  # the plot's encoder too; the posters' features are cache hits now
    start = time.perf_counter()
    for split in SPLITS:
        both._ensure(split)
    return {
        "encoder": "efficientnet_lite0 (frozen)",
        "loader workers": workers,
        "batch": batch_size,
        "posters": posters,
        "feature step posters/s": round(step_rate, 1),
        "forward posters/s": round(forward_rate, 1),
        "feature step / forward": round(step_rate / forward_rate, 2),
        "target": f">= {EXTRACTION_TARGET}",
        "poster cache build s": round(build_s, 2),
        "plot cache build s": round(time.perf_counter() - start, 2),
        "torch threads": torch.get_num_threads(),
    }


def forward_throughput(datamodule: Any, options: dict[str, Any], batch_size: int, seed: int) -> float:
    """Posters/s of the frozen encoder of ``options`` alone, on up to ``FORWARD_BATCHES`` batches of
    the training split's posters decoded beforehand (one warm-up batch first); ``datamodule``
    delivers the posters themselves (no feature step)."""
    pixels = datamodule.load_split("train")
    encoder = build_frozen(options, "image", datamodule.spec.modalities["image"], seed)
    rows = min(len(pixels), FORWARD_BATCHES * batch_size)
    read = pixels.readers["image"]
    batches = [
        (torch.stack([torch.as_tensor(read(r)) for r in range(lo, min(lo + batch_size, rows))]), None)
        for lo in range(0, rows, batch_size)
    ]
    list(encode_batches(encoder, batches[:1]))
    start = time.perf_counter()
    list(encode_batches(encoder, batches))
    return rows / (time.perf_counter() - start)


# 3. epochs --------------------------------------------------------------------------------------
def read_epoch_times(metrics_csv: Path) -> tuple[float, list[float]]:
    """(start-up s, [epoch s]) that :class:`EpochTimes` logged into a run's ``metrics.csv``."""
    startup, epochs = 0.0, []
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("time/epoch_s"):
                epochs.append(float(row["time/epoch_s"]))
                startup = float(row["time/startup_s"])
    return startup, epochs


def train_pipeline(
    name: str, root: Path, epochs: int, workers: int, run_dir: Path, cache_dir: Path
) -> dict[str, Any]:
    """One ``python -m src.train`` of pipeline ``name``: start-up, epoch times, wall time, peak PSS, checkpoints."""
    launched_at = time.time()
    command = [
        sys.executable, "-m", "src.train", "data=mmimdb", f"data.root={root}", *PIPELINES[name],
        f"trainer.max_epochs={epochs}", "logger=csv", "callbacks.progress_bar=null",
        f"hydra.run.dir={run_dir}", f"data.num_workers={workers}", f"features.num_workers={workers}",
        f"features.cache_dir={cache_dir}", "+callbacks.epoch_times._target_=src.bench.pipeline.EpochTimes",
        f"+callbacks.epoch_times.launched_at={launched_at}",
    ]  # fmt: skip
    log_path = run_dir.with_name(run_dir.name + ".log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        with PssSampler(process.pid) as memory:
            process.wait()
    wall_s = time.time() - launched_at
    output = log_path.read_text()
    if process.returncode != 0:
        raise RuntimeError(
            f"pipeline {name}: python -m src.train exited {process.returncode}:\n{output[-4000:]}"
        )
    startup_s, epoch_s = read_epoch_times(run_dir / "csv" / "metrics.csv")
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    on_disk = {(p.stat().st_dev, p.stat().st_ino): p.stat().st_size for p in checkpoints}  # hard links once
    metrics = json.loads((run_dir / "metrics.json").read_text())
    hits, misses = output.count("feature cache hit"), output.count("feature cache miss")
    return {
        "pipeline": name,
        "overrides": " ".join(PIPELINES[name]) or "(none)",
        "epochs": len(epoch_s),
        "start-up s": round(startup_s, 2),
        "first epoch s": round(epoch_s[0], 2),
        "later epochs s": round(sum(epoch_s[1:]) / len(epoch_s[1:]), 2) if len(epoch_s) > 1 else "-",
        "wall s": round(wall_s, 2),
        "peak PSS MB": round(memory.peak_bytes / 1e6, 1),
        "checkpoints": len(checkpoints),
        "checkpoint MB": round(max(on_disk.values(), default=0) / 1e6, 1),
        "checkpoints on disk MB": round(sum(on_disk.values()) / 1e6, 1),
        "test f1_macro": round(metrics["test/f1_macro"], 3),
        "feature cache": f"{hits} hits, {misses} built" if hits or misses else "-",
    }


# the suite --------------------------------------------------------------------------------------
def hardware() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or platform.machine(),
    )
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{model}, {available_cpus()} of {os.cpu_count()} CPUs available{gpu}; torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )


def run_suite(
    root: Path, epochs: int, workers: int, pipelines: Sequence[str], scratch: Path
) -> dict[str, list[dict[str, Any]]]:
    """The three measurements on the data at ``root``; runs and the feature cache go under ``scratch``."""
    cache_dir = scratch / "feature_cache"
    tables = {"check": [check_vs_decode(root, workers)], "extraction": [extraction(root, workers, cache_dir)]}
    tables["epochs"] = [
        train_pipeline(name, root, epochs, workers, scratch / f"run_{name}", cache_dir)
        for name in pipelines
        if name != "hdf5" or (root / HDF5_NAME).is_file()
    ]
    return tables


def render(tables: dict[str, list[dict[str, Any]]], data: str) -> str:
    check, extract = tables["check"][0], tables["extraction"][0]
    return "\n".join(
        [
            "# Pipeline benchmark (`python -m src.bench pipeline`)",
            "",
            f"Hardware: {hardware()}.",
            f"Data: {data}.",
            "",
            "## Data check vs one decode pass of every poster",
            "",
            to_markdown(tables["check"]),
            f"Check / decode: **{check['check / decode']}** (target <= {CHECK_TARGET}; "
            f"{check['without start-up']} without the check's start-up, its imports: one run each, and the "
            "imports alone vary by seconds on busy cores).",
            "",
            "## Feature extraction (feature step vs the encoder's own forward pass)",
            "",
            to_markdown(tables["extraction"]),
            f"Feature step / forward: **{extract['feature step / forward']}** (target >= {EXTRACTION_TARGET}); "
            f"the cache builds ({extract['poster cache build s']} s posters, {extract['plot cache build s']} s "
            "plots) are not part of any training run below.",
            "",
            "## Training runs (`python -m src.train`, one per pipeline)",
            "",
            to_markdown(tables["epochs"]) if tables["epochs"] else "(no pipeline run)\n",
            "Epoch: training + validation. Start-up: launch to the first epoch (imports, pre-flight, "
            "feature step). Peak PSS: the process and its loader workers.",
            "",
        ]
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m src.bench pipeline", description=__doc__.split("\n\n")[1]
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--root", type=Path, help="a folder written by python -m src.data.synthetic_mmimdb")
    where.add_argument("--n", type=int, default=600, help="movies generated into a temporary folder")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=available_cpus(), help="processes decoding posters")
    parser.add_argument(
        "--pipelines", default=",".join(PIPELINES), help="comma-separated, of " + ", ".join(PIPELINES)
    )
    parser.add_argument("--out", type=Path, default=Path("bench_out/pipeline.md"))
    parser.add_argument(
        "--keep",
        type=Path,
        help="a new folder for the runs, their logs and the feature cache, kept (default: a temporary one); "
        "e.g. to train on the full-size data with features.cache_dir=KEEP/feature_cache afterwards",
    )
    args = parser.parse_args(argv)
    pipelines = args.pipelines.split(",")
    unknown = sorted(set(pipelines) - set(PIPELINES))
    if unknown:
        parser.error(f"--pipelines: unknown {unknown}; expected some of {list(PIPELINES)}")
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: expected a new or empty folder")
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        scratch = Path(tmp) if args.keep is None else args.keep.resolve()
        scratch.mkdir(parents=True, exist_ok=True)
        if args.root is None:
            summary = generate(scratch / "mmimdb", n=args.n, workers=args.workers)
            root = scratch / "mmimdb"
            data = (
                f"synthetic MM-IMDb, {args.n} movies {summary['splits']}, generated in {summary['seconds']} s "
                f"({summary['total_bytes'] / 1e6:.1f} MB)"
            )
        else:
            root = args.root.resolve()
            data = f"{root}, {sum(len(v) for v in read_split(root / 'split.json').values())} movies"
        table = render(run_suite(root, args.epochs, args.workers, pipelines, scratch), data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    print(f"written to {args.out}")
    return 0
