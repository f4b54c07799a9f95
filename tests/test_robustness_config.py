"""conf/robustness/: every option composes and validates against the perturbation registry, and the
sweep plan names a bad perturbation, kind, level or modality before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from src.robustness.perturbations import KINDS, PERTURBATIONS
from src.robustness.plan import (
    RobustnessConfigError,
    SweepItem,
    n_evaluations,
    plan_sweep,
    validate_config,
)
from tests.helpers import CONF_DIR

OPTIONS = sorted(p.stem for p in (Path(CONF_DIR) / "robustness").glob("*.yaml"))
ALL_KINDS = {f"m_{kind}": kind for kind in KINDS}  # a checkpoint with one modality of every kind


def compose_robustness(*overrides: str):
    """The ``robustness`` node the CLI will compose (its primary config lists ``robustness: default``)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=None, overrides=list(overrides)).robustness


def curves(plan) -> set[tuple[str, str]]:
    return {(item.modality, item.perturbation) for item in plan.items}


def test_the_group_has_the_options_the_issue_names():
    assert {"default", "missing", "noise", "corruptions", "full"} <= set(OPTIONS)


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_composes_and_validates(option: str):
    cfg = compose_robustness(f"+robustness={option}")
    resolved = validate_config(cfg)
    plan = plan_sweep(cfg, ALL_KINDS)
    assert plan.items and plan.seeds == (0,)
    for item in plan.items:
        assert item.kind in PERTURBATIONS[item.perturbation].kinds and item.levels[0] == 0.0
    assert set(resolved) <= set(KINDS)


def test_default_is_missing_and_noise_and_full_sweeps_every_registered_perturbation():
    plans = {o: plan_sweep(compose_robustness(f"+robustness={o}"), ALL_KINDS) for o in OPTIONS}
    assert curves(plans["default"]) == curves(plans["missing"]) | curves(plans["noise"])
    every_pair = {(f"m_{kind}", name) for name, p in PERTURBATIONS.items() for kind in p.kinds}
    assert curves(plans["full"]) == every_pair
    assert {item.modality for item in plans["default"].items} == set(ALL_KINDS)  # every kind has a default


def test_the_issue_command_line_restricts_the_modalities():
    cfg = compose_robustness("+robustness=missing", "robustness.modalities=[image]")
    plan = plan_sweep(cfg, {"image": "image", "audio": "image"})
    assert {item.modality for item in plan.items} == {"image"}
    assert [i.perturbation for i in plan.items] == ["missing_zeros", "missing_mean"]
    assert plan.items[0].levels == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert n_evaluations(plan) == 2 * 5 + 1  # the clean pass once, then 5 levels per curve


def test_noise_levels_are_the_snr_grid():
    from src.robustness.perturbations import snr_db

    levels = validate_config(compose_robustness("+robustness=noise"))["vector"]["gaussian_noise"]
    assert [round(snr_db(r), 2) for r in levels[1:]] == [20.0, 10.0, 0.0, -10.0]


def test_an_unrequested_modality_without_a_perturbation_is_listed_not_dropped():
    plan = plan_sweep(compose_robustness("+robustness=corruptions"), {"image": "image", "tabular": "vector"})
    assert plan.not_swept == {"tabular": "this robustness option has no perturbation for kind vector"}
    assert {item.modality for item in plan.items} == {"image"}


def test_a_modality_the_model_does_not_read_is_listed_unless_requested():
    """A unimodal baseline's other modality has a flat curve by construction: not swept by default."""
    kinds, unread = {"image": "image", "audio": "audio"}, {"audio": "the unimodal model reads only image"}
    plan = plan_sweep(compose_robustness("+robustness=quick"), kinds, unread)
    assert {item.modality for item in plan.items} == {"image"} and plan.not_swept == unread
    asked = plan_sweep(
        compose_robustness("+robustness=quick", "robustness.modalities=[audio]"), kinds, unread
    )
    assert {item.modality for item in asked.items} == {"audio"} and asked.not_swept == {}


def test_an_ensemble_of_the_original_images_is_not_swept_on_the_views():
    """CentralNet's "Ensemble 2/3 classifiers" (Table 2) read only ``original``: the plan asks the model."""
    from src.models.fusion.ensemble import EnsembleFusion
    from src.robustness.__main__ import model_plan
    from tests.helpers import predictor

    dims = {"original": 4, "view1": 4, "view2": 4}
    hparams = {"modalities": {m: {"kind": "image"} for m in dims}}
    ensemble = predictor(EnsembleFusion, dims, 2, members=["original", "original"])
    plan = model_plan(compose_robustness("+robustness=quick"), hparams, ensemble)
    assert {item.modality for item in plan.items} == {"original"}
    assert plan.not_swept == {m: "EnsembleFusion reads only ['original']" for m in ("view1", "view2")}
    every = model_plan(compose_robustness("+robustness=quick"), hparams, predictor(EnsembleFusion, dims, 2))
    assert {item.modality for item in every.items} == set(dims) and every.not_swept == {}


GOOD = {"modalities": None, "seeds": [0, 1], "perturbations": {"image": {"blur": [0, 1.0]}}}


def bad(**changes) -> dict:
    return {**GOOD, **changes}


@pytest.mark.parametrize(
    "config,message",
    [
        (
            bad(perturbations={"image": {"blurr": [0, 1]}}),
            r"perturbations\.image\.blurr: unknown perturbation 'blurr'.*known perturbations",
        ),
        (
            bad(perturbations={"text": {"blur": [0, 1]}}),
            r"perturbations\.text\.blur: perturbation 'blur' does not apply .* kind text",
        ),
        (bad(perturbations={"graph": {"blur": [0, 1]}}), r"unknown modality kind 'graph'"),
        (bad(perturbations={"image": {"blur": [0.5, 1]}}), r"blur: the first level must be 0"),
        (bad(perturbations={"image": {"blur": [0, 2, 1]}}), r"levels must increase strictly"),
        (bad(perturbations={"image": {"blur": [0]}}), r"at least 2 levels"),
        (bad(perturbations={"image": {"occlusion": [0, 1.5]}}), r"occlusion.*exceeds 1.0"),
        (bad(perturbations={"image": {"blur": [0, "x"]}}), r"levels must be numbers"),
        (bad(perturbations={}), r"robustness.perturbations: expected"),
        (bad(seeds=[]), r"robustness.seeds"),
        (bad(seeds=[-1]), r"robustness.seeds"),
        (bad(modalities="image"), r"robustness.modalities: expected null"),
        ({**GOOD, "modality": ["image"]}, r"unknown keys \['modality'\]"),
    ],
)
def test_bad_configs_name_the_key(config: dict, message: str):
    with pytest.raises(RobustnessConfigError, match=message):
        plan_sweep(config, {"image": "image"})


def test_a_modality_the_checkpoint_lacks_or_that_nothing_applies_to_is_named():
    with pytest.raises(
        RobustnessConfigError, match=r"\['video'\] not among the checkpoint's modalities \['image', 'text'\]"
    ):
        plan_sweep(bad(modalities=["video"]), {"image": "image", "text": "text"})
    with pytest.raises(
        RobustnessConfigError, match=r"'text' \(kind text\): this robustness option has no perturbation"
    ):
        plan_sweep(bad(modalities=["text"]), {"image": "image", "text": "text"})
    with pytest.raises(RobustnessConfigError, match="nothing to sweep"):
        plan_sweep(GOOD, {"text": "text"})
    with pytest.raises(RobustnessConfigError, match="kind 'tabular'"):
        plan_sweep(GOOD, {"image": "tabular"})


def test_plan_items_follow_the_checkpoint_order():
    plan = plan_sweep(
        {"modalities": None, "seeds": [0], "perturbations": {"vector": {"gaussian_noise": [0, 1]}}},
        {"text": "vector", "image": "vector"},
    )
    assert plan.items == (
        SweepItem("text", "vector", "gaussian_noise", (0.0, 1.0)),
        SweepItem("image", "vector", "gaussian_noise", (0.0, 1.0)),
    )
