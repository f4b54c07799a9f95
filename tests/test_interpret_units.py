"""Figure 8's unit selection (GMU paper, Sec. 5.2): "The units were chosen taking into account the mutual
information between the predictions and the z activations"."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from src.interpret import (
    gate_mutual_information,
    gate_shares,
    gate_states,
    select_gate_units,
    write_interpretability,
)


def two_unit_gates() -> tuple[np.ndarray, np.ndarray]:
    """Unit 0's z follows the prediction of class x (0.9 when predicted, 0.3 otherwise); unit 1 is
    strongly textual (z = 0.05) for every sample, whatever is predicted."""
    predicted = np.array([[1, 0], [1, 1], [1, 0], [0, 1], [0, 0], [0, 1]], dtype=bool)
    z = np.stack([np.where(predicted[:, 0], 0.9, 0.3), np.full(6, 0.05)], axis=1)  # (N, H)
    return np.stack([z, 1 - z], axis=1), predicted  # (N, K=2, H=2)


def test_mutual_information_matches_sklearn_on_the_binned_gates():
    rng = np.random.default_rng(0)
    z = rng.random((200, 5))
    gates = np.stack([z, 1 - z], axis=1)
    predicted = rng.random((200, 3)) < (0.2 + 0.6 * z[:, :3])
    information = gate_mutual_information(gates, predicted, bins=10)
    states, n_states = gate_states(gates, bins=10)
    assert n_states == 10 and states.min() >= 0 and states.max() <= 9
    expected = [[mutual_info_score(predicted[:, c], states[:, h]) for h in range(5)] for c in range(3)]
    np.testing.assert_allclose(information, expected, atol=1e-12)
    assert information[0].argmax() == 0 and information[2].argmax() == 2  # class c depends on unit c


def test_selected_units_change_the_shares_where_averaging_all_hides_them():
    gates, predicted = two_unit_gates()
    everything = gate_shares(gates, predicted, ["x", "y"], ["image", "text"])
    # mean z over both units is (0.9 + 0.05) / 2 < 0.5: every sample predicted x looks textual
    assert everything[0]["image"] == 0.0 and everything[0]["text"] == 1.0
    units = select_gate_units(gates, predicted, "mutual_information", top_k=1)
    assert units[0] == [0]  # the unit that tells the prediction of x
    chosen = gate_shares(gates, predicted, ["x", "y"], ["image", "text"], units)
    assert chosen[0] == pytest.approx({"class": "x", "n_predicted": 3, "image": 1.0, "text": 0.0})
    assert select_gate_units(gates, predicted, "all") is None
    with pytest.raises(ValueError, match="selection='best'"):
        select_gate_units(gates, predicted, "best")


def test_k_modality_gates_use_the_favoured_modality_per_unit():
    gates = np.zeros((4, 3, 2))
    gates[:, 0, 0] = [0.8, 0.8, 0.1, 0.1]  # unit 0 favours modality 0 on samples 0-1, modality 1 else
    gates[:, 1, 0] = [0.1, 0.1, 0.8, 0.8]
    gates[:, 2, 1] = 1.0  # unit 1 always favours modality 2
    predicted = np.array([[1], [1], [0], [0]], dtype=bool)
    information = gate_mutual_information(gates, predicted)
    assert information[0, 0] == pytest.approx(np.log(2)) and information[0, 1] == 0.0


def test_report_writes_the_chosen_units(tmp_path):
    gates, predicted = two_unit_gates()
    spec = {"selection": "mutual_information", "top_k": 1, "bins": 10}
    written = write_interpretability(
        tmp_path, predicted, {"gates": gates}, {}, ["image", "text"], ["x", "y"], gate_units=spec
    )
    assert tmp_path / "gate_units.json" in written
    record = json.loads((tmp_path / "gate_units.json").read_text())
    assert record["units"]["x"] == [0] and record["selection"] == spec
    lines = (tmp_path / "gate_shares.csv").read_text().splitlines()
    assert lines[:2] == ["class,n_predicted,image,text", "x,3,1.0,0.0"]


@pytest.mark.usefixtures("one_torch_thread")
def test_a_run_selects_units_by_mutual_information(tmp_path):
    from src.train import train
    from tests.helpers import compose_train

    overrides = ["data=synthetic_gmu", "fusion=gmu", "fusion.hidden_dim=4", "trainer.max_epochs=2"]
    overrides += [
        "callbacks.interpretation.gate_units.selection=mutual_information",
        "callbacks.interpretation.gate_units.top_k=2",
    ]
    train(compose_train([*overrides, "callbacks.progress_bar=null", "logger=csv"], tmp_path))
    record = json.loads((tmp_path / "gate_units.json").read_text())
    (units,) = record["units"].values()
    assert len(units) == 2 and set(units) <= set(range(4))
    assert (tmp_path / "gate_shares.csv").is_file()
