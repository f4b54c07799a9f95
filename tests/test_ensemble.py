"""src.ensemble: the GMU paper's "AVG probs" row, the average of two separately selected checkpoints."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from src import protocol
from src.ensemble import (
    Member,
    align,
    ensemble_protocol,
    ensemble_sweep,
    evaluate_ensemble,
    predict_member,
    run,
)
from src.metrics import multilabel_metrics
from src.protocol import config_mismatches, missing_quotes, parse
from src.report import collect
from src.train import train
from tests.data_writers import write_mmimdb_hdf5
from tests.helpers import CONF_DIR, compose_train, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ["a", "b"]


def member(name: str, ids: list[str], scores: list[list[float]], labels: list[list[int]]) -> Member:
    """A member with the same scores on val and test (enough for the arithmetic)."""
    array, targets = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    return Member(
        ckpt_path=Path(name),
        run_config={"model": {"thresholds": {"strategy": "fixed", "value": 0.5}}, "method_name": name},
        task="multilabel",
        class_names=CLASSES,
        ids={"val": ids, "test": ids},
        scores={"val": array, "test": array},
        targets={"val": targets, "test": targets},
    )


def test_average_of_probabilities_by_hand(tmp_path):
    """Members list the samples in different orders; the mean is taken per sample id, thresholded at 0.5."""
    text = member("text", ["x", "y", "z"], [[0.9, 0.2], [0.3, 0.6], [0.1, 0.1]], [[1, 0], [0, 1], [0, 0]])
    image = member("image", ["z", "x", "y"], [[0.7, 0.5], [0.2, 0.4], [0.6, 0.2]], [[0, 0], [1, 0], [0, 1]])
    metrics = evaluate_ensemble([text, image], None, tmp_path, {"method_name": "avg_probs"})
    mean = np.array([[0.55, 0.3], [0.45, 0.4], [0.4, 0.3]])  # x, y, z by hand
    expected = multilabel_metrics(mean, np.array([[1, 0], [0, 1], [0, 0]]), 0.5)
    assert metrics["test/f1_micro"] == pytest.approx(expected["f1_micro"])
    assert metrics["test/f1_micro"] == pytest.approx(2 / 3)  # x/a is the only positive call: 1 TP, 1 FN
    assert json.loads((tmp_path / "thresholds.json").read_text())["thresholds"] == {"a": 0.5, "b": 0.5}
    with open(tmp_path / "per_class_test.csv", newline="") as handle:
        assert [row["class"] for row in csv.DictReader(handle)] == CLASSES
    record = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert record["method_name"] == "avg_probs" and [m["method_name"] for m in record["members"]] == [
        "text",
        "image",
    ]


def test_thresholds_are_tuned_on_validation_only(tmp_path):
    text = member("text", ["x", "y"], [[0.3, 0.3], [0.1, 0.1]], [[1, 1], [0, 0]])
    image = member("image", ["x", "y"], [[0.3, 0.3], [0.1, 0.1]], [[1, 1], [0, 0]])
    image.scores["test"] = np.array([[0.05, 0.05], [0.05, 0.05]])  # test never moves the threshold
    spec = {"strategy": "global", "metric": "f1_micro", "grid": [0.2, 0.5]}
    evaluate_ensemble([text, image], spec, tmp_path, {})
    assert set(json.loads((tmp_path / "thresholds.json").read_text())["thresholds"].values()) == {0.2}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.ids.update(val=["x", "q"]), "different val samples"),
        (lambda m: m.targets.update(test=np.array([[0, 0], [0, 0]])), "disagree on the test labels"),
        (lambda m: setattr(m, "class_names", ["a", "c"]), "ensemble members differ"),
    ],
)
def test_members_that_do_not_match_are_named(change, message):
    first = member("first", ["x", "y"], [[0.3, 0.3], [0.1, 0.1]], [[1, 1], [0, 0]])
    second = member("second", ["x", "y"], [[0.3, 0.3], [0.1, 0.1]], [[1, 1], [0, 0]])
    change(second)
    with pytest.raises(ValueError, match=message):
        align([first, second])


# ------------------------------------------------------------------------- real checkpoints
@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A small arevalo2017_mmimdb multirun: two text rows and the visual row, seed 0, 2 epochs each."""
    root = tmp_path_factory.mktemp("ensemble")
    write_mmimdb_hdf5(root / "data" / "multimodal_imdb.hdf5")
    rows = ("text_maxout_w2v", "text_logistic_w2v", "image_vgg_transfer")
    for n, row in enumerate(rows):
        cfg = compose_train(
            [
                "experiment=arevalo2017_mmimdb",
                f"method=arevalo2017_mmimdb/{row}",
                f"data.root={root / 'data'}",
                "data.batch_size=4",
                "data.num_workers=0",
                "hidden_size=8",
                "trainer.max_epochs=2",
                "callbacks.progress_bar=null",
                "logger=csv",
            ],
            root / "sweep" / str(n),
        )
        train(cfg)
    return root / "sweep"


def _checkpoint(run: Path) -> Path:
    (best,) = (run / "checkpoints").glob("epoch_*.ckpt")
    return best


def test_a_member_reproduces_its_runs_test_metrics(sweep):
    run = sweep / "0"
    predicted = predict_member(_checkpoint(run), {})
    trained = json.loads((run / "metrics.json").read_text())
    thresholds = np.array(list(json.loads((run / "thresholds.json").read_text())["thresholds"].values()))
    ours = multilabel_metrics(predicted.scores["test"], predicted.targets["test"], thresholds)
    assert ours["f1_micro"] == pytest.approx(trained["test/f1_micro"], abs=1e-6)
    assert ours["f1_macro"] == pytest.approx(trained["test/f1_macro"], abs=1e-6)


def compose_ensemble(overrides: list[str], run_dir: Path):
    return compose_train(overrides, run_dir, config_name="ensemble")


def test_ckpt_paths_average_the_two_checkpoints(sweep, tmp_path):
    text, image = _checkpoint(sweep / "0"), _checkpoint(sweep / "2")
    metrics = run(compose_ensemble([f"ckpt_paths=[{text},{image}]", "method_name=avg_probs"], tmp_path))
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    members = [predict_member(p, {}) for p in (text, image)]
    order = {sample: i for i, sample in enumerate(members[1].ids["test"])}
    image_scores = members[1].scores["test"][[order[s] for s in members[0].ids["test"]]]
    mean = (members[0].scores["test"] + image_scores) / 2
    expected = multilabel_metrics(mean, members[0].targets["test"], 0.5)
    assert metrics["test/f1_micro"] == pytest.approx(expected["f1_micro"], abs=1e-6)
    assert metrics["test/f1_samples"] == pytest.approx(expected["f1_samples"], abs=1e-6)
    with pytest.raises(ValueError, match="at least two checkpoints"):
        run(compose_ensemble([f"ckpt_paths=[{text}]"], tmp_path))
    with pytest.raises(ValueError, match="exactly one of ckpt_paths"):
        run(compose_ensemble([f"ckpt_paths=[{text},{image}]", f"sweep_dir={sweep}"], tmp_path))


@pytest.mark.slow
def test_cli_averages_the_two_checkpoints(sweep, tmp_path):
    text, image = _checkpoint(sweep / "0"), _checkpoint(sweep / "2")
    proc = run_cli(
        "src.ensemble",
        [f"ckpt_paths=[{text},{image}]", "method_name=avg_probs", f"hydra.run.dir={tmp_path}"],
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert record["method_name"] == "avg_probs" and len(record["members"]) == 2
    assert "test/f1_micro" in json.loads((tmp_path / "metrics.json").read_text())


def test_sweep_mode_writes_the_avg_probs_row_the_report_reads(sweep):
    results = ensemble_sweep(sweep, {}, "cpu")
    out = sweep / "ensembles" / "avg_probs" / "seed_0"
    record = yaml.safe_load((out / "config.yaml").read_text())
    text_runs = {json.loads((sweep / n / "metrics.json").read_text())["val/f1_micro"]: n for n in ("0", "1")}
    best_text = yaml.safe_load((sweep / text_runs[max(text_runs)] / "config.yaml").read_text())["method_name"]
    assert [m["method_name"] for m in record["members"]] == [best_text, "image_vgg_transfer"]
    assert (record["method_name"], record["paper_table"], record["seed"]) == (
        "avg_probs",
        "arevalo2017_mmimdb_table2",
        0,
    )
    assert results["avg_probs"][0] == json.loads((out / "metrics.json").read_text())
    jobs, _ = collect([sweep])
    assert "avg_probs" in {job.row for job in jobs}
    settings, problems = parse(record["protocol"])
    assert not problems and {"architecture", "selection", "optimizer"} <= {s.name for s in settings}


def test_the_ensemble_rows_ledger_quotes_the_paper():
    """The AVG probs row's ledger: its quotes occur in the GMU paper, its values are the config's."""
    if not protocol.papers_dir().is_dir():
        pytest.skip("the papers' texts (../shared/reference/papers) are not beside this checkout")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=arevalo2017_mmimdb"], return_hydra_config=True)
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("protocol", "ensembles")}
    merged = ensemble_protocol(plain, plain["ensembles"]["avg_probs"]["protocol"])
    settings, problems = parse(merged)
    assert not problems
    assert not missing_quotes(settings), missing_quotes(settings)
    assert not config_mismatches(settings, cfg)
    assert {s.name: s.status for s in settings}["architecture"] == "departs"
