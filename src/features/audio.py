"""Linear and log-mel spectrograms from waveforms, in torch (numpy arrays in, numpy arrays out).

Deterministic (no randomness, CPU ``torch.stft``), no audio library needed. Used by the avMNIST
spectrogram construction (Vielzeuf et al. 2018, Sec. 4.2: 112x112 spectrograms of spoken digits) and
by :class:`src.models.encoders.audio.SpectrogramEncoder` on raw waveforms.
Conventions: Hann window, ``center=True`` with reflect padding, power spectrum ``|STFT|^2``,
HTK mel scale ``mel = 2595 log10(1 + f / 700)`` with triangular filters (Young et al., HTK book).
"""

from __future__ import annotations

import numpy as np
import torch


def _as_tensor(wave: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    is_numpy = not torch.is_tensor(wave)
    tensor = torch.as_tensor(np.asarray(wave, dtype=np.float32)) if is_numpy else wave.float()
    if tensor.ndim not in (1, 2):
        raise ValueError(f"expected a waveform (N,) or a batch (B, N), got shape {tuple(tensor.shape)}")
    return tensor, is_numpy


def _out(tensor: torch.Tensor, is_numpy: bool) -> np.ndarray | torch.Tensor:
    return tensor.numpy() if is_numpy else tensor


def power_spectrogram(
    wave: np.ndarray | torch.Tensor, n_fft: int = 256, hop_length: int = 64, win_length: int | None = None
) -> torch.Tensor:
    """|STFT|^2 of a (N,) or (B, N) waveform: (F, T) or (B, F, T) with F = n_fft // 2 + 1."""
    tensor, _ = _as_tensor(wave)
    window = torch.hann_window(win_length or n_fft, device=tensor.device)
    pad_mode = "reflect" if tensor.shape[-1] > n_fft // 2 else "constant"
    stft = torch.stft(
        tensor,
        n_fft,
        hop_length,
        win_length or n_fft,
        window=window,
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )
    return stft.abs() ** 2


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters (height 1 at their centre), centres equally spaced in mel."""
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(
            f"mel range must satisfy 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}, sr={sample_rate}"
        )
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return torch.as_tensor(np.clip(np.minimum(rising, falling), 0.0, None), dtype=torch.float32)


def to_decibels(power: torch.Tensor, floor: float = 1e-10, top_db: float | None = 80.0) -> torch.Tensor:
    """10 log10(power), clipped at ``top_db`` below each spectrogram's maximum."""
    db = 10.0 * torch.log10(power.clamp_min(floor))
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db)
    return db


def linear_spectrogram(
    wave: np.ndarray | torch.Tensor,
    n_fft: int = 256,
    hop_length: int = 64,
    log: bool = True,
    top_db: float | None = 80.0,
) -> np.ndarray | torch.Tensor:
    """Power spectrogram (F, T) or (B, F, T), in decibels when ``log``."""
    tensor, is_numpy = _as_tensor(wave)
    power = power_spectrogram(tensor, n_fft, hop_length)
    return _out(to_decibels(power, top_db=top_db) if log else power, is_numpy)


def log_mel_spectrogram(
    wave: np.ndarray | torch.Tensor,
    sample_rate: int,
    n_fft: int = 256,
    hop_length: int = 64,
    n_mels: int = 64,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray | torch.Tensor:
    """Log-mel power spectrogram (n_mels, T) or (B, n_mels, T) in decibels."""
    tensor, is_numpy = _as_tensor(wave)
    filters = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).to(tensor.device)
    mel = torch.matmul(filters, power_spectrogram(tensor, n_fft, hop_length))
    return _out(to_decibels(mel, top_db=top_db), is_numpy)


def pad_or_crop(
    spec: np.ndarray | torch.Tensor, frames: int, value: float | None = None
) -> np.ndarray | torch.Tensor:
    """Fix the last (time) axis to ``frames``: crop the end or pad with ``value`` (default: the minimum)."""
    length = spec.shape[-1]
    if length >= frames:
        return spec[..., :frames]
    fill = float(spec.min()) if value is None else value
    if torch.is_tensor(spec):
        pad = torch.full((*spec.shape[:-1], frames - length), fill, dtype=spec.dtype, device=spec.device)
        return torch.cat([spec, pad], dim=-1)
    return np.concatenate(
        [spec, np.full((*spec.shape[:-1], frames - length), fill, dtype=spec.dtype)], axis=-1
    )
