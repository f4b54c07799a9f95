"""Waveform reading and a fixed-size log-magnitude spectrogram (avMNIST's audio view)."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import torch

from src.errors import DataFormatError


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A mono 16-bit PCM WAV as float32 in [-1, 1] and its sample rate (stereo is averaged)."""
    try:
        with wave.open(str(path), "rb") as f:
            width, channels, rate, n = f.getsampwidth(), f.getnchannels(), f.getframerate(), f.getnframes()
            raw = f.readframes(n)
    except (wave.Error, EOFError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable WAV file ({err})") from err
    if width != 2:
        raise DataFormatError(f"{path}: {8 * width}-bit samples, expected 16-bit PCM")
    if len(raw) != n * channels * width:
        raise DataFormatError(f"{path}: truncated ({len(raw)} of {n * channels * width} data bytes)")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(1), rate


def add_noise(signal: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at the given signal-to-noise ratio (dB) relative to the signal's power."""
    power = float(np.mean(signal.astype(np.float64) ** 2)) or 1e-12
    noise = rng.standard_normal(signal.shape) * math.sqrt(power / 10 ** (snr_db / 10))
    return (signal + noise).astype(np.float32)


def spectrogram(
    signals: np.ndarray | list[np.ndarray], n_samples: int, freq_bins: int = 112, time_frames: int = 112
) -> np.ndarray:
    """``log(1 + |STFT|)`` of each signal zero-padded/trimmed to ``n_samples``: (..., freq_bins, time_frames).

    One signal (1-D array) gives (freq_bins, time_frames); a list gives a stacked batch. Hann window,
    ``n_fft = 2 (freq_bins - 1)``, hop ``ceil(n_samples / time_frames)``, centred frames; deterministic.
    """
    single = isinstance(signals, np.ndarray) and signals.ndim == 1
    batch = [signals] if single else list(signals)
    x = np.zeros((len(batch), n_samples), dtype=np.float32)
    for row, signal in enumerate(batch):
        x[row, : min(n_samples, len(signal))] = signal[:n_samples]
    n_fft = 2 * (freq_bins - 1)
    hop = math.ceil(n_samples / time_frames)
    stft = torch.stft(
        torch.from_numpy(x),
        n_fft=n_fft,
        hop_length=hop,
        window=torch.hann_window(n_fft),
        center=True,
        return_complex=True,
    )
    spec = torch.log1p(stft.abs()).numpy()[..., :time_frames]
    if spec.shape[-1] < time_frames:
        spec = np.pad(spec, ((0, 0), (0, 0), (0, time_frames - spec.shape[-1])))
    spec = spec.astype(np.float32)
    return spec[0] if single else spec
