"""Data sets: generated in code or read from a user's folder; nothing is downloaded at run time.

The gridded weather data (xarray, netCDF, torch-harmonics) is imported on first use, so that importing
``racecar_core.data`` for the image data sets stays light.
"""

import importlib

from .cifar import CIFAR10_CLASSES, cifar_class_names, load_cifar10, load_cifar100
from .download import ChecksumError, download, download_cifar, extract_tar
from .fashion import FASHION_MNIST_CLASSES, load_fashion_mnist, to_cifar_shape
from .gray28 import GRAY28_DATASETS, Gray28, load_gray28, to_signed_unit, to_uint8
from .ib12 import ib12, ib12_split
from .images import ImageBatches, ImageDataset, augment_batch, channel_stats, make_loader
from .mnist import load_authors_mnist_pngs, load_mnist_idx, mnist_pair, mnist_subset
from .peak import PEAK_STAMP, STROKE_KINDS, load_peak_folder, make_peak, peak_split
from .tasks import ImageSplits, Task, image_splits, make_task

_LAZY = {
    **dict.fromkeys(("ShallowWaterSettings", "load_shallow_water", "simulate_shallow_water"), "shallow_water"),
    **dict.fromkeys(("ForecastPairs", "Normalizer", "PairBatches", "open_era5", "open_weatherbench", "stack_fields"),
                    "weather"),
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CIFAR10_CLASSES",
    "ChecksumError",
    "FASHION_MNIST_CLASSES",
    "ForecastPairs",
    "GRAY28_DATASETS",
    "Gray28",
    "ImageBatches",
    "ImageDataset",
    "ImageSplits",
    "Normalizer",
    "PEAK_STAMP",
    "PairBatches",
    "STROKE_KINDS",
    "Task",
    "ShallowWaterSettings",
    "augment_batch",
    "channel_stats",
    "cifar_class_names",
    "download",
    "download_cifar",
    "extract_tar",
    "ib12",
    "ib12_split",
    "image_splits",
    "load_authors_mnist_pngs",
    "load_cifar10",
    "load_cifar100",
    "load_fashion_mnist",
    "load_gray28",
    "load_mnist_idx",
    "load_shallow_water",
    "load_peak_folder",
    "make_peak",
    "make_loader",
    "make_task",
    "mnist_pair",
    "mnist_subset",
    "open_era5",
    "open_weatherbench",
    "peak_split",
    "simulate_shallow_water",
    "stack_fields",
    "to_cifar_shape",
    "to_signed_unit",
    "to_uint8",
]
