"""hparams_search=arevalo2017_gmu: the GMU paper's 25 random draws with the Optuna sweeper plugin."""

from __future__ import annotations

import json

import pytest
import yaml
from hydra import compose, initialize_config_dir

from src.errors import ConfigError
from src.models.heads import build_head
from src.train import train
from tests.helpers import CONF_DIR, compose_train, run_cli


def test_model_maxout_builds_its_head(tmp_path):
    """model=maxout inherits model/default.yaml's head and nulls the mlp-only ``hidden_dims``."""
    cfg = compose_train(["model=maxout"], tmp_path)
    assert cfg.model.head.hidden_dims is None
    head = build_head(dict(cfg.model.head), 6, 3)
    assert head[0].num_pieces == cfg.model.head.num_pieces and head[-1].out_features == 3
    with pytest.raises(TypeError, match="hidden_dims"):
        build_head({"name": "maxout", "hidden_dims": [4]}, 6, 3)


def test_search_config_composes():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install hydra-optuna-sweeper")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train", overrides=["model=maxout", "hparams_search=arevalo2017_gmu"], return_hydra_config=True
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler._target_.endswith("RandomSampler")
    assert sweeper.n_trials == 25 and sweeper.direction == "maximize"
    assert sweeper.params["model.optimizer.lr"] == "tag(log, interval(0.001, 0.1))"
    assert cfg.optimized_metric == "val/f1_micro"


def test_two_trial_search_runs_end_to_end(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install hydra-optuna-sweeper")
    proc = run_cli(
        "src.train",
        [
            "-m",
            "model=maxout",
            "hparams_search=arevalo2017_gmu",
            "data=digits",
            "optimized_metric=val/acc",
            "hydra.sweeper.n_trials=2",
            "debug=limit",
            "trainer.max_epochs=1",
            "logger=csv",
            "callbacks=none",
            f"hydra.sweep.dir={tmp_path}",
        ],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = []
    for n in (0, 1):
        config = yaml.safe_load((tmp_path / str(n) / "config.yaml").read_text())
        metrics = json.loads((tmp_path / str(n) / "metrics.json").read_text())
        assert 1e-3 <= config["model"]["optimizer"]["lr"] <= 0.1
        assert config["model"]["head"]["num_pieces"] in (2, 3, 4, 5)
        assert 0.3 <= config["model"]["head"]["dropout"] <= 0.7
        trials.append((metrics["val/acc"], config["model"]["optimizer"]["lr"]))
    assert trials[0][1] != trials[1][1]  # two different random draws
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(t[0] for t in trials))
    assert results["best_params"]["model.optimizer.lr"] == pytest.approx(max(trials)[1])


def test_missing_optimized_metric_is_a_clear_error(tmp_path):
    """Checked at start-up against the task's metrics (src/utils/config_checks.py), not after training."""
    with pytest.raises(ConfigError, match="optimized_metric 'val/nope' is not among this run's metrics"):
        train(compose_train(["data=digits", "+optimized_metric=val/nope", "logger=csv"], tmp_path))
    assert not (tmp_path / "checkpoints").exists()
