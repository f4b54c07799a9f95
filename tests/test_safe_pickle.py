"""Issue 12, class 12: MulT and Moviescope pickles are read without running code they name."""

from __future__ import annotations

import collections
import pickle

import numpy as np
import pytest

from src.data.check import main as check_main
from src.data.moviescope import MoviescopeDataModule
from src.data.mult import MulTDataModule
from src.data.safe_pickle import UnsafePickleError, load_pickle
from src.errors import DataFormatError
from tests.data_writers import CodeRunningPickle, python2_array_pickle, write_moviescope, write_mult_pickle


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_what_the_published_files_hold_loads_in_every_protocol(tmp_path, protocol):
    value = {
        "train": {
            "text": np.arange(6, dtype=np.float32).reshape(1, 2, 3),
            "id": np.array([["a", "0"]], dtype=object),
        },
        "scalars": [
            np.float32(1.5),
            np.int64(2),
            b"raw",
            {1, 2},
            collections.OrderedDict(a=1),
            complex(1, 2),
        ],
    }
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = load_pickle(path)
    np.testing.assert_array_equal(loaded["train"]["text"], value["train"]["text"])
    assert loaded["scalars"][2:] == value["scalars"][2:] and loaded["train"]["id"].tolist() == [["a", "0"]]
    path.write_bytes(python2_array_pickle(np.ones((2, 3), np.float32) + 200))
    assert load_pickle(path).shape == (2, 3)


def test_a_pickle_naming_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": CodeRunningPickle(marker)}))
    with pytest.raises(
        UnsafePickleError, match=rf"{path}: the pickle names posix.system.*data.trust_pickle_files=true"
    ):
        load_pickle(path)
    path.write_bytes(pickle.dumps(eval))
    with pytest.raises(UnsafePickleError, match="names builtins.eval"):
        load_pickle(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"train": CodeRunningPickle(marker)}))
    load_pickle(path, trusted=True)  # the documented opt-out for files one trusts
    assert marker.exists()
    path.write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match=rf"{path}: not a readable pickle"):
        load_pickle(path)


def test_mult_and_moviescope_and_the_check_tool_never_run_a_pickle(tmp_path, capsys):
    """Before: the MulT pickle ran its code in src.train and in src.data.check, the tool meant to vet downloads."""
    marker = tmp_path / "ran"
    write_mult_pickle(tmp_path / "mosi_data.pkl", "mosi")
    (tmp_path / "mosi_data.pkl").write_bytes(pickle.dumps({"train": CodeRunningPickle(marker)}))
    with pytest.raises(UnsafePickleError, match="mosi_data.pkl: the pickle names posix.system"):
        MulTDataModule(str(tmp_path), "mosi")
    assert check_main(["data=mosi", f"data.root={tmp_path}"]) == 1
    assert "names posix.system" in capsys.readouterr().err
    ids = write_moviescope(tmp_path / "ms", (6, 3, 3))
    (tmp_path / "ms" / "PosterFeatures" / f"{ids['test'][1]}.p").write_bytes(
        pickle.dumps(CodeRunningPickle(marker))
    )
    dm = MoviescopeDataModule(
        str(tmp_path / "ms"), modalities=["poster"], on_problem={"unreadable_file": "skip"}
    )
    with pytest.raises(UnsafePickleError, match=rf"{ids['test'][1]}.p: the pickle names posix.system"):
        dm.preflight()  # never a policy: skipping it would hide an attack
    (tmp_path / "ms" / "Metadata_matrices" / "val_ids.pickle").write_bytes(
        pickle.dumps(CodeRunningPickle(marker))
    )
    assert check_main(["data=moviescope", f"data.root={tmp_path / 'ms'}"]) == 1
    assert not marker.exists()
