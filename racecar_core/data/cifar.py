"""Readers for the "python version" of CIFAR-10 and CIFAR-100, from files the user already has.

Layout: every loader here returns images as ``uint8 [N, 32, 32, 3]`` (N, height, width, RGB channel;
values 0..255) and labels as ``int64 [N]``. The files store each image as 3072 bytes, channel-major
(1024 red, 1024 green, 1024 blue, each 32x32 row-major); they are reordered to channels-last here.
:mod:`racecar_core.data.images` turns them into normalised float32 ``[C, H, W]`` tensors.

Nothing is downloaded here. Fetch the archives yourself, or call
:func:`racecar_core.data.download.download_cifar` explicitly.

Safety: the files are Python pickles, and a pickle can run any code while it is loaded. They are read
with a restricted unpickler that builds only what the official files hold (dicts, lists, numbers,
strings and numpy ``uint8`` arrays: the globals ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``
and ``numpy.dtype``) and refuses any other global with :class:`UnsafePickleError`, before anything of it
runs. Files with an official name are also checked against the official md5 (:data:`OFFICIAL_MD5`);
``verify=False`` skips that check for files re-pickled by the user (the unpickler stays restricted).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from ..files import ChecksumError, DamagedFileError, file_digest

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
#: md5 of the official archives, as published on the CIFAR page.
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
#: md5 of the extracted files of the official archives. The CIFAR page publishes only the archives' md5;
#: these values are the ones torchvision checks (``torchvision/datasets/cifar.py``, classes ``CIFAR10``
#: and ``CIFAR100``: ``train_list``, ``test_list`` and ``meta``), read there, not measured here.
OFFICIAL_MD5 = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# name -> (folder inside the archive, archive URL, files per split, meta file)
_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        CIFAR10_URL,
        {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        "batches.meta",
    ),
    "cifar100": ("cifar-100-python", CIFAR100_URL, {"train": ["train"], "test": ["test"]}, "meta"),
}


def _check_name(name: str) -> None:
    if name not in _LAYOUT:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(_LAYOUT)}")


def _missing_message(name: str, root: Path, files: list[str]) -> str:
    folder, url, _, _ = _LAYOUT[name]
    return (
        f"{name}: cannot find {', '.join(files)} in {root} or in {root / folder}.\n"
        f"Get the python version of the data set from {url} (about 160 MB) "
        f"and extract it into {root}, e.g. `tar -xzf {url.rsplit('/', 1)[1]} -C {root}`, which creates {folder}/; "
        f"or, in Python, call racecar_core.data.download_cifar({name!r}, {str(root)!r}), "
        "which downloads it, checks its md5 and extracts it."
    )


def cifar_dir(root: str | os.PathLike, name: str, files: list[str] | None = None) -> Path:
    """The folder holding ``name``'s files: ``root/<archive folder>`` if complete, else ``root`` itself.

    ``files`` defaults to all data and meta files of the data set. Raises FileNotFoundError naming the
    missing files, the download URL and where to put them.
    """
    _check_name(name)
    folder, _, splits, meta = _LAYOUT[name]
    files = files if files is not None else [f for split in splits.values() for f in split] + [meta]
    root = Path(root).expanduser()
    for candidate in (root / folder, root):
        if all((candidate / f).is_file() for f in files):
            return candidate
    raise FileNotFoundError(_missing_message(name, root, files))


class UnsafePickleError(ValueError):
    """A CIFAR file asks to build an object the official files never contain (it could run code)."""


def _numpy_reconstruct():
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# (module, name) -> the object it stands for. The official files are Python 2 cPickle dumps of dicts of
# str, int, lists and numpy uint8 arrays (CIFAR page); an array pickles as _reconstruct(ndarray, ...) plus a
# dtype, and str, int, list and dict need no global. Our inference from that format (no official file was
# at hand to list its opcodes; other restricted CIFAR readers allow the same three names); the tests write
# files in that format. numpy 2 writes the first one's module as numpy._core.multiarray: the same function,
# allowed for files re-pickled with numpy 2.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class _CifarUnpickler(pickle.Unpickler):
    """Builds only what :data:`_ALLOWED` names; any other global is refused before it is imported."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]()
        raise UnsafePickleError(
            f"{self.path}: refusing to load the global {module}.{name}: official CIFAR files hold only numpy "
            "arrays, lists, numbers and strings, and a pickle asking for anything else could run code. "
            "This is not an official CIFAR file: delete it and extract the official archive again"
        )

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.path}: refusing a persistent id; this is not an official CIFAR file")


def _verify(path: Path, name: str) -> None:
    expected = OFFICIAL_MD5[name].get(path.name)
    if expected is None:
        return
    actual = file_digest(path, "md5")
    if actual != expected:
        raise ChecksumError(
            f"{path}: md5 {actual} differs from the official file's {expected} (as checked by torchvision): the "
            f"file is damaged or not the official one. Extract it again from the official archive "
            f"(racecar_core.data.download_cifar({name!r}, ROOT) verifies it), or, for files you re-pickled "
            "yourself, pass verify=False (they are still read with the restricted unpickler)"
        )


def _unpickle(path: Path, name: str, verify: bool) -> dict:
    if verify:
        _verify(path, name)
    remedy = f"Extract it again from the official archive (racecar_core.data.download_cifar({name!r}, ROOT))"
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, path).load()
    except (UnsafePickleError, PermissionError):
        raise
    except Exception as error:  # truncated, empty or garbage bytes: EOFError, UnpicklingError, ...
        problem = "it ends too early" if isinstance(error, EOFError) else f"{type(error).__name__}: {error}"
        raise DamagedFileError(path, f"not a readable pickle ({problem})", remedy) from None
    if not isinstance(obj, dict):
        raise DamagedFileError(path, f"expected a pickled dict, got {type(obj).__name__}", remedy)
    return obj


def _read_batch(path: Path, name: str, label_key: bytes, classes: int, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path, name, verify)
    for key in (b"data", label_key):
        if key not in batch:
            raise ValueError(f"{path}: no {key!r} entry; keys are {sorted(batch, key=repr)}")
    data = batch[b"data"]
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        labels = None
    if labels is None or labels.ndim != 1:
        raise ValueError(f"{path}: {label_key!r} must be a list of integer labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
            or len(labels) != len(data):
        shape = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: expected uint8 data [N, 3072] and N labels, got {shape} and {labels.shape} labels")
    bad = (labels < 0) | (labels >= classes)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} labels outside 0..{classes - 1} (first: {int(labels[bad][0])}); "
                         "the file is damaged or not the official one")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _load(root, name: str, split: str, label_key: bytes, classes: int, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    _check_name(name)
    splits = _LAYOUT[name][2]
    if split not in splits:
        raise ValueError(f"split must be one of {sorted(splits)}, got {split!r}")
    folder = cifar_dir(root, name, splits[split])
    parts = [_read_batch(folder / f, name, label_key, classes, verify) for f in splits[split]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(root: str | os.PathLike, split: str = "train", *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 ``split`` ("train": 50000 images, "test": 10000) from ``root`` or ``root/cifar-10-batches-py``.

    Returns images ``uint8 [N, 32, 32, 3]`` (0..255, RGB) and labels ``int64 [N]`` in 0..9. ``verify``:
    check the official md5 of each file (see the module docstring).
    """
    return _load(root, "cifar10", split, b"labels", 10, verify)


def load_cifar100(
    root: str | os.PathLike, split: str = "train", label: str = "fine", *, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-100 ``split`` ("train": 50000, "test": 10000) from ``root`` or ``root/cifar-100-python``.

    ``label`` picks the 100 "fine" classes or the 20 "coarse" superclasses. Returns images
    ``uint8 [N, 32, 32, 3]`` (0..255, RGB) and labels ``int64 [N]``. ``verify``: as in :func:`load_cifar10`.
    """
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    return _load(root, "cifar100", split, f"{label}_labels".encode(), 100 if label == "fine" else 20, verify)


def cifar_class_names(root: str | os.PathLike, name: str = "cifar10", label: str = "fine", *,
                      verify: bool = True) -> list[str]:
    """Class names, index = label, read from the meta file (``batches.meta`` or ``meta``).

    ``label`` ("fine" or "coarse") only matters for CIFAR-100. ``verify``: as in :func:`load_cifar10`.
    """
    _check_name(name)
    meta = _LAYOUT[name][3]
    key = b"label_names" if name == "cifar10" else f"{label}_label_names".encode()
    if name == "cifar100" and label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    classes = 10 if name == "cifar10" else 100 if label == "fine" else 20
    path = cifar_dir(root, name, [meta]) / meta
    entries = _unpickle(path, name, verify)
    if key not in entries:
        raise ValueError(f"{path}: no {key!r} entry; keys are {sorted(entries, key=repr)}")
    names = entries[key]
    if not isinstance(names, list) or len(names) != classes or not all(isinstance(n, (bytes, str)) for n in names):
        raise ValueError(f"{path}: {key!r} must be a list of {classes} names")
    return [n.decode() if isinstance(n, bytes) else n for n in names]
