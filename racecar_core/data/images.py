"""Normalisation, augmentation and reproducible batches for in-memory image classification data.

Input images are ``uint8 [N, H, W, C]`` (channels last, 0..255, as the CIFAR readers return them;
``[N, H, W]`` is taken as one channel). Outputs are normalised ``float32 [C, H, W]`` tensors, or
``[B, C, H, W]`` batches, and ``int64`` labels.

The "standard" augmentation pads each image with ``pad`` black (zero) pixels per side, crops a random
window of the original size and, if ``flip``, mirrors it left-right with probability 1/2 (turn that off
for digits). Its randomness and the shuffle order are pure functions of ``(seed, epoch, index)``:
the crop and flip of dataset item ``index`` come from a 64-bit hash of the three numbers, and the order
from a generator seeded with a hash of ``(seed, epoch)``. So a resumed run replays an epoch exactly,
and the per-sample path (:class:`ImageDataset` with any number of DataLoader workers) and the
vectorised path (:func:`augment_batch`) give bit-identical batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

_MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------------------------------- hashing
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sample_hash(seed: int, epoch: int, index) -> np.ndarray:
    """64-bit hash of ``(seed, epoch, index)``; ``index`` is an int or int array. Returns uint64, shape of index."""
    shape = np.shape(index)
    index = np.atleast_1d(np.asarray(index, dtype=np.int64)).astype(np.uint64)  # 1-d: arrays wrap silently
    h = _splitmix64(np.full(index.shape, seed & _MASK64, dtype=np.uint64))
    h = _splitmix64(h ^ np.uint64(epoch & _MASK64))
    return _splitmix64(h ^ index).reshape(shape)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed (0 <= s < 2**63) for the shuffle generator of ``epoch``."""
    return int(sample_hash(seed, epoch, -1)) >> 1


def augment_params(seed: int, epoch: int, index, pad: int = 4, flip: bool = True):
    """Crop offsets and flips of items ``index`` in ``epoch``: ``(dy, dx, flipped)``.

    ``dy``, ``dx``: int64 in ``0..2*pad`` (top-left corner of the crop in the padded image; ``pad``
    means no shift); ``flipped``: bool, always False unless ``flip``. Each has the shape of ``index``.
    """
    h = sample_hash(seed, epoch, index)
    span = np.uint64(2 * pad + 1)
    dy = (h % span).astype(np.int64)
    dx = ((h >> np.uint64(21)) % span).astype(np.int64)
    flipped = ((h >> np.uint64(42)) & np.uint64(1)).astype(bool) & flip
    return dy, dx, flipped


# ------------------------------------------------------------------------------ stats, normalising
def _as_nhwc(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images [N, H, W, C] or [N, H, W], got {images.dtype} {images.shape}")
    return images


def channel_stats(images, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``uint8 [N, H, W, C]`` images, in [0, 1] units.

    Returns two ``float64 [C]`` arrays (population std over all pixels of all images), accumulated in
    float64 over chunks of ``chunk`` images to bound memory.
    """
    images = _as_nhwc(images)
    total = np.zeros(images.shape[-1])
    squares = np.zeros(images.shape[-1])
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        total += x.sum(0)
        squares += np.square(x).sum(0)
    count = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / count
    return mean, np.sqrt(np.maximum(squares / count - mean**2, 0.0))


def _stats_tensors(images, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    if mean is None or std is None:
        mean, std = channel_stats(images)
    mean = torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(-1, 1, 1)
    std = torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(-1, 1, 1)
    if torch.any(std <= 0):
        raise ValueError(f"std must be positive, got {std.flatten().tolist()}")
    return mean, std


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., C, H, W]`` -> float32 ``(x / 255 - mean) / std``; ``mean``, ``std`` float32 ``[C, 1, 1]``."""
    return (x.to(torch.float32) / 255.0 - mean) / std


# ----------------------------------------------------------------------------------- augmentation
def augment_batch(x: torch.Tensor, dy, dx, flipped, pad: int = 4) -> torch.Tensor:
    """Pad-and-crop plus flip for a whole batch at once, without Python loops over images.

    ``x``: ``[B, C, H, W]`` (any dtype); ``dy``, ``dx``: int ``[B]`` in ``0..2*pad``; ``flipped``: bool
    ``[B]``. Output ``[B, C, H, W]``: item b shows the zero-padded image's window whose top-left
    corner is ``(dy[b], dx[b])``, mirrored left-right where ``flipped[b]``.
    """
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)) if pad else x
    dy, dx = torch.as_tensor(dy, dtype=torch.long), torch.as_tensor(dx, dtype=torch.long)
    flipped = torch.as_tensor(flipped, dtype=torch.bool)
    cols = torch.arange(w)
    cols = torch.where(flipped[:, None], cols.flip(0), cols) + dx[:, None]  # [B, W]
    rows = torch.arange(h) + dy[:, None]  # [B, H]
    batch = torch.arange(b)[:, None, None]
    # Advanced indices split by the channel slice go first: result [B, H, W, C].
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _augment_one(x: torch.Tensor, dy: int, dx: int, flipped: bool, pad: int) -> torch.Tensor:
    """Per-image version of :func:`augment_batch` on ``[C, H, W]``."""
    h, w = x.shape[-2:]
    out = torch.nn.functional.pad(x, (pad, pad, pad, pad))[:, dy : dy + h, dx : dx + w]
    return out.flip(-1) if flipped else out


# ------------------------------------------------------------------------------------- data set
class ImageDataset(Dataset):
    """In-memory images as normalised ``float32 [C, H, W]`` tensors with labels (``int64`` scalars).

    ``images``: ``uint8 [N, H, W, C]`` or ``[N, H, W]``; ``labels``: ints ``[N]``. ``mean``/``std``
    (``[C]``, [0, 1] units) default to :func:`channel_stats` of ``images``: pass the training set's
    for a test set. With ``augment``, item ``i`` is padded by ``pad`` zero pixels, randomly cropped and,
    if ``flip``, randomly mirrored, as fixed by ``(seed, epoch, i)``. The epoch is ``self.epoch``
    (see :meth:`set_epoch`), or given with the key: ``dataset[(epoch, i)]``, which is how
    :func:`make_loader` passes it so that DataLoader workers need no shared state.
    """

    def __init__(self, images, labels, mean=None, std=None, *, augment=False, flip=True, pad=4, seed=0):
        images = _as_nhwc(images)
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != images.shape[:1]:
            raise ValueError(f"{len(images)} images but labels of shape {labels.shape}")
        self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # [N, C, H, W]
        self.labels = torch.from_numpy(labels)
        self.mean, self.std = _stats_tensors(images, mean, std)
        self.augment, self.flip, self.pad, self.seed = augment, flip, pad, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by integer keys (the augmentation of item i depends on it)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        x = self.images[index]
        if self.augment:
            dy, dx, flipped = augment_params(self.seed, epoch, index, self.pad, self.flip)
            x = _augment_one(x, int(dy), int(dx), bool(flipped), self.pad)
        return normalise(x, self.mean, self.std), self.labels[index]


class _EpochSampler(Sampler):
    """Indices ``0..n-1``, shuffled by a generator seeded from ``(seed, epoch)``; keyed ``(epoch, i)`` if asked."""

    def __init__(self, n: int, shuffle: bool, seed: int, epoch: int, keyed: bool):
        self.n, self.shuffle, self.seed, self.epoch, self.keyed = n, shuffle, seed, epoch, keyed

    def order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return torch.randperm(self.n, generator=generator)

    def __iter__(self):
        for i in self.order().tolist():
            yield (self.epoch, i) if self.keyed else i

    def __len__(self) -> int:
        return self.n


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    epoch: int = 0,
) -> DataLoader:
    """DataLoader over ``dataset`` for one ``epoch``, whose order depends only on ``(seed, epoch)``.

    For an :class:`ImageDataset` the sampler hands each worker ``(epoch, index)`` keys, so the
    augmentation is the same for any ``workers``. Build one loader per epoch.
    """
    sampler = _EpochSampler(len(dataset), shuffle, seed, epoch, keyed=isinstance(dataset, ImageDataset))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last)


# ---------------------------------------------------------------------------------- batch source
class ImageBatches:
    """Reproducible epochs of ``(x float32 [B, C, H, W], y int64 [B])`` batches: a ``BatchSource``.

    ``batches(epoch)`` depends only on the data, the settings and ``(seed, epoch)``; the last batch is
    short unless ``drop_last``. ``backend="tensor"`` (default) gathers and augments whole batches in
    the calling process (:func:`augment_batch`); ``backend="loader"`` goes through :class:`ImageDataset`
    and a DataLoader with ``workers`` processes. Both give identical batches. Other arguments as in
    :class:`ImageDataset`.
    """

    def __init__(
        self,
        images,
        labels,
        batch_size: int,
        *,
        mean=None,
        std=None,
        augment: bool = False,
        flip: bool = True,
        pad: int = 4,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        backend: str = "tensor",
        workers: int = 0,
    ):
        if backend not in ("tensor", "loader"):
            raise ValueError(f"backend must be 'tensor' or 'loader', got {backend!r}")
        if backend == "tensor" and workers:
            raise ValueError("workers only apply to backend='loader'")
        self.dataset = ImageDataset(images, labels, mean, std, augment=augment, flip=flip, pad=pad, seed=seed)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.backend, self.workers = seed, backend, workers

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` in order."""
        if self.backend == "loader":
            loader = make_loader(
                self.dataset, self.batch_size, self.shuffle, self.workers, self.seed, self.drop_last, epoch
            )
            yield from loader
            return
        order = _EpochSampler(len(self.dataset), self.shuffle, self.seed, epoch, keyed=False).order()
        d = self.dataset
        for k in range(len(self)):
            index = order[k * self.batch_size : (k + 1) * self.batch_size]
            x = d.images[index]
            if d.augment:
                dy, dx, flipped = augment_params(d.seed, epoch, index.numpy(), d.pad, d.flip)
                x = augment_batch(x, dy, dx, flipped, d.pad)
            yield normalise(x, d.mean, d.std), d.labels[index]
