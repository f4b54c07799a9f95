"""``python -m src.report <run or multirun dir> [...]``: aggregate finished runs into a paper's table.

Rows are methods: the ``method`` a job ran (``conf/method/``), else the job's Hydra overrides without
``seed``. Columns are metrics as mean +- std over seeds with n, the 99% Student-t confidence
half-width (CentralNet's protocol), the paper's value and our delta. Jobs of a multirun without a
``metrics.json`` are listed as failed/missing with their status and error line (from their
``provenance.json``), never averaged away. When the runs come from different commits (or dirty
trees), the report says so and lists them. ``--wandb`` builds the sweep's W&B Report
(:mod:`src.wandb_report`).

Examples::

    python -m src.report logs/train/multiruns/2026-11-23_10-00-00 --out docs/results/mmnist
    python -m src.report DIR --paper centralnet2018_mmnist_table2 --metrics test/errors
    python -m src.report DIR --paired centralnet gmu --metric test/acc
    python -m src.report DIR --wandb            # W&B Report: saved online, its spec written offline
    python -m src.report ROBUSTNESS_DIRS --robustness --out docs/results/robustness_avmnist

``--robustness`` compares the checkpoints swept by ``python -m src.robustness`` instead
(:mod:`src.robustness.report`: relative and effective robustness, the curves and the mean gates).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from src import protocol
from src.utils.provenance import read_provenance

REFERENCE = Path(__file__).parent / "reference" / "paper_tables.yaml"
#: paper metric suffix -> column of per_class_test.csv
PER_CLASS_COLUMNS = {"acc": "accuracy", "auc": "roc_auc", "f1": "f1", "wacc": "wacc", "ap": "ap"}
UNSCALED = {"hamming", "errors"}


@dataclass
class Job:
    path: Path
    row: str
    seed: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    per_class: list[dict[str, Any]] = field(default_factory=list)
    table: str | None = None
    overrides: list[str] = field(default_factory=list)
    protocol: dict[str, Any] | None = None
    #: ``provenance.json``'s git commit (``+dirty:<diff hash>`` for a dirty tree); None without one
    code: str | None = None


@dataclass(frozen=True)
class Unfinished:
    """A job folder without metrics: its status (``provenance.json``) and error line."""

    path: Path
    status: str
    error: str = ""


def code_version(job_dir: Path) -> str | None:
    """The commit a run's code came from, ``<commit>+dirty:<diff sha256[:8]>`` for a dirty tree."""
    git = (read_provenance(job_dir) or {}).get("git")
    if not git:
        return None
    return git["commit"][:12] + (f"+dirty:{(git.get('diff_sha256') or '')[:8]}" if git.get("dirty") else "")


def unfinished(job_dir: Path) -> Unfinished:
    record = read_provenance(job_dir) or {}
    status = record.get("status") or "no provenance.json"
    if status == "running":
        status = "running or killed"
    return Unfinished(job_dir, status, record.get("error") or "")


def _overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def name_rows(jobs: list[Job]) -> None:
    """A job's row is its ``method_name``, else the overrides that differ between the jobs (not seed)."""
    shared = set.intersection(*(set(j.overrides) for j in jobs)) if jobs else set()
    for job in jobs:
        if not job.row:
            job.row = ",".join(o for o in job.overrides if o not in shared) or "default"


def load_job(job_dir: Path) -> Job | None:
    """A finished or failed job directory (one with a config.yaml); None for other folders."""
    config_path = job_dir / "config.yaml"
    if not config_path.is_file():
        return None
    config = yaml.safe_load(config_path.read_text()) or {}
    overrides = [
        o
        for o in _overrides(job_dir)
        if not o.lstrip("+~").startswith(("seed=", "hydra.", "experiment=", "resume_sweep="))
    ]
    job = Job(
        path=job_dir,
        row=str(config.get("method_name") or ""),
        seed=config.get("seed"),
        table=config.get("paper_table"),
        overrides=overrides,
        protocol=config.get("protocol"),
        code=code_version(job_dir),
    )
    metrics_path = job_dir / "metrics.json"
    if metrics_path.is_file():
        job.metrics = {
            k: (math.nan if v is None else float(v)) for k, v in json.loads(metrics_path.read_text()).items()
        }
    per_class_path = job_dir / "per_class_test.csv"
    if per_class_path.is_file():
        with open(per_class_path, newline="") as handle:
            job.per_class = list(csv.DictReader(handle))
    return job


def collect(paths: list[Path]) -> tuple[list[Job], list[Unfinished]]:
    """Jobs with metrics, and job folders of multiruns that have none (failed or still running)."""
    finished, missing = [], []
    candidates: set[Path] = set()
    for root in paths:
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        candidates |= {p.parent for p in root.rglob("config.yaml") if ".hydra" not in p.parts}
        # a multirun job that died before writing its config still has .hydra/
        candidates |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
        candidates |= {p.parent for p in root.rglob("provenance.json")}
    for job_dir in sorted(candidates):
        job = load_job(job_dir)
        if job is not None and job.metrics:
            finished.append(job)
        else:
            missing.append(unfinished(job_dir))
    name_rows(finished)
    return finished, missing


def summarise(values: list[float]) -> dict[str, float]:
    """n, mean, sample std and the 99% Student-t half-width of the mean."""
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    n = int(array.size)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci99": math.nan}
    std = float(array.std(ddof=1)) if n > 1 else math.nan
    ci = float(stats.t.ppf(0.995, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": float(array.mean()), "std": std, "ci99": ci}


def our_value(job: Job, paper_metric: str, units: str, test_size: int | None = None) -> float:
    """Our number in the paper's units for one paper metric name.

    ``errors`` with the paper's ``test_size`` is our error rate times that size (errors per the
    paper's test set), so a smaller test set than the paper's stays comparable.
    """
    scale = 100.0 if units in ("percent", "accuracy_percent") and paper_metric not in UNSCALED else 1.0
    if paper_metric == "errors" and test_size is not None:
        return (1.0 - job.metrics.get("test/acc", math.nan)) * test_size
    if paper_metric == "accuracy":
        return job.metrics.get("test/acc", math.nan) * scale
    if f"test/{paper_metric}" in job.metrics:
        return job.metrics[f"test/{paper_metric}"] * scale
    prefix, _, suffix = paper_metric.rpartition("_")
    column = PER_CLASS_COLUMNS.get(suffix)
    if column and job.per_class:
        values = {row["class"].lower(): float(row[column]) for row in job.per_class}
        if prefix == "avg":
            return float(np.nanmean(list(values.values()))) * scale
        if prefix in values:
            return values[prefix] * scale
    return math.nan


def build_table(jobs: list[Job], metrics: list[str], paper: dict[str, Any] | None) -> list[dict[str, Any]]:
    by_row: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_row[job.row].append(job)
    units = (paper or {}).get("units", "fraction")
    paper_rows = (paper or {}).get("rows", {})
    table = []
    for row, members in sorted(by_row.items()):
        entry: dict[str, Any] = {
            "method": row,
            "seeds": sorted(j.seed for j in members if j.seed is not None),
        }
        for metric in metrics:
            if paper is not None:
                summary = summarise([our_value(j, metric, units, paper.get("test_size")) for j in members])
                reference = paper_rows.get(row, {}).get(metric)
            else:
                summary = summarise([j.metrics.get(metric, math.nan) for j in members])
                reference = None
            entry[metric] = {
                **summary,
                "paper": reference,
                "delta": summary["mean"] - reference if reference is not None else math.nan,
            }
        table.append(entry)
    return table


def _fmt(value: float, digits: int = 4) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def rank_agreement(table: list[dict[str, Any]], metric: str) -> dict[str, float] | None:
    """Kendall's tau between our row means and the paper's values of ``metric`` (rows with both).

    Also the share of row pairs that the paper and we order the same way (ties count as disagreeing),
    i.e. how many of the paper's orderings hold, whatever the absolute level.
    """
    pairs = [
        (e[metric]["mean"], e[metric]["paper"])
        for e in table
        if e[metric]["paper"] is not None and not math.isnan(e[metric]["mean"])
    ]
    if len(pairs) < 3:
        return None
    ours, paper = (np.array(v, dtype=np.float64) for v in zip(*pairs, strict=True))
    tau, p_value = stats.kendalltau(ours, paper)
    i, j = np.triu_indices(len(pairs), k=1)
    ordered = paper[i] != paper[j]
    same = np.sign(ours[i] - ours[j]) == np.sign(paper[i] - paper[j])
    return {
        "rows": len(pairs),
        "tau": float(tau),
        "p_value": float(p_value),
        "same_order": int((same & ordered).sum()),
        "ordered_pairs": int(ordered.sum()),
    }


def code_versions(jobs: list[Job]) -> dict[str, list[Job]]:
    by_code: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_code[job.code or "unknown (no provenance.json)"].append(job)
    return dict(by_code)


def code_markdown(jobs: list[Job]) -> str:
    """A warning when the runs of the table come from more than one commit (or dirty tree)."""
    versions = code_versions(jobs)
    if len(versions) < 2:
        return ""
    lines = ["", f"**Mixed code**: these runs come from {len(versions)} code versions:"]
    for code, members in sorted(versions.items()):
        rows = sorted({j.row for j in members})
        lines.append(f"- `{code}`: {len(members)} runs ({', '.join(rows)})")
    return "\n".join(lines) + "\n"


def to_markdown(
    table: list[dict[str, Any]], metrics: list[str], missing: list[Unfinished], title: str
) -> str:
    header = ["method", "n"]
    for metric in metrics:
        header += [f"{metric} mean ± std", "99% CI ±", "paper", "Δ"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in table:
        n = max(entry[m]["n"] for m in metrics) if metrics else 0
        cells = [entry["method"], str(n)]
        for metric in metrics:
            s = entry[metric]
            cells += [
                f"{_fmt(s['mean'])} ± {_fmt(s['std'])}",
                _fmt(s["ci99"]),
                _fmt(s["paper"]),
                _fmt(s["delta"]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    agreements = [(m, rank_agreement(table, m)) for m in metrics]
    if any(a for _, a in agreements):
        lines.append("")
        for metric, a in agreements:
            if a:
                lines.append(
                    f"Ordering of the rows by {metric} vs the paper: Kendall's tau {a['tau']:.2f} "
                    f"(p = {a['p_value']:.2g}, {a['rows']} rows); {a['same_order']} of the paper's "
                    f"{a['ordered_pairs']} ordered pairs hold."
                )
    if missing:
        lines += [
            "",
            f"Failed or missing runs ({len(missing)}), not averaged:",
            *[f"- `{m.path}`: {m.status}" + (f": {m.error}" if m.error else "") for m in missing],
        ]
    return "\n".join(lines) + "\n"


def to_csv(table: list[dict[str, Any]], metrics: list[str], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "metric", "n", "mean", "std", "ci99", "paper", "delta", "seeds"])
        for entry in table:
            for metric in metrics:
                s = entry[metric]
                writer.writerow(
                    [
                        entry["method"],
                        metric,
                        s["n"],
                        s["mean"],
                        s["std"],
                        s["ci99"],
                        s["paper"],
                        s["delta"],
                        " ".join(map(str, entry["seeds"])),
                    ]
                )


def to_latex(table: list[dict[str, Any]], metrics: list[str], title: str) -> str:
    escape = str.maketrans({"_": r"\_", "%": r"\%", "&": r"\&"})
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + title.translate(escape) + "}",
        r"\begin{tabular}{l" + "c" * len(metrics) + "}",
        r"\toprule",
    ]
    lines.append("Method & " + " & ".join(m.translate(escape) for m in metrics) + r" \\")
    lines.append(r"\midrule")
    for entry in table:
        cells = [f"{_fmt(entry[m]['mean'], 3)} $\\pm$ {_fmt(entry[m]['std'], 3)}" for m in metrics]
        lines.append(entry["method"].translate(escape) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def per_class_markdown(jobs: list[Job]) -> str:
    """Mean per-class test F1 and AP over seeds, one column per method (multilabel runs only)."""
    by_row: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        if job.per_class:
            by_row[job.row].append(job)
    if not by_row:
        return ""
    rows = sorted(by_row)
    classes = [r["class"] for r in next(iter(by_row.values()))[0].per_class]
    lines = [
        "### Per-class test F1 (mean over seeds)",
        "",
        "| class | " + " | ".join(rows) + " |",
        "|" + "---|" * (len(rows) + 1),
    ]
    for index, name in enumerate(classes):
        cells = [_fmt(float(np.mean([float(j.per_class[index]["f1"]) for j in by_row[r]]))) for r in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_test(jobs: list[Job], first: str, second: str, metric: str) -> dict[str, Any]:
    """Paired t-test (and Wilcoxon signed-rank) of ``metric`` between two methods over shared seeds."""
    values = {
        row: {j.seed: j.metrics.get(metric, math.nan) for j in jobs if j.row == row}
        for row in (first, second)
    }
    for row in (first, second):
        if not values[row]:
            raise ValueError(
                f"no finished run of method {row!r}; methods are {sorted({j.row for j in jobs})}"
            )
    seeds = sorted(set(values[first]) & set(values[second]))
    if len(seeds) < 2:
        raise ValueError(f"{first!r} and {second!r} share {len(seeds)} seeds; a paired test needs at least 2")
    a = np.array([values[first][s] for s in seeds])
    b = np.array([values[second][s] for s in seeds])
    t_result = stats.ttest_rel(a, b)
    differences = a - b
    wilcoxon_p = float(stats.wilcoxon(a, b).pvalue) if np.any(differences != 0) else 1.0
    return {
        "metric": metric,
        "methods": [first, second],
        "seeds": seeds,
        "mean_difference": float(differences.mean()),
        "t_statistic": float(t_result.statistic),
        "t_pvalue": float(t_result.pvalue),
        "wilcoxon_pvalue": wilcoxon_p,
    }


def ledger_markdown(jobs: list[Job]) -> str:
    """The protocol ledger of the runs (src/protocol.py): shared settings, then each row's own."""
    protocols = {job.row: job.protocol for job in sorted(jobs, key=lambda j: j.row) if job.protocol}
    if not protocols:
        return ""
    return "\n" + protocol.to_markdown(*protocol.split_by_row(protocols))


def default_metrics(jobs: list[Job]) -> list[str]:
    keys = sorted(
        {k for j in jobs for k in j.metrics if k.startswith("test/") and not k.startswith("test/n_classes")}
    )
    return [k for k in keys if k != "test/loss"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.report", description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run or multirun directories")
    parser.add_argument(
        "--paper", help="table key of src/reference/paper_tables.yaml (default: the runs' paper_table)"
    )
    parser.add_argument(
        "--metrics", nargs="*", help="metrics to show (paper names with --paper, else test/... keys)"
    )
    parser.add_argument("--out", type=Path, help="folder for table.md, table.csv, table.tex and per_class.md")
    parser.add_argument("--title", default=None)
    parser.add_argument("--paired", nargs=2, metavar=("METHOD_A", "METHOD_B"))
    parser.add_argument(
        "--metric",
        default=None,
        help="metric of the paired test (default: first metric) or of --robustness (default: the sweep's)",
    )
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="compare robustness sweeps (robustness.json): the table, the curves and the gates",
    )
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="build the sweep's W&B Report (saved online; offline its spec goes to wandb_report.json)",
    )
    parser.add_argument("--entity", default=None, help="W&B entity of the report (default: WANDB_ENTITY)")
    args = parser.parse_args(argv)
    if args.robustness:
        from src.robustness.report import write_report

        try:
            print(write_report(args.dirs, args.out, args.metric, args.title))
        except (FileNotFoundError, ValueError) as err:
            parser.error(str(err))
        return 0

    jobs, missing = collect(args.dirs)
    if not jobs:
        parser.error(f"no finished runs (metrics.json) under {[str(d) for d in args.dirs]}")
    references = yaml.safe_load(REFERENCE.read_text())
    table_key = args.paper or next((j.table for j in jobs if j.table), None)
    if table_key is not None and table_key not in references:
        parser.error(f"--paper {table_key!r} is not a table of {REFERENCE}; known: {sorted(references)}")
    paper = references.get(table_key) if table_key else None
    if args.metrics:
        metrics = args.metrics
    elif paper is not None:
        metrics = list(
            paper.get("metrics") or sorted({m for row in paper["rows"].values() for m in row if m != "ci"})
        )
    else:
        metrics = default_metrics(jobs)
    title = args.title or (paper["paper"] if paper else "Results")
    table = build_table(jobs, metrics, paper)
    markdown = to_markdown(table, metrics, missing, title) + code_markdown(jobs) + ledger_markdown(jobs)
    print(markdown)
    if args.paired:
        result = paired_test(
            jobs, *args.paired, args.metric or (metrics[0] if paper is None else f"test/{metrics[0]}")
        )
        print(json.dumps(result, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(markdown)
        to_csv(table, metrics, args.out / "table.csv")
        (args.out / "table.tex").write_text(to_latex(table, metrics, title))
        per_class = per_class_markdown(jobs)
        if per_class:
            (args.out / "per_class.md").write_text(per_class)
        print(f"written: {args.out}/table.md, table.csv, table.tex" + (", per_class.md" if per_class else ""))
    if args.wandb:
        from src import wandb_report

        where = wandb_report.publish(
            jobs,
            metrics,
            markdown,
            per_class_markdown(jobs),
            title,
            (args.out or jobs[0].path.parent) / "wandb_report.json",
            args.entity,
        )
        print(
            f"W&B report: {where}"
            + (" (offline: its spec; publish it online with --wandb)" if wandb_report.offline() else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
