"""``python -m src.data.prepare <dataset> [--dest DIR] [--mirror URL] [--sha256 FILE=HEX ...]``.

Downloads what is publicly downloadable (MM-IMDb archive + hdf5, MNIST, FSDD) into
``<dest>/<dataset>/`` (``dest`` defaults to ``MMFUSION_DATA_DIR`` or ``<repo>/data``), with a
progress bar, resume of interrupted downloads (HTTP ``Range`` on the ``.part`` file), sha256
verification (a mismatch deletes the download and fails), and safe extraction (no member may leave
the destination; a ``.<archive>.extracted`` marker makes re-runs skip finished work). For
licence-gated or manually distributed data (IEMOCAP, CMU-MOSI/MOSEI pickles, Moviescope) it prints
the steps. Where the publishers give no checksum, the computed sha256 is printed so that it can be
pinned with ``--sha256 FILE=HEX``; ``--mirror`` fetches the same file names from another base URL.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from src.utils.resolvers import REPO_ROOT

CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    url: str
    sha256: str | None = None  # None: the publisher gives none; printed after download
    extract: bool = False
    strip_components: int = 0  # leading path parts dropped when extracting (like tar --strip-components)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


SOURCES: dict[str, list[Source]] = {
    "mmimdb": [
        Source("https://archive.org/download/mmimdb/mmimdb.tar.gz", extract=True, strip_components=1),
        Source("https://archive.org/download/mmimdb/multimodal_imdb.hdf5"),
    ],
    "mnist": [
        Source(f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}")
        for name in (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        )
    ],
    "fsdd": [
        Source(
            "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip",
            extract=True,
            strip_components=1,
        )
    ],
}

INSTRUCTIONS: dict[str, str] = {
    "iemocap": (
        "IEMOCAP is licence-gated: request it at https://sail.usc.edu/iemocap/iemocap_release.htm. The MulT processed "
        "pickles (iemocap_data.pkl, iemocap_data_noalign.pkl) are linked from github.com/yaohungt/Multimodal-Transformer "
        "(README, 'Data Download') for licence holders. Put them in <dest>/mult/ (data=iemocap data.root=...)."
    ),
    "mosi": (
        "CMU-MOSI: the MulT pickles mosi_data.pkl / mosi_data_noalign.pkl are linked from "
        "github.com/yaohungt/Multimodal-Transformer (README, 'Data Download'). Put them in <dest>/mult/."
    ),
    "mosei": (
        "CMU-MOSEI: mosei_senti_data.pkl / mosei_senti_data_noalign.pkl from github.com/yaohungt/Multimodal-Transformer. "
        "For data=mosei_emotions build a pickle whose labels keep the CMU-MultimodalSDK 7 columns (sentiment, happy, sad, "
        "anger, surprise, disgust, fear). Put them in <dest>/mult/."
    ),
    "moviescope": (
        "Moviescope (Cascante-Bonilla et al. 2019) is distributed on request by its authors (http://www.cs.virginia.edu/"
        "~pc9za/research/moviescope.html). Unpack into <dest>/moviescope/ with train/dev/test.jsonl, 200F_VGG16/, "
        "PosterFeatures/, Melspectrogram/ and Metadata_matrices/ (see docs/data.md)."
    ),
}


class ChecksumError(RuntimeError):
    """A downloaded file's sha256 differs from the expected one (the file has been deleted)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, expected_sha256: str | None, progress: bool = True) -> str:
    """Fetch ``url`` into ``target`` (resuming ``target.part``); verify; return the sha256."""
    if target.is_file():
        digest = sha256_file(target)
        if expected_sha256 is None or digest == expected_sha256:
            return digest
        target.unlink()
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code != 416:  # 416: the .part is already complete
            raise
        response = None
    if response is not None:
        with response:
            if offset and response.status != 206:  # the server ignored the Range: start again
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with (
                open(part, "ab" if offset else "wb") as out,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=target.name,
                    disable=not progress,
                ) as bar,
            ):
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
    digest = sha256_file(part)
    if expected_sha256 is not None and digest != expected_sha256:
        part.unlink()
        raise ChecksumError(
            f"{url}: sha256 {digest} != expected {expected_sha256}; the download was deleted, run again"
        )
    os.replace(part, target)
    return digest


def _stripped(name: str, strip: int) -> PurePosixPath | None:
    parts = PurePosixPath(name).parts[strip:]
    return PurePosixPath(*parts) if parts else None


def extract(archive: Path, dest: Path, strip_components: int = 0) -> int:
    """Unpack a .tar(.gz) or .zip into ``dest``; refuses members that would land outside it. Returns the count."""
    marker = dest / f".{archive.name}.extracted"
    if marker.is_file():
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    count = 0

    def target_of(name: str) -> Path | None:
        rel = _stripped(name, strip_components)
        if rel is None:
            return None
        path = (dest / rel).resolve()
        if root != path and root not in path.parents:
            raise ValueError(f"{archive}: member {name!r} would be written outside {dest}")
        return path

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                path = target_of(info.filename)
                if path is None or info.is_dir():
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(path, "wb") as out:
                    shutil.copyfileobj(src, out)
                count += 1
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                path = target_of(member.name)
                if path is None or not member.isfile():
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with t.extractfile(member) as src, open(path, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out)
                count += 1
    else:
        raise ValueError(f"{archive}: neither a tar nor a zip archive")
    marker.write_text("ok\n")
    return count


def prepare(
    dataset: str,
    dest: Path,
    mirror: str | None = None,
    checksums: dict[str, str] | None = None,
    progress: bool = True,
) -> Path:
    """Download (and extract) ``dataset`` into ``dest/<dataset>``; returns that folder."""
    folder = dest / dataset
    folder.mkdir(parents=True, exist_ok=True)
    for source in SOURCES[dataset]:
        url = f"{mirror.rstrip('/')}/{source.filename}" if mirror else source.url
        expected = (checksums or {}).get(source.filename, source.sha256)
        target = folder / source.filename
        digest = download(url, target, expected, progress)
        print(
            f"{target}: sha256 {digest} ({'verified' if expected else 'no published checksum; pin it with --sha256'})"
        )
        if source.extract:
            n = extract(target, folder, source.strip_components)
            print(f"{target}: extracted {n} files into {folder}" if n else f"{target}: already extracted")
    return folder


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.data.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted({*SOURCES, *INSTRUCTIONS}))
    parser.add_argument(
        "--dest", type=Path, default=Path(os.environ.get("MMFUSION_DATA_DIR", REPO_ROOT / "data"))
    )
    parser.add_argument("--mirror", help="base URL serving the same file names")
    parser.add_argument(
        "--sha256", action="append", default=[], metavar="FILE=HEX", help="expected checksum of a file"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.dataset in INSTRUCTIONS:
        print(INSTRUCTIONS[args.dataset].replace("<dest>", str(args.dest)))
        return 0
    checksums = dict(item.split("=", 1) for item in args.sha256)
    try:
        prepare(args.dataset, args.dest, args.mirror, checksums, progress=not args.no_progress)
    except (ChecksumError, ValueError, OSError) as err:
        print(f"prepare {args.dataset}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
