"""Data sets: generated in code or read from a user's folder; nothing is downloaded at run time."""

# --- image classification (CIFAR readers, opt-in download, Fashion-MNIST stand-in, batches) ---
from .cifar import CIFAR10_CLASSES, cifar_class_names, load_cifar10, load_cifar100
from .download import ChecksumError, download, download_cifar, extract_tar
from .fashion import FASHION_MNIST_CLASSES, load_fashion_mnist, to_cifar_shape
from .images import ImageBatches, ImageDataset, augment_batch, channel_stats, make_loader
# --- end image classification ---
