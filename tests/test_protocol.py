"""The protocol ledger (src/protocol.py): every experiment and every table row says, per setting,
the paper's words or our reason; every quote occurs in the paper's text, and every value the ledger
names is the value the composed config runs."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from src import protocol
from src.protocol import (
    DEPARTS,
    FOLLOWS,
    SILENT,
    config_mismatches,
    missing_quotes,
    missing_settings,
    normalise,
    parse,
    split_by_row,
    to_markdown,
)
from tests.helpers import CONF_DIR

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


@cache
def composed(experiment: str, row: str | None):
    overrides = [f"experiment={experiment}"] + ([f"method={row}"] if row else [])
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


@cache
def rows(experiment: str) -> tuple[str | None, ...]:
    params = composed(experiment, None).hydra.sweeper.get("params") or {}
    swept = [r.strip() for r in str(params.get("method", "")).split(",") if r.strip()]
    return tuple(swept) or (None,)


PAIRS = [(e, r) for e in EXPERIMENTS for r in rows(e)]
IDS = [f"{e}:{r.split('/')[-1] if r else 'default'}" for e, r in PAIRS]


def test_every_row_config_is_swept_by_an_experiment():
    """So the ledger test below reaches every row under conf/method/."""
    files = {
        str(p.relative_to(Path(CONF_DIR) / "method").with_suffix(""))
        for p in Path(CONF_DIR, "method").rglob("*.yaml")
    }
    assert files - {r for _, r in PAIRS} == set()


@pytest.mark.parametrize(("experiment", "row"), PAIRS, ids=IDS)
def test_ledger_states_every_setting_and_matches_the_config(experiment: str, row: str | None):
    cfg = composed(experiment, row)
    assert "protocol" in cfg, f"experiment {experiment} (row {row}) has no protocol: node"
    settings, problems = parse(cfg.protocol)
    problems += missing_settings(settings) + config_mismatches(settings, cfg)
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(
    not protocol.papers_dir().is_dir(),
    reason="the papers' texts (../shared/reference/papers) are not beside this checkout",
)
@pytest.mark.parametrize(("experiment", "row"), PAIRS, ids=IDS)
def test_every_quote_occurs_in_its_paper(experiment: str, row: str | None):
    settings, _ = parse(composed(experiment, row).protocol)
    assert not missing_quotes(settings), "\n".join(missing_quotes(settings))


# ------------------------------------------------------------------------------ the mechanism
PAPER = "The learning rate is 0.05 (we multiply the learning rate by 0.96 at each *epoch*).\n\nWe use Adam—as in [3]."


@pytest.fixture
def papers(tmp_path: Path) -> Path:
    (tmp_path / "p.txt").write_text(PAPER, encoding="utf-8")
    return tmp_path


def test_normalise_ignores_markup_case_dashes_and_line_breaks():
    assert normalise("we  multiply the\nLearning rate by 0.96 at each epoch") in normalise(PAPER)
    assert normalise("We use Adam-as in") in normalise(PAPER)
    assert normalise("x<sup>−3</sup>") == "x-3"


def test_a_quote_is_found_and_an_altered_quote_is_not(papers: Path):
    node = {"paper": "p.txt", "settings": {"lr": {"where": "Sec. 4", "quote": "The learning rate is 0.05"}}}
    settings, problems = parse(node)
    assert not problems and missing_quotes(settings, papers) == []
    node["settings"]["lr"]["quote"] = "The learning rate is 0.01"
    [problem] = missing_quotes(parse(node)[0], papers)
    assert "protocol.settings.lr" in problem and "0.01" in problem
    node["paper"] = "absent.txt"
    assert "does not exist" in missing_quotes(parse(node)[0], papers)[0]


def test_altering_any_real_quote_is_caught():
    """The check bites on the real ledgers: one changed word in any quote makes it fail."""
    checked = 0
    for experiment, row in PAIRS:
        if not protocol.papers_dir().is_dir():
            continue
        for setting in parse(composed(experiment, row).protocol)[0]:
            if setting.quote:
                words = setting.quote.split()
                altered = " ".join([*words[:-1], words[-1] + "zz"])
                assert missing_quotes([type(setting)(**{**setting.__dict__, "quote": altered})]), setting
                checked += 1
                break
    if not protocol.papers_dir().is_dir():
        pytest.skip("the papers' texts (../shared/reference/papers) are not beside this checkout")
    assert checked == len(PAIRS)  # every composed ledger quotes its paper somewhere


def test_form_problems_are_named():
    _, problems = parse(
        {
            "paper": "p.txt",
            "settings": {
                "lr": {"quote": "x"},  # no where
                "epochs": {"where": "Sec. 1"},  # neither quote nor ours
                "seeds": {"ours": "5 seeds", "qoute": "typo"},
                "loss": "bce",
            },
        }
    )
    text = "\n".join(problems)
    assert "lr: a quote needs `where`" in text
    assert "epochs: needs a quote" in text
    assert "seeds: unknown fields ['qoute']" in text
    assert "loss: expected a mapping" in text
    missing = missing_settings(parse({"settings": {"lr": {"ours": "x"}}})[0])
    assert (
        "protocol.settings.optimizer: not stated" in missing
        and len(missing) == len(protocol.REQUIRED_SETTINGS) - 1
    )


def test_a_row_entry_replaces_the_tables_entry_as_a_whole():
    """A row quoting the paper where the table says `ours` is a plain `follows`, not a departure."""
    node = {
        "paper": "p.txt",
        "settings": {"lr": {"ours": "0.01 for every row"}, "epochs": {"ours": "100"}},
        "row": {"lr": {"where": "Sec. 4", "quote": "The learning rate is 0.05"}},
        "rows": {},
    }
    settings, problems = parse(node)
    assert problems == ["protocol.rows: unknown node; allowed ['paper', 'row', 'settings', 'table']"]
    by_name = {s.name: s for s in settings}
    assert by_name["lr"].status == FOLLOWS and by_name["lr"].ours is None
    assert by_name["epochs"].status == SILENT


def test_config_values_are_compared_with_the_composed_config():
    cfg = OmegaConf.create({"trainer": {"max_epochs": 100}, "model": {"optimizer": {"lr": 0.01}}})
    node = {
        "settings": {
            "epochs": {"ours": "x", "config": {"trainer.max_epochs": 100}},
            "lr": {"ours": "x", "config": {"model.optimizer.lr": 0.05, "model.optimizer.momentum": 0.9}},
        }
    }
    problems = config_mismatches(parse(node)[0], cfg)
    assert problems == [
        "protocol.settings.lr: says model.optimizer.lr=0.05, the config has 0.01",
        "protocol.settings.lr: config key model.optimizer.momentum does not exist",
    ]


def test_status_and_markdown_split_shared_settings_from_row_entries():
    table = {"paper": "p.txt", "settings": {"lr": {"where": "Sec. 4", "quote": "rate is 0.05"}}}
    gmu = {
        **table,
        "settings": {**table["settings"], "dropout": {"where": "Sec. 4", "quote": "25%", "ours": "30%"}},
    }
    plain = {**table, "settings": {**table["settings"], "dropout": {"ours": "0.5, the paper is silent"}}}
    common, per_row = split_by_row({"gmu": gmu, "concat": plain})
    assert [s.name for s in common] == ["lr"] and common[0].status == FOLLOWS
    assert per_row["gmu"][0].status == DEPARTS and per_row["concat"][0].status == SILENT
    markdown = to_markdown(common, per_row)
    assert "| lr | follows | “rate is 0.05” | p.txt, Sec. 4 |" in markdown
    assert "Row `gmu`:" in markdown and "| dropout | departs |" in markdown
