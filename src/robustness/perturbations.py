"""Test-time perturbations of one modality: missing samples, noise and kind-specific corruptions.

Every perturbation takes a batch of one modality (a tensor, or a list of strings for ``kind: text``),
a ``level`` in its own unit (0 = clean; larger = more severe) and a :class:`SampleContext` (the seed,
each sample's index in its split, the sequence mask, the training mean), and returns a
:class:`Perturbed` value (and the mask, changed only by the mask-dropping perturbations).

Rules every perturbation keeps (``tests/test_robustness_perturbations.py`` checks each of them):

* **Level 0 is the identity, bit for bit** (the input object itself is returned).
* **Seeded per sample.** Sample ``i`` draws from its own generator, seeded by ``(seed, index[i])``,
  so a sample is perturbed the same way whatever the batch size, order, padding or device.
* **Common random numbers across levels.** A sample's draws do not depend on the level: the samples
  missing at rate 0.2 are missing at 0.4 too, the noise at two levels is one draw scaled twice, and a
  word typo'd at probability 0.2 gets the same typo at 0.5. A curve over levels is then smooth and
  monotone in what is perturbed, not re-drawn noise.
* **Padding is never touched.** A sequence's values outside its mask stay as they are; the draws
  cover the valid steps only, so the padding length of a batch changes nothing.
* Unselected samples (a missing rate below 1) are returned unchanged, bit for bit.

Modality kinds: the repo's dataset kinds (``vector``, ``image`` (..., H, W), ``sequence`` (B, T, D)
with a (B, T) mask, ``text`` (list of str)) and ``audio``, a raw waveform (B, L) or (B, C, L).
Spectrograms are delivered as ``image`` (avMNIST) and take the image perturbations and noise.

The registry :data:`PERTURBATIONS` names each perturbation with the kinds it admits;
:func:`get_perturbation` and :func:`perturb_batch` reject an unknown name or an inadmissible kind with
a message naming the perturbation, the modality, its kind and the known names. MultiBench's
``robustness/`` folder (Liang et al. 2021) was read for the catalogue (its typos, visual noises and
time-series drops); the definitions here are ours: seeded per sample, with a level axis whose 0 is
clean.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from src.spec import unit_pixels

#: the modality kinds a perturbation can admit (``audio``: a raw waveform, (B, L) or (B, C, L))
KINDS: tuple[str, ...] = ("vector", "image", "sequence", "text", "audio")
NUMERIC_KINDS: tuple[str, ...] = ("vector", "image", "sequence", "audio")

Value = torch.Tensor | list[str]


class PerturbationError(ValueError):
    """A perturbation that does not exist, does not apply to a modality's kind, or got a bad level."""


@dataclass(frozen=True)
class SampleContext:
    """What a perturbation needs besides the batch and the level.

    ``index``: every sample's index in its split (``batch["index"]``), which seeds its generator.
    ``mask``: (B, T) bool, True on a sequence's valid steps (``batch["<modality>_mask"]``).
    ``mean``: the training mean of one sample, broadcastable to a sample ((D,) for vectors and
    sequences, (C, H, W) or (C, 1, 1) for images); only ``missing_mean`` uses it.
    """

    seed: int
    index: Sequence[int]
    mask: torch.Tensor | None = None
    mean: torch.Tensor | None = None


@dataclass(frozen=True)
class Perturbed:
    """A perturbed batch of one modality and its mask (the input mask unless the perturbation drops steps)."""

    value: Value
    mask: torch.Tensor | None = None


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of one sample: independent streams for every (seed, index) pair (NumPy SeedSequence)."""
    if seed < 0 or index < 0:
        raise PerturbationError(f"seed and sample index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def derive_seed(seed: int, *keys: str) -> int:
    """A seed for one (perturbation, modality, ...) of a sweep seed, stable across runs and platforms,
    so two modalities (or two perturbations) of one sweep never share their draws."""
    words = [int(seed)] + [zlib.crc32(key.encode()) for key in keys]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


# ------------------------------------------------------------------------------------------------
# numeric modalities: a per-sample loop in float64 (exact for float32/16 round trips)


def _indices(ctx: SampleContext, batch_size: int) -> list[int]:
    index = ctx.index.tolist() if torch.is_tensor(ctx.index) else [int(i) for i in ctx.index]
    if len(index) != batch_size:
        raise PerturbationError(f"{len(index)} sample indices for a batch of {batch_size}")
    return index


def _check_numeric(value: Any, name: str) -> None:
    if not torch.is_tensor(value) or not value.is_floating_point():
        got = value.dtype if torch.is_tensor(value) else type(value).__name__
        raise PerturbationError(f"perturbation {name!r} takes a floating-point tensor, got {got}")


Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray | None]


def _per_sample(value: torch.Tensor, ctx: SampleContext, transform: Transform) -> torch.Tensor:
    """Apply ``transform(valid_part, rng)`` to every sample; ``None`` leaves a sample as it is.

    The valid part of a sequence sample is its (n_valid, D) steps under the mask; of any other sample,
    the whole sample. Results are cast back to the input's dtype and device.
    """
    index = _indices(ctx, value.shape[0])
    data = value.detach().to("cpu", torch.float64).numpy()
    valid = None if ctx.mask is None else ctx.mask.detach().to("cpu", torch.bool).numpy()
    new_rows: dict[int, np.ndarray] = {}
    for row, sample_index in enumerate(index):
        part = data[row] if valid is None else data[row][valid[row]]
        new = transform(part, sample_rng(ctx.seed, sample_index))
        if new is not None:
            new_rows[row] = new
    if not new_rows:
        return value
    result = value.detach().clone()
    for row, new in new_rows.items():
        tensor = torch.from_numpy(np.ascontiguousarray(new)).to(dtype=value.dtype, device=value.device)
        if valid is None:
            result[row] = tensor
        else:
            result[row][torch.from_numpy(valid[row]).to(value.device)] = tensor
    return result


def _selected(rng: np.random.Generator, rate: float) -> bool:
    """The sample's first draw decides whether it is among the ``rate`` share perturbed (nested in rate)."""
    return bool(rng.random() < rate)


def missing(value: torch.Tensor, rate: float, ctx: SampleContext, fill: str = "zeros") -> Perturbed:
    """Each sample is missing with probability ``rate``: its (valid) values become 0 (``fill="zeros"``)
    or the training mean ``ctx.mean`` (``fill="mean"``)."""
    if rate == 0:
        return Perturbed(value, ctx.mask)
    _check_numeric(value, f"missing_{fill}")
    if fill == "mean":
        if ctx.mean is None:
            raise PerturbationError(
                "perturbation 'missing_mean' needs the training mean (SampleContext.mean)"
            )
        mean = ctx.mean.detach().to("cpu", torch.float64).numpy()
    elif fill != "zeros":
        raise PerturbationError(f"missing: fill must be 'zeros' or 'mean', got {fill!r}")

    def transform(part: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        if not _selected(rng, rate):
            return None
        if fill == "zeros":
            return np.zeros_like(part)
        try:
            return np.broadcast_to(mean, part.shape).copy()
        except ValueError as err:
            raise PerturbationError(
                f"missing_mean: the training mean has shape {list(mean.shape)}, which does not broadcast "
                f"to a sample of shape {list(part.shape)}"
            ) from err

    return Perturbed(_per_sample(value, ctx, transform), ctx.mask)


def missing_mask(value: torch.Tensor, rate: float, ctx: SampleContext) -> Perturbed:
    """Each sequence is missing with probability ``rate``: its mask becomes all False (and its values 0),
    for models that honour masks. A model must accept a sample with no valid step."""
    if rate == 0:
        return Perturbed(value, ctx.mask)
    _check_numeric(value, "missing_mask")
    mask = _sequence_mask(value, ctx)
    index = _indices(ctx, value.shape[0])
    dropped = torch.tensor([_selected(sample_rng(ctx.seed, i), rate) for i in index], device=mask.device)
    if not dropped.any():
        return Perturbed(value, ctx.mask)
    new_mask = mask & ~dropped[:, None]
    zeroed = value.masked_fill((mask & dropped[:, None]).unsqueeze(-1).to(value.device), 0.0)
    return Perturbed(zeroed, new_mask)


def _sequence_mask(value: torch.Tensor, ctx: SampleContext) -> torch.Tensor:
    if value.ndim != 3:
        raise PerturbationError(f"a sequence batch is (B, T, D), got shape {list(value.shape)}")
    if ctx.mask is None:
        return torch.ones(value.shape[:2], dtype=torch.bool, device=value.device)
    if tuple(ctx.mask.shape) != tuple(value.shape[:2]):
        raise PerturbationError(
            f"mask of shape {list(ctx.mask.shape)} for a sequence batch {list(value.shape)}"
        )
    return ctx.mask.to(torch.bool)


def gaussian_noise(value: torch.Tensor, ratio: float, ctx: SampleContext) -> Perturbed:
    """Additive white Gaussian noise: x + ratio * rms(x) * e, e ~ N(0, I), rms over the sample's (valid) values.

    ``ratio`` is the noise-to-signal amplitude ratio, so the signal-to-noise ratio is
    ``snr_db = -20 log10(ratio)`` (:func:`snr_db`): 0.1 is 20 dB, 1 is 0 dB, 3.16 is -10 dB. The
    power is each sample's own, as ``src.data.audio.add_noise`` (avMNIST's white noise) measures it;
    an all-zero sample stays zero.
    """
    if ratio == 0:
        return Perturbed(value, ctx.mask)
    _check_numeric(value, "gaussian_noise")

    def transform(part: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        rms = math.sqrt(float(np.mean(part**2))) if part.size else 0.0
        return part + ratio * rms * rng.standard_normal(part.shape)

    return Perturbed(_per_sample(value, ctx, transform), ctx.mask)


def snr_db(ratio: float) -> float:
    """The signal-to-noise ratio in dB of :func:`gaussian_noise` at a noise-to-signal amplitude ``ratio``."""
    return math.inf if ratio == 0 else 0.0 - 20.0 * math.log10(ratio)


def ratio_for_snr_db(snr: float) -> float:
    """The :func:`gaussian_noise` level giving a signal-to-noise ratio of ``snr`` dB (inf -> 0, clean)."""
    return 0.0 if math.isinf(snr) and snr > 0 else 10.0 ** (-snr / 20.0)


# ------------------------------------------------------------------------------------------------
# images (..., H, W): blur, occlusion, contrast and brightness loss


def _check_image(value: Any, name: str) -> None:
    _check_numeric(value, name)
    if value.ndim < 3:
        raise PerturbationError(
            f"perturbation {name!r} takes images (B, [C,] H, W), got shape {list(value.shape)}"
        )


def _reflect(positions: np.ndarray, size: int) -> np.ndarray:
    """Symmetric boundary (d c b a | a b c d | d c b a), for offsets of any size."""
    period = np.mod(positions, 2 * size)
    return np.where(period >= size, 2 * size - 1 - period, period)


def blur_matrix(size: int, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """(size, size) matrix of a 1-D Gaussian blur (std ``sigma`` pixels, kernel radius
    ``int(truncate * sigma + 0.5)``, symmetric boundary): ``scipy.ndimage.gaussian_filter1d``'s kernel."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    matrix = np.zeros((size, size))
    for row in range(size):
        np.add.at(matrix[row], _reflect(row + offsets, size), weights)
    return matrix


def blur(value: torch.Tensor, sigma: float, ctx: SampleContext) -> Perturbed:
    """Gaussian blur of every channel with std ``sigma`` pixels (deterministic; ``ctx`` only sizes the batch)."""
    if sigma == 0:
        return Perturbed(value, ctx.mask)
    _check_image(value, "blur")
    rows = blur_matrix(value.shape[-2], sigma)
    cols = blur_matrix(value.shape[-1], sigma)
    return Perturbed(_per_sample(value, ctx, lambda part, rng: rows @ part @ cols.T), ctx.mask)


def occlusion(value: torch.Tensor, area: float, ctx: SampleContext) -> Perturbed:
    """A zero-filled patch covering ``area`` of the image (side ``round(sqrt(area) * H)`` by
    ``round(sqrt(area) * W)``, all channels) at a position drawn per sample."""
    if area == 0:
        return Perturbed(value, ctx.mask)
    _check_image(value, "occlusion")
    height, width = value.shape[-2:]
    patch_h, patch_w = round(math.sqrt(area) * height), round(math.sqrt(area) * width)

    def transform(part: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        top, left = rng.random(2)  # the same two draws at every level
        y = int(top * (height - patch_h + 1))
        x = int(left * (width - patch_w + 1))
        out = part.copy()
        out[..., y : y + patch_h, x : x + patch_w] = 0.0
        return out

    return Perturbed(_per_sample(value, ctx, transform), ctx.mask)


def contrast_loss(value: torch.Tensor, amount: float, ctx: SampleContext) -> Perturbed:
    """Contrast scaled by ``1 - amount`` around each channel's mean: m + (1 - amount)(x - m); 1 is a flat image."""
    if amount == 0:
        return Perturbed(value, ctx.mask)
    _check_image(value, "contrast_loss")

    def transform(part: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean = part.mean(axis=(-2, -1), keepdims=True)
        return mean + (1.0 - amount) * (part - mean)

    return Perturbed(_per_sample(value, ctx, transform), ctx.mask)


def brightness_loss(value: torch.Tensor, amount: float, ctx: SampleContext) -> Perturbed:
    """Darkening toward the image's black point b (its minimum): b + (1 - amount)(x - b). For an image in
    [0, 1] whose minimum is 0 this is the usual x (1 - amount); 1 is an all-black image."""
    if amount == 0:
        return Perturbed(value, ctx.mask)
    _check_image(value, "brightness_loss")

    def transform(part: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        black = part.min()
        return black + (1.0 - amount) * (part - black)

    return Perturbed(_per_sample(value, ctx, transform), ctx.mask)


# ------------------------------------------------------------------------------------------------
# sequences (B, T, D) with a (B, T) mask


def timestep_dropout(value: torch.Tensor, p: float, ctx: SampleContext, drop_mask: bool = False) -> Perturbed:
    """Each valid step is dropped with probability ``p``: its features become 0 and, with ``drop_mask``,
    its mask False (a model that honours masks then skips it)."""
    if p == 0:
        return Perturbed(value, ctx.mask)
    _check_numeric(value, "timestep_dropout")
    mask = _sequence_mask(value, ctx)
    index = _indices(ctx, value.shape[0])
    valid = mask.cpu().numpy()
    dropped = np.zeros(valid.shape, dtype=bool)
    for row, sample_index in enumerate(index):
        steps = np.flatnonzero(valid[row])
        dropped[row, steps] = sample_rng(ctx.seed, sample_index).random(len(steps)) < p
    if not dropped.any():
        return Perturbed(value, ctx.mask)
    dropped_t = torch.from_numpy(dropped).to(value.device)
    out = value.masked_fill(dropped_t.unsqueeze(-1), 0.0)
    return Perturbed(out, (mask & ~dropped_t) if drop_mask else ctx.mask)


# ------------------------------------------------------------------------------------------------
# text: a list of str, words = runs of non-space characters


def _check_text(value: Any, name: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PerturbationError(
            f"perturbation {name!r} takes a list of str (kind text), got {type(value).__name__}"
        )
    return list(value)


def _map_words(
    texts: list[str], ctx: SampleContext, edit: Callable[[list[str], np.random.Generator], list[str] | None]
) -> list[str]:
    """Apply ``edit(words, rng)`` per sample; an unchanged sample keeps its original string (spacing too)."""
    out = []
    for text, sample_index in zip(texts, _indices(ctx, len(texts)), strict=True):
        new = edit(text.split(), sample_rng(ctx.seed, sample_index))
        out.append(text if new is None else " ".join(new))
    return out


def missing_text(texts: list[str], rate: float, ctx: SampleContext) -> Perturbed:
    """Each text is missing (the empty string) with probability ``rate``."""
    if rate == 0:
        return Perturbed(texts, ctx.mask)
    texts = _check_text(texts, "missing_text")
    return Perturbed(
        _map_words(texts, ctx, lambda words, rng: [] if _selected(rng, rate) else None), ctx.mask
    )


def word_dropout(texts: list[str], p: float, ctx: SampleContext) -> Perturbed:
    """Each word is deleted with probability ``p``."""
    if p == 0:
        return Perturbed(texts, ctx.mask)
    texts = _check_text(texts, "word_dropout")

    def edit(words: list[str], rng: np.random.Generator) -> list[str] | None:
        keep = rng.random(len(words)) >= p
        return None if keep.all() else [w for w, k in zip(words, keep, strict=True) if k]

    return Perturbed(_map_words(texts, ctx, edit), ctx.mask)


def word_shuffle(texts: list[str], p: float, ctx: SampleContext) -> Perturbed:
    """Each word is chosen with probability ``p``; the chosen words are permuted among their positions
    (1 shuffles the whole text)."""
    if p == 0:
        return Perturbed(texts, ctx.mask)
    texts = _check_text(texts, "word_shuffle")

    def edit(words: list[str], rng: np.random.Generator) -> list[str] | None:
        chosen = np.flatnonzero(rng.random(len(words)) < p)
        order = rng.permutation(len(chosen))
        if len(chosen) < 2:
            return None
        out = list(words)
        for target, source in zip(chosen, chosen[order], strict=True):
            out[target] = words[source]
        return None if out == words else out

    return Perturbed(_map_words(texts, ctx, edit), ctx.mask)


_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Letters next to each letter on a QWERTY keyboard: same row left/right and the rows above/below
    (rows offset by half a key, so the keys at the same and the next column)."""
    position = {c: (r, i) for r, row in enumerate(_KEYBOARD_ROWS) for i, c in enumerate(row)}
    neighbours = {}
    for char, (r, i) in position.items():
        near = [(r, i - 1), (r, i + 1), (r - 1, i), (r - 1, i + 1), (r + 1, i - 1), (r + 1, i)]
        neighbours[char] = "".join(
            _KEYBOARD_ROWS[rr][ii] for rr, ii in near if 0 <= rr < 3 and 0 <= ii < len(_KEYBOARD_ROWS[rr])
        )
    return neighbours


KEYBOARD_NEIGHBOURS: dict[str, str] = _keyboard_neighbours()
TYPO_EDITS: tuple[str, ...] = ("swap", "delete", "repeat", "keyboard")
_LETTER = re.compile(r"[a-z]", re.IGNORECASE)


def typo(word: str, edit: str, u: float, v: float) -> str:
    """One character typo of ``word``: ``swap`` two adjacent characters, ``delete`` or ``repeat`` one, or
    replace a letter by a QWERTY ``keyboard`` neighbour (case kept). ``u`` in [0, 1) picks the position,
    ``v`` the neighbour. Words of one character only get ``repeat`` or ``keyboard``; a word without a
    letter is returned unchanged by ``keyboard``."""
    n = len(word)
    if edit == "swap" and n >= 2:
        i = int(u * (n - 1))
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if edit == "delete" and n >= 2:
        i = int(u * n)
        return word[:i] + word[i + 1 :]
    if edit in ("swap", "delete", "repeat"):
        i = int(u * n)
        return word[: i + 1] + word[i:]
    letters = [m.start() for m in _LETTER.finditer(word)]
    if not letters:
        return word
    i = letters[int(u * len(letters))]
    options = KEYBOARD_NEIGHBOURS[word[i].lower()]
    new = options[int(v * len(options))]
    return word[:i] + (new.upper() if word[i].isupper() else new) + word[i + 1 :]


def typos(texts: list[str], p: float, ctx: SampleContext) -> Perturbed:
    """Each word gets one character typo (:func:`typo`, the edit drawn uniformly) with probability ``p``."""
    if p == 0:
        return Perturbed(texts, ctx.mask)
    texts = _check_text(texts, "typos")

    def edit(words: list[str], rng: np.random.Generator) -> list[str] | None:
        draws = rng.random((len(words), 4))  # selection, edit, position, neighbour: all drawn at every level
        out = [
            typo(w, TYPO_EDITS[int(d[1] * len(TYPO_EDITS))], d[2], d[3]) if d[0] < p else w
            for w, d in zip(words, draws, strict=True)
        ]
        return None if out == words else out

    return Perturbed(_map_words(texts, ctx, edit), ctx.mask)


# ------------------------------------------------------------------------------------------------
# the registry


PerturbationFn = Callable[[Value, float, SampleContext], Perturbed]


@dataclass(frozen=True)
class Perturbation:
    """A named perturbation: its function, the kinds it admits, what its level means and its range."""

    name: str
    fn: PerturbationFn
    kinds: tuple[str, ...]
    unit: str
    max_level: float | None = None  # 1.0 for rates and probabilities; None: unbounded
    needs_mean: bool = False
    #: perturbations of one stream draw alike in a sweep: every ``missing_*`` drops the same samples
    stream: str = ""

    @property
    def seed_key(self) -> str:
        return self.stream or self.name

    def check_level(self, level: float) -> None:
        if not (isinstance(level, int | float) and math.isfinite(level) and level >= 0):
            raise PerturbationError(
                f"perturbation {self.name!r}: level {level!r} must be a finite number >= 0"
            )
        if self.max_level is not None and level > self.max_level:
            raise PerturbationError(
                f"perturbation {self.name!r}: level {level} exceeds {self.max_level} ({self.unit})"
            )

    def __call__(self, value: Value, level: float, ctx: SampleContext) -> Perturbed:
        self.check_level(level)
        return self.fn(value, float(level), ctx)


RATE = "share of samples missing"
PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation(
            "missing_zeros",
            lambda v, r, c: missing(v, r, c, "zeros"),
            NUMERIC_KINDS,
            RATE,
            1.0,
            stream="missing",
        ),
        Perturbation(
            "missing_mean",
            lambda v, r, c: missing(v, r, c, "mean"),
            NUMERIC_KINDS,
            RATE,
            1.0,
            needs_mean=True,
            stream="missing",
        ),
        Perturbation("missing_mask", missing_mask, ("sequence",), RATE, 1.0, stream="missing"),
        Perturbation("missing_text", missing_text, ("text",), RATE, 1.0, stream="missing"),
        Perturbation(
            "gaussian_noise",
            gaussian_noise,
            NUMERIC_KINDS,
            "noise-to-signal amplitude ratio (-20 log10 = SNR dB)",
        ),
        Perturbation("blur", blur, ("image",), "Gaussian std in pixels"),
        Perturbation("occlusion", occlusion, ("image",), "share of the image area occluded", 1.0),
        Perturbation("contrast_loss", contrast_loss, ("image",), "share of the contrast removed", 1.0),
        Perturbation("brightness_loss", brightness_loss, ("image",), "share of the brightness removed", 1.0),
        Perturbation(
            "timestep_dropout", timestep_dropout, ("sequence",), "probability per step (features 0)", 1.0
        ),
        Perturbation(
            "timestep_dropout_mask",
            lambda v, p, c: timestep_dropout(v, p, c, drop_mask=True),
            ("sequence",),
            "probability per step (masked out)",
            1.0,
        ),
        Perturbation("word_dropout", word_dropout, ("text",), "probability per word", 1.0),
        Perturbation("word_shuffle", word_shuffle, ("text",), "probability per word", 1.0),
        Perturbation("typos", typos, ("text",), "probability per word", 1.0),
    )
}


def get_perturbation(name: str, modality: str, kind: str) -> Perturbation:
    """The registered perturbation ``name`` for a modality of ``kind``, or a :class:`PerturbationError`
    naming the perturbation, the modality, its kind and what is known / admissible."""
    if kind not in KINDS:
        raise PerturbationError(f"modality {modality!r} has kind {kind!r}; known kinds: {list(KINDS)}")
    admissible = sorted(n for n, p in PERTURBATIONS.items() if kind in p.kinds)
    if name not in PERTURBATIONS:
        raise PerturbationError(
            f"unknown perturbation {name!r} for modality {modality!r} (kind {kind}); "
            f"known perturbations: {sorted(PERTURBATIONS)}"
        )
    perturbation = PERTURBATIONS[name]
    if kind not in perturbation.kinds:
        raise PerturbationError(
            f"perturbation {name!r} does not apply to modality {modality!r} of kind {kind} (it takes "
            f"{list(perturbation.kinds)}); perturbations for kind {kind}: {admissible}"
        )
    return perturbation


def perturb_batch(
    batch: Mapping[str, Any],
    modality: str,
    kind: str,
    name: str,
    level: float,
    seed: int,
    mean: torch.Tensor | None = None,
) -> dict[str, Any]:
    """A shallow copy of ``batch`` with ``modality`` (and ``<modality>_mask`` when it changes) perturbed.

    Samples are seeded by ``batch["index"]`` and ``derive_seed(seed, stream, modality)``: every
    modality and perturbation of one sweep seed draws independently, except that the ``missing_*``
    fills share one stream (at one rate they drop the same samples, so the fills compare paired).
    """
    perturbation = get_perturbation(name, modality, kind)
    if modality not in batch:
        raise PerturbationError(f"the batch has no modality {modality!r}; it has {sorted(batch)}")
    if "index" not in batch:
        raise PerturbationError("the batch has no 'index' (each sample's index in its split seeds its draws)")
    if perturbation.needs_mean and mean is None:
        raise PerturbationError(f"perturbation {name!r} on modality {modality!r} needs its training mean")
    mask_key = f"{modality}_mask"
    ctx = SampleContext(
        derive_seed(seed, perturbation.seed_key, modality), batch["index"], batch.get(mask_key), mean
    )
    out = perturbation(unit_pixels(batch[modality]), level, ctx)  # uint8 pixels: as the model sees them
    result = {**batch, modality: out.value}
    if out.mask is not None and out.mask is not batch.get(mask_key):
        result[mask_key] = out.mask
    return result


class MeanAccumulator:
    """The training mean of one modality over batches, for ``missing_mean``: per feature over samples
    (and over the valid steps of sequences), per element for vectors and images."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count: torch.Tensor | float = 0.0

    def update(self, value: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        value = unit_pixels(value).detach().to("cpu", torch.float64)
        if mask is not None:
            weights = mask.detach().to("cpu", torch.float64).unsqueeze(-1)
            total, count = (value * weights).sum(dim=(0, 1)), weights.sum()
        else:
            total, count = value.sum(dim=0), float(value.shape[0])
        self.total = total if self.total is None else self.total + total
        self.count = self.count + count

    def result(self) -> torch.Tensor:
        if self.total is None or float(self.count) == 0:
            raise PerturbationError("MeanAccumulator: no sample (or no valid step) was seen")
        return (self.total / self.count).to(torch.float32)
