"""Singular-value analysis of weights: do the singular vectors embed the training data?

For a linear layer ``y = W x`` (``W`` [out, in]) the right singular vectors live in input space, so for
image inputs they can be shown as images. The RR loss ``½‖x − WᵀW x‖²`` is zero exactly when ``WᵀW``
is the identity on the data's span: the data's directions become right singular vectors with σ = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from torch import Tensor


def _matrix(weight: Tensor | np.ndarray) -> np.ndarray:
    w = weight.detach().cpu().double().numpy() if isinstance(weight, Tensor) else np.asarray(weight, dtype=np.float64)
    return w.reshape(w.shape[0], -1)


def right_singular_vectors(weight: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(S, V)``: singular values [r] in descending order and right singular vectors as rows [r, fan_in]
    of ``weight`` reshaped to [out, fan_in]."""
    _, s, vh = np.linalg.svd(_matrix(weight), full_matrices=False)
    return s, vh


def principal_directions(data: Tensor | np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` right singular vectors [k, D] of the (uncentred) data matrix [N, D]."""
    _, _, vh = np.linalg.svd(_matrix(data), full_matrices=False)
    return vh[:k]


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees (ascending) between the spans of the rows of ``a`` [k1, D] and ``b`` [k2, D]."""
    return np.sort(np.degrees(scipy.linalg.subspace_angles(np.asarray(a).T, np.asarray(b).T)))


def subspace_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared cosine of the principal angles: 1 for equal spans, 0 for orthogonal ones."""
    return float(np.mean(np.cos(np.radians(principal_angles(a, b))) ** 2))


@dataclass(frozen=True)
class Embedding:
    """How well a weight's top singular vectors span the data's main directions."""

    k: int
    angles: np.ndarray  # degrees, ascending
    similarity: float  # mean cos² of the angles
    singular_values: np.ndarray  # top-k σ of the weight


def data_embedding(weight: Tensor | np.ndarray, data: Tensor | np.ndarray, k: int) -> Embedding:
    """Principal angles between the top-``k`` right singular vectors of ``weight`` and the top-``k``
    principal directions of ``data`` [N, fan_in] (for ``k >= N`` the span of the data itself)."""
    s, v = right_singular_vectors(weight)
    k = min(k, len(s), len(_matrix(data)))
    angles = principal_angles(v[:k], principal_directions(data, k))
    return Embedding(k, angles, float(np.mean(np.cos(np.radians(angles)) ** 2)), s[:k])


def rowspace_energy(weight: Tensor | np.ndarray, data: Tensor | np.ndarray) -> float:
    """Fraction of the data's energy ``‖P X‖² / ‖X‖²`` inside the span of the weight's right singular
    vectors (its row space): the part of the inputs [N, fan_in] that ``WᵀW`` can reproduce at all."""
    w, x = _matrix(weight), _matrix(data)
    q, r = np.linalg.qr(w.T)
    q = q[:, np.abs(np.diag(r)) > 1e-12 * max(np.abs(np.diag(r)).max(), 1e-300)]
    return float(np.linalg.norm(x @ q) ** 2 / np.linalg.norm(x) ** 2)


def data_alignment(vectors: np.ndarray, data: Tensor | np.ndarray, k: int) -> np.ndarray:
    """For each row of ``vectors`` [r, D]: cos² of its angle to the span of the data's top-``k``
    principal directions (1: inside the span, 0: orthogonal to it)."""
    directions = principal_directions(data, k)
    return ((np.asarray(vectors) @ directions.T) ** 2).sum(axis=1)


def aligned_ranks(weight: Tensor | np.ndarray, data: Tensor | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks (by descending σ) of the ``k`` right singular vectors closest to the span of the data's
    top-``k`` principal directions, and their singular values."""
    s, v = right_singular_vectors(weight)
    order = np.sort(np.argsort(data_alignment(v, data, k))[-k:])
    return order + 1, s[order]


def oriented(vectors: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Flip each row's sign (singular vectors are defined up to sign) to correlate positively with
    ``reference`` (default: to have a positive sum)."""
    ref = np.ones(vectors.shape[1]) if reference is None else np.asarray(reference, dtype=float).ravel()
    signs = np.sign(vectors @ ref)
    return vectors * np.where(signs == 0, 1.0, signs)[:, None]


def as_images(vectors: np.ndarray, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Rows rescaled to [0, 1] each (min to 0, max to 1) and reshaped to images [k, *shape] for display."""
    v = np.asarray(vectors, dtype=float)
    lo, hi = v.min(axis=1, keepdims=True), v.max(axis=1, keepdims=True)
    return ((v - lo) / np.where(hi > lo, hi - lo, 1.0)).reshape(len(v), *shape)


__all__ = [
    "Embedding",
    "aligned_ranks",
    "as_images",
    "data_alignment",
    "data_embedding",
    "oriented",
    "principal_angles",
    "principal_directions",
    "right_singular_vectors",
    "rowspace_energy",
    "subspace_similarity",
]

