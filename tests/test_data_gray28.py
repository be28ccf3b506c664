"""28×28 grey image sets in [−1, 1] for the GAN: scaling, splits, sources and their errors."""

import numpy as np
import pytest
import torch

from racecar_core.data import load_gray28, to_signed_unit, to_uint8
from racecar_core.data.fashion import FASHION_MNIST_CLASSES
from racecar_core.data.idx import write_idx


def test_scaling_to_signed_unit_and_back():
    images = np.resize(np.arange(256, dtype=np.uint8), (2, 28, 28))
    x = to_signed_unit(images)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert np.array_equal(to_uint8(x), images)
    assert np.array_equal(to_uint8(torch.full((1, 1, 28, 28), 3.0)), np.full((1, 28, 28), 255, np.uint8))  # clipped
    with pytest.raises(ValueError, match="uint8"):
        to_signed_unit(images.astype(float))


def test_mnist5k_splits_400_and_100_per_digit_without_overlap():
    data = load_gray28()
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert data.y_train.bincount().tolist() == [400] * 10 and data.y_test.bincount().tolist() == [100] * 10
    train_rows = {row.tobytes() for row in to_uint8(data.x_train)}
    assert sum(row.tobytes() in train_rows for row in to_uint8(data.x_test)) < 5  # the subset has a few duplicates at most
    assert data.class_names == tuple("0123456789")


def write_split(folder, stem, n, seed):
    rng = np.random.default_rng(seed)
    write_idx(folder / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_idx_folders_for_full_mnist_and_fashion(tmp_path, dataset):
    write_split(tmp_path, "train", 6, 0)
    write_split(tmp_path, "t10k", 4, 1)
    data = load_gray28(dataset, root=tmp_path)
    assert data.x_train.shape == (6, 1, 28, 28) and data.x_test.shape == (4, 1, 28, 28)
    assert data.x_train.min() >= -1 and data.x_train.max() <= 1
    assert data.class_names == (FASHION_MNIST_CLASSES if dataset == "fashion" else tuple("0123456789"))


def test_missing_files_and_bad_names_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="pass root"):
        load_gray28("mnist")
    with pytest.raises(FileNotFoundError, match="yann.lecun.com"):
        load_gray28("mnist", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_gray28("fashion", root=tmp_path)
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_gray28("cifar10")
