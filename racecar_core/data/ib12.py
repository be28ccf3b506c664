"""The 12-bit task of Shwartz-Ziv & Tishby (2017), generated exactly in code.

The inputs are all ``2**12 = 4096`` binary patterns in counting order: row ``k`` is ``k`` written in
binary, column 0 holding the most significant bit. Each column stands for one vertex ``v_i`` of a regular
icosahedron (unit length, ``phi = (1 + sqrt 5) / 2``), in the order of :data:`VERTICES`. With ``n`` the
number of set bits and ``S = sum of v_i over the set bits``, the two labellings are

* task A (the original data set): ``y_a = 1`` when ``n - 0.05 n**2 + 0.15 ||S||**2 > 4.62``.
  2118 of 4096 labels are 1, ``H(y_a) = 0.99916`` bits. By popcount: ``y_a = 0`` for ``n <= 4``,
  60 of 792 at ``n = 5``, 532 of 924 at ``n = 6``, 732 of 792 at ``n = 7``, ``y_a = 1`` for ``n >= 8``.
  No pattern lies near the threshold: the smallest ``|f - 4.62|`` is 0.0142, so float64 rounding
  cannot change a label.
* task B (ours): ``y_b = 1`` when ``||S||**2 > 2.5``, i.e. when the set vertices lean to one side of
  the sphere. 2036 of 4096 labels are 1, ``H(y_b) = 0.99998`` bits. ``||S||**2`` takes 20 distinct
  values; the threshold sits in the gap between 2.2111 and 2.8944. Task B ignores the popcount as such
  and is invariant under complementing all bits (the vertices sum to zero, so ``S -> -S``), whereas
  task A is mostly a popcount threshold; the two labellings agree on 2630 of 4096 patterns (64.2 %).
  Both depend only on the pattern up to rotations of the icosahedron.
"""

from __future__ import annotations

import numpy as np

N_BITS = 12
_PHI = (1.0 + 5.0**0.5) / 2.0

#: The icosahedron vertices of the 12 bits (before normalisation), column 0 first.
VERTICES: tuple[tuple[float, float, float], ...] = (
    (0.0, 1.0, _PHI),
    (1.0, _PHI, 0.0),
    (0.0, 1.0, -_PHI),
    (-1.0, _PHI, 0.0),
    (_PHI, 0.0, -1.0),
    (0.0, -1.0, _PHI),
    (1.0, -_PHI, 0.0),
    (-1.0, -_PHI, 0.0),
    (-_PHI, 0.0, -1.0),
    (0.0, -1.0, -_PHI),
    (-_PHI, 0.0, 1.0),
    (_PHI, 0.0, 1.0),
)

THRESHOLD_A = 4.62
THRESHOLD_B = 2.5


def ib12_patterns() -> np.ndarray:
    """All 4096 12-bit patterns in counting order: uint8 ``[4096, 12]``, column 0 the most significant bit."""
    k = np.arange(2**N_BITS)
    shifts = np.arange(N_BITS - 1, -1, -1)
    return ((k[:, None] >> shifts) & 1).astype(np.uint8)


def _features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Popcount ``n`` ``[N]`` and squared length ``||S||**2`` ``[N]`` of the summed unit vertices, float64."""
    v = np.asarray(VERTICES, dtype=np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    s = x.astype(np.float64) @ v
    return x.sum(axis=1, dtype=np.int64), np.einsum("ij,ij->i", s, s)


def ib12() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 12-bit data set: ``X`` uint8 ``[4096, 12]``, ``y_a`` uint8 ``[4096]``, ``y_b`` uint8 ``[4096]``.

    ``y_a`` is the original task of Shwartz-Ziv & Tishby, ``y_b`` our second labelling of the same inputs
    (see the module docstring for both rules and their statistics).
    """
    x = ib12_patterns()
    n, s2 = _features(x)
    y_a = (n - 0.05 * n**2 + 0.15 * s2 > THRESHOLD_A).astype(np.uint8)
    y_b = (s2 > THRESHOLD_B).astype(np.uint8)
    return x, y_a, y_b


def ib12_split(test_fraction: float = 0.2, seed: int = 0, task: str = "a") -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split stratified by the label of ``task`` (``"a"`` or ``"b"``).

    Returns sorted int64 index arrays ``(train, test)`` into the 4096 patterns; each class contributes
    ``round(test_fraction * class_size)`` test indices, drawn with ``numpy.random.default_rng(seed)``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if task not in ("a", "b"):
        raise ValueError(f"task must be 'a' or 'b', got {task!r}")
    _, y_a, y_b = ib12()
    y = y_a if task == "a" else y_b
    rng = np.random.default_rng(seed)
    test = []
    for label in (0, 1):
        members = rng.permutation(np.flatnonzero(y == label))
        test.append(members[: int(round(test_fraction * members.size))])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(y.size), test_idx)
    return train_idx, test_idx
