"""``data=mmimdb``: MM-IMDb (Arevalo et al. 2017), 23 genres, multilabel.

Two published layouts (../shared/reference/data_formats.md): the raw archive (``split.json`` +
``dataset/<id>.json`` + ``dataset/<id>.jpeg``, ``data.format=raw``) and the authors' feature file
``multimodal_imdb.hdf5`` (``data.format=hdf5``).
"""

from __future__ import annotations

from pathlib import Path

from src.data.base import DatasetNotFoundError, FusionDataModule
from src.metrics import MULTILABEL

#: the paper's Table 1 order (frequency); written into every run as ``class_names``
GENRES = [
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror", "Documentary",
    "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History", "Music", "Animation",
    "Musical", "Western", "Sport", "Short", "Film-Noir",
]  # fmt: skip

HOW_TO_GET = (
    "MM-IMDb is distributed by its authors at https://archive.org/details/mmimdb (mmimdb.tar.gz, ~8 GB, "
    "and multimodal_imdb.hdf5); `python -m src.data.prepare mmimdb` downloads it. Point data.root (or "
    "MMFUSION_DATA_DIR, which holds mmimdb/) at the unpacked folder."
)


def missing_files_message(root: Path, data_format: str) -> str | None:
    """None when ``root`` holds the files of ``data_format``; otherwise what is missing and how to get it."""
    if data_format == "hdf5":
        expected = root / "multimodal_imdb.hdf5"
        if expected.is_file():
            return None
        return f"MM-IMDb (data.format=hdf5) not found: looked for {expected}.\n{HOW_TO_GET}"
    split = root / "split.json"
    dataset_dir = root / "dataset"
    if split.is_file() and dataset_dir.is_dir():
        return None
    return (
        f"MM-IMDb (data.format=raw) not found under {root}: expected {split} and {dataset_dir}/<id>.json "
        f"+ {dataset_dir}/<id>.jpeg for every id of split.json (or data.format=hdf5 with "
        f"{root / 'multimodal_imdb.hdf5'}).\n{HOW_TO_GET}"
    )


class MMIMDbDataModule(FusionDataModule):
    task = MULTILABEL

    def __init__(self, root: str, format: str = "raw", **loader_options) -> None:
        super().__init__(**loader_options)
        if format not in ("raw", "hdf5"):
            raise ValueError(f"data.format={format!r}; expected 'raw' or 'hdf5'")
        self.root = Path(root)
        self.format = format
        problem = missing_files_message(self.root, format)
        if problem:
            raise DatasetNotFoundError(problem)
        self.class_names = list(GENRES)
