"""The plain model (src/models/model.py): built from a config and a DatasetSpec, run on a batch, no Lightning."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.data.synthetic_sequences import SyntheticSequencesDataModule
from src.models.model import MultimodalModel, build_model
from src.spec import DatasetSpec, ModalitySpec
from tests.helpers import compose_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_default_config_builds_a_plain_model_that_runs_a_batch(tmp_path) -> None:
    cfg = compose_train([], tmp_path)
    data = instantiate(cfg.data)
    plain = OmegaConf.to_container(cfg.model, resolve=True)
    torch.manual_seed(0)
    model = build_model(data.spec, plain["fusion"], plain["head"], plain.get("encoders"))
    assert isinstance(model, MultimodalModel) and not hasattr(model, "trainer")
    batch = next(iter(data._loader("train", shuffle=False)))
    out = model(batch)
    assert out.logits.shape == (len(batch["labels"]), data.spec.num_outputs)
    assert list(model.encoders) == list(data.spec.modalities)


def test_sequences_are_pooled_with_their_mask_for_a_vector_fusion() -> None:
    spec = DatasetSpec(
        "tiny",
        "multiclass",
        ("a", "b"),
        {"s": ModalitySpec("sequence", (3, 2)), "v": ModalitySpec("vector", (2,))},
    )
    model = build_model(spec, {"_target_": "src.models.fusion.concat.ConcatFusion"}, {"name": "linear"})
    seen = {}
    model.fusion.register_forward_pre_hook(lambda m, args: seen.update(args[0]))
    batch = {
        "s": torch.tensor([[[1.0, 2.0], [3.0, 4.0], [float("nan"), 9.0]]]),
        "s_mask": torch.tensor([[True, True, False]]),
        "v": torch.tensor([[5.0, 6.0]]),
    }
    model(batch)
    torch.testing.assert_close(seen["s"], torch.tensor([[2.0, 3.0]]))  # the padded step is not counted
    with pytest.raises(ValueError, match=r"names modalities \['x'\] that the dataset lacks"):
        build_model(
            spec, {"_target_": "src.models.fusion.concat.ConcatFusion"}, {"name": "linear"}, {"x": None}
        )


def test_synthetic_sequences_spec_builds_mult() -> None:
    data = SyntheticSequencesDataModule(n_samples=40, batch_size=4)
    model = build_model(
        data.spec,
        {
            "_target_": "src.models.fusion.mult.MulTFusion",
            "d_model": 8,
            "num_heads": 2,
            "num_layers": 1,
            "self_layers": 1,
        },
        {"name": "linear"},
    )
    batch = next(iter(data._loader("train", shuffle=False)))
    assert model(batch).logits.shape == (4, 4)
