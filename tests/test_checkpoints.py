"""Issue 12, classes 11 and 13: a checkpoint cannot make src.eval or a resume instantiate code
outside the allow-list, and a changed checkpoint is caught by its checksum sidecar."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.callbacks import CHECKPOINT_RUN_CONFIG_KEY
from src.errors import CheckpointError
from src.train import train
from src.utils.checkpoints import read_checkpoint, sidecar_path, upgrade_fusion_config
from tests.helpers import compose_train, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    train(compose_train(["logger=csv", "callbacks.progress_bar=null", "trainer.max_epochs=1"], run))
    return run


def tampered(trained: Path, tmp_path: Path, change) -> Path:
    (best,) = (trained / "checkpoints").glob("epoch_*.ckpt")
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    change(checkpoint)
    path = tmp_path / "tampered.ckpt"
    torch.save(checkpoint, path)  # a file that passes torch's weights-only check
    return path


def test_every_checkpoint_has_a_matching_sidecar(trained):
    checkpoints = sorted((trained / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 2
    for path in checkpoints:
        assert sidecar_path(path).read_text().split() == [
            __import__("hashlib").sha256(path.read_bytes()).hexdigest(),
            path.name,
        ]
        read_checkpoint(path, CHECKPOINT_RUN_CONFIG_KEY)


def test_a_bit_flip_is_refused(trained, tmp_path):
    (best,) = (trained / "checkpoints").glob("epoch_*.ckpt")
    copy = tmp_path / best.name
    data = bytearray(best.read_bytes())
    data[len(data) // 2] ^= 0x10
    copy.write_bytes(bytes(data))
    sidecar_path(copy).write_bytes(sidecar_path(best).read_bytes())
    with pytest.raises(CheckpointError, match=rf"{copy}: sha256 [0-9a-f]+ does not match its sidecar"):
        read_checkpoint(copy, CHECKPOINT_RUN_CONFIG_KEY)


@pytest.mark.parametrize(
    ("change", "key", "target"),
    [
        (
            lambda c: c[CHECKPOINT_RUN_CONFIG_KEY].update(
                data={"_target_": "numpy.savetxt", "fname": "x", "X": [1]}
            ),
            "mmfusion_run_config.data._target_",
            "numpy.savetxt",
        ),
        (
            lambda c: c[CHECKPOINT_RUN_CONFIG_KEY]["model"].update(_target_="subprocess.Popen"),
            "mmfusion_run_config.model._target_",
            "subprocess.Popen",
        ),
        (
            lambda c: c["hyper_parameters"]["encoders"].update(
                view1={"_target_": "logging.FileHandler", "filename": "x"}
            ),
            "hyper_parameters.encoders.view1._target_",
            "logging.FileHandler",
        ),
        (
            lambda c: c["hyper_parameters"]["optimizer"].update(_target_="os.getcwd"),
            "hyper_parameters.optimizer._target_",
            "os.getcwd",
        ),
        (
            lambda c: c["hyper_parameters"]["fusion"].update(_target_="src.data.prepare.download"),
            "hyper_parameters.fusion._target_",
            "src.data.prepare.download",
        ),
    ],
    ids=["data_savetxt", "model_popen", "encoder_filehandler", "optimizer_getcwd", "project_function"],
)
def test_targets_outside_the_allow_list_are_refused(trained, tmp_path, change, key, target):
    path = tampered(trained, tmp_path, change)
    with pytest.raises(CheckpointError, match=rf"{key}='{target}' is not on the allow-list"):
        read_checkpoint(path, CHECKPOINT_RUN_CONFIG_KEY)


def test_eval_and_resume_refuse_a_checkpoint_that_would_write_a_file(trained, tmp_path):
    """Before: src.eval called numpy.savetxt from the stored config and wrote the file."""
    marker = tmp_path / "written.txt"
    config = {"_target_": "numpy.savetxt", "fname": str(marker), "X": [1, 2, 3]}
    path = tampered(trained, tmp_path, lambda c: c[CHECKPOINT_RUN_CONFIG_KEY].update(data=config))
    proc = run_cli("src.eval", [f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'eval'}"])
    assert proc.returncode == 2 and "'numpy.savetxt' is not on the allow-list" in proc.stdout + proc.stderr
    with pytest.raises(CheckpointError, match="numpy.savetxt"):
        train(compose_train([f"ckpt_path={path}", "trainer.max_epochs=2"], tmp_path / "resumed"))
    assert not marker.exists() and not (tmp_path / "resumed").exists()


GMU = {"_target_": "src.models.fusion.gmu.GMUFusion", "hidden_dim": 6}
MODDROP = {"_target_": "src.models.fusion.concat.ConcatFusion", "moddrop_p": 0.25}
UNIMODAL = {"_target_": "src.models.fusion.unimodal.UnimodalFusion", "modality": "a"}
FGMU = {"_target_": "src.models.fusion.fgmu.FGMUFusion", "hidden_dim": 6}


def _module(seed: int, fusion: dict | None = None):
    from src.models.module import FusionClassifier

    torch.manual_seed(seed)
    return FusionClassifier(
        task="multiclass",
        num_outputs=3,
        class_names=["0", "1", "2"],
        modalities={"a": {"shape": [4], "kind": "vector"}, "b": {"shape": [5], "kind": "vector"}},
        fusion=fusion or GMU,
        head={"name": "linear"},
        loss={"name": "cross_entropy"},
        optimizer={"_target_": "torch.optim.SGD", "lr": 0.1},
    )


def _old_key(key: str, layout: str, fusion: dict) -> str:
    """Today's state-dict ``key`` as the layout wrote it: ``main`` (6bb1695: ``encoders.*``, ``fusion.*``,
    the head inside the fusion, ModDrop's fusion in ``fusion.inner``) or ``integrate`` (the same under
    ``model.``); FGMU's unit was ``fusion.fgmu``."""
    if key.startswith("model.head."):  # a fusion layer's head lived in the fusion
        key = "model.fusion.head." + key.removeprefix("model.head.")
    if fusion is MODDROP and key.startswith("model.fusion."):
        key = "model.fusion.inner." + key.removeprefix("model.fusion.")
    if fusion is FGMU and key.startswith("model.fusion.gmu."):  # FGMUFusion's unit was ``fgmu``
        key = "model.fusion.fgmu." + key.removeprefix("model.fusion.gmu.")
    return key.removeprefix("model.") if layout == "main" else key


def test_the_old_moddrop_wrapper_config_builds_todays_moddrop(tmp_path: Path):
    """6bb1695's ``fusion=moddrop`` hyper-parameters (the CentralNet tables' ModDrop checkpoints of
    make reproduce-cpu): a ModDropFusion wrapper with ``p`` and ``inner``; today the inner fusion with
    ``moddrop_p``, and the checkpoint saves that form."""
    old = {
        "_target_": "src.models.fusion.moddrop.ModDropFusion",
        "p": 0.25,
        "inner": {"_target_": "src.models.fusion.concat.ConcatFusion"},
        "modality_order": None,
    }
    assert upgrade_fusion_config(old) == MODDROP
    assert upgrade_fusion_config({**old, "modality_order": ["b", "a"]})["modality_order"] == ["b", "a"]
    assert upgrade_fusion_config(GMU) == GMU
    upgraded, today = _module(0, old), _module(0, MODDROP)
    assert upgraded.hparams.fusion == MODDROP and upgraded.model.modality_dropout.p == 0.25
    batch = {"a": torch.randn(2, 4), "b": torch.randn(2, 5)}
    upgraded.eval(), today.eval()
    assert torch.equal(upgraded(batch).logits, today(batch).logits)
    path = tmp_path / "old.ckpt"  # the allow-list sees today's form, not the class that is gone
    run_config = {"fusion": old, "model": {"fusion": old}}
    stored = {"state_dict": {}, "hyper_parameters": {"fusion": old}, CHECKPOINT_RUN_CONFIG_KEY: run_config}
    torch.save(stored, path)
    checkpoint, _ = read_checkpoint(path, CHECKPOINT_RUN_CONFIG_KEY)
    run_config = checkpoint[CHECKPOINT_RUN_CONFIG_KEY]
    assert (
        checkpoint["hyper_parameters"]["fusion"]
        == run_config["fusion"]
        == run_config["model"]["fusion"]
        == MODDROP
    )


@pytest.mark.parametrize("layout", ["main", "integrate"])
@pytest.mark.parametrize("fusion", [GMU, FGMU, MODDROP, UNIMODAL], ids=["gmu", "fgmu", "moddrop", "unimodal"])
def test_checkpoints_of_earlier_layouts_load_with_equal_outputs(layout, fusion):
    """Checkpoints written before the plain model (``encoders.*`` / ``fusion.*``) and before the head
    left the fusion (``model.fusion.head.*``, ModDrop's ``model.fusion.inner.*``) are renamed on load; a
    predictor's own ``head`` stays where it is."""
    trained, fresh = _module(0, fusion), _module(1, fusion)
    old_layout = {_old_key(k, layout, fusion): v for k, v in trained.state_dict().items()}
    assert old_layout.keys() != trained.state_dict().keys() or fusion is UNIMODAL and layout == "integrate"
    if fusion is GMU:
        head = "fusion.head.0.weight" if layout == "main" else "model.fusion.head.0.weight"
        assert head in old_layout and "model.head.0.weight" in trained.state_dict()
    if fusion is UNIMODAL:
        assert "model.fusion.head.0.weight" in trained.state_dict()  # a predictor's head: not moved
    checkpoint = {"state_dict": old_layout}
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])  # strict: every key found, none left over
    batch = {"a": torch.randn(2, 4), "b": torch.randn(2, 5)}
    trained.eval(), fresh.eval()
    assert torch.equal(fresh(batch).logits, trained(batch).logits)
