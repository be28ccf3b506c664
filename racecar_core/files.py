"""Reading and writing the project's files safely: one home for every file a run writes or reads back.

Writes are atomic: the bytes go to a temporary file with a unique name (process id and random
characters) in the target's folder, which is flushed to disk and then renamed onto the target. A reader
sees the old file or the new one, never half of one; a failure or Ctrl-C in the middle removes the
temporary file and leaves the old file as it was; two processes writing the same file never share a
temporary name. New files get the usual permissions (0666 less the umask).

Reads of files the project wrote raise :class:`DamagedFileError` when a file is truncated, empty or
garbage: one message naming the file and what to do (the ``remedy``). Checkpoints are loaded with
``torch.load(..., weights_only=True)``: a file that needs more is refused, never executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ChecksumError",
    "DamagedFileError",
    "atomic_write",
    "file_digest",
    "load_json",
    "load_numpy",
    "load_torch",
    "read_csv",
    "save_numpy",
    "save_torch",
    "write_bytes",
    "write_json",
    "write_text",
]


class DamagedFileError(ValueError):
    """A file exists but cannot be read back (truncated, empty or not what the project wrote)."""

    def __init__(self, path: str | os.PathLike, problem: str, remedy: str):
        self.path = Path(path)
        super().__init__(f"{self.path} is damaged: {problem}. {remedy}")


class ChecksumError(ValueError):
    """A downloaded or existing file does not have the expected digest."""


# --------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------


def _temporary(path: Path, **open_kwargs) -> tuple[Path, IO]:
    """A new file next to ``path`` with a name no other process or thread uses, opened with ``open_kwargs``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:  # astronomically unlikely; draw another name
            continue
        return tmp, os.fdopen(fd, **open_kwargs)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` when the ``with`` block ends without error.

    ``mode`` is ``"wb"`` or ``"w"`` (text, ``encoding`` defaults to UTF-8). The parent folder is created.
    If the block raises (including KeyboardInterrupt), the temporary file is removed and ``path`` is left
    as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = {"encoding": encoding or "utf-8"} if mode == "w" else {}
    tmp, f = _temporary(path, mode=mode, **text)
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically. Returns ``path`` as a Path."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 1) -> Path:
    """Write ``data`` as indented JSON (NaN and infinities allowed, as Python's json writes them) atomically."""
    return write_text(path, json.dumps(data, indent=indent, allow_nan=True) + "\n")


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def save_numpy(path: str | os.PathLike, array) -> Path:
    """``numpy.save(array)`` to ``path`` (``.npy`` format, no pickled objects) atomically."""
    import numpy as np

    with atomic_write(path, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)
    return Path(path)


# --------------------------------------------------------------------------------------------------
# Checked reads
# --------------------------------------------------------------------------------------------------


def _problem(error: BaseException) -> str:
    """A short reason for a failed read. PyTorch's weights-only message advises turning the safety off; we
    never repeat that advice."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if "weights_only" in str(error) or "Weights only" in str(error):
        return "it is not a plain tensor file written by this project (it holds other Python objects, which are never loaded)"
    if isinstance(error, EOFError) or not text:
        return f"it ends too early ({type(error).__name__})"
    return f"{type(error).__name__}: {text[:200]}"


def _existing(path: str | os.PathLike, remedy: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DamagedFileError(path, "it is missing" if not path.exists() else "it is not a file", remedy)
    return path


@contextlib.contextmanager
def _reading(path: Path, remedy: str) -> Iterator[None]:
    """Turn any failure to parse ``path`` into one :class:`DamagedFileError` (permission errors pass through)."""
    try:
        yield
    except (PermissionError, IsADirectoryError):
        raise
    except Exception as error:  # the file's bytes, not our code: every parser error means "damaged"
        raise DamagedFileError(path, _problem(error), remedy) from None


def load_torch(path: str | os.PathLike, remedy: str) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; a missing, truncated, empty or foreign
    file raises :class:`DamagedFileError` with ``remedy`` (what the user should do) in its message."""
    import torch

    path = _existing(path, remedy)
    with _reading(path, remedy):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_json(path: str | os.PathLike, remedy: str, expect: type | None = dict) -> Any:
    """Parse a JSON file; invalid JSON, bad UTF-8 or a top-level value that is not ``expect`` raise
    :class:`DamagedFileError`."""
    path = _existing(path, remedy)
    with _reading(path, remedy):
        data = json.loads(path.read_text(encoding="utf-8"))
    if expect is not None and not isinstance(data, expect):
        raise DamagedFileError(path, f"it holds a JSON {type(data).__name__}, not a {expect.__name__}", remedy)
    return data


def read_csv(path: str | os.PathLike, remedy: str, numeric: tuple[str, ...] = ()):
    """``pandas.read_csv(path)``; unparsable files, and files whose ``numeric`` columns are missing or not
    numbers, raise :class:`DamagedFileError`."""
    import pandas as pd

    path = _existing(path, remedy)
    with _reading(path, remedy):
        frame = pd.read_csv(path)
    for column in numeric:
        if column not in frame:
            raise DamagedFileError(path, f"it has no {column!r} column", remedy)
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DamagedFileError(path, f"its {column!r} column holds values that are not numbers", remedy)
    return frame


def load_numpy(path: str | os.PathLike, remedy: str):
    """``numpy.load(path, allow_pickle=False)`` of a ``.npy`` file; damaged files raise :class:`DamagedFileError`."""
    import numpy as np

    path = _existing(path, remedy)
    with _reading(path, remedy):
        return np.load(path, allow_pickle=False)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file's bytes, read in chunks of ``chunk_size`` bytes."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()
