"""Time binning information planes for a whole training history (a script, not a test).

Configuration of the 12-bit experiment: 6 models x 100 snapshots x 7 layers of widths 12, 10, 7, 5, 4, 3, 2
on the 4096 inputs. The activations are random tanh networks whose weights grow over the snapshots (so
that units saturate as in training); generating them is not timed, only ``information_planes``.

    python benchmarks/mi_binning.py [--models 6] [--snapshots 100] [--estimator binning] [--threads 2] [--json]

With ``--json`` the last line printed is one JSON object: seconds in total, ms per snapshot (all 7 layers)
and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

WIDTHS = (12, 10, 7, 5, 4, 3, 2)


def history(x: np.ndarray, snapshots: int, seed: int) -> list[list[np.ndarray]]:
    """``snapshots`` lists of 7 float32 activations ``[N, width]``; layer 0 is ``x`` itself."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
    out = []
    for s in range(snapshots):
        scale = 1.0 + 4.0 * s / max(snapshots - 1, 1)
        acts = [x.astype(np.float32)]
        for w in weights:
            acts.append(np.tanh(scale * (acts[-1] @ w)).astype(np.float32))
        out.append(acts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--snapshots", type=int, default=100)
    parser.add_argument("--estimator", default="binning")
    parser.add_argument("--threads", type=int, default=2, help="BLAS/torch threads")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line last")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import torch

    from racecar_core.data import ib12
    from racecar_core.mi import information_planes

    torch.set_num_threads(args.threads)
    x, y_a, _ = ib12()
    total = 0.0
    for model in range(args.models):
        hist = history(x, args.snapshots, seed=model)
        start = time.perf_counter()
        planes = information_planes(hist, x, y_a, args.estimator)
        total += time.perf_counter() - start
    print(
        f"estimator={args.estimator} models={args.models} snapshots={args.snapshots} layers={len(WIDTHS)} "
        f"widths={WIDTHS} samples={x.shape[0]} threads={args.threads} cpus={os.cpu_count()}"
    )
    print(f"information_planes: {total:.2f} s in total, {1e3 * total / (args.models * args.snapshots):.2f} ms per snapshot")
    print("last model, last snapshot, I(X;d_m) and I(d_m;Y) in bits:")
    print(np.array2string(planes[-1], precision=3))
    if args.json:
        from _common import print_json

        print_json("mi_binning", {"mi_binning": {"estimator": args.estimator, "models": args.models,
                                                 "snapshots": args.snapshots, "seconds": total,
                                                 "ms_per_snapshot": 1e3 * total / (args.models * args.snapshots)}})


if __name__ == "__main__":
    main()
