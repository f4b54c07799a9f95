"""The sequence benchmark's case runner (the full sweep is `python -m src.bench sequence`)."""

from __future__ import annotations

import pytest
import torch

from src.bench.sequence import random_batch, run_case


def test_random_batch_is_unaligned_and_half_padded() -> None:
    features, masks, labels = random_batch("mult", 10, 4, torch.device("cpu"))
    assert {m: tuple(v.shape) for m, v in features.items()} == {
        "text": (4, 10, 300),
        "audio": (4, 15, 74),
        "video": (4, 8, 35),
    }
    assert masks["audio"].sum(1).tolist() == [15, 8, 15, 8]
    assert labels.shape == (4,)
    ids, _, _ = random_batch("mmbt", 10, 2, torch.device("cpu"))
    assert ids["text"].dtype == torch.int64 and (ids["text"][:, 0] == 101).all()


@pytest.mark.usefixtures("one_torch_thread")
def test_run_case_reports_the_default_config() -> None:
    row = run_case("mult", 6, 2, 1, torch.device("cpu"))
    assert row["params"] == 812_194  # the count in docs/sequence_fusion.md (MOSEI widths, 4 outputs)
    assert row["samples_per_s"] > 0 and row["precision"] == "fp32" and row["length"] == 6
