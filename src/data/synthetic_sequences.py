"""``data=synthetic_sequences``: an embedded, unaligned sequence task that needs cross-modal information.

Modalities ``text``, ``audio`` and (optionally) ``video`` are sequences of different, per-sample
lengths (padded by the collate function, with masks). Every step is Gaussian noise. One step of
``text`` at a random position is a key token: channel 0 carries a marker (+``signal``) and
channel 1 a symbol s_text = +-``signal``; likewise one step of ``audio`` carries s_audio. ``video``
is pure noise (a distractor). The class is whether the two symbols agree:

    y = 1 if s_text != s_audio else 0            (class names ["same", "different"])

Each symbol alone is independent of y (chance: 50%), so any model that sees one modality cannot
beat chance, while a model that relates the key token of one modality to the key token of the
other can reach ~100%. Splits are stratified and fixed by ``data_seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from src.data.base import FusionDataModule, SampleDataset, stratified_split
from src.errors import ConfigError
from src.spec import ModalitySpec
from src.tasks import MULTICLASS

KEY_MODALITIES = ("text", "audio")


def sample_synthetic_sequences(
    n_samples: int,
    dims: Mapping[str, int],
    lengths: Mapping[str, Sequence[int]],
    signal: float,
    noise_std: float,
    seed: int,
) -> tuple[dict[str, list[np.ndarray]], np.ndarray, dict[str, np.ndarray]]:
    """Draw the samples: per-modality lists of (T_i, D) arrays, labels (n,), and the key positions."""
    rng = np.random.default_rng(seed)
    symbols = {m: rng.integers(0, 2, n_samples) for m in KEY_MODALITIES}
    labels = (2 * symbols["text"] + symbols["audio"]).astype(np.int64)
    sequences: dict[str, list[np.ndarray]] = {}
    key_positions: dict[str, np.ndarray] = {}
    for modality, dim in dims.items():
        low, high = lengths[modality]
        steps = rng.integers(low, high + 1, n_samples)
        rows = [(noise_std * rng.standard_normal((t, dim))).astype(np.float32) for t in steps]
        if modality in KEY_MODALITIES:
            positions = rng.integers(0, steps)
            for row, position, symbol in zip(rows, positions, symbols[modality], strict=True):
                row[position, 0] += signal
                row[position, 1] += signal if symbol else -signal
            key_positions[modality] = positions
        sequences[modality] = rows
    return sequences, labels, key_positions


class SyntheticSequencesDataModule(FusionDataModule):
    """The embedded cross-modal sequence task of the module docstring."""

    task = MULTICLASS
    name = "synthetic_sequences"

    def __init__(
        self,
        n_samples: int = 1200,
        dims: Mapping[str, int] | None = None,
        lengths: Mapping[str, Sequence[int]] | None = None,
        signal: float = 3.0,
        noise_std: float = 1.0,
        data_seed: int = 0,
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        **loader_options,
    ) -> None:
        super().__init__(**loader_options)
        dims = dict(dims or {"text": 8, "audio": 6, "video": 4})
        lengths = {
            m: tuple(v) for m, v in (lengths or {"text": (6, 12), "audio": (10, 20), "video": (4, 8)}).items()
        }
        missing = [m for m in KEY_MODALITIES if m not in dims]
        if missing:
            raise ConfigError(
                f"data.dims must include the key modalities {list(KEY_MODALITIES)}; missing {missing}"
            )
        for modality, dim in dims.items():
            if (
                modality not in lengths
                or len(lengths[modality]) != 2
                or not 1 <= lengths[modality][0] <= lengths[modality][1]
            ):
                raise ConfigError(
                    f"data.lengths.{modality} must be [min, max] with 1 <= min <= max, got {lengths.get(modality)}"
                )
            if modality in KEY_MODALITIES and dim < 2:
                raise ConfigError(
                    f"data.dims.{modality}={dim}: a key modality needs at least 2 channels (marker, symbol)"
                )
        self._sequences, self._labels, self.key_positions = sample_synthetic_sequences(
            n_samples, dims, lengths, signal, noise_std, data_seed
        )
        self._indices = stratified_split(self._labels, split_fractions, data_seed)
        self.class_names = [f"text{a}_audio{b}" for a in (0, 1) for b in (0, 1)]
        self.modalities = {m: ModalitySpec("sequence", (lengths[m][1], dims[m])) for m in dims}

    def load_split(self, split: str) -> SampleDataset:
        idx = self._indices[split]
        return SampleDataset(
            ids=[f"synseq{i:05d}" for i in idx],
            modalities={m: [rows[i] for i in idx] for m, rows in self._sequences.items()},
            labels=self._labels[idx],
        )
