"""``data=avmnist``: CentralNet's audio-visual MNIST (Vielzeuf et al. 2018, Sec. 4.2).

View 1 (``image``): the PCA reconstruction of an MNIST image keeping ``energy`` of the variance
(25% by default, the paper's setting). View 2 (``audio``): a ``freq_bins`` x ``time_frames`` (112 x
112) log spectrogram of a Free Spoken Digit Dataset recording of the same digit (the paper adds
ESC-50 noise; here optional white noise at ``noise_snr_db``). FSDD's own split: takes 0-4 of every
speaker/digit are test, ``val_takes`` are validation, the rest train. MNIST images are split as in
``data=mmnist``, and each image of a split is paired, by digit, with that split's recordings in a
seeded order (recordings are reused cyclically when a split has more images than recordings).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from src.data.audio import add_noise, read_wav, spectrogram
from src.data.base import SPLITS, DatasetNotFoundError, SampleDataset
from src.data.files import FileDataModule
from src.data.mmnist import load_mnist
from src.data.pca_views import PCAViews
from src.errors import DataFormatError
from src.spec import ModalitySpec
from src.tasks import MULTICLASS

log = logging.getLogger("mmfusion")

FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
FSDD_HOW_TO_GET = (
    "Free Spoken Digit Dataset: https://github.com/Jakobovski/free-spoken-digit-dataset (recordings/"
    "{digit}_{speaker}_{take}.wav); `python -m src.data.prepare fsdd` downloads it."
)


def fsdd_split(take: int, val_takes: Sequence[int]) -> str:
    """FSDD's convention: takes 0-4 are test; ``val_takes`` validation; the rest train."""
    return "test" if take < 5 else ("val" if take in val_takes else "train")


class AVMNISTDataModule(FileDataModule):
    task = MULTICLASS
    name = "avmnist"

    def __init__(
        self,
        mnist_root: str,
        fsdd_root: str,
        energy: float = 0.25,
        freq_bins: int = 112,
        time_frames: int = 112,
        duration_s: float = 1.0,
        sample_rate: int = 8000,
        noise_snr_db: float | None = None,
        noise_seed: int = 0,
        val_takes: Sequence[int] = (5, 6, 7, 8, 9),
        pair_seed: int = 0,
        val_fraction: float = 0.1,
        split_fractions: Sequence[float] = (0.7, 0.1, 0.2),
        split_seed: int = 0,
        **options,
    ) -> None:
        super().__init__(**options)
        self.fsdd_root = Path(fsdd_root)
        self.spec_options = {
            "freq_bins": freq_bins, "time_frames": time_frames, "duration_s": duration_s,
            "sample_rate": sample_rate, "noise_snr_db": noise_snr_db, "noise_seed": noise_seed,
        }  # fmt: skip
        self.val_takes = [int(t) for t in val_takes]
        self.pair_seed = pair_seed
        self._images, self._labels, self._indices = load_mnist(
            Path(mnist_root), val_fraction, split_fractions, split_seed
        )
        self.view = PCAViews.fit(self._images[self._indices["train"]], energy, share_ratio=1.0, n_views=1)
        log.info(
            "avmnist image view: %.3f of the variance (%d components)",
            self.view.view_energy[0],
            len(self.view.view_components[0]),
        )
        self._recordings = self._scan_fsdd()
        self._spectrograms = self._compute_spectrograms()
        self.class_names = [str(d) for d in range(10)]
        self.modalities = {
            "image": ModalitySpec("image", (1, *self._images.shape[1:])),
            "audio": ModalitySpec("image", (1, freq_bins, time_frames)),
        }

    def _scan_fsdd(self) -> dict[str, list[tuple[int, Path]]]:
        """Recordings per split as (digit, path), sorted by name."""
        folder = self.fsdd_root / "recordings" if (self.fsdd_root / "recordings").is_dir() else self.fsdd_root
        paths = sorted(folder.glob("*.wav")) if folder.is_dir() else []
        if not paths:
            raise DatasetNotFoundError(f"FSDD not found: no *.wav under {folder}.\n{FSDD_HOW_TO_GET}")
        per_split: dict[str, list[tuple[int, Path]]] = {s: [] for s in SPLITS}
        for path in paths:
            match = FSDD_NAME.match(path.name)
            if not match:
                raise DataFormatError(f"{path}: FSDD file names are {{digit}}_{{speaker}}_{{take}}.wav")
            per_split[fsdd_split(int(match.group(3)), self.val_takes)].append((int(match.group(1)), path))
        for split, recs in per_split.items():
            missing = sorted(set(range(10)) - {d for d, _ in recs})
            if missing:
                raise DataFormatError(
                    f"FSDD under {folder}: the {split} split has no recording of digits {missing}"
                )
        log.info("FSDD: %s recordings per split", {s: len(r) for s, r in per_split.items()})
        return per_split

    def _compute_spectrograms(self) -> dict[str, np.ndarray]:
        """Per split, (n_recordings, freq, time) spectrograms standardised by the train mean/std."""
        o = self.spec_options
        n_samples = int(round(o["duration_s"] * o["sample_rate"]))
        specs: dict[str, np.ndarray] = {}
        for split, recs in self._recordings.items():
            signals = []
            for i, (_, path) in enumerate(recs):
                try:
                    signal, rate = read_wav(path)
                    if rate != o["sample_rate"]:
                        raise ValueError(f"{path}: {rate} Hz, expected data.sample_rate={o['sample_rate']}")
                except ValueError as err:
                    action = self.issues.problem(split, "unreadable_file", str(err), allow=("blank",))
                    assert action == "blank"
                    signal = np.zeros(n_samples, dtype=np.float32)
                if o["noise_snr_db"] is not None:
                    rng = np.random.default_rng([o["noise_seed"], SPLITS.index(split), i])
                    signal = add_noise(signal, o["noise_snr_db"], rng)
                signals.append(signal)
            specs[split] = spectrogram(signals, n_samples, o["freq_bins"], o["time_frames"])
        mean, std = float(specs["train"].mean()), float(specs["train"].std()) or 1.0
        return {s: ((v - mean) / std).astype(np.float32) for s, v in specs.items()}

    def load_split(self, split: str) -> SampleDataset:
        idx = self._indices[split]
        labels = self._labels[idx]
        digits = np.array([d for d, _ in self._recordings[split]])
        rng = np.random.default_rng([self.pair_seed, SPLITS.index(split)])
        pair = np.empty(len(idx), dtype=np.int64)
        for digit in range(10):
            rows = np.flatnonzero(labels == digit)
            pool = rng.permutation(np.flatnonzero(digits == digit))
            pair[rows] = pool[np.arange(len(rows)) % len(pool)]
        log.info("avmnist %s: %d images paired with %d recordings", split, len(idx), len(np.unique(pair)))
        image = self.view.transform(self._images[idx])[0][:, None]
        names = [self._recordings[split][j][1].stem for j in pair]
        return SampleDataset(
            ids=[f"mnist{i:05d}+{n}" for i, n in zip(idx, names, strict=True)],
            modalities={"image": image, "audio": self._spectrograms[split][pair][:, None]},
            labels=labels,
        )
