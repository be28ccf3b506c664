"""Data sets: generated in code or read from a user's folder; nothing is downloaded at run time."""

from .mnist import load_authors_mnist_pngs, load_mnist_idx, mnist_pair, mnist_subset
from .peak import PEAK_STAMP, STROKE_KINDS, load_peak_folder, make_peak, peak_split

__all__ = [
    "PEAK_STAMP",
    "STROKE_KINDS",
    "load_authors_mnist_pngs",
    "load_mnist_idx",
    "load_peak_folder",
    "make_peak",
    "mnist_pair",
    "mnist_subset",
    "peak_split",
]
