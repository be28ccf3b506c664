"""Opt-in downloads with a checksum, and safe extraction of tar archives.

Nothing in the package calls these functions by itself: a reader that finds no data raises an error
that points here, and the user decides to download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from ..files import ChecksumError, atomic_write, file_digest
from .cifar import _LAYOUT, CIFAR10_MD5, CIFAR100_MD5, cifar_dir

_CIFAR_MD5 = {"cifar10": CIFAR10_MD5, "cifar100": CIFAR100_MD5}
_SCHEMES = ("http", "https", "file")


def _expected(sha256: str | None, md5: str | None) -> tuple[str, str]:
    if sha256 is None and md5 is None:
        raise ValueError("give the expected sha256 or md5 of the file")
    return ("sha256", sha256.lower()) if sha256 is not None else ("md5", md5.lower())


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    *,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Fetch ``url`` (http, https or file) to ``dest`` and check its sha256 (preferred) or md5.

    The bytes stream into a temporary file next to ``dest`` (:func:`racecar_core.files.atomic_write`),
    which is renamed onto ``dest`` only once the digest matches, so ``dest`` is never half-written. On a
    mismatch the temporary file is deleted and :class:`ChecksumError` names both digests; a transfer
    shorter than its Content-Length raises OSError. An existing ``dest`` with the right digest is kept
    without downloading. Returns ``dest`` as a Path.
    """
    algorithm, expected = _expected(sha256, md5)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise ValueError(f"refusing URL scheme {scheme!r} in {url}; expected one of {_SCHEMES}")
    dest = Path(dest).expanduser()
    if dest.is_file() and file_digest(dest, algorithm) == expected:
        return dest
    # atomic_write streams into a uniquely named temporary file next to dest and removes it on any error
    with atomic_write(dest, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
        promised = response.headers.get("Content-Length")
        h, size = hashlib.new(algorithm), 0
        while chunk := response.read(chunk_size):
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
        if promised is not None and size != int(promised):
            raise OSError(f"{url}: connection ended after {size} of {promised} bytes; nothing was written to {dest}")
        actual = h.hexdigest()
        if actual != expected:
            raise ChecksumError(f"{url}: {algorithm} is {actual}, expected {expected}; nothing was written to {dest}")
    return dest


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or member.name.startswith(("/", "\\")) or ":" in path.parts[0]:
        raise ValueError(f"{archive}: refusing member with unsafe path {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"{archive}: refusing member {member.name!r} that is not a regular file or folder")


def extract_tar(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a (gzip-compressed) tar ``archive`` into ``dest`` safely; returns its top-level paths.

    Every member must be a regular file or folder with a relative path free of ``..``; otherwise
    ValueError is raised before anything is written. Members are unpacked into a temporary folder
    inside ``dest`` and then moved into place; an existing top-level entry is never overwritten
    (FileExistsError).
    """
    archive, dest = Path(archive), Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member, archive)
        tops = sorted({PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts})
        clashes = [t for t in tops if (dest / t).exists()]
        if clashes:
            raise FileExistsError(f"{archive}: {', '.join(clashes)} already exist in {dest}; remove them first")
        staging = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
        try:
            # filter="data" (Python >= 3.11.4) re-checks paths and drops unsafe permission bits.
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **kwargs)
            for top in tops:
                os.replace(staging / top, dest / top)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [dest / t for t in tops]


def download_cifar(
    name: str = "cifar10",
    root: str | os.PathLike = "data",
    *,
    url: str | None = None,
    md5: str | None = None,
    keep_archive: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download and extract the official CIFAR-10 or CIFAR-100 python archive into ``root``.

    Does nothing if the extracted files are already readable. Otherwise fetches the ``.tar.gz`` (about
    160 MB) from the official URL (``url`` overrides it, e.g. for a mirror or a test), checks its md5
    (``md5`` overrides the published one), extracts it safely and returns the folder holding the files,
    e.g. ``root/cifar-10-batches-py``. The archive stays in ``root`` unless ``keep_archive`` is False.
    """
    if name not in _LAYOUT:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(_LAYOUT)}")
    root = Path(root).expanduser()
    try:
        return cifar_dir(root, name)
    except FileNotFoundError:
        pass
    url = url or _LAYOUT[name][1]
    archive = download(url, root / _LAYOUT[name][1].rsplit("/", 1)[1], md5=md5 or _CIFAR_MD5[name], timeout=timeout)
    extract_tar(archive, root)
    if not keep_archive:
        archive.unlink()
    return cifar_dir(root, name)
