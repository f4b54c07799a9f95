"""``python -m src.data.synthetic_mmimdb OUT [--n 25959] [--seed 0] [--split-json PATH] [--no-hdf5] [--workers N]``

A synthetic MM-IMDb of the real size in both published layouts (../shared/reference/data_formats.md),
read by :class:`src.data.mmimdb.MMIMDbDataModule` like the real files: for timing the pipelines at
scale and for checking that models learn, where the real archive (8 GB) is not at hand.

- Raw layout: ``OUT/split.json``, ``OUT/dataset/<id>.json`` (IMDb-like metadata: ``plot`` a list
  of 1-3 plots of 50-400 words, ``genres`` with now and then a genre the task drops, ``title``,
  ``year``, ``director``, ``cast``, ...), ``OUT/dataset/<id>.jpeg`` (RGB posters from 182 x 268 to
  300 x 450 pixels, about 9-36 KB).
- Feature file ``OUT/multimodal_imdb.hdf5`` (Fuel layout, rows train, dev, test; unless ``--no-hdf5``),
  with stand-ins for the authors' features: ``features`` is the mean of fixed seeded random 300-d
  word vectors over the normalised longest plot (a seeded random projection of its word counts, for
  the word2vec mean); ``vgg_features`` a fixed seeded random ReLU projection to 4096-d of the 256 x 160
  poster average-pooled to 3 x 16 x 10 (for VGG16 fc7; integer weights, exact in float32); ``images`` the posters exactly as
  ``decode_image(jpeg, (256, 160), "resize_crop")`` reads them, uint8 (1 byte per pixel, as the
  published 3.8 GB file implies); ``word_grams`` and ``three_grams`` the l2-normalised log term
  frequencies of the longest plot's words (1,024 hashed bins) and character 3-grams (512 bins): tf-idf
  without the idf, which would need a pass over the corpus before the first row is written.

Genres follow the per-genre frequencies of the GMU paper's Table 1 (Arevalo et al. 2017, train + dev
+ test counts of the 25,959 movies) and its 2.48 genres per movie (Sec. 4.1), with correlations
between genres from a few latent themes (a Gaussian copula: the marginals stay those of Table 1).
Content depends on the genres, noisily and separately per modality, so models learn but cannot be
perfect: a plot's genre words come from its label genres, each kept with probability 0.85, plus at
times a genre the movie does not have; a poster's palette and motifs likewise (keep 0.6, meant as
the weaker modality as in the paper's Table 2; yet clean shapes and colours are easy for a pretrained
CNN: at n=600 a class-balanced logistic regression reaches macro-F1 0.31 on the frozen
EfficientNet-Lite0 features, 0.29 on the GloVe mean, 0.35 on both, all-Drama 0.03).

Every movie is a function of (seed, id) alone, so the files do not depend on ``--workers``: the
movies are written (and the posters encoded) in ``--workers`` forked processes, in blocks, so that
memory stays bounded while this process writes the feature file in row chunks.
"""

from __future__ import annotations

import argparse
import colorsys
import io
import json
import math
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from functools import cache, lru_cache, partial
from pathlib import Path
from statistics import NormalDist
from typing import Any, NamedTuple

import h5py
import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from src.data import synthetic_words as words
from src.data.images import decode_image
from src.data.mmimdb import GENRES, normalize_text, read_split
from src.data.parallel import available_cpus, ordered_map

#: the GMU paper's Table 1 (Arevalo et al. 2017): movies per genre in train, dev and test
TABLE1_COUNTS: dict[str, tuple[int, int, int]] = {
    "Drama": (8424, 1401, 4142), "Comedy": (5108, 873, 2611), "Romance": (3226, 548, 1590),
    "Thriller": (3113, 512, 1567), "Crime": (2293, 382, 1163), "Action": (2155, 351, 1044),
    "Adventure": (1611, 278, 821), "Horror": (1603, 275, 825), "Documentary": (1234, 219, 629),
    "Mystery": (1231, 209, 617), "Sci-Fi": (1212, 193, 586), "Fantasy": (1162, 186, 585),
    "Family": (978, 172, 518), "Biography": (788, 144, 411), "War": (806, 128, 401),
    "History": (680, 118, 345), "Music": (634, 100, 311), "Animation": (586, 105, 306),
    "Musical": (503, 85, 253), "Western": (423, 72, 210), "Sport": (379, 64, 191),
    "Short": (281, 48, 142), "Film-Noir": (202, 34, 102),
}  # fmt: skip
#: the official split of the 25,959 movies (GMU paper Sec. 4.2)
OFFICIAL_SPLIT = {"train": 15552, "dev": 2608, "test": 7799}
#: the paper's genres per movie (Sec. 4.1)
MEAN_GENRES = 2.48
#: Table 1's frequency of each genre among the 25,959 movies, in ``GENRES`` order
GENRE_FREQUENCIES = np.array([sum(TABLE1_COUNTS[g]) / sum(OFFICIAL_SPLIT.values()) for g in GENRES])
#: a draw with no genre gets one by frequency; the copula's thresholds are lowered by this factor so
#: that the frequencies and the mean stay those of Table 1 (measured on 100,000 draws: 2.48 per movie)
EMPTY_DRAW_CORRECTION = 0.965

#: latent themes that make genres co-occur (our choice; the paper's Figure 3 shows co-occurrence,
#: not numbers): loading of each genre on each theme, a Gaussian copula keeps Table 1's marginals
THEMES: dict[str, dict[str, float]] = {
    "dark": {"Thriller": 0.55, "Crime": 0.5, "Horror": 0.4, "Mystery": 0.55, "Film-Noir": 0.5,
             "Comedy": -0.3, "Family": -0.4, "Animation": -0.3, "Musical": -0.25},
    "light": {"Comedy": 0.45, "Romance": 0.35, "Family": 0.5, "Animation": 0.45, "Musical": 0.45,
              "Music": 0.3, "Fantasy": 0.2, "Short": 0.2},
    "spectacle": {"Action": 0.6, "Adventure": 0.6, "Sci-Fi": 0.5, "Fantasy": 0.45, "War": 0.3,
                  "Western": 0.3, "Animation": 0.25, "Thriller": 0.2},
    "factual": {"Documentary": 0.65, "Biography": 0.5, "History": 0.5, "War": 0.3, "Music": 0.3,
                "Sport": 0.25, "Drama": -0.45, "Romance": -0.25, "Thriller": -0.3, "Fantasy": -0.3},
    "human": {"Drama": 0.55, "Romance": 0.4, "Biography": 0.35, "War": 0.25, "History": 0.25,
              "Sport": 0.25, "Music": 0.2, "Horror": -0.3, "Animation": -0.3, "Short": -0.2},
}  # fmt: skip
#: raw genre strings the task drops, and how often a movie's metadata lists each
DROPPED_GENRE_RATES = {"News": 0.004, "Adult": 0.001, "Talk-Show": 0.001, "Reality-TV": 0.001}
#: probability that a label genre shows in a modality, and of one extra genre the movie lacks
TEXT_KEEP, TEXT_DISTRACTOR = 0.85, 0.3
POSTER_KEEP, POSTER_DISTRACTOR = 0.6, 0.4
#: a plot's words are 50-400; typical ones about 90 (the paper: 92.5 on average, Sec. 4.1)
PLOT_WORDS = (50, 385)  # a sentence has at most 11 words: plots end below 400
#: poster sizes (width, height): the typical one, the largest, and in between
POSTER_SMALL, POSTER_LARGE = (182, 268), (300, 450)
POSTER_BYTES = (9_000, 36_000)
HDF5_POSTER = (256, 160)  # (H, W) of the feature file's ``images``
WORD_GRAM_BINS, THREE_GRAM_BINS, WORD_VECTOR_DIM, VGG_DIM = 1024, 512, 300, 4096
WORD_VECTOR_STD = 0.15  # per component: a norm of about 0.15 * sqrt(300) = 2.6
POOL = 16  # the VGG stand-in's input: the 256 x 160 poster average-pooled 16 x 16 -> 3 x 16 x 10
#: movies per block of forked work (memory bound: a block's rows are at most ~150 MB) and rows per hdf5 write
BLOCK_MOVIES, ROWS_PER_WRITE = 1024, 256
#: random streams of one movie: each part of it draws from its own, seeded by (seed, id, stream)
LABELS, TEXT, POSTER, META = range(4)

HDF5_NAME = "multimodal_imdb.hdf5"
SPLIT_ORDER = ("train", "dev", "test")


def movie_rng(seed: int, movie_id: str, stream: int) -> np.random.Generator:
    """The generator of one part (``stream``) of one movie: a function of (seed, id, stream) alone."""
    return np.random.default_rng([seed, int(movie_id), stream])


# genres -----------------------------------------------------------------------------------------
def _theme_loadings() -> np.ndarray:
    loadings = np.zeros((len(GENRES), len(THEMES)))
    for k, theme in enumerate(THEMES.values()):
        for genre, weight in theme.items():
            loadings[GENRES.index(genre), k] = weight
    return loadings


THEME_LOADINGS = _theme_loadings()
UNIQUE_STD = np.sqrt(1.0 - (THEME_LOADINGS**2).sum(1))  # each latent genre score has variance 1
THRESHOLDS = np.array([NormalDist().inv_cdf(1 - p * EMPTY_DRAW_CORRECTION) for p in GENRE_FREQUENCIES])


def sample_genres(seed: int, movie_id: str) -> np.ndarray:
    """The movie's 23 genre labels (bool, ``GENRES`` order): a Gaussian copula with Table 1's
    marginals over the latent themes; a draw with no genre gets one drawn by frequency."""
    rng = movie_rng(seed, movie_id, LABELS)
    scores = THEME_LOADINGS @ rng.standard_normal(len(THEMES)) + UNIQUE_STD * rng.standard_normal(len(GENRES))
    labels = scores > THRESHOLDS
    if not labels.any():
        labels[rng.choice(len(GENRES), p=GENRE_FREQUENCIES / GENRE_FREQUENCIES.sum())] = True
    return labels


def expressed_genres(
    rng: np.random.Generator, labels: np.ndarray, keep: float, distractor: float
) -> list[int]:
    """The genres a modality shows: each label kept with probability ``keep``, and with probability
    ``distractor`` one genre the movie does not have (drawn by frequency): label noise per modality."""
    shown = [int(g) for g in np.flatnonzero(labels) if rng.random() < keep]
    if rng.random() < distractor:
        weights = np.where(labels, 0.0, GENRE_FREQUENCIES)
        shown.append(int(rng.choice(len(GENRES), p=weights / weights.sum())))
    return shown


# plots ------------------------------------------------------------------------------------------
#: sentence shapes: D determiner, A adjective, N noun, V verb, P preposition, R adverb, C conjunction,
#: S/O/H subject/object/possessive pronoun, NAME a first name; other tokens are literal
TEMPLATES = (
    "D A N V D N P D N",
    "NAME , D A N , V D A N",
    "when D N V D N , NAME V P D N",
    "S V D A N and V P D N",
    "D N P D N V O R",
    "NAME and NAME V D A N P D N",
    "but D A N V NAME P D N",
    "H A N V D N , and S V D N",
    "R , NAME V that D N V D A N",
    "S V D N C D A N V D N",
    "D A N V O R P D N",
    "NAME V D N of D A N",
)
_FIXED_SLOTS: dict[str, Sequence[str]] = {
    "D": words.DETERMINERS, "P": words.PREPOSITIONS, "R": words.ADVERBS, "C": words.CONJUNCTIONS,
    "S": words.SUBJECTS, "O": words.OBJECTS, "H": words.POSSESSIVES, "NAME": words.FIRST_NAMES,
}  # fmt: skip
_GENRE_SLOTS = {"N": 0, "V": 1, "A": 2}  # the WordPools field each slot draws from


def _sentence(rng: np.random.Generator, genres: Sequence[str], intensity: float) -> list[str]:
    """One sentence as tokens: the nouns, verbs and adjectives come from the genres' words with
    probability ``intensity`` (from one of ``genres``), otherwise from the common words."""
    tokens: list[str] = []
    for slot in TEMPLATES[rng.integers(len(TEMPLATES))].split():
        if slot in _GENRE_SLOTS:
            use_genre = genres and rng.random() < intensity
            pools = words.GENRE_WORDS[genres[rng.integers(len(genres))]] if use_genre else words.COMMON
            pool = pools[_GENRE_SLOTS[slot]]
            tokens.append(pool[rng.integers(len(pool))])
        elif slot in _FIXED_SLOTS:
            pool = _FIXED_SLOTS[slot]
            word = pool[rng.integers(len(pool))]
            tokens.append(word.capitalize() if slot == "NAME" else word)
        else:
            tokens.append(slot)
    for i in range(len(tokens) - 1):
        if tokens[i] == "a" and tokens[i + 1][0] in "aeiou":
            tokens[i] = "an"
    return tokens


def make_plot(rng: np.random.Generator, genres: Sequence[str], intensity: float) -> str:
    """A plot of 50-400 words (log-normal, median 80) of sentences from :data:`TEMPLATES`."""
    target = int(np.clip(round(rng.lognormal(math.log(80), 0.45)), *PLOT_WORDS))
    sentences, count = [], 0
    while count < target:
        tokens = _sentence(rng, genres, intensity)
        count += sum(t != "," for t in tokens)
        text = " ".join(tokens).replace(" ,", ",")
        sentences.append(text[0].upper() + text[1:] + ".")
    return " ".join(sentences)


def make_plots(seed: int, movie_id: str, labels: np.ndarray) -> list[str]:
    """The movie's 1-3 plots; their genre words show the genres :func:`expressed_genres` keeps."""
    rng = movie_rng(seed, movie_id, TEXT)
    shown = [GENRES[g] for g in expressed_genres(rng, labels, TEXT_KEEP, TEXT_DISTRACTOR)]
    intensity = rng.uniform(0.15, 0.5)
    return [make_plot(rng, shown, intensity) for _ in range(int(rng.choice(3, p=[0.5, 0.3, 0.2])) + 1)]


# posters ----------------------------------------------------------------------------------------
class PosterStyle(NamedTuple):
    """A genre's look: base colour (hue, saturation, value in [0, 1]) and the motif it draws."""

    hue: float
    saturation: float
    value: float
    motif: str


POSTER_STYLES: dict[str, PosterStyle] = {
    "Drama": PosterStyle(0.60, 0.25, 0.45, "blocks"), "Comedy": PosterStyle(0.14, 0.85, 0.95, "dots"),
    "Romance": PosterStyle(0.93, 0.45, 0.85, "circles"), "Thriller": PosterStyle(0.52, 0.55, 0.30, "diagonal"),
    "Crime": PosterStyle(0.11, 0.35, 0.25, "stripes"), "Action": PosterStyle(0.05, 0.95, 0.85, "rays"),
    "Adventure": PosterStyle(0.28, 0.65, 0.55, "triangles"), "Horror": PosterStyle(0.99, 0.90, 0.30, "scratches"),
    "Documentary": PosterStyle(0.0, 0.03, 0.80, "grid"), "Mystery": PosterStyle(0.72, 0.55, 0.28, "rings"),
    "Sci-Fi": PosterStyle(0.50, 0.90, 0.75, "grid"), "Fantasy": PosterStyle(0.78, 0.65, 0.60, "stars"),
    "Family": PosterStyle(0.56, 0.45, 0.95, "circles"), "Biography": PosterStyle(0.08, 0.35, 0.60, "blocks"),
    "War": PosterStyle(0.20, 0.55, 0.35, "scratches"), "History": PosterStyle(0.07, 0.60, 0.40, "stripes"),
    "Music": PosterStyle(0.85, 0.85, 0.80, "waves"), "Animation": PosterStyle(0.33, 0.90, 0.95, "dots"),
    "Musical": PosterStyle(0.13, 0.70, 0.80, "stars"), "Western": PosterStyle(0.08, 0.65, 0.75, "rays"),
    "Sport": PosterStyle(0.36, 0.75, 0.60, "stripes"), "Short": PosterStyle(0.45, 0.20, 0.70, "blocks"),
    "Film-Noir": PosterStyle(0.0, 0.0, 0.35, "diagonal"),
}  # fmt: skip


def _colour(rng: np.random.Generator, style: PosterStyle, spread: float = 0.08) -> tuple[int, int, int]:
    """A colour near the style's, jittered per call."""
    hue = (style.hue + rng.normal(0, spread / 2)) % 1.0
    saturation = min(1.0, max(0.0, style.saturation + rng.normal(0, spread)))
    value = min(1.0, max(0.05, style.value + rng.normal(0, spread)))
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value))  # type: ignore[return-value]


def _draw_motif(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, style: PosterStyle, w: int, h: int
) -> None:
    """The style's motif at random places, in colours near the style's."""
    colour = partial(_colour, rng, style)
    motif = style.motif
    if motif == "circles":
        for _ in range(rng.integers(3, 7)):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.25) * w
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour())
    elif motif == "dots":
        for _ in range(rng.integers(30, 70)):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 7)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour(0.2))
    elif motif == "stripes":
        step = int(rng.integers(12, 40))
        for y in range(int(rng.integers(0, step)), h, 2 * step):
            draw.rectangle((0, y, w, y + step), fill=colour())
    elif motif == "diagonal":
        step = int(rng.integers(15, 45))
        for x in range(-h, w, 2 * step):
            draw.polygon([(x, h), (x + step, h), (x + step + h, 0), (x + h, 0)], fill=colour())
    elif motif == "rays":
        cx, cy = rng.uniform(0, w), rng.uniform(0, h / 2)
        rays = int(rng.integers(8, 17))
        for k in range(rays):
            a0, a1 = 2 * math.pi * k / rays, 2 * math.pi * (k + 0.5) / rays
            far = 2 * max(w, h)
            points = [(cx, cy), (cx + far * math.cos(a0), cy + far * math.sin(a0)),
                      (cx + far * math.cos(a1), cy + far * math.sin(a1))]  # fmt: skip
            draw.polygon(points, fill=colour())
    elif motif == "triangles":
        for _ in range(rng.integers(3, 7)):
            x, top, half = rng.uniform(0, w), rng.uniform(0.3, 0.8) * h, rng.uniform(0.15, 0.4) * w
            draw.polygon([(x - half, h), (x, top), (x + half, h)], fill=colour())
    elif motif == "grid":
        step, fill = int(rng.integers(12, 30)), colour()
        for x in range(0, w, step):
            draw.line((x, 0, x, h), fill=fill, width=2)
        for y in range(0, h, step):
            draw.line((0, y, w, y), fill=fill, width=2)
    elif motif == "rings":
        cx, cy, fill = rng.uniform(0, w), rng.uniform(0, h), colour()
        for r in range(10, int(1.2 * max(w, h)), int(rng.integers(12, 28))):
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=3)
    elif motif == "waves":
        for _ in range(rng.integers(4, 9)):
            y0, amplitude, period = rng.uniform(0, h), rng.uniform(5, 25), rng.uniform(30, 90)
            points = [(x, y0 + amplitude * math.sin(2 * math.pi * x / period)) for x in range(0, w + 4, 4)]
            draw.line(points, fill=colour(), width=4)
    elif motif == "scratches":
        for _ in range(rng.integers(20, 45)):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            dx, dy = rng.normal(0, 0.2 * w), rng.normal(0, 0.2 * h)
            draw.line((x, y, x + dx, y + dy), fill=colour(0.15), width=int(rng.integers(1, 4)))
    elif motif == "blocks":
        for _ in range(rng.integers(3, 7)):
            x, y = rng.uniform(-0.2, 0.9) * w, rng.uniform(-0.2, 0.9) * h
            draw.rectangle(
                (x, y, x + rng.uniform(0.2, 0.6) * w, y + rng.uniform(0.1, 0.4) * h), fill=colour()
            )
    elif motif == "stars":
        for _ in range(rng.integers(5, 11)):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(6, 24)
            points = [
                (cx + (r if k % 2 == 0 else r / 2.5) * math.cos(math.pi * k / 5 - math.pi / 2),
                 cy + (r if k % 2 == 0 else r / 2.5) * math.sin(math.pi * k / 5 - math.pi / 2))
                for k in range(10)
            ]  # fmt: skip
            draw.polygon(points, fill=colour(0.15))
    else:
        raise ValueError(f"poster motif {motif!r} unknown")


def poster_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): the typical 182 x 268 half the time, the largest 300 x 450 at times, else between."""
    kind = rng.random()
    if kind < 0.5:
        return POSTER_SMALL
    if kind < 0.65:
        return POSTER_LARGE
    width = int(rng.integers(POSTER_SMALL[0], POSTER_LARGE[0] + 1))
    height = int(np.clip(round(width * rng.uniform(1.45, 1.52)), POSTER_SMALL[1], POSTER_LARGE[1]))
    return width, height


def make_poster(seed: int, movie_id: str, labels: np.ndarray) -> bytes:
    """An RGB poster as JPEG bytes (quality 70-90): a background gradient in the first shown genre's
    colours, each shown genre's motif, a title band, film grain; per-movie jitter of colours, places,
    counts and compression."""
    rng = movie_rng(seed, movie_id, POSTER)
    shown = [GENRES[g] for g in expressed_genres(rng, labels, POSTER_KEEP, POSTER_DISTRACTOR)]
    styles = [POSTER_STYLES[g] for g in shown] or [
        PosterStyle(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.3, 0.9), "blocks")
    ]
    w, h = poster_size(rng)
    top, bottom = np.array(_colour(rng, styles[0])), np.array(_colour(rng, styles[0], 0.2))
    ramp = np.linspace(0, 1, h)[:, None, None]
    background = (top * (1 - ramp) + bottom * ramp).astype(np.uint8).repeat(w, axis=1)
    image = Image.fromarray(background, "RGB")
    draw = ImageDraw.Draw(image)
    for style in styles:
        _draw_motif(draw, rng, style, w, h)
    band_top = rng.uniform(0.02, 0.1) * h if rng.random() < 0.5 else rng.uniform(0.78, 0.86) * h
    band = (255, 255, 255) if styles[0].value < 0.5 else (20, 20, 20)
    x = rng.uniform(0.08, 0.2) * w
    while x < 0.9 * w:  # "letters" of the title
        letter = rng.uniform(0.03, 0.07) * w
        draw.rectangle((x, band_top, x + letter, band_top + 0.06 * h), fill=band)
        x += letter * rng.uniform(1.2, 1.8)
    pixels = np.asarray(image, dtype=np.int16)
    grain = rng.normal(0, rng.uniform(4, 9), (h // 2, w // 2, 1)).astype(np.int16).repeat(2, 0).repeat(2, 1)
    pixels[: grain.shape[0], : grain.shape[1]] += grain
    return encode_jpeg(
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"), int(rng.integers(70, 91))
    )


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """JPEG bytes at ``quality``, lowered (or raised) in steps while the file is outside
    ``POSTER_BYTES``: busy large posters would otherwise reach 70 KB, flat small ones 6 KB."""
    low, high = POSTER_BYTES
    data = _jpeg(image, quality)
    while len(data) > high and quality > 20:
        quality -= 10
        data = _jpeg(image, quality)
    while len(data) < low and quality < 95:
        quality = min(95, quality + 5)
        data = _jpeg(image, quality)
    return data


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


# metadata ---------------------------------------------------------------------------------------
def _person(rng: np.random.Generator) -> str:
    first = words.FIRST_NAMES[rng.integers(len(words.FIRST_NAMES))]
    return f"{first.capitalize()} {words.SURNAMES[rng.integers(len(words.SURNAMES))].capitalize()}"


def make_metadata(seed: int, movie_id: str, labels: np.ndarray) -> dict[str, Any]:
    """The movie's ``<id>.json`` for its ``labels``: IMDb-like fields; ``genres`` alphabetical, with
    now and then a genre that the 23-genre task drops (``DROPPED_GENRE_RATES``)."""
    rng = movie_rng(seed, movie_id, META)
    genres = [GENRES[g] for g in np.flatnonzero(labels)]
    genres += [g for g, rate in DROPPED_GENRE_RATES.items() if rng.random() < rate]
    title_pools = words.GENRE_WORDS[genres[0]] if rng.random() < 0.5 else words.COMMON
    adjective = title_pools.adjectives[rng.integers(len(title_pools.adjectives))]
    noun = title_pools.nouns[rng.integers(len(title_pools.nouns))]
    noir = labels[GENRES.index("Film-Noir")]
    year = int(rng.integers(1940, 1959)) if noir else int(np.clip(round(rng.normal(1995, 18)), 1915, 2016))
    return {
        "title": f"The {adjective.capitalize()} {noun.capitalize()}",
        "year": year,
        "kind": "movie",
        "genres": sorted(genres),
        "plot": make_plots(seed, movie_id, labels),
        "director": [_person(rng)],
        "writer": [_person(rng) for _ in range(rng.integers(1, 3))],
        "cast": [_person(rng) for _ in range(rng.integers(4, 12))],
        "rating": round(float(np.clip(rng.normal(6.4, 1.1), 1.0, 9.5)), 1),
        "votes": int(rng.lognormal(8.5, 1.6)),
        "runtimes": [str(int(np.clip(rng.normal(104, 18), 60, 220)))],
        "countries": [words.COUNTRIES[rng.integers(len(words.COUNTRIES))]],
        "languages": [words.LANGUAGES[rng.integers(len(words.LANGUAGES))]],
    }


# feature file rows ------------------------------------------------------------------------------
class FeatureRow(NamedTuple):
    """One movie's row of ``multimodal_imdb.hdf5``; ``pooled_poster`` becomes its ``vgg_features``
    (projected by the writer, a chunk at a time: one matrix product, not one per movie per worker)."""

    features: np.ndarray
    word_grams: np.ndarray
    three_grams: np.ndarray
    pooled_poster: np.ndarray
    images: np.ndarray
    genres: np.ndarray


@cache
def word_vector(word: str) -> np.ndarray:
    """The fixed random 300-d vector of a word (seeded by its crc32), of norm about 2.6 like the
    GoogleNews word2vec vectors': the word2vec stand-in."""
    rng = np.random.default_rng(zlib.crc32(word.encode()))
    return (WORD_VECTOR_STD * rng.standard_normal(WORD_VECTOR_DIM)).astype(np.float32)


def log_tf(hashes: np.ndarray, bins: int) -> np.ndarray:
    """l2-normalised ``1 + log(count)`` of the terms (given by their hashes) in ``bins`` bins."""
    counts = np.bincount(hashes % bins, minlength=bins).astype(np.float32)
    weights = np.where(counts > 0, 1 + np.log(np.maximum(counts, 1)), 0).astype(np.float32)
    return weights / max(float(np.linalg.norm(weights)), 1e-12)


def word_hashes(tokens: Sequence[str]) -> np.ndarray:
    return np.array([zlib.crc32(t.encode()) for t in tokens], dtype=np.int64)


def three_gram_hashes(text: str) -> np.ndarray:
    """Multiplicative hashes of the character 3-grams of `` text `` (bytes; one per position)."""
    codes = np.frombuffer(f" {text} ".encode(), dtype=np.uint8).astype(np.int64)
    grams = (codes[:-2] << 16) | (codes[1:-1] << 8) | codes[2:]
    return (grams * 2654435761) % (1 << 32) >> 8


@lru_cache(maxsize=1)
def vgg_projection() -> tuple[np.ndarray, np.ndarray]:
    """The fixed (seed 0) weights and bias of the VGG stand-in: 3 x 16 x 10 pooled pixels -> 4096.

    The weights are integers in [-8, 8] and the pooled pixels integers in [-128, 127], so every
    partial sum of the product is an integer below 2**24, exact in float32: the features do not
    depend on how rows are chunked or on the BLAS (a float product differs in the last bit)."""
    rng = np.random.default_rng(0)
    inputs = 3 * (HDF5_POSTER[0] // POOL) * (HDF5_POSTER[1] // POOL)
    weights = np.clip(np.rint(3 * rng.standard_normal((VGG_DIM, inputs))), -8, 8).astype(np.float32)
    return weights, (0.1 * rng.standard_normal(VGG_DIM)).astype(np.float32)


def vgg_stand_in(pooled_posters: np.ndarray) -> np.ndarray:
    """``vgg_features`` of (rows, 480) pooled posters: ReLU of the fixed integer projection, scaled."""
    weights, bias = vgg_projection()
    scale = np.float32(1 / (3 * 64 * math.sqrt(weights.shape[1])))
    return np.maximum((pooled_posters @ weights.T) * scale + bias, 0)


def feature_row(plots: Sequence[str], jpeg: bytes, labels: np.ndarray) -> FeatureRow:
    """The hdf5 row of a movie (see the module docstring for what stands in for what)."""
    text = normalize_text(max(plots, key=len))
    tokens = text.split()
    pixels = decode_image(io.BytesIO(jpeg), HDF5_POSTER, "resize_crop")
    c, h, w = pixels.shape
    pooled = np.rint(pixels.reshape(c, h // POOL, POOL, w // POOL, POOL).mean((2, 4))) - 128
    return FeatureRow(
        features=np.mean([word_vector(t) for t in tokens], axis=0).astype(np.float32),
        word_grams=log_tf(word_hashes(tokens), WORD_GRAM_BINS),
        three_grams=log_tf(three_gram_hashes(text), THREE_GRAM_BINS),
        pooled_poster=pooled.reshape(-1).astype(np.float32),
        images=pixels,
        genres=labels.astype(np.int32),
    )


def write_movie(dataset_dir: Path, seed: int, with_row: bool, movie_id: str) -> tuple[int, FeatureRow | None]:
    """Write ``<id>.json`` and ``<id>.jpeg``; (bytes written, the hdf5 row when ``with_row``)."""
    labels = sample_genres(seed, movie_id)
    meta = make_metadata(seed, movie_id, labels)
    jpeg = make_poster(seed, movie_id, labels)
    text = json.dumps(meta).encode()
    (dataset_dir / f"{movie_id}.json").write_bytes(text)
    (dataset_dir / f"{movie_id}.jpeg").write_bytes(jpeg)
    return len(text) + len(jpeg), feature_row(meta["plot"], jpeg, labels) if with_row else None


# the feature file -------------------------------------------------------------------------------
class FuelWriter:
    """``multimodal_imdb.hdf5`` written row chunk by row chunk (``ROWS_PER_WRITE`` rows in memory),
    into ``<name>.partial`` until :meth:`close` adds the Fuel ``split`` attribute and renames it."""

    def __init__(self, path: Path, ids: Sequence[str], split_sizes: dict[str, int]) -> None:
        self.path, self.partial = path, path.with_name(path.name + ".partial")
        self.split_sizes = split_sizes
        self.file = h5py.File(self.partial, "w")
        n = len(ids)
        shapes = {
            "features": ((WORD_VECTOR_DIM,), np.float32),
            "word_grams": ((WORD_GRAM_BINS,), np.float32),
            "three_grams": ((THREE_GRAM_BINS,), np.float32),
            "vgg_features": ((VGG_DIM,), np.float32),
            "images": ((3, *HDF5_POSTER), np.uint8),
            "genres": ((len(GENRES),), np.int32),
        }
        for key, (shape, dtype) in shapes.items():
            self.file.create_dataset(key, (n, *shape), dtype=dtype)
        self.file["genres"].attrs["target_names"] = json.dumps(GENRES)
        self.file["imdb_ids"] = np.array([i.encode() for i in ids], dtype="S7")
        self.buffer: list[FeatureRow] = []
        self.written = 0

    def add(self, row: FeatureRow) -> None:
        self.buffer.append(row)
        if len(self.buffer) == ROWS_PER_WRITE:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        stop = self.written + len(self.buffer)
        rows = slice(self.written, stop)
        for field in ("features", "word_grams", "three_grams", "images", "genres"):
            self.file[field][rows] = np.stack([getattr(r, field) for r in self.buffer])
        self.file["vgg_features"][rows] = vgg_stand_in(np.stack([r.pooled_poster for r in self.buffer]))
        self.written, self.buffer = stop, []

    def close(self) -> None:
        self._flush()
        dtype = np.dtype([("split", "S5"), ("source", "S15"), ("start", np.int64), ("stop", np.int64),
                          ("indices", h5py.ref_dtype), ("available", bool), ("comment", "S1")])  # fmt: skip
        bounds = np.cumsum([0, *(self.split_sizes[s] for s in SPLIT_ORDER)])
        rows = [
            (split.encode(), source.encode(), bounds[i], bounds[i + 1], h5py.Reference(), True, b".")
            for i, split in enumerate(SPLIT_ORDER)
            for source in self.file
        ]
        self.file.attrs["split"] = np.array(rows, dtype=dtype)
        self.file.close()
        os.replace(self.partial, self.path)


# the dataset ------------------------------------------------------------------------------------
def synthetic_split(n: int, seed: int) -> dict[str, list[str]]:
    """``n`` distinct random 7-digit ids cut train/dev/test in the official proportions."""
    if n < len(SPLIT_ORDER):
        raise ValueError(f"--n {n}: need at least one movie per split")
    total = sum(OFFICIAL_SPLIT.values())
    n_train = min(max(1, round(n * OFFICIAL_SPLIT["train"] / total)), n - 2)
    n_dev = min(max(1, round(n * OFFICIAL_SPLIT["dev"] / total)), n - n_train - 1)
    ids = [f"{i:07d}" for i in np.random.default_rng(seed).choice(9_999_999, n, replace=False) + 1]
    return {"train": ids[:n_train], "dev": ids[n_train : n_train + n_dev], "test": ids[n_train + n_dev :]}


def split_from_file(path: Path) -> dict[str, list[str]]:
    """The ids of a ``split.json`` (validated by the MM-IMDb reader), as train/dev/test lists."""
    ours = read_split(path)
    split = {"train": ours["train"], "dev": ours["val"], "test": ours["test"]}
    bad = [i for ids in split.values() for i in ids if not re.fullmatch(r"\d{7}", i)]
    if bad:
        raise ValueError(f"{path}: ids must be 7-digit strings (as IMDb's), got {bad[:3]}")
    return split


def folder_bytes(root: Path) -> int:
    return sum(entry.stat().st_size for entry in root.rglob("*") if entry.is_file())


def generate(
    out: Path,
    n: int | None = None,
    seed: int = 0,
    split_json: Path | None = None,
    hdf5: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the synthetic MM-IMDb into ``out`` (new or empty); returns the summary that ``main`` prints."""
    start = time.perf_counter()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; give a new folder (or remove it)")
    if split_json is not None and n is not None:
        raise ValueError("--n and --split-json both given: the split file fixes the ids and their number")
    split = (
        split_from_file(split_json)
        if split_json
        else synthetic_split(n or sum(OFFICIAL_SPLIT.values()), seed)
    )
    dataset_dir = out / "dataset"
    dataset_dir.mkdir(parents=True)
    (out / "split.json").write_text(json.dumps(split))
    ids = [i for name in SPLIT_ORDER for i in split[name]]
    workers = available_cpus() if workers is None else workers
    writer = FuelWriter(out / HDF5_NAME, ids, {s: len(split[s]) for s in SPLIT_ORDER}) if hdf5 else None
    task: Callable[[str], tuple[int, FeatureRow | None]] = partial(write_movie, dataset_dir, seed, hdf5)
    raw_bytes = 0
    with tqdm(total=len(ids), desc="synthetic MM-IMDb", unit="movie", disable=not progress) as bar:
        for lo in range(0, len(ids), BLOCK_MOVIES):  # a block at a time: bounded memory
            for size, row in ordered_map(task, ids[lo : lo + BLOCK_MOVIES], workers, "", progress=False):
                raw_bytes += size
                if writer is not None and row is not None:
                    writer.add(row)
                bar.update()
    if writer is not None:
        writer.close()
    return {
        "out": str(out),
        "splits": {s: len(split[s]) for s in SPLIT_ORDER},
        "raw_bytes": raw_bytes,
        "hdf5_bytes": (out / HDF5_NAME).stat().st_size if hdf5 else 0,
        "total_bytes": folder_bytes(out),
        "seconds": round(time.perf_counter() - start, 2),
        "workers": workers,
    }


def print_summary(summary: dict[str, Any]) -> None:
    splits = summary["splits"]
    print(f"synthetic MM-IMDb in {summary['out']}")
    print(
        f"  movies: {sum(splits.values())} (train {splits['train']}, dev {splits['dev']}, test {splits['test']})"
    )
    print(
        f"  raw files: {summary['raw_bytes'] / 1e6:.1f} MB, {HDF5_NAME}: {summary['hdf5_bytes'] / 1e6:.1f} MB"
    )
    print(
        f"  total: {summary['total_bytes'] / 1e6:.1f} MB in {summary['seconds']:.1f} s ({summary['workers']} workers)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m src.data.synthetic_mmimdb", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("out", type=Path, help="new (or empty) folder")
    parser.add_argument("--n", type=int, help="movies (default 25959, the real count); not with --split-json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split-json", type=Path, help="use this split.json's ids and split (e.g. the official one)"
    )
    parser.add_argument("--no-hdf5", action="store_true", help=f"write the raw layout only, no {HDF5_NAME}")
    parser.add_argument("--workers", type=int, help="processes writing movies (default: every available CPU)")
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, args.n, args.seed, args.split_json, not args.no_hdf5, args.workers)
    except (ValueError, OSError) as err:
        print(f"synthetic_mmimdb: {err}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
