"""Pieces shared by the entry points (train, eval): building from config, run outputs, W&B hygiene."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from src.errors import user_error_in, user_message

log = logging.getLogger("mmfusion")


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_`` (null entries are off)."""
    objects = []
    for name, spec in (group or {}).items():
        if spec is not None and "_target_" in spec:
            log.debug("instantiating %s <%s>", name, spec._target_)
            objects.append(instantiate(spec))
    return objects


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}`` (for loggers' hyper-parameter tables)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def json_number(value: Any) -> Any:
    """Floats for JSON; nan/inf become None so the file stays standard JSON."""
    value = float(value)
    return value if math.isfinite(value) else None


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: json_number(v) for k, v in sorted(metrics.items())}, indent=2) + "\n")


def print_metrics_table(metrics: Mapping[str, float], run_dir: Path, title: str) -> None:
    """A compact table: one row per metric name, one column per stage (val, test)."""
    stages = sorted(
        {k.split("/", 1)[0] for k in metrics},
        key=lambda s: ("train", "val", "test").index(s) if s in ("train", "val", "test") else 9,
    )
    names = sorted({k.split("/", 1)[1] for k in metrics if "/" in k})
    table = Table(title=title)
    table.add_column("metric")
    for stage in stages:
        table.add_column(stage, justify="right")
    for name in names:
        cells = []
        for stage in stages:
            value = metrics.get(f"{stage}/{name}")
            cells.append("" if value is None else f"{float(value):.4f}")
        table.add_row(name, *cells)
    console = Console()
    console.print(table)
    console.print(f"run directory: {run_dir}")


def finish_wandb(exit_code: int) -> None:
    """Close the job's W&B run (marked failed when ``exit_code`` != 0) so the next job starts clean."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_job(job: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run one Hydra job: W&B always finished, env restored, and a user error (bad config value,
    data file, run directory or checkpoint: :class:`src.errors.UserError`, also when Hydra's
    instantiate or a DataLoader worker wrapped it) printed as one message with exit code 2
    (``HYDRA_FULL_ERROR=1`` prints the full traceback first). In a multirun the user error is
    raised instead of exiting, so the other jobs of the sweep run (:mod:`src.utils.sweep`)."""
    saved_env = dict(os.environ)
    try:
        result = job(cfg)
    except Exception as error:
        finish_wandb(exit_code=1)
        user_error = user_error_in(error)
        if user_error is None:
            raise
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            traceback.print_exc()
        log.error("%s", user_message(user_error))
        if in_multirun():  # an ordinary exception: the launcher records it and the sweep goes on
            raise user_error from None
        raise SystemExit(2) from None
    except BaseException:
        finish_wandb(exit_code=1)
        raise
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    finish_wandb(exit_code=0)
    return result


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (safe in checkpoints and hparams)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]
