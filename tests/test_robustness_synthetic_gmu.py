"""What a GMU's gate does when one modality degrades, on the GMU paper's synthetic task (Arevalo et
al. 2017, Sec. 5.1), where the modality carrying the class is known per sample (the latent M: M = 1,
the visual input x_v carries C; M = 0, the textual x_t does).

Ten one-unit GMUs (seeds 0-9, ``orthogonal`` layout, trained by the batched full-batch loop of
``src/experiments/synthetic_gmu.py``, 300 steps) are swept with ``robustness=default`` (missing and
Gaussian noise) on each modality through :func:`perturb_batch`; the gates go through
:func:`mean_gate_rows` with M as the class. What the sweep shows (numbers in docs/robustness.md):

* noise on x_v: on the samples whose class x_v carries (M = 1) the mean gate on x_v falls
  monotonically with the noise (about 0.98 -> 0.89 at -10 dB), but on the others it rises: the gate
  loses its selectivity rather than moving to the clean modality, and its overall mean on the noisy
  x_v goes *up*. The same holds mirrored for noise on x_t;
* x_v missing as zeros looks like an informative x_v (0 lies between the class means, far from the
  noise cluster): the gate on it rises, and accuracy on M = 1 falls to chance;
* x_v missing as its training mean keeps the gate tracking M through x_t alone, so the gate still
  trusts the blank x_v where it used to carry the class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from src.experiments.synthetic_gmu import SyntheticSetup, draw_experiments, train_gmus
from src.robustness.gates import mean_gate_rows
from src.robustness.perturbations import perturb_batch
from src.robustness.plan import plan_sweep
from src.robustness.results import CurvePoint, plot_curves, read_json, summary_rows, write_csv, write_json
from tests.helpers import CONF_DIR

SEEDS = list(range(10))
SETUP = SyntheticSetup(max_steps=300)
MODALITIES = ["image", "text"]  # x_v, x_t: the modality names of data=synthetic_gmu
LATENT = ["M=0", "M=1"]  # the class names given to mean_gate_rows: which modality carries C


@pytest.fixture(scope="module")
def sweep() -> dict:
    """Points and gate rows of every experiment under robustness=default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = draw_experiments(SEEDS, SETUP)
        model = train_gmus(data, SETUP).model
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            config = compose(config_name=None, overrides=["+robustness=default"]).robustness
        plan = plan_sweep(config, {"image": "vector", "text": "vector"})
        points, rows = {}, []
        for e, experiment in enumerate(SEEDS):
            test, train = np.flatnonzero(data.masks["test"][e]), data.masks["train"][e]
            batch = {
                "image": torch.as_tensor(data.x_v[e, test]),
                "text": torch.as_tensor(data.x_t[e, test]),
                "index": torch.as_tensor(test),
            }
            means = {
                "image": torch.as_tensor(data.x_v[e, train].mean(0)),
                "text": torch.as_tensor(data.x_t[e, train].mean(0)),
            }
            points[experiment] = []
            for item in plan.items:
                gates_by_level = {}
                for level in item.levels:
                    for seed in plan.seeds:
                        b = perturb_batch(
                            batch,
                            item.modality,
                            item.kind,
                            item.perturbation,
                            level,
                            seed,
                            means[item.modality],
                        )
                        with torch.no_grad():
                            logits, z = model(
                                torch.cat([b["image"], b["text"]], -1).double()[None], torch.tensor([e])
                            )
                        accuracy = float(((logits[0] > 0).numpy() == data.c[e, test].astype(bool)).mean())
                        points[experiment].append(
                            CurvePoint(item.modality, item.perturbation, level, seed, {"test/acc": accuracy})
                        )
                        gates_by_level[level] = torch.stack([z[0], 1 - z[0]], dim=1).numpy()  # (N, K=2, H=1)
                rows += mean_gate_rows(
                    gates_by_level,
                    MODALITIES,
                    LATENT,
                    labels=data.m[e, test].astype(np.int64),
                    context={
                        "experiment": experiment,
                        "perturbed": item.modality,
                        "perturbation": item.perturbation,
                    },
                )
        return {"plan": plan, "points": points, "rows": rows}
    finally:
        torch.set_num_threads(threads)


def gate(
    rows, perturbed: str, perturbation: str, on: str, group: str = "label", name: str = "M=1"
) -> np.ndarray:
    """(experiments, levels) mean gate on modality ``on`` of one group of samples."""
    chosen = [
        r
        for r in rows
        if (r["perturbed"], r["perturbation"], r["group"], r["class"])
        == (perturbed, perturbation, group, name)
    ]
    return np.array([[r[on] for r in chosen if r["experiment"] == e] for e in SEEDS])


def test_the_sweep_is_robustness_default_on_both_modalities(sweep):
    curves = {(i.modality, i.perturbation) for i in sweep["plan"].items}
    assert curves == {(m, p) for m in MODALITIES for p in ("missing_zeros", "missing_mean", "gaussian_noise")}


def test_noise_on_a_modality_lowers_its_gate_where_it_carried_the_class(sweep):
    rows = sweep["rows"]
    for noisy, carrier, other in (("image", "M=1", "M=0"), ("text", "M=0", "M=1")):
        where_it_carried = gate(rows, noisy, "gaussian_noise", noisy, name=carrier)  # (10, 5 levels)
        elsewhere = gate(rows, noisy, "gaussian_noise", noisy, name=other)
        assert (where_it_carried[:, 0] > 0.9).all(), where_it_carried[:, 0]  # the clean gate finds M
        mean = where_it_carried.mean(0)
        assert (np.diff(mean) < 0).all() and mean[0] - mean[-1] > 0.05, mean  # falls with the noise
        assert (where_it_carried[:, -1] < where_it_carried[:, 0] - 0.02).all(), (
            where_it_carried
        )  # in every experiment
        # ... but it rises on the other samples: the gate loses its selectivity, it does not move to the
        # clean modality, and its overall mean on the noisy modality goes up
        assert (np.diff(elsewhere.mean(0)) > 0).all(), elsewhere.mean(0)
        overall = gate(rows, noisy, "gaussian_noise", noisy, group="all", name="all").mean(0)
        assert overall[-1] > overall[0], overall


def test_what_the_gate_does_when_the_visual_input_is_missing(sweep):
    rows = sweep["rows"]
    zeros_all = gate(rows, "image", "missing_zeros", "image", group="all", name="all").mean(0)
    assert zeros_all[-1] > zeros_all[0] + 0.1, zeros_all  # zeros look like an informative x_v
    mean_m1 = gate(rows, "image", "missing_mean", "image", name="M=1").mean(0)
    mean_m0 = gate(rows, "image", "missing_mean", "image", name="M=0").mean(0)
    assert mean_m1[-1] - mean_m0[-1] > 0.6, (mean_m1, mean_m0)  # the gate still tracks M, through x_t
    accuracy = {
        p: np.mean(
            [
                [
                    pt.metrics["test/acc"]
                    for pt in sweep["points"][e]
                    if (pt.modality, pt.perturbation) == ("image", p)
                ]
                for e in SEEDS
            ],
            0,
        )
        for p in ("missing_zeros", "missing_mean")
    }
    for p, curve in accuracy.items():  # half the samples lose their class signal: accuracy -> ~0.75
        assert curve[0] > 0.93 and 0.6 < curve[-1] < 0.8, (p, curve)


def test_the_sweep_writes_its_artifacts(sweep, tmp_path: Path):
    points = sweep["points"][0]
    summary = summary_rows(points, "test/acc")
    rows = [r for r in sweep["rows"] if r["experiment"] == 0]
    write_json(tmp_path / "robustness.json", points, summary, rows, meta={"experiment": 0})
    write_csv(tmp_path / "robustness.csv", points)
    plot_curves(tmp_path / "robustness_test_acc.png", points, "test/acc")
    back, document = read_json(tmp_path / "robustness.json")
    assert back == points and len(document["gates"]) == len(rows)
    by_curve = {(r["modality"], r["perturbation"]): r for r in document["summary"]}
    assert by_curve[("image", "gaussian_noise")]["relative_robustness"] < 1.0
    assert (
        by_curve[("image", "gaussian_noise")]["clean"] == by_curve[("text", "missing_zeros")]["clean"]
    )  # level 0 is one clean pass
