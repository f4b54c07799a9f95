"""Audio encoders: log-mel spectrogram of raw waveforms followed by a CNN.

For avMNIST, where the data layer already stores 112x112 spectrogram images (kind ``image``), the
plain :class:`src.models.encoders.image.ConvEncoder` with ``conf/encoder/audio/spectrogram_cnn.yaml``
is the encoder; this module serves datasets that hand over padded waveforms (kind ``sequence``,
shape (N, 1) or (N,), with ``<modality>_mask``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from src.features.audio import log_mel_spectrogram, pad_or_crop
from src.models.encoders.base import Encoder
from src.models.encoders.image import ConvEncoder


class SpectrogramEncoder(Encoder):
    """Waveform (B, N) -> log-mel (B, 1, n_mels, frames) -> :class:`ConvEncoder` (``cnn`` options).

    Each waveform is transformed on its real samples only (from the mask) and its time axis cropped or
    padded with its own floor to ``frames``, so the batch's padding never changes a sample.
    """

    accepts_kinds = ("vector", "sequence")  # a (N,) or (N, 1) waveform

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        sample_rate: int = 8000,
        n_fft: int = 256,
        hop_length: int = 64,
        n_mels: int = 64,
        frames: int = 64,
        top_db: float = 80.0,
        cnn: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(input_shape, kind)
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self.frames, self.top_db = frames, top_db
        self.cnn = ConvEncoder([1, n_mels, frames], "image", **dict(cnn or {}))
        self.out_dim = self.cnn.out_dim

    def spectrogram(self, wave: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(B, 1, n_mels, frames), each sample from its own real samples only (batch padding cannot leak in)."""
        wave = wave.float().reshape(wave.shape[0], -1)
        lengths = (
            [wave.shape[1]] * wave.shape[0]
            if mask is None
            else mask.reshape(mask.shape[0], -1).sum(1).tolist()
        )
        specs = [
            pad_or_crop(
                log_mel_spectrogram(
                    w[: int(n)],
                    self.sample_rate,
                    self.n_fft,
                    self.hop_length,
                    self.n_mels,
                    top_db=self.top_db,
                ),
                self.frames,
            )
            for w, n in zip(wave, lengths, strict=True)
        ]
        return torch.stack(specs).unsqueeze(1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.cnn(self.spectrogram(x, mask))
