"""Tests for the IDX reader and writer (racecar_core.data.idx)."""

import gzip

import numpy as np
import pytest

from racecar_core.data.idx import read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 5, 4)) * 100).astype(dtype)
    path = write_idx(tmp_path / ("a.idx.gz" if compress else "a.idx"), array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress


@pytest.mark.parametrize("shape", [(0,), (7,), (2, 3), (1, 28, 28)])
def test_round_trip_shapes(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a", array)), array)


def test_compress_flag_overrides_suffix(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    plain = write_idx(tmp_path / "x.gz", array, compress=False)
    assert plain.read_bytes()[:2] == b"\x00\x00"
    np.testing.assert_array_equal(read_idx(plain), array)
    packed = write_idx(tmp_path / "y", array, compress=True)
    assert gzip.decompress(packed.read_bytes())[:4] == bytes([0, 0, 0x08, 1])


def test_header_is_mnist_layout(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([1, 2, 3], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2, 3])
    path = write_idx(tmp_path / "images", np.zeros((2, 28, 28), dtype=np.uint8))
    assert path.read_bytes()[:16] == bytes([0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28])


def test_big_endian_on_disk(tmp_path):
    path = write_idx(tmp_path / "a", np.array([1], dtype=np.int32))
    assert path.read_bytes()[-4:] == b"\x00\x00\x00\x01"


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # empty
        b"\x00\x00",  # header cut short
        b"PK\x03\x04 not an idx file",  # bad magic
        bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 0]),  # unknown type code
        bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2]),  # promises 5 bytes, holds 2
        bytes([0, 0, 0x08, 1, 0, 0, 0, 2, 1, 2, 3]),  # trailing bytes
    ],
)
def test_corrupt_file_raises_value_error(tmp_path, payload):
    path = tmp_path / "bad"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="not an IDX file|header promises"):
        read_idx(path)


def test_corrupt_gzip_payload_raises_value_error(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1])))
    with pytest.raises(ValueError, match="header promises 4 bytes"):
        read_idx(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


def test_unsupported_dtype_raises_type_error(tmp_path):
    with pytest.raises(TypeError, match="dtype"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))
