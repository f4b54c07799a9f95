"""Issue 12, classes 7 and 8: impossible values and misspelled names are refused at start-up,
naming the key; broken files of any split stop the run before its first step."""

from __future__ import annotations

import pytest

from src.data.issues import DataIssueError
from src.errors import ConfigError
from src.metrics import multilabel_metrics
from src.train import train
from src.utils.config_checks import THRESHOLD_METRICS, check_config, metric_names
from tests.data_writers import write_mmimdb_raw
from tests.helpers import compose_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_threshold_metrics_are_multilabel_metrics():
    import numpy as np

    names = set(multilabel_metrics(np.array([[0.9, 0.2]]), np.array([[1, 0]]), 0.5))
    assert set(THRESHOLD_METRICS) <= names and "hamming" not in THRESHOLD_METRICS
    assert set(metric_names("multilabel")) == names
    assert metric_names("multiclass") == ("acc", "errors", "f1_macro")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.thresholds.value=1.5"],
            r"model.thresholds.value=1.5: expected a probability strictly between 0 and 1",
        ),
        (["model.thresholds.value=0"], r"model.thresholds.value=0: expected a probability"),
        (
            ["model.thresholds.strategy=bogus"],
            r"model.thresholds.strategy='bogus': expected one of \['fixed', 'global', 'per_class'\]",
        ),
        (
            ["model.thresholds.strategy=global", "model.thresholds.metric=hamming"],
            r"model.thresholds.metric='hamming': expected a metric the global threshold can maximise",
        ),
        (["trainer.max_epochs=0"], r"trainer.max_epochs=0: expected an integer >= 1"),
        (["trainer.max_epochs=abc"], r"trainer.max_epochs='abc': expected an integer >= 1"),
        (
            ["trainer.min_epochs=5", "trainer.max_epochs=2"],
            r"trainer.min_epochs=5 is more than trainer.max_epochs=2",
        ),
        (["seed=abc"], r"seed='abc': expected an integer in \[0, 4294967295\] or null"),
        (["seed=-1"], r"seed=-1: expected an integer"),
        (["data.batch_size=0"], r"data.batch_size=0: expected an integer >= 1"),
        (["model.optimizer.lr=-1"], r"model.optimizer.lr=-1: expected a number > 0"),
        (["monitor.mode=bogus"], r"monitor.mode='bogus': expected auto, min or max"),
        (["train=false"], r"train=false without ckpt_path"),
    ],
)
def test_impossible_values_are_named(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_train(overrides, tmp_path))


def test_every_problem_is_listed_at_once(tmp_path):
    cfg = compose_train(["trainer.max_epochs=0", "seed=abc"], tmp_path)
    with pytest.raises(ConfigError) as raised:
        check_config(cfg)
    assert "trainer.max_epochs=0" in str(raised.value) and "seed='abc'" in str(raised.value)
    check_config(compose_train([], tmp_path))  # the default config is fine


@pytest.mark.parametrize(
    ("overrides", "task", "message"),
    [
        (
            ["monitor.metric=val/bogus"],
            "multiclass",
            r"monitor.metric='val/bogus' is not a validation metric of this multiclass task",
        ),
        (
            ["monitor.metric=val/f1_micro"],
            "multiclass",
            r"monitor.metric='val/f1_micro' is not a validation metric",
        ),
        (["monitor.metric=test/acc"], "multiclass", r"monitor.metric='test/acc' is not a validation metric"),
        (
            ["+optimized_metric=val/nope"],
            "multiclass",
            r"optimized_metric 'val/nope' is not among this run's metrics",
        ),
        (["+optimized_metric=test/acc"], "multiclass", r"optimized_metric 'test/acc' is a test metric"),
    ],
)
def test_names_that_depend_on_the_task(tmp_path, overrides, task, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_train(overrides, tmp_path), task)
    check_config(compose_train(["monitor.metric=val/f1_micro"], tmp_path), "multilabel")


def test_bad_values_fail_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="model.thresholds.strategy='bogus'"):
        train(compose_train(["data=synthetic_gmu", "model.thresholds.strategy=bogus"], tmp_path))
    with pytest.raises(ConfigError, match="monitor.metric='val/bogus'"):
        train(compose_train(["monitor.metric=val/bogus"], tmp_path / "b"))
    assert not any(tmp_path.rglob("*.ckpt")) and not any(tmp_path.rglob("config.yaml"))


def test_a_broken_test_split_file_stops_the_run_before_training(tmp_path):
    """Before: a truncated poster of the test split surfaced only after the whole fit."""
    split = write_mmimdb_raw(tmp_path / "mmimdb", (6, 3, 3))
    poster = tmp_path / "mmimdb" / "dataset" / f"{split['test'][1]}.jpeg"
    poster.write_bytes(poster.read_bytes()[:150])
    cfg = compose_train(
        ["data=mmimdb", f"data.root={tmp_path / 'mmimdb'}", "data.poster_size=[16,8]", "data.num_workers=0",
         "logger=csv", "callbacks.progress_bar=null", "trainer.max_epochs=1"],
        tmp_path / "run",
    )  # fmt: skip
    with pytest.raises(DataIssueError, match=rf"\[test\] unreadable_file: {poster}: cannot decode image"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "csv").exists()
