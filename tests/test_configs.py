"""Every option of every config group composes; the default config builds all its objects."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

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
    callbacks = instantiate_group(cfg.callbacks)  # 2 test-artifact ones, checkpoints, 3 Lightning, W&B media
    assert len(callbacks) == 7 and type(callbacks[-1]).__name__ == "WandbMedia"
    assert "SelectedCheckpoint" in {type(c).__name__ for c in callbacks}  # the selected epoch and last.ckpt
    assert len(instantiate_group(cfg.logger)) == 1


def test_data_dir_comes_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MMFUSION_DATA_DIR", str(tmp_path / "elsewhere"))
    cfg = compose_train(["data=mmimdb"], tmp_path)
    assert cfg.data.root == str(tmp_path / "elsewhere" / "mmimdb")


def test_head_optimizer_and_scheduler_compose_from_the_cli(tmp_path: Path):
    """One concern per group: a maxout head with a cosine schedule (two groups, no preset needed)."""
    cfg = compose_train(["model/head=maxout", "model/optimizer=adamw", "model/scheduler=cosine"], tmp_path)
    assert cfg.model.head.name == "maxout" and "hidden_dims" not in cfg.model.head
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW"
    assert (
        cfg.model.scheduler._target_.endswith("CosineAnnealingLR")
        and cfg.model.scheduler.T_max == cfg.trainer.max_epochs
    )
    assert compose_train([], tmp_path).model.scheduler is None  # model/scheduler=none


@pytest.mark.parametrize("head", sorted(p.stem for p in (CONF / "model" / "head").glob("*.yaml")))
def test_head_yaml_and_builder_defaults_cannot_drift(head: str):
    """Each option of model/head/<name>.yaml is either a builder argument without a default (the YAML
    is its one source) or repeats the builder's default exactly."""
    import inspect

    from src.models.heads import HEADS

    options = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "head" / f"{head}.yaml"))
    parameters = inspect.signature(HEADS[options.pop("name")]).parameters
    for key, value in options.items():
        default = parameters[key].default
        if default is not inspect.Parameter.empty:
            assert value == default, (
                f"model/head/{head}.yaml {key}={value!r}, the builder's default is {default!r}"
            )


def test_module_yaml_and_constructor_defaults_cannot_drift():
    import inspect

    from src.models.module import FusionClassifier

    yaml = OmegaConf.load(CONF / "model" / "default.yaml")
    for name, parameter in inspect.signature(FusionClassifier.__init__).parameters.items():
        if (
            parameter.default is not inspect.Parameter.empty
            and parameter.default is not None
            and name in yaml
        ):
            assert yaml[name] == parameter.default, f"model/default.yaml {name}"
        if parameter.default is None and name in yaml and not isinstance(yaml[name], DictConfig):
            assert yaml[name] is None, (
                f"model/default.yaml {name}={yaml[name]!r}, the constructor's default is None"
            )
