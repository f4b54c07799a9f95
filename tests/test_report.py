"""The results report on hand-made run folders with known numbers."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from scipy import stats

from src.report import collect, main, paired_test, rank_agreement, summarise


def make_job(
    root: Path, name: str, method: str, seed: int, metrics: dict[str, float] | None, table: str | None = None
) -> None:
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"fusion={method}", f"seed={seed}", "trainer.max_epochs=3"])
    )
    (job / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "paper_table": table}))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


def make_named_job(
    root: Path, name: str, method_name: str, seed: int, metrics: dict[str, float], table: str
) -> None:
    """A run of a ``method=<table>/<row>`` config: the row is its ``method_name``, not an override."""
    job = root / name
    job.mkdir()
    (job / "config.yaml").write_text(
        yaml.safe_dump({"seed": seed, "method_name": method_name, "paper_table": table})
    )
    (job / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    accuracies = {"gmu": [0.90, 0.92, 0.94], "concat": [0.88, 0.89, 0.93]}
    n = 0
    for method, values in accuracies.items():
        for seed, acc in enumerate(values):
            make_job(
                tmp_path,
                str(n),
                method,
                seed,
                {"test/acc": acc, "test/errors": round((1 - acc) * 100)},
                "centralnet2018_avmnist_table4",
            )
            n += 1
    make_job(tmp_path, str(n), "gmu", 3, None)  # a job that died: listed, not averaged
    return tmp_path


def test_summary_statistics_match_scipy():
    values = [0.90, 0.92, 0.94]
    summary = summarise(values)
    assert summary["n"] == 3 and summary["mean"] == pytest.approx(0.92)
    assert summary["std"] == pytest.approx(0.02)
    assert summary["ci99"] == pytest.approx(stats.t.ppf(0.995, 2) * 0.02 / math.sqrt(3))
    assert math.isnan(summarise([0.5])["ci99"])


def test_rows_are_the_varying_overrides_and_failed_jobs_are_listed(sweep: Path):
    jobs, missing = collect([sweep])
    assert sorted({j.row for j in jobs}) == ["fusion=concat", "fusion=gmu"]
    assert [m.path for m in missing] == [sweep / "6"]


def test_paper_table_with_delta_and_outputs(sweep: Path, tmp_path: Path, capsys):
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out)]) == 0
    rows = {r["method"]: r for r in csv.DictReader(open(out / "table.csv"))}
    # the runs name paper_table centralnet2018_avmnist_table4: accuracy in percent, but our rows are
    # named fusion=..., which the paper does not have, so paper/delta stay empty while values scale
    assert float(rows["fusion=gmu"]["mean"]) == pytest.approx(92.0)
    assert rows["fusion=gmu"]["paper"] == ""
    markdown = (out / "table.md").read_text()
    assert "Failed or missing runs (1)" in markdown and (out / "table.tex").read_text().startswith(
        "\\begin{table}"
    )


def test_paper_value_and_delta_for_named_methods(tmp_path: Path):
    for seed, acc in enumerate([0.94, 0.95]):
        make_named_job(
            tmp_path, f"gmu{seed}", "gmu", seed, {"test/acc": acc}, "centralnet2018_avmnist_table4"
        )
    out = tmp_path / "report"
    main([str(tmp_path), "--out", str(out)])
    (row,) = list(csv.DictReader(open(out / "table.csv")))
    assert row["method"] == "gmu" and float(row["paper"]) == 94.1
    assert float(row["delta"]) == pytest.approx(94.5 - 94.1)


def test_paired_test_matches_scipy(sweep: Path):
    jobs, _ = collect([sweep])
    result = paired_test(jobs, "fusion=gmu", "fusion=concat", "test/acc")
    expected = stats.ttest_rel([0.90, 0.92, 0.94], [0.88, 0.89, 0.93])
    assert result["seeds"] == [0, 1, 2]
    assert result["t_pvalue"] == pytest.approx(expected.pvalue)
    with pytest.raises(ValueError, match="no finished run of method 'moe'"):
        paired_test(jobs, "fusion=gmu", "moe", "test/acc")


def test_errors_are_scaled_to_the_papers_test_set(tmp_path: Path):
    """CentralNet counts errors on 10,000 test images; ours become error rate x 10,000."""
    for seed, acc in enumerate([0.99, 0.98]):
        metrics = {"test/acc": acc, "test/errors": (1 - acc) * 2000}
        make_named_job(tmp_path, f"run{seed}", "gmu", seed, metrics, "centralnet2018_mmnist_table2")
    out = tmp_path / "report"
    main([str(tmp_path), "--out", str(out)])
    (row,) = list(csv.DictReader(open(out / "table.csv")))
    assert float(row["mean"]) == pytest.approx(150.0)  # (100 + 200) / 2 errors per 10,000
    assert float(row["paper"]) == 68


def test_rank_agreement_counts_the_papers_orderings_that_hold():
    def entry(method: str, ours: float, paper: float | None) -> dict:
        return {"method": method, "acc": {"mean": ours, "paper": paper}}

    # paper order a < b < c < d; ours swaps c and d; e has no paper value and is ignored
    table = [entry("a", 1, 10), entry("b", 2, 20), entry("c", 4, 30), entry("d", 3, 40), entry("e", 9, None)]
    result = rank_agreement(table, "acc")
    assert result["rows"] == 4 and result["ordered_pairs"] == 6 and result["same_order"] == 5
    assert result["tau"] == pytest.approx(stats.kendalltau([1, 2, 4, 3], [10, 20, 30, 40])[0])
    assert rank_agreement(table[:2], "acc") is None  # too few rows to rank


def test_the_report_prints_the_protocol_ledger_of_the_runs(tmp_path: Path, capsys):
    """Shared settings once, each row's own entries below (src/protocol.py)."""
    shared = {"lr": {"where": "Sec. 4", "quote": "The learning rate is 0.01"}}
    rows = {
        "gmu": {"dropout": {"where": "Sec. 4", "quote": "the dropout is changed into 25%"}},
        "concat": {"dropout": {"ours": "0.5: the paper is silent"}},
    }
    for n, (row, own) in enumerate(rows.items()):
        job = tmp_path / str(n)
        job.mkdir()
        ledger = {"paper": "001_b54b44952ba47bc3.txt", "settings": {**shared, **own}}
        (job / "config.yaml").write_text(
            yaml.safe_dump(
                {
                    "seed": 0,
                    "method_name": row,
                    "paper_table": "centralnet2018_mmnist_table2",
                    "protocol": ledger,
                }
            )
        )
        (job / "metrics.json").write_text(json.dumps({"test/acc": 0.9}))
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    assert "### Protocol (what we follow, where we depart)" in table
    assert "| lr | follows | “The learning rate is 0.01” | 001_b54b44952ba47bc3.txt, Sec. 4 |" in table
    assert (
        "Row `gmu`:" in table
        and "| dropout | silent |" in table.split("Row `concat`:")[1].split("Row `gmu`")[0]
    )
    assert "Protocol" in capsys.readouterr().out


def _provenance(job: Path, commit: str, dirty: bool = False, **extra) -> None:
    git = {"commit": commit, "dirty": dirty, "diff_sha256": "f" * 64 if dirty else None}
    (job / "provenance.json").write_text(json.dumps({"git": git, **extra}))


def test_runs_of_different_commits_are_flagged(sweep: Path, tmp_path: Path):
    for n in range(6):
        _provenance(sweep / str(n), "a" * 40, dirty=n == 5)
    jobs, _ = collect([sweep])
    assert {j.code for j in jobs} == {"a" * 12, "a" * 12 + "+dirty:ffffffff"}
    _provenance(sweep / "0", "b" * 40)
    assert main([str(sweep), "--out", str(tmp_path / "mixed")]) == 0
    markdown = (tmp_path / "mixed" / "table.md").read_text()
    assert "**Mixed code**: these runs come from 3 code versions" in markdown
    assert f"- `{'b' * 12}`: 1 runs (fusion=gmu)" in markdown


def test_same_commit_is_not_flagged(sweep: Path, tmp_path: Path):
    for n in range(6):
        _provenance(sweep / str(n), "a" * 40)
    assert main([str(sweep), "--out", str(tmp_path / "r")]) == 0
    assert "Mixed code" not in (tmp_path / "r" / "table.md").read_text()


def test_a_failed_job_is_listed_with_its_error_line(sweep: Path, tmp_path: Path):
    (sweep / "6" / "provenance.json").write_text(
        json.dumps({"status": "failed", "error": "ConfigError: trainer.max_epochs=0 must be >= 1"})
    )
    assert main([str(sweep), "--out", str(tmp_path / "r")]) == 0
    assert (
        f"- `{sweep / '6'}`: failed: ConfigError: trainer.max_epochs=0 must be >= 1"
        in (tmp_path / "r" / "table.md").read_text()
    )


def test_wandb_report_spec_offline(sweep: Path, tmp_path: Path, monkeypatch):
    """--wandb offline: the report object is built and its spec written; it names the sweep's group,
    one bar panel per metric grouped by row with mean and std, the table, per-class and gate panels."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for n in range(7):
        config = yaml.safe_load((sweep / str(n) / "config.yaml").read_text())
        config.update(task_name="train", fusion={"_target_": f"f.{n}"})
        (sweep / str(n) / "config.yaml").write_text(yaml.safe_dump(config))
    assert main([str(sweep), "--wandb", "--out", str(tmp_path / "r")]) == 0
    spec = json.loads((tmp_path / "r" / "wandb_report.json").read_text())
    group = f"train-{sweep.name}"
    assert spec["description"] == group and spec["project"]["name"] == "mmfusion"
    text = json.dumps(spec)
    blocks = spec["spec"]["blocks"]
    markdown = [b["content"] for b in blocks if b["type"] == "markdown-block"]
    assert markdown[0] == (tmp_path / "r" / "table.md").read_text()
    assert (
        "| fusion=gmu | 3 | 92.0000 ± 2.0000" in markdown[0] and "Failed or missing runs (1)" in markdown[0]
    )
    grids = [b["metadata"] for b in blocks if b["type"] == "panel-grid"]
    assert all(g["runSets"][0]["filters"]["filters"][0]["value"] == group for g in grids)
    assert grids[0]["runSets"][0]["grouping"] == [{"section": "config", "name": "fusion.value._target_"}]
    bars = [p for p in grids[0]["panelBankSectionConfig"]["panels"] if p["viewType"] == "Bar Chart"]
    assert [p["config"]["metrics"] for p in bars] == [["test/acc"]]  # the paper table's accuracy
    assert {(p["config"]["groupAgg"], p["config"]["groupArea"]) for p in bars} == {("mean", "stddev")}
    assert (
        "test/per_class" in text and "interpret/gate_shares" in text and "interpret/centralnet_alphas" in text
    )
