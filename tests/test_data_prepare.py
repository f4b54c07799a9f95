"""``src.data.prepare`` against a local HTTP server with Range support: resume, checksum, extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from src.data.prepare import ChecksumError, download, extract
from src.data.prepare import main as prepare_main


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` support; records the ranges it was asked for."""

    ranges: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        header = self.headers.get("Range")
        RangeHandler.ranges.append(header or "")
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.ranges = []
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_fsdd_download_resume_verify_extract(server, tmp_path):
    root, url = server
    archive = _zip_bytes(
        {f"free-spoken-digit-dataset-master/recordings/{d}_a_0.wav": bytes([d]) * 3000 for d in range(10)}
    )
    (root / "master.zip").write_bytes(archive)
    digest = hashlib.sha256(archive).hexdigest()
    dest = tmp_path / "data"
    (dest / "fsdd").mkdir(parents=True)
    (dest / "fsdd" / "master.zip.part").write_bytes(archive[:1000])  # an interrupted earlier download
    args = ["fsdd", "--dest", str(dest), "--mirror", url, "--sha256", f"master.zip={digest}", "--no-progress"]
    assert prepare_main(args) == 0
    assert RangeHandler.ranges == ["bytes=1000-"]  # resumed, not restarted
    assert (dest / "fsdd" / "master.zip").read_bytes() == archive
    assert sorted(p.name for p in (dest / "fsdd" / "recordings").iterdir()) == [
        f"{d}_a_0.wav" for d in range(10)
    ]
    assert prepare_main(args) == 0  # finished work is not repeated
    assert len(RangeHandler.ranges) == 1


def test_corrupted_archive_is_rejected(server, tmp_path, capsys):
    root, url = server
    good = _zip_bytes({"x/recordings/0_a_0.wav": b"abc"})
    (root / "master.zip").write_bytes(good[:-5] + b"XXXXX")  # corrupted in transit
    dest = tmp_path / "data"
    code = prepare_main(
        [
            "fsdd",
            "--dest",
            str(dest),
            "--mirror",
            url,
            "--sha256",
            f"master.zip={hashlib.sha256(good).hexdigest()}",
            "--no-progress",
        ]
    )
    assert code == 1 and "sha256" in capsys.readouterr().err
    assert not (dest / "fsdd" / "master.zip").exists() and not (dest / "fsdd" / "master.zip.part").exists()
    assert not (dest / "fsdd" / "recordings").exists()
    with pytest.raises(ChecksumError):
        download(f"{url}/master.zip", tmp_path / "again.zip", "0" * 64, progress=False)


def test_tar_extraction_strips_and_refuses_escapes(tmp_path):
    def tar_with(names):
        path = tmp_path / f"a{len(names)}.tar.gz"
        with tarfile.open(path, "w:gz") as t:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = 2
                t.addfile(info, io.BytesIO(b"ok"))
        return path

    good = tar_with(["mmimdb/split.json", "mmimdb/dataset/0000001.json"])
    assert extract(good, tmp_path / "out", strip_components=1) == 2
    assert (tmp_path / "out" / "dataset" / "0000001.json").read_bytes() == b"ok"
    with pytest.raises(ValueError, match="outside"):
        extract(tar_with(["../../evil.txt"]), tmp_path / "out2")


def test_licence_gated_datasets_print_instructions(capsys):
    assert prepare_main(["iemocap", "--dest", "/x"]) == 0
    assert "sail.usc.edu" in capsys.readouterr().out
