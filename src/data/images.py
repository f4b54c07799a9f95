"""Poster decoding: resize (and crop) to a fixed size, as float tensors in [0, 1] (optionally standardised)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.data.parallel import ordered_map
from src.errors import DataFormatError


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


class PosterReader:
    """``reader(row)``: the row's poster as float32 (3, H, W); rows without a poster read as zeros (``blank``)."""

    def __init__(
        self,
        paths: Sequence[Path | None],
        size: Sequence[int],
        mode: str,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
    ) -> None:
        self.paths = list(paths)
        self.size = [int(s) for s in size]
        self.mode = mode
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __call__(self, row: int) -> np.ndarray:
        path = self.paths[row]
        if path is None:
            return np.zeros((3, *self.size), dtype=np.float32)
        x = np.multiply(decode_image(path, self.size, self.mode), np.float32(1 / 255), dtype=np.float32)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x
