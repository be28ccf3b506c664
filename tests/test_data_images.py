"""Fashion-MNIST stand-in, CIFAR-shaped views, normalisation, augmentation and reproducible batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import pytest
import torch

from racecar_core.data.fashion import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist, to_cifar_shape
from racecar_core.data.idx import write_idx
from racecar_core.data.images import (
    ImageBatches,
    ImageDataset,
    augment_batch,
    augment_params,
    channel_stats,
    make_loader,
)


@runtime_checkable
class BatchSource(Protocol):
    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...


def _images(n=40, h=32, w=32, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


# -------------------------------------------------------------------------------------- Fashion-MNIST
@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_small_idx_files(tmp_path, gz):
    suffix = ".gz" if gz else ""
    images = _images(5, 28, 28, 1)[..., 0]
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", np.array([9, 0, 3, 3, 1], np.uint8))
    x, y = load_fashion_mnist("test", root=tmp_path)
    np.testing.assert_array_equal(x, images)
    assert y.dtype == np.int64 and y.tolist() == [9, 0, 3, 3, 1]
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        load_fashion_mnist("train", root=tmp_path)
    assert "train-images-idx3-ubyte" in str(err.value) and "zalandoresearch/fashion-mnist" in str(err.value)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", root=tmp_path)


def test_fashion_mnist_mismatched_files(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", _images(5, 28, 28, 1)[..., 0])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="labels"):
        load_fashion_mnist("test", root=tmp_path)


@pytest.mark.skipif(
    not all((FASHION_MNIST_DIR / f"{s}-ubyte.gz").is_file() for s in ("train-images-idx3", "t10k-images-idx3")),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fashion_mnist_from_debian_package():
    x, y = load_fashion_mnist("test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10 and len(FASHION_MNIST_CLASSES) == 10
    x, y = load_fashion_mnist("train")
    assert x.shape == (60000, 28, 28) and np.bincount(y).tolist() == [6000] * 10


def test_to_cifar_shape_pads_and_repeats():
    images = _images(3, 28, 28, 1)[..., 0]
    out = to_cifar_shape(images)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[:, 2:30, 2:30, c], images)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not out[:, border].any()
    with pytest.raises(ValueError):
        to_cifar_shape(images[:, :27])


# -------------------------------------------------------------------------------------- statistics
def test_channel_stats_matches_numpy_and_normalises():
    images = _images(50)
    images[..., 2] //= 4  # give the channels different statistics
    mean, std = channel_stats(images, chunk=7)
    x = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean((0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, x.std((0, 1, 2)), rtol=1e-9)
    data = ImageDataset(images, np.zeros(50), mean, std)
    batch = torch.stack([data[i][0] for i in range(len(data))])
    assert batch.dtype == torch.float32 and batch.shape == (50, 3, 32, 32)
    np.testing.assert_allclose(batch.mean((0, 2, 3)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(batch.std((0, 2, 3), correction=0).numpy(), 1.0, atol=1e-5)


def test_dataset_default_stats_and_grey_images():
    grey = _images(10, 28, 28, 1)[..., 0]
    data = ImageDataset(grey, np.arange(10))  # [N, H, W] is one channel, stats from the images
    x, y = data[3]
    assert x.shape == (1, 28, 28) and y.dtype == torch.int64 and int(y) == 3
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(grey, np.arange(9))
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(grey.astype(np.float32), np.arange(10))


# ------------------------------------------------------------------------------------ augmentation
def _unit(images):
    """A dataset that only converts to [0, 1] (mean 0, std 1/255 gives back the raw 0..255 values)."""
    return dict(mean=[0.0] * images.shape[-1], std=[1 / 255] * images.shape[-1])


def test_augmented_item_is_a_shifted_copy_with_zero_fill():
    images = _images(30, c=3) | 1  # no zero pixels, so zeros in the output come from the padding
    data = ImageDataset(images, np.zeros(30), augment=True, flip=False, pad=4, seed=5, **_unit(images))
    dy, dx, flipped = augment_params(5, 0, np.arange(30), pad=4, flip=False)
    assert not flipped.any() and len(set(zip(dy.tolist(), dx.tolist()))) > 5
    for i in range(30):
        out = data[i][0].round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert out.shape == (32, 32, 3)
        padded = np.pad(images[i], ((4, 4), (4, 4), (0, 0)))
        np.testing.assert_array_equal(out, padded[dy[i] : dy[i] + 32, dx[i] : dx[i] + 32])
        sy, sx = dy[i] - 4, dx[i] - 4  # shift of the content
        assert (out == 0).all(-1).sum() == 32 * 32 - (32 - abs(sy)) * (32 - abs(sx))


def test_flip_flag_respected():
    images = _images(64)
    on = ImageDataset(images, np.zeros(64), augment=True, flip=True, pad=0, **_unit(images))
    off = ImageDataset(images, np.zeros(64), augment=True, flip=False, pad=0, **_unit(images))
    as_hwc = lambda t: t.round().to(torch.uint8).permute(1, 2, 0).numpy()  # noqa: E731
    mirrored = [np.array_equal(as_hwc(on[i][0]), images[i, :, ::-1]) for i in range(64)]
    assert 16 < sum(mirrored) < 48  # about half are flipped
    assert all(np.array_equal(as_hwc(on[i][0]), images[i]) for i in range(64) if not mirrored[i])
    assert all(np.array_equal(as_hwc(off[i][0]), images[i]) for i in range(64))


def test_no_augmentation_is_identity():
    images = _images(8)
    data = ImageDataset(images, np.zeros(8), augment=False, **_unit(images))
    for epoch in (0, 3):
        data.set_epoch(epoch)
        np.testing.assert_array_equal(data[2][0].round().to(torch.uint8).permute(1, 2, 0).numpy(), images[2])


def test_augment_batch_matches_per_image_and_keeps_shape():
    x = torch.from_numpy(_images(16).transpose(0, 3, 1, 2).copy())
    dy, dx, flipped = augment_params(1, 2, np.arange(16), pad=3, flip=True)
    out = augment_batch(x, dy, dx, flipped, pad=3)
    assert out.shape == x.shape and out.dtype == x.dtype
    for i in range(16):
        ref = torch.nn.functional.pad(x[i], (3, 3, 3, 3))[:, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        assert torch.equal(out[i], ref.flip(-1) if flipped[i] else ref)
    centre = augment_batch(x, np.full(16, 3), np.full(16, 3), np.zeros(16, bool), pad=3)
    assert torch.equal(centre, x)


def test_augmentation_depends_on_seed_epoch_index_only():
    a = augment_params(0, 1, np.arange(100))
    assert all(np.array_equal(u, v) for u, v in zip(a, augment_params(0, 1, np.arange(100))))
    assert not np.array_equal(a[0], augment_params(0, 2, np.arange(100))[0])
    assert not np.array_equal(a[0], augment_params(1, 1, np.arange(100))[0])
    for i in (0, 37, 99):  # the scalar (pure Python) and vector (numpy) hashes agree
        assert augment_params(0, 1, i) == tuple(v[i] for v in a)
        assert augment_params(0, 1, np.int64(i)) == tuple(v[i] for v in a)
    assert set(a[0].tolist()) == set(range(9))


# ------------------------------------------------------------------------------------------ batches
def _epoch(source, epoch):
    return list(source.batches(epoch))


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))


@pytest.fixture(scope="module")
def data():
    return _images(50, seed=3), np.arange(50) % 10


def test_image_batches_contract(data):
    source = ImageBatches(*data, batch_size=16, augment=True)
    assert isinstance(source, BatchSource) and len(source) == 4
    batches = _epoch(source, 0)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (16, 3, 32, 32) and y.dtype == torch.int64
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(data[1].tolist())
    dropped = ImageBatches(*data, batch_size=16, drop_last=True)
    assert len(dropped) == 3 and [len(y) for _, y in dropped.batches(0)] == [16, 16, 16]


def test_same_epoch_replays_and_epochs_differ(data):
    source = ImageBatches(*data, batch_size=16, augment=True, seed=7)
    first = _epoch(source, 4)
    assert _same(first, _epoch(source, 4))
    assert _same(first, _epoch(ImageBatches(*data, batch_size=16, augment=True, seed=7), 4))  # fresh object
    assert not torch.equal(first[0][1], _epoch(source, 5)[0][1])  # another order
    other_seed = _epoch(ImageBatches(*data, batch_size=16, augment=True, seed=8), 4)
    assert not torch.equal(first[0][1], other_seed[0][1])


def test_augmentation_changes_between_epochs_without_shuffle(data):
    source = ImageBatches(*data, batch_size=50, augment=True, shuffle=False)
    (x0, y0), (x1, y1) = _epoch(source, 0)[0], _epoch(source, 1)[0]
    assert torch.equal(y0, y1) and torch.equal(y0, torch.as_tensor(data[1]))
    assert not torch.equal(x0, x1)


def test_loader_backend_workers_and_tensor_backend_agree(data):
    kwargs = dict(batch_size=16, augment=True, seed=11)
    tensor = _epoch(ImageBatches(*data, **kwargs), 2)
    serial = _epoch(ImageBatches(*data, backend="loader", workers=0, **kwargs), 2)
    parallel = _epoch(ImageBatches(*data, backend="loader", workers=2, **kwargs), 2)
    assert _same(tensor, serial) and _same(serial, parallel)


def test_make_loader_plain_dataset_and_epoch_order():
    dataset = torch.utils.data.TensorDataset(torch.arange(20))
    order = lambda epoch: torch.cat([b[0] for b in make_loader(dataset, 6, shuffle=True, seed=1, epoch=epoch)])  # noqa: E731
    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))
    assert sorted(order(1).tolist()) == list(range(20))
    assert make_loader(dataset, 6).__len__() == 4 and len(make_loader(dataset, 6, drop_last=True)) == 3


def test_mnist_like_data_runs_through_cifar_path():
    # The chapter passes racecar_core.data.mnist.mnist_subset() arrays; random digits stand in here.
    digits = _images(20, 28, 28, 1)[..., 0]
    source = ImageBatches(to_cifar_shape(digits), np.arange(20) % 10, batch_size=8, augment=True, flip=False)
    x, y = next(iter(source.batches(0)))
    assert x.shape == (8, 3, 32, 32) and torch.equal(x[:, 0], x[:, 1])
