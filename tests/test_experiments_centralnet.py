"""CentralNet's Table 2 (multimodal MNIST, and its digits version) and Table 4 (audio-visual MNIST)
as experiments: every swept row composes into the paper's row, and a whole rows x seeds sweep runs
through the CLI and into the report, on the embedded digits and on files in the real MNIST/FSDD formats.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

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


@pytest.mark.parametrize("experiment", ["centralnet2018_mmnist", "centralnet2018_avmnist"])
def test_every_swept_row_is_a_row_of_the_papers_table(experiment: str):
    rows = swept_rows(experiment)
    assert len(rows) == len(set(rows))
    table = None
    for row in rows:
        cfg = compose_experiment(f"experiment={experiment}", f"method={row}")
        table = PAPER_TABLES[cfg.paper_table]
        assert cfg.method_name == row.rsplit("/", 1)[1]
        assert cfg.method_name in table["rows"], (experiment, row)
        get_class(cfg.fusion._target_)  # the row's fusion exists
        assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.data.batch_size in (64, 128)
    # every row of the paper's table is swept
    assert {row.rsplit("/", 1)[1] for row in rows} == set(table["rows"])


def test_digits_version_sweeps_the_mnist_rows_on_digits():
    assert swept_rows("centralnet2018_digits") == swept_rows("centralnet2018_mmnist")
    cfg = compose_experiment("experiment=centralnet2018_digits")
    assert (
        cfg.data._target_.endswith("DigitsDataModule") and cfg.paper_table == "centralnet2018_mmnist_table2"
    )


def test_mnist_rows_use_lenet_trunks_or_their_own_conv_stages():
    lenet = compose_experiment("experiment=centralnet2018_mmnist", "method=centralnet2018_mnist/gmu")
    assert lenet.model.encoders.view1.channels == [6, 16] and lenet.model.encoders.view1.fc_dims == [120, 84]
    own = compose_experiment("experiment=centralnet2018_mmnist", "method=centralnet2018_mnist/centralnet")
    assert own.model.encoders.view1._target_.endswith("IdentityEncoder")
    assert own.fusion.conv_channels == [6, 16] and own.fusion.hidden_dims == [120, 84]
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
        f"data.fsdd_root={tmp_path / 'fsdd'}",
        "data.freq_bins=28",
        "data.time_frames=28",
    )
    check_report(rows, "centralnet2018_avmnist", 1)


def test_fused_rows_and_trunk_rows_share_the_lenet_architecture():
    """Table 2's conv-stage rows (layer fusion, CentralNet) use the same network as the lenet trunk rows."""
    import torch
    from hydra.utils import instantiate

    from src.models.fusion.branches import build_stages

    trunk_cfg = compose_experiment("experiment=centralnet2018_mmnist", "method=centralnet2018_mnist/gmu")
    trunk = instantiate(trunk_cfg.model.encoders.view1, input_shape=[1, 28, 28], kind="image")
    fused = compose_experiment(
        "experiment=centralnet2018_mmnist", "method=centralnet2018_mnist/centralnet"
    ).fusion
    stages, shapes = build_stages(
        (1, 28, 28), fused.conv_channels, fused.hidden_dims, 10, True, fused.dropout, fused.conv_kernel
    )
    assert shapes[-2] == (trunk.out_dim,) == (84,)
    stage_params = sum(p.numel() for stage in stages[:-1] for p in stage.parameters())
    assert stage_params == sum(p.numel() for p in trunk.parameters())
    kinds = [type(m).__name__ for stage in stages[:-1] for m in stage if type(m).__name__ != "Flatten"]
    trunk_kinds = [type(m).__name__ for m in [*trunk.features, *trunk.head]]
    assert kinds == trunk_kinds
    assert stages[0](torch.zeros(2, 1, 28, 28)).shape == (2, 6, 14, 14)
