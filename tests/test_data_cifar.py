"""CIFAR readers, opt-in download and safe extraction, on small files written in tmp_path (no network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

from racecar_core.data import cifar
from racecar_core.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR10_URL,
    CIFAR100_URL,
    cifar_class_names,
    load_cifar10,
    load_cifar100,
)
from racecar_core.data.download import ChecksumError, download, download_cifar, extract_tar


@pytest.fixture(autouse=True)
def no_official_checksums(monkeypatch):
    """The files written here are small stand-ins with the official names, not the official files: no
    published md5 applies to them (tests/test_faults.py checks the md5 verification itself)."""
    monkeypatch.setattr(cifar, "OFFICIAL_MD5", {name: {} for name in cifar.OFFICIAL_MD5})


def _rows(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 32, 32, 3] -> the files' [N, 3072] channel-major rows."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _dump(path, entries: dict) -> None:
    path.write_bytes(pickle.dumps(entries))


def write_cifar10(folder, n_per_batch: int = 3) -> dict:
    """Five training batches and a test batch in CIFAR-10's format; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images, labels = _images(n_per_batch, i), list(range(i, i + n_per_batch))
        _dump(folder / name, {b"batch_label": name.encode(), b"labels": labels, b"data": _rows(images)})
        written[name] = (images, np.array(labels))
    _dump(folder / "batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072})
    return written


def write_cifar100(folder, n: int = 4) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(["train", "test"]):
        images = _images(n, 10 + i)
        fine, coarse = np.arange(n) + 50 + i, np.arange(n) + 7 + i
        _dump(
            folder / name,
            {b"data": _rows(images), b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist()},
        )
        written[name] = (images, fine, coarse)
    meta = {
        b"fine_label_names": [f"fine{k}".encode() for k in range(100)],
        b"coarse_label_names": [f"coarse{k}".encode() for k in range(20)],
    }
    _dump(folder / "meta", meta)
    return written


# ------------------------------------------------------------------------------------------- readers
@pytest.mark.parametrize("sub", ["", "cifar-10-batches-py"])
def test_cifar10_round_trip_both_layouts(tmp_path, sub):
    written = write_cifar10(tmp_path / sub if sub else tmp_path)
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (15, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    expected = np.concatenate([written[f"data_batch_{k}"][0] for k in range(1, 6)])
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, np.concatenate([written[f"data_batch_{k}"][1] for k in range(1, 6)]))
    xt, yt = load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(xt, written["test_batch"][0])
    np.testing.assert_array_equal(yt, [5, 6, 7])
    assert cifar_class_names(tmp_path, "cifar10") == list(CIFAR10_CLASSES)


def test_cifar10_channel_order(tmp_path):
    """The first 1024 bytes of a row are red, row-major: pixel (r, c) of red is byte 32 r + c."""
    tmp_path.mkdir(exist_ok=True)
    row = np.zeros((1, 3072), np.uint8)
    row[0, 32 * 1 + 2] = 10  # red, row 1, column 2
    row[0, 1024 + 5] = 20  # green, row 0, column 5
    row[0, 2048 + 32 * 31 + 31] = 30  # blue, last pixel
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        _dump(tmp_path / name, {b"data": row, b"labels": [4]})
    x, _ = load_cifar10(tmp_path, "test")
    assert x[0, 1, 2, 0] == 10 and x[0, 0, 5, 1] == 20 and x[0, 31, 31, 2] == 30 and x.sum() == 60


@pytest.mark.parametrize("sub", ["", "cifar-100-python"])
def test_cifar100_round_trip_fine_and_coarse(tmp_path, sub):
    written = write_cifar100(tmp_path / sub if sub else tmp_path)
    for split in ("train", "test"):
        images, fine, coarse = written[split]
        x, y = load_cifar100(tmp_path, split)
        np.testing.assert_array_equal(x, images)
        np.testing.assert_array_equal(y, fine)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(load_cifar100(tmp_path, split, label="coarse")[1], coarse)
    assert cifar_class_names(tmp_path, "cifar100")[:2] == ["fine0", "fine1"]
    assert len(cifar_class_names(tmp_path, "cifar100", label="coarse")) == 20


def test_missing_folder_message_says_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path / "nowhere")
    message = str(err.value)
    for part in ("data_batch_1", "data_batch_5", CIFAR10_URL, "download_cifar", "cifar-10-batches-py"):
        assert part in message
    with pytest.raises(FileNotFoundError, match="cifar-100-python") as err:
        load_cifar100(tmp_path, "test")
    assert CIFAR100_URL in str(err.value) and "test" in str(err.value)
    assert not (tmp_path / "nowhere").exists()  # a reader never creates anything


def test_missing_single_file_is_named(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path, "train")
    assert load_cifar10(tmp_path, "test")[0].shape == (3, 32, 32, 3)  # the test split is complete


def test_bad_arguments_and_bad_contents(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_cifar10(tmp_path, "valid")
    with pytest.raises(ValueError, match="label"):
        load_cifar100(tmp_path, "train", label="medium")
    _dump(tmp_path / "test_batch", {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]})
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(tmp_path, "test")
    _dump(tmp_path / "test_batch", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(ValueError, match="labels"):
        load_cifar10(tmp_path, "test")


# ------------------------------------------------------------------------------------------ download
def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "served" / "blob.bin"
    path.parent.mkdir()
    path.write_bytes(np.random.default_rng(0).bytes(300_000))
    return path


def test_download_file_url_good_checksum(tmp_path, source):
    dest = tmp_path / "out" / "blob.bin"
    assert download(source.as_uri(), dest, sha256=_sha256(source), chunk_size=4096) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert list(dest.parent.iterdir()) == [dest]  # no temporary file left


def test_download_bad_checksum_leaves_nothing(tmp_path, source):
    dest = tmp_path / "out" / "blob.bin"
    wrong = "0" * 32
    with pytest.raises(ChecksumError) as err:
        download(source.as_uri(), dest, md5=wrong)
    assert wrong in str(err.value) and _md5(source) in str(err.value)
    assert list(dest.parent.iterdir()) == []


def test_download_keeps_verified_file_and_replaces_bad_one(tmp_path, source):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"stale")
    download(source.as_uri(), dest, md5=_md5(source))
    assert dest.read_bytes() == source.read_bytes()
    source.unlink()  # a verified file is not fetched again
    assert download("file:///nonexistent/blob.bin", dest, md5=_md5(dest)) == dest


def test_download_bad_checksum_keeps_existing_file(tmp_path, source):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"old")
    with pytest.raises(ChecksumError):
        download(source.as_uri(), dest, sha256="f" * 64)
    assert dest.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "served"]


def test_download_requires_checksum_and_known_scheme(tmp_path, source):
    with pytest.raises(ValueError, match="sha256 or md5"):
        download(source.as_uri(), tmp_path / "x")
    with pytest.raises(ValueError, match="scheme"):
        download("ftp://127.0.0.1/x", tmp_path / "x", md5="0" * 32)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(source):
    """An HTTP server on 127.0.0.1 (free port) serving source's folder; stopped after the test."""
    handler = functools.partial(_Quiet, directory=str(source.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_download_over_local_http(tmp_path, source, http_server):
    dest = tmp_path / "got.bin"
    download(f"{http_server}/blob.bin", dest, sha256=_sha256(source), timeout=5)
    assert dest.read_bytes() == source.read_bytes()
    with pytest.raises(ChecksumError):
        download(f"{http_server}/blob.bin", tmp_path / "bad.bin", md5="1" * 32, timeout=5)
    assert not (tmp_path / "bad.bin").exists() and not list(tmp_path.glob(".*part"))


class _Truncated(http.server.BaseHTTPRequestHandler):
    """Promises 100000 bytes, sends 10 and hangs up."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_interrupted_download_leaves_nothing(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Truncated)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with pytest.raises(OSError, match="10 of 100000 bytes"):
            download(f"http://127.0.0.1:{server.server_address[1]}/x", tmp_path / "x.bin", md5="0" * 32, timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- extraction
def _tar(path, folder, arcname) -> None:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=arcname)


def test_download_cifar_extracts_archive_readable_by_loaders(tmp_path):
    written = write_cifar10(tmp_path / "build" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    _tar(archive, tmp_path / "build" / "cifar-10-batches-py", "cifar-10-batches-py")
    root = tmp_path / "data"
    folder = download_cifar("cifar10", root, url=archive.as_uri(), md5=_md5(archive))
    assert folder == root / "cifar-10-batches-py"
    np.testing.assert_array_equal(load_cifar10(root, "test")[0], written["test_batch"][0])
    assert (root / "cifar-10-python.tar.gz").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    # Already there: no download is attempted (this URL does not exist).
    assert download_cifar("cifar10", root, url="file:///nonexistent.tar.gz") == folder


def test_download_cifar100_without_keeping_archive(tmp_path):
    write_cifar100(tmp_path / "build" / "cifar-100-python")
    archive = tmp_path / "c100.tar.gz"
    _tar(archive, tmp_path / "build" / "cifar-100-python", "cifar-100-python")
    root = tmp_path / "data"
    download_cifar("cifar100", root, url=archive.as_uri(), md5=_md5(archive), keep_archive=False)
    assert [p.name for p in root.iterdir()] == ["cifar-100-python"]
    assert load_cifar100(root, "train", label="coarse")[1].tolist() == [7, 8, 9, 10]


def test_download_cifar_wrong_md5_extracts_nothing(tmp_path):
    write_cifar10(tmp_path / "build")
    archive = tmp_path / "a.tar.gz"
    _tar(archive, tmp_path / "build", "cifar-10-batches-py")
    root = tmp_path / "data"
    with pytest.raises(ChecksumError):
        download_cifar("cifar10", root, url=archive.as_uri())  # the official md5 cannot match
    assert list(root.iterdir()) == []


def _tar_with(path, name: str, kind=tarfile.REGTYPE, linkname: str = "") -> None:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        data = b"" if kind != tarfile.REGTYPE else b"payload"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "name, kind, linkname",
    [
        ("../evil.txt", tarfile.REGTYPE, ""),
        ("ok/../../evil.txt", tarfile.REGTYPE, ""),
        ("/tmp/evil.txt", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("hard", tarfile.LNKTYPE, "../x"),
    ],
)
def test_extract_rejects_unsafe_members(tmp_path, name, kind, linkname):
    archive = tmp_path / "bad.tar.gz"
    _tar_with(archive, name, kind, linkname)
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="refusing"):
        extract_tar(archive, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_extract_never_overwrites(tmp_path):
    archive = tmp_path / "a.tar.gz"
    _tar_with(archive, "top/file.txt")
    dest = tmp_path / "dest"
    assert extract_tar(archive, dest) == [dest / "top"]
    assert (dest / "top" / "file.txt").read_bytes() == b"payload"
    with pytest.raises(FileExistsError, match="top"):
        extract_tar(archive, dest)
    assert [p.name for p in dest.iterdir()] == ["top"]
