"""The protocol ledger: for every setting of a paper experiment, the paper's words or our reason.

Every ``conf/experiment/*.yaml`` carries a ``protocol:`` node, and every table row
(``conf/method/<table>/<row>.yaml``) may add or replace entries under ``protocol.row`` (a row's
entry replaces the table's entry of the same name as a whole; Hydra would merge two entries under
``settings`` field by field, and a row's quote would then sit beside the table's ``ours``)::

    protocol:
      paper: 001_b54b44952ba47bc3.txt          # file in ../shared/reference/papers/ quotes come from
      table: Table 2
      settings:
        optimizer:
          where: Sec. 3                        # section / table / equation of the quote
          quote: using the Adam approach       # the paper's words, verbatim
          config: {model.optimizer._target_: torch.optim.Adam}   # what the composed config holds
        epochs:
          where: Sec. 3.1
          quote: trained during 100 epochs
          ours: 5 epochs in make reproduce-cpu # a quote *and* ours: we depart from the paper, and why
          config: {trainer.max_epochs: 100}
        seeds:
          ours: 5 seeds (0-4); the paper averages 64 runs    # no quote: the paper is silent
      row:                                     # in conf/method/<table>/<row>.yaml
        lr: {where: Sec. 3.1, quote: "For Moddrop, the learning rate is changed into 0.05", config: ...}

A setting *follows* the paper (a quote), *departs* from it (a quote and ``ours``) or fills a gap
where the paper is *silent* (``ours`` only). ``config`` pins the values the entry talks about, so
the words and the run cannot drift apart: :func:`config_mismatches` compares them with the
composed config, :func:`missing_quotes` finds each quote in the paper's text.
``tests/test_protocol.py`` runs both over every experiment and row; ``src.report`` prints the
ledger under each table (:func:`to_markdown`).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.utils.resolvers import REPO_ROOT

#: the settings every experiment's ledger must state (issue 14: "for each setting that matters")
REQUIRED_SETTINGS = (
    "architecture",
    "optimizer",
    "lr",
    "schedule",
    "batch_size",
    "epochs",
    "dropout",
    "loss",
    "thresholds",
    "selection",
    "seeds",
)
FIELDS = {"where", "quote", "ours", "config", "paper"}
NODES = {"paper", "table", "settings", "row"}
FOLLOWS, DEPARTS, SILENT = "follows", "departs", "silent"


def papers_dir() -> Path:
    """``$MMFUSION_PAPERS_DIR``, else ``../shared/reference/papers`` beside the checkout."""
    return Path(os.environ.get("MMFUSION_PAPERS_DIR", REPO_ROOT.parent / "shared" / "reference" / "papers"))


@dataclass(frozen=True)
class Setting:
    """One ledger entry; see the module docstring for the fields."""

    name: str
    paper: str | None
    where: str | None = None
    quote: str | None = None
    ours: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.quote is None:
            return SILENT
        return DEPARTS if self.ours else FOLLOWS


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def parse(protocol: Mapping[str, Any] | DictConfig | None) -> tuple[list[Setting], list[str]]:
    """The ledger's settings, and the problems of its form (unknown fields, a quote without
    ``where`` or without a paper, an entry with neither a quote nor ``ours``)."""
    protocol = _plain(protocol) or {}
    problems: list[str] = [
        f"protocol.{key}: unknown node; allowed {sorted(NODES)}" for key in sorted(set(protocol) - NODES)
    ]
    default_paper = protocol.get("paper")
    settings = []
    entries = {**(protocol.get("settings") or {}), **(protocol.get("row") or {})}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping):
            problems.append(
                f"protocol.settings.{name}: expected a mapping with quote/where/ours, got {entry!r}"
            )
            continue
        unknown = sorted(set(entry) - FIELDS)
        if unknown:
            problems.append(f"protocol.settings.{name}: unknown fields {unknown}; allowed {sorted(FIELDS)}")
        setting = Setting(
            name=name,
            paper=entry.get("paper", default_paper),
            where=entry.get("where"),
            quote=entry.get("quote"),
            ours=entry.get("ours"),
            config=dict(entry.get("config") or {}),
        )
        if setting.quote is None and not setting.ours:
            problems.append(f"protocol.settings.{name}: needs a quote of the paper or `ours: <why>`")
        if setting.quote is not None and not (setting.where and setting.paper):
            problems.append(f"protocol.settings.{name}: a quote needs `where` and a paper file")
        settings.append(setting)
    return settings, problems


def normalise(text: str) -> str:
    """Text as quotes are compared: Unicode-compatible forms, ASCII quotes and dashes, no markdown
    emphasis or HTML tags (``<sup>``), one space between words, lower case."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"<[^>]+>", "", text)
    for chars, ascii_char in (("‘’′", "'"), ("“”″", '"'), ("‐‑‒–—−", "-")):
        text = re.sub(f"[{chars}]", ascii_char, text)
    text = text.replace("*", "")
    return re.sub(r"\s+", " ", text).strip().lower()


@cache
def paper_text(path: Path) -> str:
    return normalise(path.read_text(encoding="utf-8"))


def missing_quotes(settings: list[Setting], directory: Path | None = None) -> list[str]:
    """One line per quote that its paper's text does not contain (or whose paper file is absent)."""
    directory = directory or papers_dir()
    problems = []
    for setting in settings:
        if setting.quote is None:
            continue
        path = directory / str(setting.paper)
        if not path.is_file():
            problems.append(f"protocol.settings.{setting.name}: paper file {path} does not exist")
        elif normalise(setting.quote) not in paper_text(path):
            problems.append(
                f"protocol.settings.{setting.name}: quote not found in {setting.paper} ({setting.where}): "
                f"{setting.quote!r}"
            )
    return problems


_MISSING = object()


def config_mismatches(settings: list[Setting], cfg: DictConfig) -> list[str]:
    """One line per ``config`` value of the ledger that the composed config does not hold."""
    problems = []
    for setting in settings:
        for key, expected in setting.config.items():
            actual = OmegaConf.select(cfg, key, default=_MISSING)
            actual = _plain(actual) if not isinstance(actual, type(_MISSING)) else actual
            if actual is _MISSING:
                problems.append(f"protocol.settings.{setting.name}: config key {key} does not exist")
            elif actual != expected:
                problems.append(
                    f"protocol.settings.{setting.name}: says {key}={expected!r}, the config has {actual!r}"
                )
    return problems


def missing_settings(settings: list[Setting]) -> list[str]:
    named = {s.name for s in settings}
    return [f"protocol.settings.{name}: not stated" for name in REQUIRED_SETTINGS if name not in named]


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ").strip()


def _values(setting: Setting) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in setting.config.items())


def to_markdown(common: list[Setting], per_row: Mapping[str, list[Setting]] | None = None) -> str:
    """The ledger as Markdown: the table's settings, then each row's own entries."""
    header = "| setting | status | the paper's words | where | ours | config |\n|---|---|---|---|---|---|"

    def lines(settings: list[Setting]) -> list[str]:
        return [
            f"| {s.name} | {s.status} | {_cell(s.quote and chr(8220) + s.quote + chr(8221))} | "
            f"{_cell(s.where and f'{s.paper}, {s.where}')} | {_cell(s.ours)} | {_cell(_values(s))} |"
            for s in settings
        ]

    out = ["### Protocol (what we follow, where we depart)", "", header, *lines(common)]
    for row, settings in sorted((per_row or {}).items()):
        if settings:
            out += ["", f"Row `{row}`:", "", header, *lines(settings)]
    return "\n".join(out) + "\n"


def split_by_row(
    protocols: Mapping[str, Mapping[str, Any] | None],
) -> tuple[list[Setting], dict[str, list[Setting]]]:
    """The settings every row shares, and per row the entries that differ from the shared ones.

    ``protocols`` maps a row name to its composed ``protocol`` node (as saved in ``config.yaml``).
    """
    parsed = {row: {s.name: s for s in parse(p)[0]} for row, p in protocols.items()}
    if not parsed:
        return [], {}
    first = next(iter(parsed.values()))
    common = [s for name, s in first.items() if all(other.get(name) == s for other in parsed.values())]
    shared = {s.name for s in common}
    per_row = {
        row: [s for name, s in settings.items() if name not in shared] for row, settings in parsed.items()
    }
    return common, per_row
