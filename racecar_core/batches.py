"""Batch sources for the training loop: the order of batches depends only on (seed, epoch).

The loop consumes any object with ``batches(epoch)`` yielding ``(x, y)`` and ``len()`` (batches per
epoch), so a run resumed at step ``k`` sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class BatchSource(Protocol):
    def batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]: ...

    def __len__(self) -> int: ...


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, epoch)`` alone."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


class TensorBatches:
    """Mini-batches of in-memory tensors ``x`` [N, ...] and ``y`` [N, ...].

    ``batch_size=None`` gives one full batch per epoch (the authors' MNIST and peak tests). With
    ``shuffle`` each epoch is a fresh permutation drawn from ``(seed, epoch)``; ``drop_last`` drops a
    final smaller batch.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None = None, *, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        if len(x) == 0:
            raise ValueError("empty data set")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive or None, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = len(x) if batch_size is None else min(batch_size, len(x))
        self.shuffle = shuffle and self.batch_size < len(x)
        self.seed, self.drop_last = seed, drop_last

    def __len__(self) -> int:
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        if not self.shuffle:
            order = None
        else:
            order = torch.randperm(len(self.x), generator=epoch_generator(self.seed, epoch))
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is None:
                yield self.x[sl], self.y[sl]
            else:
                idx = order[sl]
                yield self.x[idx], self.y[idx]
