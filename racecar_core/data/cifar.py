"""Readers for the "python version" of CIFAR-10 and CIFAR-100, from files the user already has.

Layout: every loader here returns images as ``uint8 [N, 32, 32, 3]`` (N, height, width, RGB channel;
values 0..255) and labels as ``int64 [N]``. The files store each image as 3072 bytes, channel-major
(1024 red, 1024 green, 1024 blue, each 32x32 row-major); they are reordered to channels-last here.
:mod:`racecar_core.data.images` turns them into normalised float32 ``[C, H, W]`` tensors.

Nothing is downloaded here. Fetch the archives yourself, or call
:func:`racecar_core.data.download.download_cifar` explicitly.

The files are Python pickles, and unpickling can execute arbitrary code: only read files from a
trusted source (for instance an archive whose checksum matched the published one).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
#: md5 of the official archives, as published on the CIFAR page.
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"

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


def _unpickle(path: Path) -> dict:
    # Pickles can run code when loaded: only read trusted files (see the module docstring).
    with open(path, "rb") as f:
        obj = pickle.load(f, encoding="bytes")
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    for key in (b"data", label_key):
        if key not in batch:
            raise ValueError(f"{path}: no {key!r} entry; keys are {sorted(batch)}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(
            f"{path}: expected uint8 data [N, 3072] and N labels, got {data.dtype} {data.shape} "
            f"and {labels.shape} labels"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _load(root, name: str, split: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    _check_name(name)
    splits = _LAYOUT[name][2]
    if split not in splits:
        raise ValueError(f"split must be one of {sorted(splits)}, got {split!r}")
    folder = cifar_dir(root, name, splits[split])
    parts = [_read_batch(folder / f, label_key) for f in splits[split]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(root: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 ``split`` ("train": 50000 images, "test": 10000) from ``root`` or ``root/cifar-10-batches-py``.

    Returns images ``uint8 [N, 32, 32, 3]`` (0..255, RGB) and labels ``int64 [N]`` in 0..9.
    """
    return _load(root, "cifar10", split, b"labels")


def load_cifar100(
    root: str | os.PathLike, split: str = "train", label: str = "fine"
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-100 ``split`` ("train": 50000, "test": 10000) from ``root`` or ``root/cifar-100-python``.

    ``label`` picks the 100 "fine" classes or the 20 "coarse" superclasses. Returns images
    ``uint8 [N, 32, 32, 3]`` (0..255, RGB) and labels ``int64 [N]``.
    """
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    return _load(root, "cifar100", split, f"{label}_labels".encode())


def cifar_class_names(root: str | os.PathLike, name: str = "cifar10", label: str = "fine") -> list[str]:
    """Class names, index = label, read from the meta file (``batches.meta`` or ``meta``).

    ``label`` ("fine" or "coarse") only matters for CIFAR-100.
    """
    _check_name(name)
    meta = _LAYOUT[name][3]
    key = b"label_names" if name == "cifar10" else f"{label}_label_names".encode()
    if name == "cifar100" and label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    path = cifar_dir(root, name, [meta]) / meta
    entries = _unpickle(path)
    if key not in entries:
        raise ValueError(f"{path}: no {key!r} entry; keys are {sorted(entries)}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in entries[key]]
