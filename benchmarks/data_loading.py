"""Images per second of one augmented, shuffled epoch over 10k random 32x32x3 images.

Compares the per-sample path (ImageDataset + DataLoader, 0 and 2 workers) with the vectorised
in-process path (ImageBatches backend="tensor"). Run: ``python benchmarks/data_loading.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from racecar_core.data.images import ImageBatches


def images_per_second(source: ImageBatches, epochs: int) -> float:
    next(iter(source.batches(0)))  # warm-up (and worker start-up costs are counted per epoch below)
    start, n = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        for _, y in source.batches(epoch):
            n += len(y)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the main process")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = np.random.default_rng(0).integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(args.n) % 10
    common = dict(batch_size=args.batch_size, augment=True, flip=True, seed=0)
    runs = {
        "Dataset+DataLoader, workers=0": ImageBatches(images, labels, backend="loader", workers=0, **common),
        "Dataset+DataLoader, workers=2": ImageBatches(images, labels, backend="loader", workers=2, **common),
        "vectorised (tensor backend)": ImageBatches(images, labels, backend="tensor", **common),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n={args.n}, batch {args.batch_size}")
    for name, source in runs.items():
        print(f"{name:32s} {images_per_second(source, args.epochs):10,.0f} images/s")


if __name__ == "__main__":
    main()
