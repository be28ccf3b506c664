"""Reader and writer for the IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed).

The format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of dimensions
``n``, then ``n`` big-endian uint32 sizes and the data in C order.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..files import write_bytes

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder(">") if dtype.itemsize > 1 else dtype: code for code, dtype in _DTYPES.items()}


_CHUNK = 1 << 24


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_up_to(f, limit: int) -> bytes:
    """At most ``limit`` bytes, read in chunks: a header that promises more than the file holds costs no
    more memory than the file."""
    parts, size = [], 0
    while size < limit:
        chunk = f.read(min(_CHUNK, limit - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or not) into an array of its stored shape, in native byte order.

    A file that is not IDX, whose header is cut short or promises another amount of data than it holds,
    or a truncated or corrupt ``.gz`` raises ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) != 4 or header[:2] != b"\x00\x00" or header[2] not in _DTYPES:
                raise ValueError(f"{path} is not an IDX file (bad magic number {header!r})")
            dtype, ndim = _DTYPES[header[2]], header[3]
            sizes = f.read(4 * ndim)
            if len(sizes) != 4 * ndim:
                raise ValueError(f"{path}: the IDX header is cut short ({ndim} sizes announced, "
                                 f"{len(sizes) // 4} present)")
            shape = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for huge sizes
            data = _read_up_to(f, expected + 1)  # one byte more reveals trailing data
    except (EOFError, OSError, zlib.error) as error:  # gzip: truncated stream, bad CRC, not gzip after all
        if isinstance(error, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"{path}: the compressed file is damaged or cut short ({type(error).__name__}: {error}); "
                         "download or copy it again") from None
    if len(data) != expected:
        held = f"{len(data)}" if len(data) <= expected else f"more than {expected}"
        raise ValueError(f"{path}: header promises {expected} bytes of data (shape {shape}), file holds {held}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed if ``compress`` or the name ends in ``.gz``)."""
    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in _CODES:
        raise TypeError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, _CODES[dtype], array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    return write_bytes(path, gzip.compress(payload) if compress else payload)
