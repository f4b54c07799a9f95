"""Issue 19: ``model.compile`` gives the eager outputs and gradients and keeps checkpoints loadable by
an eager model; ``model.channels_last`` keeps the values (src/models/acceleration.py).

Measured on the shared 2-core machine (one thread): inductor compiles GMU's forward in ~30 s and
MulT's in ~240 s, so the inductor comparisons are ``slow``; the fast ones use the ``aot_eager``
backend (TorchDynamo capture and AOTAutograd, no C++ code generation), which exercises the same
in-place compilation, graph breaks and checkpoint path (MulT's takes 20-85 s there: slow too)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from src.eval import evaluate
from src.models.acceleration import channels_last_batch, compile_options
from src.models.module import FusionClassifier
from src.train import build_model, resolve_data_dependent, train
from tests.helpers import compose_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VECTOR = ["data=digits", "fusion=gmu"]
SEQUENCE = [
    "data=synthetic_sequences",
    "data.n_samples=60",
    "fusion=mult",
    "fusion.d_model=8",
    "fusion.num_heads=2",
    "fusion.num_layers=2",
    "fusion.self_layers=1",
]


def _model_and_batch(overrides: list[str], tmp_path: Path):
    cfg = compose_train(overrides, tmp_path)
    datamodule = instantiate(cfg.data)
    resolve_data_dependent(cfg, datamodule)
    datamodule.setup("fit")
    torch.manual_seed(0)
    return build_model(cfg, datamodule).eval(), next(iter(datamodule.val_dataloader()))


def _outputs_and_grads(model: FusionClassifier, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    output = model(batch)
    loss, _ = model._loss(output, batch["labels"])
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return output.logits.detach(), grads


def _check_compiled_equals_eager(overrides: list[str], backend: str | None, tmp_path: Path) -> None:
    model, batch = _model_and_batch(overrides, tmp_path)
    eager_logits, eager_grads = _outputs_and_grads(model, batch)
    model._compile = compile_options({"backend": backend} if backend else True)
    model.configure_model()
    keys = list(model.state_dict())
    logits, grads = _outputs_and_grads(model, batch)
    torch.testing.assert_close(logits, eager_logits, rtol=1e-4, atol=1e-5)
    assert grads.keys() == eager_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], rtol=1e-4, atol=1e-5, msg=name)
    assert not any("_orig_mod" in k for k in keys)
    assert all(
        getattr(m, "_compiled_call_impl", None) is not None for m in [*model.encoders.values(), model.fusion]
    )


@pytest.mark.parametrize(
    "overrides", [VECTOR, pytest.param(SEQUENCE, marks=pytest.mark.slow)], ids=["gmu", "mult"]
)
def test_compiled_fusion_equals_eager_aot_eager(overrides, tmp_path):
    _check_compiled_equals_eager(overrides, "aot_eager", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [VECTOR, SEQUENCE], ids=["gmu", "mult"])
def test_compiled_fusion_equals_eager_inductor(overrides, tmp_path):
    _check_compiled_equals_eager(overrides, None, tmp_path)


def test_compiled_run_checkpoints_load_into_eager_models(tmp_path):
    """A run trained with model.compile: its checkpoint has the eager parameter names, loads with
    load_from_checkpoint and through src.eval, and gives the run's test metrics again."""
    overrides = [
        *VECTOR,
        "trainer.max_epochs=1",
        "logger=csv",
        "callbacks.progress_bar=null",
        "model.compile={backend: aot_eager}",
    ]
    metrics = train(compose_train(overrides, tmp_path / "run"))
    best = next((tmp_path / "run" / "checkpoints").glob("epoch*.ckpt"))
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    assert state and not any("_orig_mod" in k for k in state)
    model = FusionClassifier.load_from_checkpoint(io.BytesIO(best.read_bytes()), weights_only=True)
    assert model.hparams.compile == {"backend": "aot_eager"}
    eager, _ = _model_and_batch(VECTOR, tmp_path / "eager")
    assert set(model.state_dict()) == set(eager.state_dict())
    tested = evaluate(compose_train([f"ckpt_path={best}"], tmp_path / "eval", config_name="eval"))
    assert tested["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)


def test_compile_options_and_channels_last_batches():
    assert compile_options(False) is None and compile_options(None) is None
    assert compile_options(True) == {}
    assert compile_options({"mode": "max-autotune"}) == {"mode": "max-autotune"}
    with pytest.raises(ValueError, match="model.compile"):
        compile_options("fast")
    images = torch.rand(2, 3, 4, 5)
    batch = channels_last_batch(
        {"image": images, "ids": ["a", "b"], "labels": torch.zeros(2, 1, 1, 1).long()}
    )
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch["image"], images) and batch["ids"] == ["a", "b"]
    assert batch["labels"].is_contiguous()


def test_channels_last_gives_the_default_layouts_outputs_and_gradients(tmp_path):
    """CentralNet's conv trunks (Table 1) on the digits' 8x8 views: channels_last changes the
    memory layout of the conv weights and image batches, not the outputs or gradients."""
    model, batch = _model_and_batch(["experiment=centralnet2018_digits"], tmp_path)
    logits, grads = _outputs_and_grads(model, batch)
    model.hparams.channels_last = True
    model.configure_model()
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    last_logits, last_grads = _outputs_and_grads(model, batch)
    torch.testing.assert_close(last_logits, logits, rtol=1e-4, atol=1e-5)
    for name, grad in last_grads.items():
        torch.testing.assert_close(grad, grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_channels_last_trains_through_the_cli_config(tmp_path):
    overrides = ["experiment=centralnet2018_digits", "trainer.max_epochs=1", "logger=none", "callbacks=none"]
    metrics = train(compose_train([*overrides, "model.channels_last=true"], tmp_path))
    assert metrics["test/acc"] > 0.5  # 10 classes: chance is 0.1
