"""Data sets: generated in code or read from a user's folder; nothing is downloaded at run time."""

from .cifar import CIFAR10_CLASSES, cifar_class_names, load_cifar10, load_cifar100
from .download import ChecksumError, download, download_cifar, extract_tar
from .fashion import FASHION_MNIST_CLASSES, load_fashion_mnist, to_cifar_shape
from .gray28 import GRAY28_DATASETS, Gray28, load_gray28, to_signed_unit, to_uint8
from .ib12 import ib12, ib12_split
from .images import ImageBatches, ImageDataset, augment_batch, channel_stats, make_loader
from .mnist import load_authors_mnist_pngs, load_mnist_idx, mnist_pair, mnist_subset
from .peak import PEAK_STAMP, STROKE_KINDS, load_peak_folder, make_peak, peak_split

__all__ = [
    "CIFAR10_CLASSES",
    "ChecksumError",
    "FASHION_MNIST_CLASSES",
    "GRAY28_DATASETS",
    "Gray28",
    "ImageBatches",
    "ImageDataset",
    "PEAK_STAMP",
    "STROKE_KINDS",
    "augment_batch",
    "channel_stats",
    "cifar_class_names",
    "download",
    "download_cifar",
    "extract_tar",
    "ib12",
    "ib12_split",
    "load_authors_mnist_pngs",
    "load_cifar10",
    "load_cifar100",
    "load_fashion_mnist",
    "load_gray28",
    "load_mnist_idx",
    "load_peak_folder",
    "make_peak",
    "make_loader",
    "mnist_pair",
    "mnist_subset",
    "peak_split",
    "to_cifar_shape",
    "to_signed_unit",
    "to_uint8",
]
