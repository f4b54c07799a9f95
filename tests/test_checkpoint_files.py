"""The checkpoints a run writes: the selected epoch and last.ckpt, one file on disk when they are the
same epoch (src.callbacks.SelectedCheckpoint), each with its own matching sidecar, and a resume from a
hard-linked last.ckpt is accepted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from src.callbacks import SelectedCheckpoint
from src.utils.checkpoints import ChecksummedCheckpointIO, sidecar_path
from src.utils.run_dir import _prepare_resume

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ScriptedScore(L.LightningModule):
    """A linear layer whose validation score per epoch is given (what the monitor sees)."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = scores
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/score", self.scores[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path: Path, scores: list[float], ckpt_path: Path | None = None) -> Path:
    data = DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2)
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=len(scores),
        callbacks=[
            SelectedCheckpoint(
                dirpath=tmp_path / "checkpoints",
                filename="epoch_{epoch:03d}",
                monitor="val/score",
                mode="max",
                auto_insert_metric_name=False,
            )
        ],
        plugins=[ChecksummedCheckpointIO()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(ScriptedScore(scores), train_dataloaders=data, val_dataloaders=data, ckpt_path=ckpt_path)
    return tmp_path / "checkpoints"


def assert_sidecars_match(folder: Path) -> None:
    for path in folder.glob("*.ckpt"):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert sidecar_path(path).read_text().split() == [digest, path.name]


def test_last_is_a_link_of_the_selected_epoch_when_it_is_the_newest(tmp_path):
    folder = fit(tmp_path, [0.1, 0.2, 0.3])
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["epoch_002.ckpt", "last.ckpt"]
    assert (folder / "last.ckpt").samefile(folder / "epoch_002.ckpt")  # one file on disk
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 2
    assert_sidecars_match(folder)


def test_last_is_its_own_file_when_an_older_epoch_is_selected(tmp_path):
    folder = fit(tmp_path, [0.3, 0.2, 0.1])
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["epoch_000.ckpt", "last.ckpt"]
    assert not (folder / "last.ckpt").samefile(folder / "epoch_000.ckpt")
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 2
    assert torch.load(folder / "epoch_000.ckpt", weights_only=True)["epoch"] == 0
    assert_sidecars_match(folder)


def test_replacing_a_linked_last_leaves_the_selected_file_intact(tmp_path):
    """Epoch 1 is selected (last links to it); epoch 2 does not improve, so last.ckpt is written anew
    and the selected file keeps epoch 1's bytes."""
    folder = fit(tmp_path, [0.1, 0.3, 0.2])
    assert torch.load(folder / "epoch_001.ckpt", weights_only=True)["epoch"] == 1
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 2
    assert_sidecars_match(folder)


def test_resuming_from_a_linked_last_is_accepted_and_continues(tmp_path):
    folder = fit(tmp_path, [0.1, 0.2])
    assert (folder / "last.ckpt").samefile(folder / "epoch_001.ckpt")
    _prepare_resume(tmp_path, folder / "last.ckpt", 1, ignore=())  # either name is the newest
    fit(tmp_path, [0.1, 0.2, 0.3, 0.4], ckpt_path=folder / "last.ckpt")
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["epoch_003.ckpt", "last.ckpt"]
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 3


def test_save_last_is_refused():
    with pytest.raises(ValueError, match="writes last.ckpt itself"):
        SelectedCheckpoint(save_last=True)


def _with_pretrained_image(weights: Path, seed: int = 0):
    """A module whose image encoder is a frozen timm backbone loaded from ``weights`` (a file, as a
    user's pretrained weights are) and whose vector encoder and fusion are trained."""
    from src.models.module import FusionClassifier

    torch.manual_seed(seed)
    return FusionClassifier(
        task="multiclass",
        num_outputs=2,
        class_names=["0", "1"],
        modalities={"image": {"shape": [3, 32, 32], "kind": "image"}, "b": {"shape": [5], "kind": "vector"}},
        encoders={
            "image": {
                "_target_": "src.models.encoders.image.TimmEncoder",
                "model_name": "test_efficientnet",
                "pretrained": True,
                "weights": str(weights),
                "trainable_stages": 0,
                "resize": False,
            },
            "b": {"_target_": "src.models.encoders.base.MLPEncoder", "hidden_dims": [4]},
        },
        fusion={"_target_": "src.models.fusion.concat.ConcatFusion"},
        head={"name": "linear"},
        loss={"name": "cross_entropy"},
        optimizer={"_target_": "torch.optim.SGD", "lr": 0.1},
    )


@pytest.fixture
def backbone_file(tmp_path: Path) -> Path:
    import timm

    torch.manual_seed(0)
    path = tmp_path / "backbone.pth"
    torch.save(timm.create_model("test_efficientnet").state_dict(), path)  # as published, with its classifier
    return path


def test_frozen_pretrained_weights_are_referenced_not_stored_and_reload_identically(backbone_file, tmp_path):
    from src.models.module import REFERENCED_WEIGHTS_KEY, FusionClassifier

    trained = _with_pretrained_image(backbone_file)
    backbone_keys = {f"model.encoders.image.{k}" for k in trained.encoders["image"].state_dict()}
    assert backbone_keys and trained.referenced_weights.keys() == {"image"}
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.strategy.connect(trained)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert not backbone_keys & checkpoint["state_dict"].keys()  # the backbone is not in the file
    assert any(k.startswith("model.encoders.b.") for k in checkpoint["state_dict"])  # what was trained is
    reference = checkpoint[REFERENCED_WEIGHTS_KEY]["image"]
    assert reference["sha256"] == trained.referenced_weights["image"]
    assert reference["provenance"]["model"] == "test_efficientnet"

    loaded = FusionClassifier.load_from_checkpoint(path, weights_only=True)  # strict: every key found
    batch = {"image": torch.rand(2, 3, 32, 32), "b": torch.randn(2, 5)}
    trained.eval(), loaded.eval()
    assert torch.equal(loaded(batch).logits, trained(batch).logits)


def test_a_checkpoint_whose_referenced_weights_changed_is_refused(backbone_file, tmp_path):
    from src.errors import CheckpointError

    trained = _with_pretrained_image(backbone_file)
    checkpoint = {"state_dict": trained.state_dict()}
    trained.on_save_checkpoint(checkpoint)
    state = torch.load(backbone_file, weights_only=True)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + 1.0  # the file now holds other weights
    torch.save(state, backbone_file)
    with pytest.raises(CheckpointError, match="model.encoders.image.*install or point at the same"):
        _with_pretrained_image(backbone_file).on_load_checkpoint(checkpoint)


def test_a_run_config_of_the_data_frozen_era_is_upgraded():
    """Checkpoints of 6bb1695 (make reproduce-cpu's CentralNet tables) name data.frozen and
    data.feature_cache_dir, which the DataModules no longer take."""
    from src.errors import CheckpointError
    from src.eval import upgrade_run_config

    mlp = {"_target_": "src.models.encoders.base.MLPEncoder", "hidden_dims": [8]}
    old = {
        "data": {"_target_": "x", "frozen": {"image": mlp}, "feature_cache_dir": "/c"},
        "model": {"encoders": {"text": {"a": 1}}},
    }
    assert upgrade_run_config(old) == {
        "data": {"_target_": "x"},
        "features": {"cache_dir": "/c"},
        "model": {"encoders": {"text": {"a": 1}, "image": {**mlp, "precompute": True}}},
    }
    assert upgrade_run_config({"data": {"frozen": {}}, "model": {}}) == {"data": {}, "model": {}}
    today = {"data": {"_target_": "x"}, "model": {}}
    assert upgrade_run_config(today) is today
    with pytest.raises(CheckpointError, match="a.ckpt: data.text_features='hashing'.*train the model again"):
        upgrade_run_config({"data": {"text_features": "hashing", "hashing_features": 4096}}, "a.ckpt")
