"""Every fusion method through the real training entry point on the embedded digits (issue 3).

Runs go in-process (``src.train.train`` on the composed config) to avoid one interpreter start per
method; ``test_every_method_one_epoch`` and the accuracy check are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from src.train import train
from tests.helpers import CONF_DIR, vector_fusion_methods

METHODS = vector_fusion_methods()
ONE_EPOCH = ["data=digits", "debug=limit", "trainer.max_epochs=1", "logger=none", "callbacks=none"]


def run_train(overrides: list[str], run_dir: Path) -> dict[str, float]:
    """What ``python -m src.train <overrides> hydra.run.dir=<run_dir>`` computes, in this process."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir / "logs")
        del cfg.hydra
    return train(cfg)


def method_overrides(method: str) -> list[str]:
    return [f"fusion={method}"] + (["fusion.modality=view1"] if method == "unimodal" else [])


@pytest.mark.parametrize(
    "overrides",
    [
        ["fusion=centralnet"],
        ["fusion=moe"],
        ["fusion=concat", "+fusion.moddrop_p=0.25"],
        ["fusion=unimodal", "fusion.modality=view2"],
    ],
    ids=["centralnet", "moe", "concat+moddrop", "unimodal"],
)
def test_one_epoch_run_writes_metrics_and_interpretability(tmp_path, overrides):
    with_artifacts = [o if o != "callbacks=none" else "callbacks=artifacts" for o in ONE_EPOCH]
    metrics = run_train(with_artifacts + overrides, tmp_path)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert json.loads((tmp_path / "metrics.json").read_text())["test/acc"] == pytest.approx(
        metrics["test/acc"]
    )
    if overrides == ["fusion=centralnet"]:
        alphas = (tmp_path / "centralnet_alphas.csv").read_text().splitlines()
        assert (
            alphas[0] == "depth,central,view1,view2" and len(alphas) == 1 + 5
        )  # 2 conv, 1 dense, output, final
        assert (tmp_path / "centralnet_alphas.png").stat().st_size > 0
    if overrides == ["fusion=moe"]:
        shares = (tmp_path / "gate_shares.csv").read_text().splitlines()
        assert shares[0] == "class,n_predicted,view1,view2" and len(shares) == 11
        assert (tmp_path / "interpret_test.npz").exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_method_one_epoch(tmp_path, method):
    metrics = run_train(ONE_EPOCH + method_overrides(method), tmp_path)
    assert 0.0 <= metrics["test/acc"] <= 1.0


@pytest.mark.slow
def test_digits_every_method_above_chance_and_unimodal_below_best_fusion(tmp_path):
    """15 epochs per method on the full digits split; numbers reported in docs/fusion.md."""
    results = {}
    for method in METHODS:
        for suffix, extra in (
            [("_view1", ["fusion.modality=view1"]), ("_view2", ["fusion.modality=view2"])]
            if method == "unimodal"
            else [("", [])]
        ):
            overrides = [
                "data=digits",
                "trainer.max_epochs=15",
                "logger=none",
                "callbacks=none",
                f"fusion={method}",
                *extra,
            ]
            results[method + suffix] = run_train(overrides, tmp_path / (method + suffix))["test/acc"]
    print(json.dumps(results, indent=2))
    assert all(acc > 0.1 for acc in results.values()), results
    best_fusion = max(acc for name, acc in results.items() if not name.startswith("unimodal"))
    assert max(results["unimodal_view1"], results["unimodal_view2"]) < best_fusion, results
