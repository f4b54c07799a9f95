"""The embedded cross-modal sequence task: its data, that MulT and BPMuLT learn it while one
modality cannot, the configs, and a CLI run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from src.data.synthetic_sequences import SyntheticSequencesDataModule
from src.models.fusion.bpmult import BPMuLTFusion
from src.models.fusion.mult import MulTFusion
from src.spec import ModalitySpec
from src.train import build_model
from tests.helpers import compose_train, fusion_model, predictor, train_cli

SHORT = {"text": (4, 8), "audio": (6, 12), "video": (3, 6)}
DIMS = {"text": 8, "audio": 6, "video": 4}
TINY = {
    "d_model": 16,
    "num_heads": 2,
    "num_layers": 1,
    "self_layers": 1,
    "attn_dropout": 0.0,
    "relu_dropout": 0.0,
    "res_dropout": 0.0,
    "embed_dropout": 0.0,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_synthetic_sequences_follow_the_rule() -> None:
    data = SyntheticSequencesDataModule(n_samples=300, signal=3.0, noise_std=0.0, data_seed=3, batch_size=8)
    assert data.task == "multiclass" and data.spec.num_outputs == 4
    assert data.modalities["audio"] == ModalitySpec("sequence", (20, 6))
    train = data._ensure("train")
    assert abs(len(train) - 180) <= 2 and data.loaded_splits == ["train"]
    lengths = {m: [len(v) for v in train.modalities[m]] for m in DIMS}
    assert min(lengths["audio"]) >= 10 and max(lengths["audio"]) <= 20 and len(set(lengths["audio"])) > 5
    for i in range(20):  # noise-free: the key token is the only non-zero step and encodes the label's bits
        text, audio, label = train.modalities["text"][i], train.modalities["audio"][i], int(train.labels[i])
        assert np.count_nonzero(text.any(1)) == 1 and np.count_nonzero(audio.any(1)) == 1
        text_bit, audio_bit = int(text[text[:, 0] == 3.0][0, 1] > 0), int(audio[audio[:, 0] == 3.0][0, 1] > 0)
        assert label == 2 * text_bit + audio_bit
        assert not train.modalities["video"][i].any()
    batch = next(iter(data.train_dataloader()))
    assert batch["text"].shape[0] == 8 and batch["text_mask"].dtype == torch.bool
    assert (
        batch["text_mask"].sum(1) == torch.tensor([len(train.modalities["text"][i]) for i in batch["index"]])
    ).all()
    with pytest.raises(ValueError, match="data.lengths.video"):
        SyntheticSequencesDataModule(n_samples=50, lengths={"text": (2, 3), "audio": (2, 3), "video": (5, 4)})


class MaxPoolUnimodal(nn.Module):
    """Unimodal baseline that can find a key token: per-step MLP, max over real steps, linear."""

    def __init__(self, modality: str, dim: int, num_outputs: int) -> None:
        super().__init__()
        self.modality = modality
        self.step = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, 32))
        self.out = nn.Linear(32, num_outputs)

    def forward(self, features, masks):
        steps = self.step(features[self.modality]).masked_fill(~masks[self.modality].unsqueeze(-1), -1e4)
        return self.out(steps.max(1).values)


def fit_and_score(model: nn.Module, data: SyntheticSequencesDataModule, epochs: int, lr: float) -> float:
    """Plain training loop (Adam), then accuracy on the validation split."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    modalities = list(DIMS)

    def run(batch):
        fuse = getattr(model, "fuse", model)  # the plain model runs on features through fuse()
        output = fuse({m: batch[m] for m in modalities}, {m: batch[f"{m}_mask"] for m in modalities})
        return output if torch.is_tensor(output) else output.logits

    for _ in range(epochs):
        model.train()
        for batch in data.train_dataloader():
            loss = nn.functional.cross_entropy(run(batch), batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in data.val_dataloader():
            correct += int((run(batch).argmax(1) == batch["labels"]).sum())
            total += len(batch["labels"])
    return correct / total


def test_mult_and_bpmult_need_and_learn_cross_modal_information() -> None:
    """Chance is 25%; one modality carries one of the two label bits, so it cannot exceed ~50%."""
    data = SyntheticSequencesDataModule(n_samples=1200, lengths=SHORT, batch_size=32, data_seed=0)
    torch.manual_seed(0)
    mult = fit_and_score(
        fusion_model(MulTFusion, DIMS, 4, sequences=tuple(DIMS), **TINY), data, epochs=4, lr=3e-3
    )
    torch.manual_seed(0)
    bpmult = predictor(
        BPMuLTFusion,
        DIMS,
        4,
        parallel_len=4,
        parallel_max_len=16,
        parallel_layers=1,
        **TINY,
    )
    bpmult_acc = fit_and_score(bpmult, data, epochs=4, lr=3e-3)
    torch.manual_seed(0)
    unimodal = fit_and_score(MaxPoolUnimodal("text", DIMS["text"], 4), data, epochs=8, lr=3e-3)
    assert mult > 0.85, mult
    assert bpmult_acc > 0.6, bpmult_acc
    assert 0.35 < unimodal < 0.58, unimodal  # learns its own bit, never the other one


@pytest.mark.parametrize("fusion", ["mult", "mult_gmu", "bpmult", "hybrid_early_late"])
def test_fusion_configs_build_on_synthetic_sequences(fusion: str, tmp_path: Path) -> None:
    cfg = compose_train(
        [
            f"fusion={fusion}",
            "data=synthetic_sequences",
            "data.n_samples=60",
            "model.loss.name=cross_entropy",
            "fusion.summary_tokens={text: first}",
            "fusion.kernel_sizes={text: 3, audio: 1, video: 1}",
        ],
        tmp_path,
    )
    data = instantiate(cfg.data)
    model = build_model(cfg, data)
    assert type(model.fusion).__name__ == cfg.fusion._target_.rsplit(".", 1)[1]
    assert model.fusion.summary_tokens["text"] == "first"
    assert model.fusion.projections["text"].conv.kernel_size == (3,)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    model.eval()
    with torch.no_grad():
        assert model(batch).logits.shape == (32, 4)


@pytest.mark.slow  # an end-to-end CLI run (>10 s on 2 cores); the fast suite keeps `make test` under 10 min
def test_cli_trains_mult_on_synthetic_sequences(tmp_path: Path) -> None:
    metrics = train_cli(
        tmp_path / "run",
        "data=synthetic_sequences",
        "fusion=mult_gmu",
        "trainer.max_epochs=1",
        "data.n_samples=160",
        "fusion.d_model=8",
        "fusion.num_heads=2",
        "fusion.num_layers=1",
        "fusion.self_layers=1",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert {"val/acc", "test/acc", "test/f1_macro"} <= set(metrics)
    interpret = np.load(tmp_path / "run" / "interpret_test.npz")
    assert interpret["gates"].shape == (len(interpret["ids"]), 3, 128) and len(interpret["ids"]) > 25
    assert list(interpret["modalities"]) == ["audio", "text", "video"]
