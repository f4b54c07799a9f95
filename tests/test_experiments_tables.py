"""The paper-table experiments whose data is not on this machine (conf/experiment/, conf/method/<table>/).

Every (experiment, row) of an experiment's own sweep composes, names a row of its paper table and
configures classes that accept its options; every experiment runs end to end for one step
(``debug=fast``) on small files written in the dataset's published layout, with tiny or offline
encoders in place of the ones that need weights we do not have, and writes every test metric its
paper table reports.
"""

from __future__ import annotations

import csv
import inspect
import json
from functools import cache
from pathlib import Path

import pytest
import yaml
from hydra.utils import get_class
from omegaconf import OmegaConf

from src.models.fusion.build import FUSION_WIDE_OPTIONS
from src.models.heads import HEADS
from src.utils.resolvers import if_else
from tests.data_writers import write_mmimdb_hdf5, write_mmimdb_raw, write_moviescope, write_mult_pickle
from tests.helpers import CONF_DIR, PAPER_TABLES, compose_train, run_cli, train_cli

#: experiment -> (its default row, the paper table of its default settings)
EXPERIMENTS = {
    "arevalo2017_mmimdb": ("gmu", "arevalo2017_mmimdb_table2"),
    "centralnet2018_mmimdb": ("centralnet", "centralnet2018_mmimdb_table7"),
    "bpmult_moviescope": ("bpmult_TVAP", "bpmult_moviescope_table1"),
    "bpmult_moviescope_ablations": ("bpmult", "bpmult_moviescope_table2_ablations"),
    "bpmult_mmimdb": ("bpmult", "bpmult_mmimdb_table3"),
    "bpmult_iemocap": ("bpmult", "bpmult_iemocap_aligned_table4"),
    "bpmult_mosei": ("bpmult", "bpmult_mosei_unaligned_table6"),
    "moreno2021_moviescope": ("hybrid_early_late_gmu", "moreno2021_moviescope_table3"),
    "hessnawi2025_mmimdb": ("attention_fusion", "hessnawi2025_mmimdb_table5_1"),
}


#: experiments whose paper states its seed: the sweep includes it (hessnawi2025: "random seed 42")
SEEDS = {"hessnawi2025_mmimdb": "range(42,47)"}


@cache
def sweep_rows(experiment: str) -> tuple[str, ...]:
    """The ``method`` values of the experiment file's own ``hydra.sweeper.params``."""
    spec = OmegaConf.load(Path(CONF_DIR) / "experiment" / f"{experiment}.yaml")
    return tuple(r.strip() for r in str(spec.hydra.sweeper.params.method).split(","))


PAIRS = [(e, r) for e in EXPERIMENTS for r in sweep_rows(e)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def unknown_options(target: str, options: dict, also: tuple[str, ...] = ()) -> list[str]:
    """Keys of ``options`` that ``target``'s constructor does not take. A constructor that passes
    **kwargs on to its base class's also takes the base's options (none are checked when the chain
    ends in **kwargs)."""
    names: set[str] = set()
    for cls in get_class(target).__mro__:
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(cls.__init__).parameters
        names |= set(params)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return sorted(set(options) - names - {"_target_", *also})
    return []


@pytest.mark.parametrize(("experiment", "row"), PAIRS, ids=[f"{e}:{r.split('/')[1]}" for e, r in PAIRS])
def test_every_row_composes_and_names_a_row_of_its_paper_table(experiment, row, tmp_path):
    cfg = compose_train([f"experiment={experiment}", f"method={row}"], tmp_path)
    folder, name = row.split("/")
    assert cfg.method_name == name
    assert cfg.paper_table in PAPER_TABLES, cfg.paper_table
    assert name in PAPER_TABLES[cfg.paper_table]["rows"], f"{name} not a row of {cfg.paper_table}"
    fusion = OmegaConf.to_container(cfg.fusion, resolve=True)
    assert not unknown_options(fusion["_target_"], fusion, also=FUSION_WIDE_OPTIONS), row
    for modality, spec in OmegaConf.to_container(cfg.model.encoders, resolve=True).items():
        assert not unknown_options(spec["_target_"], spec), (row, modality)
    head = {k: v for k, v in OmegaConf.to_container(cfg.model.head, resolve=True).items() if v is not None}
    extra = set(head) - {"name"} - set(inspect.signature(HEADS[head["name"]]).parameters)
    assert not extra, (row, extra)
    if folder == "bpmult_moviescope_ablations":  # row bpmult_<ablation>, or bpmult = none
        assert cfg.fusion.ablation == (name.removeprefix("bpmult").removeprefix("_") or "none")


def test_iemocap_paper_table_follows_data_aligned(tmp_path):
    aligned = compose_train(["experiment=bpmult_iemocap"], tmp_path)
    unaligned = compose_train(["experiment=bpmult_iemocap", "data.aligned=false"], tmp_path)
    assert (aligned.data.aligned, aligned.paper_table) == (True, "bpmult_iemocap_aligned_table4")
    assert (unaligned.data.aligned, unaligned.paper_table) == (False, "bpmult_iemocap_unaligned_table5")
    assert if_else("False", "a", "b") == "b"
    with pytest.raises(ValueError, match="boolean"):
        if_else(1, "a", "b")


def test_pretrained_rows_without_weights_fail_with_instructions(tmp_path):
    """hessnawi2025's BERT and ResNet18 rows never fall back to random weights."""
    from src.models.encoders.base import WeightsUnavailableError, build_encoder

    cfg = compose_train(["experiment=hessnawi2025_mmimdb"], tmp_path)
    cases = (
        ("text", [], "text", "set model to that directory"),
        ("image", [3, 224, 224], "image", "weights="),
    )
    for modality, shape, kind, instruction in cases:
        spec = OmegaConf.to_container(cfg.model.encoders[modality], resolve=True)
        try:
            build_encoder(spec, shape, kind)
        except WeightsUnavailableError as err:
            assert instruction in str(err)
        else:  # pragma: no cover - only where the weights are in the local cache
            pytest.skip(f"{spec['_target_']} found its weights on this machine")


# --------------------------------------------------------------------------- one step per experiment
COMMON = ["debug=fast", "callbacks.progress_bar=null", "data.num_workers=0"]
#: tiny sequence fusions (MulT / BPMuLT / hybrid): d_model divisible by the heads, one layer each
TINY_SEQUENCE = [
    "fusion.d_model=8",
    "fusion.num_heads=2",
    "fusion.num_layers=1",
    "fusion.self_layers=1",
]
TINY_BPMULT = [*TINY_SEQUENCE, "fusion.parallel_layers=1", "fusion.parallel_len=4"]


def data_for(experiment: str, root: Path) -> list[str]:
    """Write the experiment's dataset in its published layout under ``root``; the data overrides."""
    if experiment in ("arevalo2017_mmimdb", "centralnet2018_mmimdb"):
        write_mmimdb_hdf5(root / "multimodal_imdb.hdf5")
    elif experiment in ("bpmult_mmimdb", "hessnawi2025_mmimdb"):
        write_mmimdb_raw(root)
    elif "moviescope" in experiment:
        write_moviescope(root, (6, 3, 3))
    elif experiment == "bpmult_iemocap":
        write_mult_pickle(root / "iemocap_data.pkl", "iemocap")
    elif experiment == "bpmult_mosei":
        write_mult_pickle(root / "mosei_senti_data_noalign.pkl", "mosei_emotions")
    return [f"data.root={root}", "data.batch_size=4"]


#: per experiment: the substitutions (offline / tiny encoders, small sizes) of the one-step run
SMALL = {
    "arevalo2017_mmimdb": ["fusion.hidden_dim=8", "model.head.hidden_dim=8"],
    "centralnet2018_mmimdb": ["fusion.hidden_dims=[16,8]"],
    "bpmult_moviescope": ["encoder/text=bow_tokens", "model.encoders.text.dim=8", *TINY_BPMULT],
    "bpmult_moviescope_ablations": ["encoder/text=bow_tokens", "model.encoders.text.dim=8", *TINY_BPMULT],
    "bpmult_mmimdb": [
        "encoder/text=bow_tokens",
        "encoder/text@model.encoders.text_glove=bow_tokens",
        "encoder/image=mlp",
        "data.poster_size=[16,16]",
        *TINY_BPMULT,
    ],
    "bpmult_iemocap": TINY_BPMULT,
    "bpmult_mosei": TINY_BPMULT,
    "moreno2021_moviescope": [
        "encoder/text=bow_tokens",
        "model.encoders.text.dim=8",
        *TINY_SEQUENCE,
        "fusion.gmu_hidden=8",
        "fusion.early_hidden=8",
        "fusion.final_hidden=8",
    ],
    "hessnawi2025_mmimdb": [
        "encoder/text=tfidf_words",
        "encoder/image=mlp",
        "data.poster_size=[16,16]",
        "fusion.dim=8",
        "fusion.num_heads=2",
    ],
}


def paper_columns_missing(
    table: dict, metrics: dict[str, float], per_class: list[dict[str, str]]
) -> list[str]:
    """The paper table's metric names that neither metrics.json nor per_class_test.csv provide (as the
    report reads them: ``test/<name>``, else ``<class>_<column>`` / ``avg_<column>`` per class)."""
    columns = {"acc": "accuracy", "auc": "roc_auc", "f1": "f1", "wacc": "wacc", "ap": "ap"}
    names = set(table.get("metrics") or []) | {k for row in table["rows"].values() for k in row if k != "ci"}
    classes = {row["class"].lower() for row in per_class}
    missing = []
    for name in sorted(names):
        if f"test/{name}" in metrics:
            continue
        prefix, _, suffix = name.rpartition("_")
        column = columns.get(suffix)
        if not (column and per_class and column in per_class[0] and (prefix == "avg" or prefix in classes)):
            missing.append(name)
    return missing


def check_run(experiment: str, run: Path) -> None:
    """The run is the experiment's default row, and it wrote every test metric of its paper table."""
    metrics = json.loads((run / "metrics.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    row, table = EXPERIMENTS[experiment]
    assert (config["method_name"], config["paper_table"], config["task_name"]) == (row, table, experiment)
    per_class = []
    if (run / "per_class_test.csv").is_file():
        with open(run / "per_class_test.csv", newline="") as handle:
            per_class = list(csv.DictReader(handle))
    assert not paper_columns_missing(PAPER_TABLES[table], metrics, per_class)
    if config["monitor"]["metric"] != "val/loss":  # the selection metric is one the run computes
        assert config["monitor"]["metric"] in metrics
    assert set(config["model"]["encoders"]) <= set(json.loads((run / "encoders.json").read_text()))


def one_step_overrides(experiment: str, tmp_path: Path) -> list[str]:
    return [f"experiment={experiment}", *COMMON, *data_for(experiment, tmp_path / "data"), *SMALL[experiment]]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_one_step_in_process(experiment, tmp_path):
    """What the CLI run below computes, through ``src.train.train`` in this process (no interpreter start)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from src.train import train

    run = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=one_step_overrides(experiment, tmp_path), return_hydra_config=True)
    # `python -m src.train -m experiment=<name>` sweeps the file's rows (an included experiment's
    # list does not leak through) x 5 seeds
    params = cfg.hydra.sweeper.params
    assert tuple(r.strip() for r in str(params.method).split(",")) == sweep_rows(experiment)
    assert str(params.seed) == SEEDS.get(experiment, "range(0,5)")
    rows = [r.split("/", 1)[1] for r in sweep_rows(experiment)]
    assert len(set(rows)) == len(rows) and EXPERIMENTS[experiment][0] in rows
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run)
        cfg.paths.log_dir = str(run / "logs")
        del cfg.hydra
    train(cfg)
    check_run(experiment, run)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_one_step_from_the_command_line(experiment, tmp_path):
    run = tmp_path / "run"
    train_cli(run, *one_step_overrides(experiment, tmp_path), env={"OMP_NUM_THREADS": "1"})
    check_run(experiment, run)


@pytest.mark.slow
def test_gmu_model_selection_searches_one_row_and_seed(tmp_path):
    """The documented search: Optuna draws the hyper-parameters, never the row or the seed given."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install hydra-optuna-sweeper")
    data = data_for("arevalo2017_mmimdb", tmp_path / "data")
    args = ["-m", "experiment=arevalo2017_mmimdb", "hparams_search=arevalo2017_gmu"]
    args += ["method=arevalo2017_mmimdb/linear_sum", "seed=3", "hydra.sweeper.n_trials=2", *COMMON, *data]
    proc = run_cli(
        "src.train", [*args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], env={"OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for trial in (0, 1):
        config = yaml.safe_load((tmp_path / "sweep" / str(trial) / "config.yaml").read_text())
        assert (config["method_name"], config["seed"]) == ("linear_sum", 3)
        assert config["model"]["head"]["num_pieces"] in (2, 3, 4, 5)
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())["best_params"]
    assert "method" not in best and "seed" not in best and "model.optimizer.lr" in best
