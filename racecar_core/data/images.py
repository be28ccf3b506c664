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
_GOLDEN, _MUL1, _MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix_int(x: int) -> int:
    """The splitmix64 finaliser on a Python int, modulo 2**64."""
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * _MUL1) & _MASK64
    x = ((x ^ (x >> 27)) * _MUL2) & _MASK64
    return x ^ (x >> 31)


def _mix_array(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on a 1-d uint64 array (arrays wrap silently; numpy scalars would warn)."""
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_MUL1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_MUL2)
    return x ^ (x >> np.uint64(31))


def sample_hash(seed: int, epoch: int, index):
    """64-bit hash of ``(seed, epoch, index)``: a Python int for an int ``index``, else uint64 of its shape."""
    start = _mix_int(_mix_int(seed & _MASK64) ^ (epoch & _MASK64))
    if isinstance(index, (int, np.integer)):
        return _mix_int(start ^ (int(index) & _MASK64))
    shape = np.shape(index)
    index = np.atleast_1d(np.asarray(index, dtype=np.int64)).astype(np.uint64)
    return _mix_array(np.uint64(start) ^ index).reshape(shape)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed (0 <= s < 2**63) for the shuffle generator of ``epoch``."""
    return sample_hash(seed, epoch, -1) >> 1


def augment_params(seed: int, epoch: int, index, pad: int = 4, flip: bool = True):
    """Crop offsets and flips of items ``index`` in ``epoch``: ``(dy, dx, flipped)``.

    ``dy``, ``dx`` in ``0..2*pad`` (top-left corner of the crop in the padded image; ``pad`` means no
    shift); ``flipped`` always False unless ``flip``. Python ints and a bool for an int ``index``,
    else int64 and bool arrays of its shape; both give the same values.
    """
    h = sample_hash(seed, epoch, index)
    if isinstance(h, int):
        return h % (2 * pad + 1), (h >> 21) % (2 * pad + 1), flip and bool((h >> 42) & 1)
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


def _affine(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return 1.0 / (255.0 * std), mean / std


def _apply(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).mul_(scale).sub_(shift)


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., C, H, W]`` -> float32 ``(x / 255 - mean) / std``; ``mean``, ``std`` float32 ``[C, 1, 1]``.

    Computed as ``x * (1 / (255 std)) - mean / std`` on one float32 copy: the same arithmetic for single
    images and for batches, so both give identical values.
    """
    return _apply(x, *_affine(mean, std))


# ----------------------------------------------------------------------------------- augmentation
def augment_batch(x: torch.Tensor, dy, dx, flipped, pad: int = 4) -> torch.Tensor:
    """Pad-and-crop plus flip for a whole batch at once, without Python loops over images.

    ``x``: ``[B, C, H, W]`` (any dtype); ``dy``, ``dx``: int ``[B]`` in ``0..2*pad``; ``flipped``: bool
    ``[B]``. Output ``[B, C, H, W]``: item b shows the zero-padded image's window whose top-left
    corner is ``(dy[b], dx[b])``, mirrored left-right where ``flipped[b]``.
    """
    b, c, h, w = x.shape
    wp = w + 2 * pad
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)) if pad else x
    # Flat index of each output pixel in a padded plane: a fixed pattern plus a per-image offset.
    rows, cols = torch.arange(h)[:, None] * wp, torch.arange(w)
    straight, mirrored = (rows + cols).reshape(1, h * w), (rows + cols.flip(0)).reshape(1, h * w)
    flipped = torch.as_tensor(flipped, dtype=torch.bool)[:, None]
    offset = torch.as_tensor(dy, dtype=torch.long) * wp + torch.as_tensor(dx, dtype=torch.long)
    index = torch.where(flipped, mirrored, straight) + offset[:, None]  # [B, H*W]
    out = padded.reshape(b, c, -1).gather(2, index[:, None, :].expand(b, c, h * w))
    return out.reshape(b, c, h, w)


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
        self._scale, self._shift = _affine(self.mean, self.std)
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
            x = _augment_one(x, dy, dx, flipped, self.pad)
        return _apply(x, self._scale, self._shift), self.labels[index]


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
            x = d.images.index_select(0, index)
            if d.augment:
                dy, dx, flipped = augment_params(d.seed, epoch, index.numpy(), d.pad, d.flip)
                x = augment_batch(x, dy, dx, flipped, d.pad)
            yield _apply(x, d._scale, d._shift), d.labels[index]
