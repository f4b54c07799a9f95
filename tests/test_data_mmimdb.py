"""MM-IMDb: the real split.json, the raw archive layout and the Fuel hdf5 layout, with broken variants."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.base import collate_samples
from src.data.issues import DataIssueError
from src.data.mmimdb import GENRES, MMIMDbDataModule, normalize_text, read_split
from src.errors import ConfigError
from src.spec import ModalitySpec
from tests.data_writers import write_mmimdb_hdf5, write_mmimdb_raw
from tests.helpers import run_cli, train_cli

SHARED = Path(os.environ.get("MMFUSION_DATA_DIR", "/nonexistent"))


@pytest.mark.skipif(
    not (SHARED / "mmimdb" / "split.json").is_file(), reason="MMFUSION_DATA_DIR has no mmimdb/split.json"
)
def test_real_split_sizes():
    split = read_split(SHARED / "mmimdb" / "split.json")
    assert {k: len(v) for k, v in split.items()} == {"train": 15552, "val": 2608, "test": 7799}
    assert all(len(i) == 7 and i.isdigit() for i in split["train"][:100])


def test_normalize_text():
    assert normalize_text('He said: <br />"Run,  NOW!" Don\'t.') == "he said run now don't"


def test_raw_layout_labels_plots_posters(tmp_path):
    split = write_mmimdb_raw(tmp_path)
    dm = MMIMDbDataModule(str(tmp_path), poster_size=[32, 16])
    train = dm._ensure("train")
    assert len(train) == 12 and train.ids == split["train"]
    sample = train[1]  # movie k=1: genres Comedy (1 % 3), Crime (3 + 1 % 5 = 4)
    assert torch.equal(
        sample["labels"].nonzero().flatten(), torch.tensor([GENRES.index("Comedy"), GENRES.index("Crime")])
    )
    assert sample["text"].startswith("A much longer plot number 1")  # the longest plot
    assert sample["image"].shape == (3, 32, 16) and sample["image"].dtype == torch.uint8  # pixel bytes
    dm_first = MMIMDbDataModule(str(tmp_path), plot_choice="first", text_normalization="original")
    assert dm_first._ensure("val")[0]["text"] == "short plot 12"
    dm_all = MMIMDbDataModule(str(tmp_path), plot_choice="all")
    assert len(dm_all._ensure("train")) == 24 and dm_all._ensure("train").ids[:2] == [
        f"{split['train'][0]}#0",
        f"{split['train'][0]}#1",
    ]
    assert len(dm_all._ensure("test")) == 6  # evaluation keeps one plot per movie


def _batches(dm: MMIMDbDataModule, split: str = "train") -> list[dict]:
    dm.setup("fit")
    dataset = dm._ensure(split)
    return [dataset[i] for i in range(len(dataset))]


@pytest.mark.parametrize("layout", ["raw", "hdf5"])
def test_uint8_posters_are_the_float_posters_once_the_model_side_converts_them(tmp_path, layout):
    """uint8 transport (issue 17): a quarter of the bytes through the workers, and after
    ``unit_pixels`` (what the model, the feature step and the robustness sweep apply) exactly the
    float32 path's values; a model's outputs are the same."""
    from src.models.model import build_model
    from src.spec import unit_pixels

    if layout == "raw":
        write_mmimdb_raw(tmp_path)
        options = {"root": str(tmp_path), "poster_size": [24, 16], "num_workers": 0}
    else:
        write_mmimdb_hdf5(tmp_path / "multimodal_imdb.hdf5")
        options = {
            "root": str(tmp_path),
            "format": "hdf5",
            "hdf5_sources": {"image": "images"},
            "num_workers": 0,
        }
    as_bytes = MMIMDbDataModule(**options, poster_dtype="uint8")
    as_floats = MMIMDbDataModule(**options, poster_dtype="float32")
    assert as_bytes.spec.modalities["image"].dtype == "uint8"
    assert as_floats.spec.modalities["image"].dtype == "float32"
    for b, f in zip(_batches(as_bytes), _batches(as_floats), strict=True):
        assert b["image"].dtype == torch.uint8 and f["image"].dtype == torch.float32
        assert torch.equal(unit_pixels(b["image"]), f["image"])
    mlp = {"_target_": "src.models.encoders.base.MLPEncoder", "hidden_dims": [4]}
    torch.manual_seed(0)
    model = build_model(as_bytes.spec, {"_target_": "src.models.fusion.concat.ConcatFusion"}, {"name": "linear"},
                        {"image": mlp, "text": {"_target_": "src.models.encoders.text.HashingEncoder", "n_features": 8}}
                        if layout == "raw" else {"image": mlp}).eval()  # fmt: skip
    batch = dict(collate_samples(_batches(as_bytes)[:4]))
    floats = {**batch, "image": unit_pixels(batch["image"])}
    assert torch.equal(model(batch).logits, model(floats).logits)


def test_uint8_posters_refuse_a_standardisation(tmp_path):
    write_mmimdb_raw(tmp_path)
    with pytest.raises(ConfigError, match="poster_dtype=float32"):
        MMIMDbDataModule(str(tmp_path), poster_dtype="uint8", poster_mean=[0.5] * 3, poster_std=[0.5] * 3)
    with pytest.raises(ConfigError, match="expected uint8 or float32"):
        MMIMDbDataModule(str(tmp_path), poster_dtype="float16")


def test_the_decoded_poster_cache_decodes_once_and_reads_the_same_pixels(tmp_path, monkeypatch):
    import src.data.images as images

    write_mmimdb_raw(tmp_path / "raw")
    options = {"root": str(tmp_path / "raw"), "poster_size": [24, 16], "num_workers": 0}
    decoded_each_time = _batches(MMIMDbDataModule(**options))
    cached = _batches(MMIMDbDataModule(**options, poster_cache=str(tmp_path / "cache")))
    (entry,) = (tmp_path / "cache" / "mmimdb" / "train").iterdir()
    assert np.load(entry / "features.npy", mmap_mode="r").shape == (12, 3, 24, 16)
    for c, d in zip(cached, decoded_each_time, strict=True):
        assert torch.equal(c["image"], d["image"])

    def no_decode(*args, **kwargs):
        raise AssertionError("a poster was decoded again")

    monkeypatch.setattr(images, "decode_image", no_decode)
    again = MMIMDbDataModule(**options, poster_cache=str(tmp_path / "cache"))
    for c, d in zip(_batches(again), cached, strict=True):  # read from the cache: no decode
        assert torch.equal(c["image"], d["image"])


def test_raw_bad_inputs_error_or_counted(tmp_path):
    split = write_mmimdb_raw(tmp_path)
    (tmp_path / "dataset" / f"{split['train'][2]}.jpeg").unlink()
    (tmp_path / "dataset" / f"{split['train'][3]}.jpeg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    meta_path = tmp_path / "dataset" / f"{split['train'][4]}.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "plot": []}))
    (tmp_path / "dataset" / f"{split['train'][5]}.json").unlink()
    with pytest.raises(DataIssueError, match=r"missing_file.*" + split["train"][2]):
        MMIMDbDataModule(str(tmp_path))._ensure("train")
    policy = {"missing_id": "skip", "missing_file": "blank", "unreadable_file": "skip", "empty_text": "blank"}
    dm = MMIMDbDataModule(str(tmp_path), on_problem=policy)
    train = dm._ensure("train")
    assert len(train) == 10  # 12 - missing json - truncated poster
    assert dm.issue_counts["train"] == {
        "missing_id": {"skip": 1}, "missing_file": {"blank": 1}, "unreadable_file": {"skip": 1}, "empty_text": {"blank": 1},
    }  # fmt: skip
    blank = train[train.ids.index(split["train"][2])]
    assert float(blank["image"].abs().sum()) == 0.0
    assert train[train.ids.index(split["train"][4])]["text"] == ""


def test_unknown_genre_is_an_error(tmp_path):
    split = write_mmimdb_raw(tmp_path, (4, 2, 2))
    path = tmp_path / "dataset" / f"{split['dev'][0]}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "genres": ["Drama", "Space-Opera"]}))
    with pytest.raises(DataIssueError, match="Space-Opera"):
        MMIMDbDataModule(str(tmp_path))._ensure("val")


def test_hdf5_layout_reorders_genres_and_uses_split_attribute(tmp_path):
    shuffled = list(reversed(GENRES))
    expected = write_mmimdb_hdf5(tmp_path / "multimodal_imdb.hdf5", genre_order=shuffled)
    dm = MMIMDbDataModule(str(tmp_path), format="hdf5")
    assert dm.modalities == {
        "text": ModalitySpec("vector", (300,)),
        "image": ModalitySpec("vector", (4096,)),
    }
    val = dm._ensure("val")
    assert val.ids[0] == "2000012" and len(val) == 6
    np.testing.assert_array_equal(val.labels, expected[12:18])
    dm_img = MMIMDbDataModule(str(tmp_path), format="hdf5", hdf5_sources={"image": "images"})
    assert dm_img._ensure("test")[0]["image"].shape == (3, 256, 160)


def test_hdf5_without_split_attribute(tmp_path):
    import h5py

    write_mmimdb_hdf5(tmp_path / "multimodal_imdb.hdf5")
    with h5py.File(tmp_path / "multimodal_imdb.hdf5", "a") as f:
        del f.attrs["split"]
    with pytest.raises(ValueError, match="Fuel 'split' attribute"):
        MMIMDbDataModule(str(tmp_path), format="hdf5")


@pytest.mark.slow  # an end-to-end CLI run (>10 s on 2 cores); the fast suite keeps `make test` under 10 min
def test_train_cli_raw_with_string_text_encoder_and_precomputed_posters(tmp_path):
    write_mmimdb_raw(tmp_path / "raw")
    metrics = train_cli(
        tmp_path / "run_raw",
        "data=mmimdb",
        f"data.root={tmp_path / 'raw'}",
        "data.poster_size=[24,16]",
        "data.num_workers=0",
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "encoder/text=hashing",  # a string-taking text encoder (the checkpoint allow-list admits src.* only)
        "+model.encoders.image={_target_: src.models.encoders.base.MLPEncoder, hidden_dims: [8], precompute: true}",
        f"features.cache_dir={tmp_path / 'cache'}",
    )
    assert 0.0 <= metrics["test/f1_micro"] <= 1.0
    rows = (tmp_path / "run_raw" / "per_class_test.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == GENRES  # the fixed genre order is written into the run
    assert json.loads((tmp_path / "run_raw" / "data_issues.json").read_text()) == {}
    for split in ("train", "val", "test"):  # poster features went through the cache
        (entry,) = (tmp_path / "cache" / "mmimdb" / split).iterdir()
        assert (entry / "COMPLETE").is_file() and (entry / "features.npy").is_file()
    # the precomputed encoder is not part of the model: its weights are not in the checkpoint, and
    # src.eval (which runs the same feature step, from the cache) evaluates identically
    (best,) = (tmp_path / "run_raw" / "checkpoints").glob("epoch_*.ckpt")
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    image_keys = [k for k in state if ".image." in f".{k}." or k.startswith("encoders.image")]
    assert all(state[k].numel() == 0 for k in image_keys)  # the identity encoder has no weights
    assert not any(v.shape == (8, 3 * 24 * 16) for v in state.values())  # the frozen MLP's first layer
    proc = run_cli("src.eval", [f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'eval'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated == {k: v for k, v in metrics.items() if k.startswith("test/")}


@pytest.mark.slow
def test_train_cli_hdf5_one_epoch(tmp_path):
    write_mmimdb_hdf5(tmp_path / "h5" / "multimodal_imdb.hdf5")
    metrics = train_cli(
        tmp_path / "run",
        "data=mmimdb",
        "data.format=hdf5",
        f"data.root={tmp_path / 'h5'}",
        "data.num_workers=0",
        "data.batch_size=4",
        "trainer.max_epochs=1",
    )
    assert 0.0 <= metrics["test/f1_micro"] <= 1.0


@pytest.mark.skipif(
    not (SHARED / "mmimdb" / "split.json").is_file(), reason="MMFUSION_DATA_DIR has no mmimdb/split.json"
)
def test_resplit_of_the_real_ids_is_70_15_15_disjoint_complete_and_seeded():
    from src.data.mmimdb import resplit_ids

    official = read_split(SHARED / "mmimdb" / "split.json")
    resplit = resplit_ids(official, [0.7, 0.15, 0.15], seed=0)
    sizes = {k: len(v) for k, v in resplit.items()}
    assert sizes == {"train": 18171, "val": 3894, "test": 3894}  # 25,959 movies
    every = [i for ids in resplit.values() for i in ids]
    assert sorted(every) == sorted(i for ids in official.values() for i in ids)  # nothing lost or repeated
    assert resplit == resplit_ids(official, [0.7, 0.15, 0.15], seed=0)
    assert resplit["test"] != resplit_ids(official, [0.7, 0.15, 0.15], seed=1)["test"]
    with pytest.raises(ValueError, match="summing to 1"):
        resplit_ids(official, [0.7, 0.2, 0.2], seed=0)


def test_resplit_through_the_datamodule(tmp_path):
    split = write_mmimdb_raw(tmp_path)
    data = MMIMDbDataModule(root=str(tmp_path), resplit=[0.5, 0.25, 0.25], resplit_seed=3)
    ids = {s: list(data.load_split(s).ids) for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in ids.items()} == {"train": 12, "val": 6, "test": 6}
    assert sorted(i for v in ids.values() for i in v) == sorted(i for v in split.values() for i in v)
    with pytest.raises(ValueError, match="needs data.format=raw"):
        MMIMDbDataModule(root=str(tmp_path), format="hdf5", resplit=[0.7, 0.15, 0.15])


@pytest.mark.slow  # MiniLM and EfficientNet-Lite0 on CPU: ~50 s of CPU time
def test_train_cli_raw_with_pretrained_text_and_image_encoders_needs_no_other_override(tmp_path):
    """Data delivers the plot and the poster; the chosen encoders make the features (issue 15)."""
    write_mmimdb_raw(tmp_path / "raw")
    run = tmp_path / "run"
    metrics = train_cli(
        run,
        "data=mmimdb",
        f"data.root={tmp_path / 'raw'}",
        "encoder/text=minilm",
        "encoder/image=efficientnet_lite0",
        "trainer.max_epochs=1",
    )
    assert 0.0 <= metrics["test/f1_micro"] <= 1.0
    provenance = json.loads((run / "encoders.json").read_text())
    assert provenance["text"]["encoder"] != "identity" and provenance["image"]["encoder"] != "identity"
    # the frozen backbones (MiniLM ~90 MB, Lite0 ~14 MB) are referenced by sha256, not stored (issue 17),
    # and src.eval, which rebuilds them from their source, evaluates identically
    (best,) = (run / "checkpoints").glob("epoch_*.ckpt")
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    assert not any(k.startswith(("model.encoders.text.", "model.encoders.image.")) for k in state)
    stored = sum(v.numel() * v.element_size() for v in state.values())  # the GMU and the head
    assert best.stat().st_size < 3 * stored + 1e6  # the weights and Adam's two moments, no backbone
    proc = run_cli("src.eval", [f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'eval'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated == {k: v for k, v in metrics.items() if k.startswith("test/")}
