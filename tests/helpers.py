"""Test helpers: compose configs like the CLI does, and run the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import src  # noqa: F401  (resolvers)
from src.report import REFERENCE
from src.utils.resolvers import REPO_ROOT

CONF_DIR = str(REPO_ROOT / "conf")
#: src/reference/paper_tables.yaml: every published table the experiments reproduce
PAPER_TABLES: dict[str, Any] = yaml.safe_load(REFERENCE.read_text())


def compose_train(overrides: list[str], run_dir: Path, config_name: str = "train") -> DictConfig:
    """The config ``python -m src.train <overrides>`` would run with, output dir set to ``run_dir``."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir / "logs")
        del cfg.hydra
    return cfg


def run_cli(
    module: str,
    args: list[str],
    cwd: Path | None = None,
    timeout: int = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` from the repo root; raises with the output when it fails."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    return proc


def train_cli(
    run_dir: Path, *overrides: str, check: bool = True, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -m src.train`` into ``run_dir`` and return its metrics.json."""
    proc = run_cli("src.train", [f"hydra.run.dir={run_dir}", "logger=csv", *overrides], env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"src.train failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return json.loads((run_dir / "metrics.json").read_text())


def vector_fusion_methods() -> list[str]:
    """Names of conf/fusion/*.yaml whose fusion works on vectors; the sequence-level ones (MulT family,
    MMBT) need sequence or text data and have their own tests."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from src.models.fusion.mmbt import MMBTFusion
    from src.models.fusion.sequence import SequenceFusion

    names = []
    for config in sorted((Path(CONF_DIR) / "fusion").glob("*.yaml")):
        spec = OmegaConf.load(config)
        while "_target_" not in spec:  # a config extending another one of the group
            spec = OmegaConf.load(config.parent / f"{spec.defaults[0]}.yaml")
        if not issubclass(get_class(spec._target_), (SequenceFusion, MMBTFusion)):
            names.append(config.stem)
    return names


def fusion_model(
    fusion: dict[str, Any] | type,
    dims: dict[str, int],
    num_outputs: int,
    head: dict[str, Any] | None = None,
    task: str = "multiclass",
    shapes: dict[str, list[int]] | None = None,
    sequences: tuple[str, ...] = (),
    **options: Any,
):
    """The plain model (identity encoders) around ``fusion`` (a conf/fusion dict, or a class and its
    ``options``) for modalities of the given sizes: vectors, images of ``shapes[m]`` (C, H, W), or
    (B, T, D) ``sequences``; call ``model.fuse(features, masks)`` (or ``model(batch)``) on features."""
    from src.models.model import build_model
    from src.spec import DatasetSpec, ModalitySpec

    if isinstance(fusion, type):
        fusion = {"_target_": f"{fusion.__module__}.{fusion.__qualname__}", **options}
    modalities = {}
    for m, d in dims.items():
        if m in sequences:
            modalities[m] = ModalitySpec("sequence", (1, d))
        elif shapes and len(shapes.get(m, ())) == 3:
            modalities[m] = ModalitySpec("image", tuple(shapes[m]))
        else:
            modalities[m] = ModalitySpec("vector", (d,))
    classes = ("y",) if task == "regression" else tuple(str(i) for i in range(num_outputs))
    spec = DatasetSpec("test", task, classes, modalities)
    return build_model(spec, fusion, head or {"name": "linear"})


def predictor(
    cls: type,
    dims: dict[str, int],
    num_outputs: int,
    head: dict[str, Any] | None = None,
    task: str = "multiclass",
    shapes: dict[str, list[int]] | None = None,
    sequences: tuple[str, ...] = (),
    modality_order: list[str] | None = None,
    **options: Any,
):
    """A predictor class built directly: its inputs, ``make_head`` for ``head`` (linear) and the task link."""
    from src.models.fusion.base import FusionInputs
    from src.models.heads import HeadFactory
    from src.tasks import TaskLink

    inputs = FusionInputs.of(dims, shapes, sequences, modality_order)
    return cls(inputs, HeadFactory(head or {"name": "linear"}, num_outputs), TaskLink(task), **options)
