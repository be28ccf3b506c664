"""Read one grey-scale PNG as a uint8 array (shared by the peak and MNIST loaders)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

_MODES = ("L", "LA", "RGB", "RGBA")


def read_gray_png(path: str | os.PathLike, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Channel 0 of the PNG at ``path`` as uint8 ``[H, W]`` (modes L, LA, RGB, RGBA; R=G=B is not checked)."""
    path = Path(path)
    with Image.open(path) as image:
        if image.mode not in _MODES:
            raise ValueError(f"{path}: unsupported PNG mode {image.mode!r}; expected one of {_MODES}")
        array = np.asarray(image)
    array = array if array.ndim == 2 else array[..., 0]
    if array.shape != tuple(shape):
        raise ValueError(f"{path}: image is {array.shape[0]}x{array.shape[1]}, expected {shape[0]}x{shape[1]}")
    return np.ascontiguousarray(array, dtype=np.uint8)
