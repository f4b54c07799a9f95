"""BPMuLT's three text views of MM-IMDb and MMBT, end to end on files in the raw MM-IMDb layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.models.encoders.text import VocabularySequence, WordVectorSequence
from tests.data_writers import write_mmimdb_raw
from tests.helpers import train_cli


def test_word_vector_sequence_keeps_word_order_and_masks_padding():
    encoder = WordVectorSequence([], "text", max_length=8)
    features, mask = encoder.encode(["king queen", "banana"])
    assert features.shape == (2, 2, 50) and mask.tolist() == [[True, True], [True, False]]
    table = encoder.word_vectors.index()
    expected = torch.from_numpy(encoder.word_vectors.vectors[table["queen"]])
    assert torch.allclose(features[0, 1], expected)
    assert torch.all(features[1, 1] == 0)


def test_vocabulary_sequence_fits_on_training_texts_and_survives_a_checkpoint():
    encoder = VocabularySequence([], "text", vocab_size=2, dim=4)
    with pytest.raises(RuntimeError, match="before fit"):
        encoder.encode(["a"])
    encoder.fit(["crime crime heist", "crime heist love"])  # top-2: crime, heist; love -> "other"
    _, mask = encoder.encode(["crime love zzz", ""])
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    first, _ = encoder.encode(["crime heist love"])
    assert torch.equal(first[0, 0], encoder.embedding.weight[2]) and torch.equal(
        first[0, 2], encoder.embedding.weight[1]
    )
    restored = VocabularySequence([], "text", vocab_size=2, dim=4)
    restored.load_state_dict(encoder.state_dict())
    assert torch.equal(restored.encode(["crime heist love"])[0], first)


@pytest.mark.slow
def test_bpmult_and_mmbt_experiments_run_a_step_on_raw_mmimdb(tmp_path: Path):
    root = tmp_path / "mmimdb"
    write_mmimdb_raw(root)
    common = [f"data.root={root}", "data.num_workers=0", "debug=fast", "callbacks.progress_bar=null"]
    bpmult = train_cli(tmp_path / "bpmult", "experiment=bpmult_mmimdb", *common, "encoder/image=mlp")
    assert "test/f1_micro" in bpmult
    provenance = json.loads((tmp_path / "bpmult" / "encoders.json").read_text())
    assert set(provenance) == {"text", "text_glove", "text_bow", "image"}
    mmbt = train_cli(tmp_path / "mmbt", "experiment=mmbt_mmimdb", *common, "encoder/image=mlp")
    assert "test/ap_macro" in mmbt
