"""The random-number state that makes a resumed run repeat the uninterrupted one to the last digit.

After ``seed_everything`` every later draw (the training sampler's order, DataLoader worker seeds,
dropout, ModDrop's modality dropping) comes from the global generators of Python, NumPy and torch
(CPU and CUDA). :func:`rng_state` captures them when a checkpoint is written (the end of an epoch);
:func:`restore_rng_state` puts them back when the first resumed epoch requests its training loader,
where the uninterrupted run continued from exactly that state (``FusionDataModule.state_dict``). The state holds only tensors, ints, strings and
tuples, so checkpoints still load under torch's weights-only unpickler.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """The global generators' states (weights-only-loadable values)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global generators to a state written by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
