"""Every option of every config group composes; the default config builds all its objects."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra.utils import instantiate

from src.utils.checkpoints import check_targets
from src.utils.resolvers import REPO_ROOT
from src.utils.run import instantiate_group, to_plain
from tests.helpers import compose_train

CONF = REPO_ROOT / "conf"
GROUPS = [
    "data",
    "fusion",
    "model",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "debug",
    "experiment",
    "hparams_search",
]


#: options that need a Hydra plugin (its package) to compose
NEEDS_PLUGIN = {"hparams_search=arevalo2017_gmu": "hydra_plugins.hydra_optuna_sweeper"}


def _plugin_missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


def group_options() -> list:
    overrides = []
    for group in GROUPS:
        for path in sorted((CONF / group).glob("*.yaml")):
            override = f"{group}={path.stem}"
            plugin = NEEDS_PLUGIN.get(override)
            mark = pytest.mark.skipif(
                plugin is not None and _plugin_missing(plugin),
                reason=f"needs {plugin} (hydra-optuna-sweeper)",
            )
            overrides.append(pytest.param(override, marks=mark))
    for path in sorted((CONF / "encoder").glob("*/*.yaml")):
        overrides.append(f"encoder/{path.parent.name}={path.stem}")
    return overrides


@pytest.mark.parametrize("override", group_options())
def test_every_option_composes(override: str, tmp_path: Path):
    cfg = compose_train([override], tmp_path)
    assert cfg.data._target_ and cfg.fusion._target_ and cfg.model._target_
    assert cfg.paths.output_dir == str(tmp_path)
    # what src.train stores in its checkpoints passes the allow-list src.eval and resume apply
    check_targets(to_plain(cfg), "config")


def test_default_config_builds(tmp_path: Path):
    cfg = compose_train([], tmp_path)
    assert (
        cfg.seed == 0
        and cfg.data._target_.endswith("DigitsDataModule")
        and cfg.fusion._target_.endswith("GMUFusion")
    )
    datamodule = instantiate(cfg.data)
    assert datamodule.task == "multiclass" and datamodule.spec.num_outputs == 10
    # monitor is resolved from the task by src.train; give it here to build the callbacks
    cfg.monitor.metric, cfg.monitor.mode = "val/acc", "max"
    callbacks = instantiate_group(cfg.callbacks)
    assert len(callbacks) == 6 and type(callbacks[-1]).__name__ == "WandbMedia"
    assert len(instantiate_group(cfg.logger)) == 1


def test_data_dir_comes_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MMFUSION_DATA_DIR", str(tmp_path / "elsewhere"))
    cfg = compose_train(["data=mmimdb"], tmp_path)
    assert cfg.data.root == str(tmp_path / "elsewhere" / "mmimdb")
