"""Offline stand-ins for CIFAR: Fashion-MNIST from Debian's package, and a CIFAR-shaped view of 28x28 images.

Debian's ``dataset-fashion-mnist`` package (MIT/Expat licence, 60000 training and 10000 test images)
installs the four gzip-compressed IDX files into :data:`FASHION_MNIST_DIR`. For the MNIST digits, pass
the arrays of ``racecar_core.data.mnist.mnist_subset()`` to :func:`to_cifar_shape`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .idx import read_idx

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_STEMS = {"train": "train", "test": "t10k"}


def _find(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ("train": 60000 images, "test": 10000) from ``root`` or :data:`FASHION_MNIST_DIR`.

    Reads ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (``.gz`` or not). Returns images
    ``uint8 [N, 28, 28]`` (0..255, white on black) and labels ``int64 [N]`` in 0..9
    (names in :data:`FASHION_MNIST_CLASSES`).
    """
    if split not in _STEMS:
        raise ValueError(f"split must be one of {sorted(_STEMS)}, got {split!r}")
    root = Path(root).expanduser() if root is not None else FASHION_MNIST_DIR
    stems = [f"{_STEMS[split]}-images-idx3-ubyte", f"{_STEMS[split]}-labels-idx1-ubyte"]
    paths = [_find(root, s) for s in stems]
    if None in paths:
        raise FileNotFoundError(
            f"Fashion-MNIST: cannot find {' and '.join(s + '[.gz]' for s in stems)} in {root}.\n"
            f"On Debian or Ubuntu, `sudo apt-get install dataset-fashion-mnist` puts them in {FASHION_MNIST_DIR}; "
            "otherwise download the four .gz files from the data/fashion folder of the GitHub repository "
            "zalandoresearch/fashion-mnist into a folder and pass it as root."
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1]).astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f"{root}: expected uint8 images [N, 28, 28] and N labels, got {images.shape} and {labels.shape}")
    return images, labels


def to_cifar_shape(images: np.ndarray) -> np.ndarray:
    """Zero-pad 28x28 grey images by 2 px on each side and repeat them into 3 channels.

    ``uint8 [N, 28, 28]`` -> ``uint8 [N, 32, 32, 3]``, the layout of :mod:`racecar_core.data.cifar`,
    so MNIST-like data runs through the same CIFAR code.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected uint8 images [N, 28, 28], got {images.dtype} {images.shape}")
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(padded[..., None], 3, axis=-1)
