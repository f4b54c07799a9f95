"""The W&B Report of one sweep (``python -m src.report <sweep> --wandb``), built with
``wandb-workspaces`` (the W&B Reports API).

What it holds: the paper-vs-ours table of :mod:`src.report` (with failed jobs and mixed-code warnings),
one bar panel per metric over the sweep's runs grouped by row with the mean and the standard
deviation over seeds, the per-class table (mean over seeds, and each run's ``test/per_class`` W&B
table), and the gate figures (``interpret/gate_shares``, ``interpret/centralnet_alphas``, the test gate
histograms). The runs are the sweep's W&B group (``<task_name>-<sweep dir>``, :mod:`src.utils.wandb_run`).

Online the report is saved and its URL printed. Offline (``WANDB_MODE=offline``, or no W&B login) it
is built all the same and its spec (the JSON that ``Report.save`` would upload) is written to a file,
so its content can be checked; ``wandb sync`` of the runs plus a later online ``--wandb`` publish it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

#: the interpretability media the runs log (src/interpret.py, src/utils/wandb_run.py)
GATE_MEDIA = ("interpret/gate_shares", "interpret/centralnet_alphas")
#: offline the entity is left empty: with an entity, building a run set asks the W&B server for the
#: project's id (``Runset._to_model``); online the run sets name the real entity and project
OFFLINE_ENTITY = ""


def _config(job_dir: Path) -> dict[str, Any]:
    path = Path(job_dir) / "config.yaml"
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


def sweep_group(jobs: Sequence[Any]) -> str:
    """The W&B group of the sweep's runs: ``<task_name>-<sweep directory name>``."""
    groups = sorted({f"{_config(j.path).get('task_name', 'train')}-{Path(j.path).parent.name}" for j in jobs})
    if len(groups) != 1:
        raise ValueError(f"--wandb makes the report of one sweep; these runs belong to {groups}")
    return groups[0]


def row_key(jobs: Sequence[Any]) -> str:
    """The run attribute the report groups rows by: ``config.method_name``, else the config key of the
    first override that differs between rows (its ``_target_`` for a config group such as fusion)."""
    configs = [_config(j.path) for j in jobs]
    if any(c.get("method_name") for c in configs):
        return "config.method_name"
    varying = sorted({o.split("=", 1)[0].lstrip("+~") for j in jobs for o in j.row.split(",") if "=" in o})
    if not varying:
        return "group"
    key = varying[0]
    value: Any = configs[0]
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return f"config.{key}._target_" if isinstance(value, Mapping) and "_target_" in value else f"config.{key}"


def summary_metrics(jobs: Sequence[Any], metrics: Sequence[str]) -> list[str]:
    """The runs' summary keys of the table's metrics (a paper's ``accuracy`` is our ``test/acc``;
    metrics the runs do not log as a summary value, such as per-class ones, are left out)."""
    logged = {k for j in jobs for k in j.metrics}
    names = []
    for metric in metrics:
        name = metric if "/" in metric else f"test/{'acc' if metric == 'accuracy' else metric}"
        if name in logged and name not in names:
            names.append(name)
    return names


def build_report(
    jobs: Sequence[Any],
    metrics: Sequence[str],
    markdown: str,
    per_class: str,
    title: str,
    entity: str,
    project: str,
) -> Any:
    """The report object (module docstring); ``markdown`` is src.report's table, ``per_class`` its
    per-class table ('' when the runs have none)."""
    import wandb_workspaces.reports.v2 as wr

    group = sweep_group(jobs)
    key = row_key(jobs)
    runset = wr.Runset(
        entity=entity, project=project, name=group, filters=f"Group = '{group}'", groupby=[key]
    )

    def grid(panels: list[Any]) -> Any:
        return wr.PanelGrid(runsets=[runset], panels=panels)

    metric_names = summary_metrics(jobs, metrics)
    blocks: list[Any] = [
        wr.P(
            f"Sweep {Path(jobs[0].path).parent} (W&B group {group}): {len(jobs)} finished runs, rows by {key}."
        ),
        wr.H2("Paper vs ours"),
        wr.MarkdownBlock(text=markdown),
        wr.H2("Metrics per row: mean and standard deviation over seeds"),
        grid(
            [
                wr.BarPlot(
                    title=name,
                    metrics=[name],
                    groupby_aggfunc="mean",
                    groupby_rangefunc="stddev",
                    orientation="h",
                )
                for name in metric_names
            ]
        ),
        wr.H2("Per-class test metrics"),
    ]
    if per_class:
        blocks.append(wr.MarkdownBlock(text=per_class))
    blocks.append(grid([wr.WeavePanelSummaryTable(table_name="test/per_class")]))
    blocks += [
        wr.H2("Gates and fusion weights"),
        grid(
            [
                wr.MediaBrowser(title="gate shares and CentralNet alphas", media_keys=list(GATE_MEDIA)),
                wr.WeavePanelSummaryTable(table_name="interpret/gate_shares"),
                wr.WeavePanelSummaryTable(table_name="test/predictions"),
            ]
        ),
    ]
    return wr.Report(entity=entity, project=project, title=title[:128], description=group, blocks=blocks)


def report_spec(report: Any) -> dict[str, Any]:
    """The JSON spec of the report (what ``Report.save`` uploads), plus its title and project."""
    model = report._to_model()
    return {
        "displayName": model.display_name,
        "description": model.description,
        "project": {"entity": model.project.entity_name, "name": model.project.name},
        "spec": json.loads(model.spec.model_dump_json(by_alias=True, exclude_none=True)),
    }


def offline() -> bool:
    return os.environ.get("WANDB_MODE", "offline") in ("offline", "disabled", "dryrun")


def _default_entity() -> str:
    import wandb

    return str(wandb.Api().default_entity)


def publish(
    jobs: Sequence[Any],
    metrics: Sequence[str],
    markdown: str,
    per_class: str,
    title: str,
    spec_path: Path,
    entity: str | None = None,
) -> Path | str:
    """Build the report; save it online (returns its URL) or write its spec to ``spec_path`` (offline)."""
    project = str(_config(jobs[0].path).get("logger", {}).get("wandb", {}).get("project") or "mmfusion")
    entity = OFFLINE_ENTITY if offline() else entity or os.environ.get("WANDB_ENTITY") or _default_entity()
    report = build_report(jobs, metrics, markdown, per_class, title, entity, project)
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(report_spec(report), indent=2) + "\n")
    if offline():
        return spec_path
    return report.save().url
