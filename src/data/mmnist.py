"""``data=mmnist``: CentralNet's multimodal MNIST (Vielzeuf et al. 2018, Sec. 4.1) from real IDX files.

Two 28x28 views per image, made by :class:`src.data.pca_views.PCAViews` (the builder of
``data=digits``) from a PCA fitted on the training images. Any number of images: with the standard
``train-images-idx3-ubyte`` / ``t10k-images-idx3-ubyte`` pairs (optionally ``.gz``) the official
train/test split is used (val = a seeded stratified part of train); with a single images/labels pair
(e.g. ``../shared/data/mnist10k``) a seeded stratified train/val/test split is made and logged.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from src.data.base import DatasetNotFoundError, SampleDataset, stratified_split
from src.data.files import FileDataModule
from src.data.pca_views import PCAViews
from src.errors import DataFormatError
from src.tasks import MULTICLASS

log = logging.getLogger("mmfusion")

IDX_MAGIC = {2051: 3, 2049: 1}  # images (N, rows, cols), labels (N,)
MNIST_SIDE = (28, 28)  # ../shared/reference/data_formats.md: 28 x 28 views
HOW_TO_GET = (
    "MNIST in IDX format: http://yann.lecun.com/exdb/mnist/ (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz); `python -m src.data.prepare mnist` downloads them."
)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array; validates the magic number and the size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataFormatError(f"{path}: cannot read ({err})") from err
    if len(data) < 8:
        raise DataFormatError(f"{path}: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic not in IDX_MAGIC:
        raise DataFormatError(f"{path}: magic number {magic}, expected 2051 (images) or 2049 (labels)")
    ndim = IDX_MAGIC[magic]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise DataFormatError(
            f"{path}: header says {dims} ({expected} bytes) but {len(data) - offset} data bytes follow"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _find(root: Path, patterns: Sequence[str]) -> list[Path]:
    return sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})


def load_mnist(
    root: Path, val_fraction: float, split_fractions: Sequence[float], split_seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """All images (N, 28, 28) in [0, 1], labels (N,) and the train/val/test row indices."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"MNIST not found: {root} is not a folder.\n{HOW_TO_GET}")
    train = _find(root, ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte"])
    test = _find(root, ["t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz", "t10k-images.idx3-ubyte"])
    if train and test:
        pairs = [(train[0], _labels_for(train[0])), (test[0], _labels_for(test[0]))]
    else:
        images = _find(root, ["*images*idx3*"])
        if len(images) != 1:
            raise DatasetNotFoundError(
                f"MNIST under {root}: expected the official train-/t10k- IDX pairs or exactly one *images*idx3* file "
                f"with its *labels*idx1* file; found images files {[p.name for p in images]}.\n{HOW_TO_GET}"
            )
        pairs = [(images[0], _labels_for(images[0]))]
    arrays = []
    for image_path, label_path in pairs:
        x, y = read_idx(image_path), read_idx(label_path)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataFormatError(
                f"{image_path} {x.shape} and {label_path} {y.shape}: expected (N, rows, cols) images and N labels"
            )
        if y.max(initial=0) > 9:
            raise DataFormatError(f"{label_path}: labels up to {y.max()}, expected digits 0-9")
        if x.shape[1:] != MNIST_SIDE:
            raise DataFormatError(
                f"{image_path}: images of {x.shape[1]} x {x.shape[2]} pixels, expected MNIST's {MNIST_SIDE[0]} x {MNIST_SIDE[1]}"
            )
        arrays.append((x, y))
    images = np.concatenate([a[0] for a in arrays]).astype(np.float32) / 255.0
    labels = np.concatenate([a[1] for a in arrays]).astype(np.int64)
    if len(arrays) == 2:
        n_train = len(arrays[0][0])
        inner = stratified_split(labels[:n_train], (1 - val_fraction, val_fraction, 0.0), split_seed)
        indices = {"train": inner["train"], "val": inner["val"], "test": np.arange(n_train, len(labels))}
        log.info(
            "MNIST: official split (%s / %s), val = %.0f%% of train (seed %d)",
            pairs[0][0].name,
            pairs[1][0].name,
            100 * val_fraction,
            split_seed,
        )
    else:
        indices = stratified_split(labels, split_fractions, split_seed)
        log.info(
            "MNIST: single file pair %s (%d images): seeded stratified split %s (seed %d), no official test set",
            pairs[0][0].name, len(labels), list(split_fractions), split_seed,
        )  # fmt: skip
    return images, labels, indices


def _labels_for(images: Path) -> Path:
    candidates = [images.with_name(images.name.replace("images", "labels").replace("idx3", "idx1"))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetNotFoundError(
        f"MNIST: {images} has no labels file (expected {candidates[0]}).\n{HOW_TO_GET}"
    )


class MNISTDataModule(FileDataModule):
    """Two PCA views of real MNIST, 10 classes (CentralNet Table 2: energy 50%, share ratio 50%)."""

    task = MULTICLASS
    name = "mmnist"

    def __init__(
        self,
        root: str,
        energy: float = 0.5,
        share_ratio: float = 0.5,
        share_by: str = "vectors",
        val_fraction: float = 0.1,
        split_fractions: Sequence[float] = (0.7, 0.1, 0.2),
        split_seed: int = 0,
        include_original: bool = False,
        **options,
    ) -> None:
        super().__init__(**options)
        self.root = Path(root)
        self._images, self._labels, self._indices = load_mnist(
            self.root, val_fraction, split_fractions, split_seed
        )
        self.views = PCAViews.fit(
            self._images[self._indices["train"]], energy, share_ratio, share_by=share_by
        )
        log.info(
            "mmnist views: energy %s, shared %.3f",
            [round(e, 3) for e in self.views.view_energy],
            self.views.shared_energy,
        )
        self.class_names = [str(d) for d in range(10)]
        side = list(self._images.shape[1:])
        self.include_original = include_original
        self.modalities = self.views.modality_specs(side, include_original)

    def load_split(self, split: str) -> SampleDataset:
        idx = self._indices[split]
        return SampleDataset(
            ids=[f"mnist{i:05d}" for i in idx],
            modalities=self.views.modality_arrays(self._images[idx], self.include_original),
            labels=self._labels[idx],
        )
