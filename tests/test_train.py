"""End-to-end runs of the entry points on the embedded datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from src.data.digits import DigitsDataModule
from src.models.module import FusionClassifier
from src.train import train
from tests.helpers import compose_train, run_cli, train_cli

QUICK = ["trainer.max_epochs=3", "callbacks.progress_bar=null"]


def train_inprocess(run_dir: Path, *overrides: str) -> dict[str, float]:
    return train(compose_train(["logger=csv", *QUICK, *overrides], run_dir))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    """One real `python -m src.train` with the default config, shared by the checks below."""
    run_dir = tmp_path_factory.mktemp("default_run")
    train_cli(run_dir, *QUICK)
    return run_dir


def test_default_run_beats_chance_and_writes_its_outputs(cli_run: Path):
    metrics = json.loads((cli_run / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.6  # 10 classes: chance is 0.1
    assert metrics["val/acc"] > 0.6
    for name in ("config.yaml", "encoders.json", "interpret_test.npz", "checkpoints/last.ckpt"):
        assert (cli_run / name).is_file(), name
    assert len(list((cli_run / "checkpoints").glob("epoch_*.ckpt"))) == 1


def test_eval_from_checkpoint_reproduces_test_metrics(cli_run: Path, tmp_path: Path):
    (best,) = (cli_run / "checkpoints").glob("epoch_*.ckpt")
    proc = run_cli("src.eval", [f"ckpt_path={best}", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    trained = json.loads((cli_run / "metrics.json").read_text())
    assert evaluated == {k: v for k, v in trained.items() if k.startswith("test/")}
    records = [json.loads((d / "provenance.json").read_text()) for d in (cli_run, tmp_path)]
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert [r["entry_point"] for r in records] == ["src.train", "src.eval"]
    assert records[0]["data"] == records[1]["data"]  # the same data fingerprint
    assert records[0]["data"]["test"]["n_samples"] > 0 and records[1]["checkpoint"] == str(best)


def test_checkpoint_loads_with_weights_only(cli_run: Path):
    checkpoint = torch.load(cli_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["task"] == "multiclass"
    assert checkpoint["mmfusion_run_config"]["data"]["_target_"].endswith("DigitsDataModule")


def test_resume_from_last_checkpoint(cli_run: Path, tmp_path: Path):
    train_inprocess(tmp_path, f"ckpt_path={cli_run / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=5")
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    trained_epochs = logged.dropna(subset=["train/loss"])["epoch"].astype(int).tolist()
    assert trained_epochs == [3, 4]  # epochs 0-2 were done by the first run


def test_seed_zero_is_honoured(tmp_path: Path):
    first = train_inprocess(tmp_path / "a", "seed=0", "trainer.max_epochs=2")
    second = train_inprocess(tmp_path / "b", "seed=0", "trainer.max_epochs=2")
    other = train_inprocess(tmp_path / "c", "seed=1", "trainer.max_epochs=2")
    assert first == second
    assert first != other


def test_no_test_sample_reaches_the_model_during_fit(tmp_path: Path, monkeypatch):
    """The pre-flight reads and validates every split's files once, the test split's included, but
    during fit no test sample reaches a DataLoader, the model, a metric or a selection: the test
    split is handed out (``_ensure``) only by ``trainer.test``."""
    read, handed_out, ids_in_fit = [], [], set()
    original_load, original_ensure = DigitsDataModule.load_split, DigitsDataModule._ensure
    original_forward = FusionClassifier.forward

    def recording_load(self, split):
        read.append(split)
        return original_load(self, split)

    def recording_ensure(self, split):
        handed_out.append((split, self.trainer.state.fn if self.trainer else None))
        return original_ensure(self, split)

    def recording_forward(self, batch):
        if self.trainer.state.fn == "fit":
            ids_in_fit.update(batch["ids"])
        return original_forward(self, batch)

    monkeypatch.setattr(DigitsDataModule, "load_split", recording_load)
    monkeypatch.setattr(DigitsDataModule, "_ensure", recording_ensure)
    monkeypatch.setattr(FusionClassifier, "forward", recording_forward)
    test_ids = set(DigitsDataModule().load_split("test").ids)
    read.clear()
    train_inprocess(tmp_path / "fit", "test=false")
    assert read == ["train", "val", "test"]  # the pre-flight, once per split
    assert {split for split, _ in handed_out} == {"train", "val"}
    assert ids_in_fit and not ids_in_fit & test_ids
    read.clear(), handed_out.clear(), ids_in_fit.clear()
    train_inprocess(tmp_path / "fit_test")
    assert read == ["train", "val", "test"]
    assert {fn for split, fn in handed_out if split == "test"} == {"test"}  # only trainer.test
    assert not ids_in_fit & test_ids


def test_synthetic_gmu_multilabel_run(tmp_path: Path):
    cfg = compose_train(
        ["logger=csv", *QUICK, "data=synthetic_gmu", "model.thresholds.strategy=global"]
        + ["trainer.max_epochs=4", "model.loss.pos_weight=neg_pos_ratio"],
        tmp_path,
    )
    composed = OmegaConf.to_container(cfg)
    metrics = train(cfg)
    # src.train derives monitor, loss and weights without writing them into the composed config ...
    assert OmegaConf.to_container(cfg) == composed and cfg.monitor.metric == "auto"
    # ... and saves what it resolved in config.yaml and in the checkpoints
    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert (saved.monitor.metric, saved.monitor.mode, saved.model.loss.name) == ("val/f1_micro", "max", "bce")
    assert (
        len(saved.model.loss.pos_weight) == 1 and saved.callbacks.model_checkpoint.monitor == "val/f1_micro"
    )
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["mmfusion_run_config"] == OmegaConf.to_container(saved)
    assert metrics["test/roc_auc_macro"] > 0.8  # chance 0.5
    assert "test/gate_corr_latent" in metrics
    thresholds = json.loads((tmp_path / "thresholds.json").read_text())
    assert thresholds["strategy"] == "global" and set(thresholds["thresholds"]) == {"C"}
    per_class = pd.read_csv(tmp_path / "per_class_test.csv")
    assert per_class["class"].tolist() == ["C"]


@pytest.mark.slow  # an end-to-end CLI run (>10 s on 2 cores); the fast suite keeps `make test` under 10 min
def test_missing_mmimdb_says_where_and_what(tmp_path: Path):
    proc = run_cli(
        "src.train",
        [f"hydra.run.dir={tmp_path}", "data=mmimdb"],
        env={"MMFUSION_DATA_DIR": str(tmp_path / "nodata")},
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert str(tmp_path / "nodata" / "mmimdb" / "split.json") in output
    assert "multimodal_imdb.hdf5" in output and "Traceback" not in output


@pytest.mark.slow  # an end-to-end CLI run (>10 s on 2 cores); the fast suite keeps `make test` under 10 min
def test_multirun_two_by_two(tmp_path: Path):
    proc = run_cli(
        "src.train",
        [
            "-m",
            "fusion=gmu,concat",
            "seed=0,1",
            f"hydra.sweep.dir={tmp_path}",
            "trainer.max_epochs=1",
            "logger=csv",
            "callbacks.progress_bar=null",
        ],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(tmp_path.glob("*/metrics.json"))
    assert len(runs) == 4
    configs = [OmegaConf.load(p.parent / "config.yaml") for p in runs]
    jobs = sorted((c.fusion._target_.rsplit(".", 1)[1], c.seed) for c in configs)
    assert jobs == [("ConcatFusion", 0), ("ConcatFusion", 1), ("GMUFusion", 0), ("GMUFusion", 1)]


@pytest.mark.slow
def test_wandb_offline_run_is_written_and_finished(tmp_path: Path):
    metrics = train_cli(
        tmp_path,
        "logger=wandb",
        "trainer.max_epochs=1",
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert metrics["test/acc"] > 0.1
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert any(run.glob("*.wandb"))


@pytest.mark.slow
def test_ddp_sim_under_multirun_uses_spawn_and_unpadded_test_set(tmp_path: Path):
    """`trainer=ddp_sim` with strategy=ddp inside a multirun: must not re-launch the sweep per rank."""
    proc = run_cli(
        "src.train",
        [
            "-m",
            "trainer=ddp_sim",
            "trainer.strategy=ddp",
            "data.split_fractions=[0.6,0.25,0.15]",
            f"hydra.sweep.dir={tmp_path}",
            "trainer.max_epochs=1",
            "logger=csv",
            "callbacks.progress_bar=null",
        ],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ddp -> ddp_spawn" in proc.stdout + proc.stderr
    (metrics_file,) = tmp_path.glob("*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    n_test = len(DigitsDataModule(split_fractions=(0.6, 0.25, 0.15)).load_split("test"))
    assert n_test % 2 == 1  # odd: a padded DistributedSampler would count one sample twice
    assert round(metrics["test/errors"] / (1 - metrics["test/acc"])) == n_test


def test_training_defaults_are_derived_not_written_back(tmp_path: Path):
    from src.spec import DatasetSpec, ModalitySpec
    from src.train import resolve, training_defaults
    from src.utils.launchers import BASIC

    cfg = compose_train(["seed=null", "monitor.metric=val/loss", "+trainer.strategy=ddp"], tmp_path)
    composed = OmegaConf.to_container(cfg)
    spec = DatasetSpec("toy", "multiclass", ("a", "b"), {"x": ModalitySpec("vector", (3,))})
    defaults = training_defaults(spec, cfg, label_counts=lambda: pytest.fail("no weight asks for counts"))
    assert (
        defaults.monitor == {"metric": "val/loss", "mode": "min"} and defaults.loss["name"] == "cross_entropy"
    )
    assert isinstance(defaults.seed, int) and defaults.strategy is None
    assert training_defaults(spec, cfg, lambda: ([], 0), launcher=BASIC).strategy == "ddp_spawn"
    resolved = resolve(cfg, defaults)
    assert resolved.seed == defaults.seed and resolved.model.loss.name == "cross_entropy"
    assert resolved.callbacks.early_stopping.mode == "min"  # interpolations see the resolved values
    assert OmegaConf.to_container(cfg) == composed
