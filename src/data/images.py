"""Poster decoding: resize (and crop) to a fixed size; delivered as bytes or as floats in [0, 1]
(optionally standardised), decoded per access or once into the decoded-poster cache."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.data.parallel import ordered_map
from src.errors import DataFormatError
from src.spec import PIXEL_SCALE


def decode_image(path: Path | BinaryIO, size: Sequence[int], mode: str = "resize_crop") -> np.ndarray:
    """RGB image at ``path`` (or in an open binary file) as (3, H, W) uint8 with (H, W) = ``size``.

    ``resize``: stretch to the size; ``resize_crop``: scale so the image covers the size (keeping its
    aspect ratio), then crop the centre (the MM-IMDb hdf5 posters are resized + cropped to 256 x 160).
    Raises ``ValueError`` naming the file when it cannot be decoded (missing, truncated, not an image).
    """
    height, width = int(size[0]), int(size[1])
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if mode == "resize":
                img = img.resize((width, height), Image.BILINEAR)
            elif mode == "resize_crop":
                scale = max(width / img.width, height / img.height)
                new_w, new_h = max(width, round(img.width * scale)), max(height, round(img.height * scale))
                img = img.resize((new_w, new_h), Image.BILINEAR)
                left, top = (new_w - width) // 2, (new_h - height) // 2
                img = img.crop((left, top, left + width, top + height))
            else:
                raise ValueError(f"poster mode {mode!r}; expected resize or resize_crop")
            array = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise DataFormatError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def verify_image(path: Path) -> None:
    """Decode the whole image once, as cheaply as the format allows (JPEG: at 1/8 scale, which still
    reads every byte of the compressed stream), so a truncated or corrupt file is found before
    training; raises ``DataFormatError`` naming the file, like :func:`decode_image`."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataFormatError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err


def _verify_message(path: Path) -> str | None:
    try:
        verify_image(path)
    except DataFormatError as err:
        return str(err)
    return None


def verify_images(paths: Sequence[Path], workers: int, desc: str = "posters") -> list[str | None]:
    """:func:`verify_image` of every path, in ``workers`` processes: per path None, or the error
    message naming the file."""
    return list(ordered_map(_verify_message, paths, workers, desc, chunksize=64))


def unit_floats(pixels: np.ndarray) -> np.ndarray:
    """Pixel bytes as float32 in [0, 1]: the data side of :func:`src.spec.unit_pixels` (same factor)."""
    return np.multiply(pixels, PIXEL_SCALE, dtype=np.float32)


def decoded_posters(
    paths: Sequence[Path | None], size: Sequence[int], mode: str, workers: int, desc: str, rows: int = 256
) -> Iterator[np.ndarray]:
    """Every path's poster decoded (uint8 (3, H, W); zeros for None), in order, in batches of ``rows``,
    by ``workers`` processes: what the decoded-poster cache stores."""
    size = [int(s) for s in size]
    decoded = ordered_map(partial(_decode_or_blank, size=size, mode=mode), paths, workers, desc, chunksize=32)
    batch: list[np.ndarray] = []
    for poster in decoded:
        batch.append(poster)
        if len(batch) == rows:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def _decode_or_blank(path: Path | None, size: Sequence[int], mode: str) -> np.ndarray:
    return np.zeros((3, *size), dtype=np.uint8) if path is None else decode_image(path, size, mode)


class PosterReader:
    """``reader(row)``: the row's poster as (3, H, W), float32 in [0, 1] (optionally standardised
    with ``mean``/``std``) or, with ``dtype="uint8"``, its bytes (the DataModule refuses uint8 with
    mean/std); rows without a poster read as zeros
    (``blank``). With ``decoded`` (the decoded-poster cache's rows), nothing is decoded again."""

    def __init__(
        self,
        paths: Sequence[Path | None],
        size: Sequence[int],
        mode: str,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        dtype: str = "float32",
        decoded: np.ndarray | None = None,
    ) -> None:
        self.paths = list(paths)
        self.size = [int(s) for s in size]
        self.mode = mode
        self.dtype = dtype
        self.decoded = decoded
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __call__(self, row: int) -> np.ndarray:
        if self.decoded is not None:
            pixels = np.array(self.decoded[row])
        elif self.paths[row] is None:
            pixels = np.zeros((3, *self.size), dtype=np.uint8)
        else:
            pixels = decode_image(self.paths[row], self.size, self.mode)
        if self.dtype == "uint8":
            return pixels
        x = unit_floats(pixels)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x
