"""The KDE upper bound of the information planes: the implementation before issue 13 ("old") against the current
one (``racecar_core.mi``), on the 12-bit task's 4096 inputs × 7 layers (widths 12, 10, 7, 5, 4, 3, 2; layer 0 is
the input itself) of random tanh networks whose weights grow over the snapshots (as in
``benchmarks/mi_binning.py``). Both are timed on the same snapshots in alternating rounds (median), and their
results are compared (largest difference in bits; the target is <= 1e-9).

    python benchmarks/mi_kde.py [--snapshots 2] [--rounds 3] [--threads 1] [--json]

With ``--json`` the last line printed is one JSON object: ms per snapshot (7 layers, both coordinates) old and
new, the speed-up, the largest difference in bits and the machine's load.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

_KDE_BLOCK = 2**22  # the old implementation's settings
_KDE_ONEHOT = 64


def _finite(t: np.ndarray) -> np.ndarray:
    if not np.isfinite(t).all():
        raise ValueError("activations contain NaN or inf")
    return t


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1)


# The old implementation, verbatim from racecar_core/mi.py at commit 9b1eaa3 (blocks of 1024 rows × all columns,
# the full N × N kernel, exponentials allowed to underflow).
def old_kde_mi(t: np.ndarray, groups: Sequence[np.ndarray], variance: float) -> np.ndarray:
    """``I(T; Z)`` in bits for each dense grouping ``z`` in ``groups`` (``[N]`` each), kernel variance ``variance``.

    ``K_ij = exp(-||t_i - t_j||² / (2 variance))``; see the module docstring. The largest exponent of every row
    is 0 (``j = i``), so the logsumexp shift is 0 and every row sum is >= 1: plain sums of float64 exponentials
    are the stable logsumexp. Rows are processed in blocks of ``_KDE_BLOCK // N`` to bound memory.
    """
    t = _finite(_rows(t).astype(np.float64))
    n = t.shape[0]
    sq = np.einsum("ij,ij->i", t, t)
    plans = []
    for z in groups:
        size = np.bincount(z)
        if size.size == n:  # every sample its own group: the conditional term is exactly 0
            plans.append(None)
        elif size.size <= _KDE_ONEHOT:  # few groups (labels): per-group sums as one matrix product
            plans.append(("onehot", np.eye(size.size)[z], np.log(size)))
        else:
            order = np.argsort(z, kind="stable")
            plans.append(("sorted", order, np.searchsorted(z[order], np.arange(size.size)), np.log(size)))
    total = np.zeros(len(groups))
    block = max(1, _KDE_BLOCK // max(n, 1))
    scale = -0.5 / variance
    for i0 in range(0, n, block):  # loop over row blocks, not samples
        rows = np.arange(i0, min(i0 + block, n))
        here = np.arange(rows.size)
        k = t[rows] @ t.T  # becomes the kernel block in place: -2 t_i·t_j + |t_i|² + |t_j|², clipped, scaled, exp
        k *= -2.0
        k += sq[rows, None]
        k += sq[None, :]
        np.maximum(k, 0.0, out=k)
        k[here, rows] = 0.0
        k *= scale
        np.exp(k, out=k)
        log_all = np.log(k.sum(axis=1))
        for g, (z, plan) in enumerate(zip(groups, plans)):
            cond = 0.0
            if plan is not None and plan[0] == "onehot":
                _, onehot, log_size = plan
                cond = np.log((k @ onehot)[here, z[rows]]) - log_size[z[rows]]
            elif plan is not None:
                _, order, starts, log_size = plan
                per_group = np.add.reduceat(k[:, order], starts, axis=1)
                cond = np.log(per_group[here, z[rows]]) - log_size[z[rows]]
            total[g] += np.sum(cond - log_all + math.log(n))
    return total / (n * math.log(2.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=2, help="snapshots (each 7 layers) timed per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line last")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    from mi_binning import WIDTHS, history

    from racecar_core.data import ib12
    from racecar_core.mi import _discrete_symbols, _kde_mi, _kde_variance

    x, y, _ = ib12()
    sx, sy = _discrete_symbols(x), _discrete_symbols(y)
    variance = _kde_variance("kde_upper", {"noise_variance": 1e-3})
    snapshots = history(x, args.snapshots, seed=0)

    def planes(fn) -> np.ndarray:
        return np.array([[fn(t, [sx, sy], variance) for t in acts] for acts in snapshots])

    times: dict[str, list[float]] = {"old": [], "new": []}
    results = {}
    for _ in range(args.rounds):
        for name, fn in (("old", old_kde_mi), ("new", _kde_mi)):
            start = time.perf_counter()
            results[name] = planes(fn)
            times[name].append((time.perf_counter() - start) / args.snapshots * 1e3)
    ms = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    diff = float(np.abs(results["old"] - results["new"]).max())
    print(f"KDE upper bound, {x.shape[0]} samples x {len(WIDTHS)} layers (widths {WIDTHS}), {args.snapshots} snapshots,"
          f" {args.rounds} rounds, threads {args.threads}")
    print(f"  old {ms['old']:.0f} ms per snapshot, new {ms['new']:.0f} ms per snapshot: {ms['old'] / ms['new']:.1f}x faster;"
          f" largest difference {diff:.2e} bits")
    if diff > 1e-9:
        raise SystemExit(f"old and new differ by {diff:.3g} bits (> 1e-9)")
    if args.json:
        from _common import print_json

        print_json("mi_kde", {"mi_kde": {"old_ms": ms["old"], "new_ms": ms["new"], "speedup": ms["old"] / ms["new"],
                                         "max_abs_diff_bits": diff, "samples": int(x.shape[0]), "layers": len(WIDTHS),
                                         "snapshots": args.snapshots, "rounds": args.rounds}})


if __name__ == "__main__":
    main()
