"""CentralNet's Table 2 (multimodal MNIST, and its digits version) and Table 4 (audio-visual MNIST)
as experiments: every swept row composes into the paper's row, and a whole rows x seeds sweep runs
through the CLI and into the report, on the embedded digits and on files in the real MNIST/FSDD formats.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate

from tests.data_writers import write_digit_images, write_fsdd
from tests.helpers import CONF_DIR, PAPER_TABLES, run_cli


@pytest.fixture(scope="module", autouse=True)
def hydra_context():
    """One Hydra initialisation for the module (composing is then cheap)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        yield


def compose_experiment(*overrides: str):
    return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def swept_rows(experiment: str) -> list[str]:
    params = compose_experiment(f"experiment={experiment}").hydra.sweeper.params
    return [row.strip() for row in params.method.split(",")]


#: the paper's learning rate per table, and the rows it changes (Sec. 3.1, 3.2, 3.4)
PAPER_LR = {
    "centralnet2018_mmnist": (0.01, {"moddrop": 0.05}),
    "centralnet2018_avmnist": (0.001, {"moddrop": 0.005}),
    "centralnet2018_mmimdb": (0.01, {}),
}


@pytest.mark.parametrize("experiment", sorted(PAPER_LR))
def test_every_swept_row_is_a_row_of_the_papers_table_trained_as_the_paper_says(experiment: str):
    rows = swept_rows(experiment)
    assert len(rows) == len(set(rows))
    table = None
    lr, changed = PAPER_LR[experiment]
    for row in rows:
        cfg = compose_experiment(f"experiment={experiment}", f"method={row}")
        table = PAPER_TABLES[cfg.paper_table]
        assert cfg.method_name == row.rsplit("/", 1)[1]
        assert cfg.method_name in table["rows"], (experiment, row)
        get_class(cfg.fusion._target_)  # the row's fusion exists
        # "a stochastic gradient descent using the Adam approach" (Sec. 2.2), batch 128, no schedule
        assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.scheduler is None
        assert cfg.model.optimizer.lr == changed.get(cfg.method_name, lr) and cfg.data.batch_size == 128
    # every row of the paper's table is swept
    assert {row.rsplit("/", 1)[1] for row in rows} == set(table["rows"])


@pytest.mark.parametrize(
    ("experiment", "prefix", "moddrop_p", "gmu_dropout"),
    [
        ("centralnet2018_mmnist", "centralnet2018_mnist", 0.2, 0.25),
        ("centralnet2018_avmnist", "centralnet2018_avmnist", 0.32, 0.35),
    ],
)
def test_per_method_settings_are_the_papers(experiment, prefix, moddrop_p, gmu_dropout):
    """Sec. 3.1 / 3.2: ModDrop's drop probability and the GMU row's dropout; the score-level Concat;
    Weighted mean without the Multi-Task loss; CentralNet with Eq. 3 over the Pred layers' scores."""
    moddrop = compose_experiment(f"experiment={experiment}", f"method={prefix}/moddrop")
    assert moddrop.fusion.moddrop_p == moddrop_p
    gmu = compose_experiment(f"experiment={experiment}", f"method={prefix}/gmu")
    assert {e.dropout for e in gmu.model.encoders.values()} == {gmu_dropout}
    concat = compose_experiment(f"experiment={experiment}", f"method={prefix}/concat_multitask")
    assert concat.fusion._target_.endswith("ScoreConcatFusion") and concat.fusion.aux_losses
    central = compose_experiment(f"experiment={experiment}", f"method={prefix}/centralnet")
    assert central.fusion.form == "eq3" and central.fusion.output == "scores"
    if experiment == "centralnet2018_avmnist":
        weighted = compose_experiment(f"experiment={experiment}", f"method={prefix}/weighted_mean")
        assert not weighted.fusion.aux_losses


def test_digits_version_sweeps_the_mnist_rows_on_digits():
    assert swept_rows("centralnet2018_digits") == swept_rows("centralnet2018_mmnist")
    cfg = compose_experiment("experiment=centralnet2018_digits")
    assert (
        cfg.data._target_.endswith("DigitsDataModule") and cfg.paper_table == "centralnet2018_mmnist_table2"
    )


def test_ensembles_are_whole_networks_on_the_original_images():
    """Sec. 3.1: "an Ensemble of 3 models applied on original images"."""
    for n in (2, 3):
        cfg = compose_experiment(
            "experiment=centralnet2018_mmnist", f"method=centralnet2018_mnist/ensemble_{n}"
        )
        assert cfg.data.include_original and list(cfg.fusion.members) == ["original"] * n
        assert cfg.fusion.networks.conv_channels == [32, 64] and cfg.fusion.networks.hidden_dims == [1024]
        assert cfg.model.encoders.original._target_.endswith("IdentityEncoder")
    original = compose_experiment(
        "experiment=centralnet2018_mmnist", "method=centralnet2018_mnist/baseline_original_mnist"
    )
    assert original.data.include_original and original.fusion.modality == "original"


def sweep_and_report(tmp_path: Path, experiment: str, *overrides: str) -> list[dict[str, str]]:
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "src.train",
        [
            "-m",
            f"experiment={experiment}",
            "debug=fast",
            "logger=csv",
            f"hydra.sweep.dir={sweep}",
            *overrides,
        ],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "report"
    proc = run_cli("src.report", [str(sweep), "--out", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return list(csv.DictReader(open(out / "table.csv")))


def check_report(rows: list[dict[str, str]], experiment: str, n_seeds: int) -> None:
    table = PAPER_TABLES[compose_experiment(f"experiment={experiment}").paper_table]
    assert {r["method"] for r in rows} == set(table["rows"])
    for r in rows:
        assert int(r["n"]) == n_seeds
        assert r["paper"] != "" and r["mean"] != ""


@pytest.mark.slow  # 14 rows through the CLI, ~45 s: keeps `make test` under 10 minutes
def test_digits_table_sweep_runs_every_row_and_reports_it(tmp_path: Path):
    """`python -m src.train -m experiment=centralnet2018_digits` then `python -m src.report` (1 step each)."""
    rows = sweep_and_report(tmp_path, "centralnet2018_digits", "seed=0")
    check_report(rows, "centralnet2018_digits", 1)


@pytest.mark.slow
def test_mmnist_table_sweep_on_real_idx_files(tmp_path: Path):
    write_digit_images(tmp_path / "mnist", 10)
    rows = sweep_and_report(tmp_path, "centralnet2018_mmnist", "seed=0", f"data.root={tmp_path / 'mnist'}")
    check_report(rows, "centralnet2018_mmnist", 1)


@pytest.mark.slow
def test_avmnist_table_sweep_on_real_mnist_and_fsdd_files(tmp_path: Path):
    write_digit_images(tmp_path / "mnist", 10)
    write_fsdd(tmp_path / "fsdd", takes=12)
    rows = sweep_and_report(
        tmp_path,
        "centralnet2018_avmnist",
        "seed=0",
        f"data.mnist_root={tmp_path / 'mnist'}",
        f"data.fsdd_root={tmp_path / 'fsdd'}",  # 112x112 spectrograms: Table 3 needs them (14x14x32 maps)
    )
    check_report(rows, "centralnet2018_avmnist", 1)


def _build(cfg, shapes: dict[str, list[int]]):
    """The row's encoders (for the given input shapes) and fusion, as the LightningModule builds them."""
    from omegaconf import OmegaConf

    from src.models.model import build_model
    from src.spec import DatasetSpec, ModalitySpec

    plain = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "fusion")}
    spec = DatasetSpec(
        "rows",
        "multiclass",
        tuple(str(i) for i in range(10)),
        {m: ModalitySpec("image", tuple(s)) for m, s in shapes.items()},
    )
    model = build_model(spec, plain["fusion"], plain["model"]["head"], plain["model"]["encoders"])
    return model.encoders, model.fusion


def _shapes_through(stages, x) -> list[tuple[int, ...]]:
    shapes = []
    for stage in stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


def _block_shapes(encoder, x) -> list[tuple[int, ...]]:
    """Output shape of each conv block (after its pooling), then of each dense layer."""
    shapes = []
    for module in encoder.features:
        x = module(x)
        if isinstance(module, torch.nn.MaxPool2d):
            shapes.append(tuple(x.shape[1:]))
    x = x.flatten(1)
    for module in encoder.head:
        x = module(x)
        if isinstance(module, torch.nn.ReLU):
            shapes.append(tuple(x.shape[1:]))
    return shapes


TABLE1 = [(32, 14, 14), (64, 7, 7), (1024,)]  # "Conv 14x14x32, Conv 7x7x64, Dense 1024"


def test_table1_networks_have_the_papers_layer_shapes():
    """Table 1 (mMNIST): "Conv 14x14x32, Conv 7x7x64, Dense 1024, Pred 10" with 5x5 kernels, for the
    trunk rows (encoder + Pred head) and for the rows that build their own stages (CentralNet, layer
    fusion): the same layers, layer by layer."""
    x = torch.zeros(2, 1, 28, 28)
    trunk_cfg = compose_experiment("experiment=centralnet2018_mmnist", "method=centralnet2018_mnist/gmu")
    trunk = instantiate(trunk_cfg.model.encoders.view1, input_shape=[1, 28, 28], kind="image")
    assert _block_shapes(trunk, x) == TABLE1 and trunk.out_dim == 1024
    assert [m.kernel_size for m in trunk.features if isinstance(m, torch.nn.Conv2d)] == [(5, 5), (5, 5)]
    central_cfg = compose_experiment(
        "experiment=centralnet2018_mmnist", "method=centralnet2018_mnist/centralnet"
    )
    _, central = _build(central_cfg, {"view1": [1, 28, 28], "view2": [1, 28, 28]})
    for stages in (central.central, central.unimodal["view1"], central.unimodal["view2"]):
        assert _shapes_through(stages, x) == [*TABLE1, (10,)]
    assert central.central[0][0].kernel_size == (5, 5)
    own = [type(m).__name__ for stage in central.central[:-1] for m in stage if type(m).__name__ != "Flatten"]
    assert own == [type(m).__name__ for m in [*trunk.features, *trunk.head]]
    assert sum(p.numel() for stage in central.central[:-1] for p in stage.parameters()) == sum(
        p.numel() for p in trunk.parameters()
    )
    layer_cfg = compose_experiment(
        "experiment=centralnet2018_mmnist", "method=centralnet2018_mnist/fusion_sum_layer2"
    )
    _, layer = _build(layer_cfg, {"view1": [1, 28, 28], "view2": [1, 28, 28]})
    assert _shapes_through(layer.unimodal["view1"], x) == TABLE1[:2]  # merged at depth 2: after conv 2
    assert _shapes_through(layer.fused, torch.zeros(2, *TABLE1[1])) == [TABLE1[2], (10,)]


def test_table3_networks_have_the_papers_layer_shapes():
    """Table 3 (avMNIST): the audio's Conv1-3 (56x56x8, 28x28x16, 14x14x32) and the image's Conv1
    (14x14x32) extract features; the image, central and audio columns then run Conv 7x7x64, Dense
    1024, Pred 10 -- the central conv layer included."""
    image, audio = torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, 112, 112)
    shapes = {"image": [1, 28, 28], "audio": [1, 112, 112]}
    cfg = compose_experiment("experiment=centralnet2018_avmnist", "method=centralnet2018_avmnist/centralnet")
    encoders, central = _build(cfg, shapes)
    assert _block_shapes(encoders["audio"], audio) == [(8, 56, 56), (16, 28, 28), (32, 14, 14)]
    assert _block_shapes(encoders["image"], image) == [(32, 14, 14)]
    assert central.shapes == {"audio": (32, 14, 14), "image": (32, 14, 14)} and central.branch == "conv"
    fusion_part = [(64, 7, 7), (1024,), (10,)]
    for stages in (central.central, central.unimodal["image"], central.unimodal["audio"]):
        assert _shapes_through(stages, torch.zeros(2, 32, 14, 14)) == fusion_part
    assert isinstance(central.central[0][0], torch.nn.Conv2d)  # the central conv layer
    features = {m: encoders[m](x) for m, x in (("image", image), ("audio", audio))}
    assert central(features).logits.shape == (2, 10)
    # the other rows: the whole image network (Table 1's) and the 6-layer audio CNN up to Pred
    gmu = compose_experiment("experiment=centralnet2018_avmnist", "method=centralnet2018_avmnist/gmu")
    trunks, _ = _build(gmu, shapes)
    assert _block_shapes(trunks["image"], image) == TABLE1
    assert _block_shapes(trunks["audio"], audio) == [
        (8, 56, 56),
        (16, 28, 28),
        (32, 14, 14),
        (64, 7, 7),
        (1024,),
    ]


REPRODUCE_CPU = sorted(p.stem for p in (Path(CONF_DIR) / "reproduce_cpu").glob("*.yaml"))
#: what `make reproduce-cpu` may shorten; everything else runs as the experiment (the paper) says
CPU_BUDGET_KEYS = {"trainer.max_epochs", "hydra.sweeper.params.seed"}


def _flat(node, prefix: str = "") -> dict:
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(node, DictConfig):
        return {prefix[:-1]: OmegaConf.to_container(node) if OmegaConf.is_config(node) else node}
    out = {}
    for key in node:
        out.update(_flat(node._get_node(key), f"{prefix}{key}."))
    return out


@pytest.mark.parametrize("experiment", REPRODUCE_CPU)
def test_reproduce_cpu_shortens_only_epochs_and_seeds_and_says_so(experiment: str):
    """conf/reproduce_cpu/<experiment>.yaml changes nothing but the CPU budget keys, and its ledger
    entries (printed by the report) are well formed and match what runs."""
    from src.protocol import config_mismatches, missing_quotes, missing_settings, papers_dir, parse

    assert experiment in PAPER_LR or experiment == "centralnet2018_digits"
    # the default row and one that sets its own learning rate and drop probability
    for row in [r for r in swept_rows(experiment) if r.endswith(("/centralnet", "/moddrop"))]:
        paper = compose_experiment(f"experiment={experiment}", f"method={row}")
        cpu = compose_experiment(f"experiment={experiment}", f"method={row}", f"+reproduce_cpu={experiment}")
        keep = ("data", "model", "fusion", "trainer", "callbacks", "monitor")
        before = {k: v for part in keep for k, v in _flat(paper[part], f"{part}.").items()}
        after = {k: v for part in keep for k, v in _flat(cpu[part], f"{part}.").items()}
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        if paper.hydra.sweeper.params.seed != cpu.hydra.sweeper.params.seed:
            changed.add("hydra.sweeper.params.seed")
        assert changed and changed <= CPU_BUDGET_KEYS, (row, changed)
        settings, problems = parse(cpu.protocol)
        problems += missing_settings(settings) + config_mismatches(settings, cpu)
        assert not problems, "\n".join(problems)
        by_name = {s.name: s for s in settings}
        assert by_name["epochs"].ours.startswith("make reproduce-cpu") and by_name["epochs"].quote
        if papers_dir().is_dir():
            assert not missing_quotes(settings)
