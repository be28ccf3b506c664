"""Mutual-information estimators for information planes. Every result is in bits.

Arrays have one row per sample (torch tensors or numpy arrays). An integer or boolean array is a
*discrete* variable: a 1-D array of labels, or ``[N, D]`` whose distinct rows are the symbols (the 12-bit
input patterns). A float array ``[N, D]`` (or ``[N]``, or ``[N, ...]``, flattened) holds *continuous*
layer activations, which the estimator turns into something measurable:

``"binning"`` (options ``bins=30``, ``range=(-1.0, 1.0)``)
    Shwartz-Ziv & Tishby (2017): each unit is cut into ``bins`` equal bins on ``range`` and the tuple of a
    sample's bin indices is one discrete symbol. Values outside the range go into the edge bins (clipped).
    The original code (``bins[np.digitize(t, np.linspace(-1, 1, 30)) - 1]``) instead sends values below
    the lowest edge to index ``-1``, which Python wraps to the *top* bin, a bug; it also has 29 equal
    intervals plus a separate symbol for values ``>= 1``, where we have 30 equal bins.
``"binning_width"`` (option ``width=0.07``)
    Saxe et al. (2018): bin index ``floor(t / width)`` per unit, unbounded, so usable for ReLU layers.
``"kde_upper"``, ``"kde_lower"`` (option ``noise_variance=1e-3``)
    Kolchinsky & Tracey (2017), as used by Saxe et al.: ``T = d + N(0, noise_variance I)`` is a mixture of
    one Gaussian per sample, and its entropy is bounded with pairwise KL divergences ``D²/(2σ²)`` (upper)
    or Bhattacharyya distances ``D²/(8σ²)`` (lower, i.e. the same kernel with variance ``4σ²``). The term
    ``d/2 ln(2πeσ²)`` cancels, leaving, for a discrete ``Z`` (the input identity, or the label),
    ``I(T; Z) = mean_i [ln Σ_{j: z_j = z_i} K_ij − ln n(z_i) − ln Σ_j K_ij + ln N]``, converted to bits.
    For ``Z = X`` with distinct inputs this is ``H_bound(T) − H(T|X)``, a true bound; for ``Z = Y`` it is
    ``H_bound(T) − Σ_y p(y) H_bound(T|Y=y)``, a difference of two bounds and therefore an estimate only.

Binning estimators use ``I(A; B) = H(A) + H(B) − H(A, B)`` of the empirical (plug-in) distribution.
Ceilings: ``I(X; T) <= H(X) = log2 N`` for ``N`` distinct inputs (12 bits for the 12-bit task) and
``I(T; Y) <= H(Y)`` (both hold exactly for binning and for the KDE expressions above).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import nn

from .reverse import layer_activations

__all__ = [
    "ESTIMATORS",
    "bin_by_range",
    "bin_by_width",
    "entropy",
    "information_plane",
    "information_planes",
    "mutual_information",
]

#: Valid estimators and their options with defaults.
ESTIMATORS: dict[str, dict[str, Any]] = {
    "binning": {"bins": 30, "range": (-1.0, 1.0)},
    "binning_width": {"width": 0.07},
    "kde_upper": {"noise_variance": 1e-3},
    "kde_lower": {"noise_variance": 1e-3},
}
_BINNING = ("binning", "binning_width")
_MAX_CODE = 2**62  # mixed-radix codes stay below this, so ``code * radix + digit`` cannot overflow int64
_KDE_BLOCK = 2**17  # pairwise kernel entries held at once (1 MiB of float64: a block stays in the cache)
# Kernel exponents are raised to at least this: exp(-100) = 3.7e-44, so N of them change a sum that is >= 1 by less
# than N * 4e-44 (far below float64 rounding for any N < 1e27), while exponentials that underflow into subnormals
# or zero take a slow path in the vectorised exp (about 10-40 times slower per entry).
_KDE_FLOOR = -100.0
_CHUNK = 2**23  # activation entries binned at once in information_planes

Array = Any  # np.ndarray | torch.Tensor | array-like


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


def _as_numpy(a: Array) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim == 0 or a.shape[0] == 0:
        raise ValueError(f"expected an array with one row per sample, got shape {a.shape}")
    return a


def _is_discrete(a: np.ndarray) -> bool:
    return a.dtype.kind in "biu"


def _rows(a: np.ndarray) -> np.ndarray:
    """``[N]`` or ``[N, ...]`` -> ``[N, D]``."""
    return a.reshape(a.shape[0], -1)


def _finite(t: np.ndarray) -> np.ndarray:
    if not np.isfinite(t).all():
        raise ValueError("activations contain NaN or inf")
    return t


def _options(estimator: str, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults of ``estimator`` updated with ``options``, validated."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid estimators: {', '.join(ESTIMATORS)}")
    defaults = ESTIMATORS[estimator]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for estimator {estimator!r}; "
            f"valid options: {', '.join(defaults)}"
        )
    opts = {**defaults, **options}
    if "bins" in opts and (isinstance(opts["bins"], bool) or not isinstance(opts["bins"], int) or opts["bins"] < 1):
        raise ValueError(f"bins must be a positive integer, got {opts['bins']!r}")
    if "range" in opts:
        lo, hi = tuple(opts["range"]) if np.size(opts["range"]) == 2 else (math.nan, math.nan)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"range must be (low, high) with finite low < high, got {opts['range']!r}")
    for key in ("width", "noise_variance"):
        if key in opts and not (isinstance(opts[key], Real) and opts[key] > 0 and math.isfinite(opts[key])):
            raise ValueError(f"{key} must be a positive number, got {opts[key]!r}")
    return opts


# --------------------------------------------------------------------------------------------------
# Binning and discrete symbols
# --------------------------------------------------------------------------------------------------


def bin_by_range(t: Array, bins: int = 30, range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:  # noqa: A002
    """Bin index in ``0 .. bins-1`` of every entry of ``t`` (same shape, int64); out-of-range values are clipped
    into the edge bins. The top edge ``range[1]`` belongs to the last bin."""
    lo, hi = range
    t = _finite(_as_numpy(t))
    idx = np.floor((t.astype(np.float64) - lo) * (bins / (hi - lo)))
    return np.clip(idx, 0, bins - 1).astype(np.int64)


def bin_by_width(t: Array, width: float = 0.07) -> np.ndarray:
    """Bin index ``floor(t / width)`` of every entry of ``t`` (same shape, int64), unbounded."""
    t = _finite(_as_numpy(t))
    return np.floor(t.astype(np.float64) / width).astype(np.int64)


def _binner(estimator: str, opts: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    if estimator == "binning":
        return lambda t: bin_by_range(t, opts["bins"], opts["range"])
    return lambda t: bin_by_width(t, opts["width"])


def _densify(codes: np.ndarray) -> np.ndarray:
    """Per row of ``codes`` ``[S, N]`` (int64), rank of each value among the row's distinct values: ``0 .. K-1``."""
    order = np.argsort(codes, axis=1, kind="stable")
    srt = np.take_along_axis(codes, order, axis=1)
    new = np.ones(srt.shape, dtype=bool)
    np.not_equal(srt[:, 1:], srt[:, :-1], out=new[:, 1:])
    dense = np.empty_like(codes)
    np.put_along_axis(dense, order, np.cumsum(new, axis=1) - 1, axis=1)
    return dense


def _row_symbols(idx: np.ndarray) -> np.ndarray:
    """Integer tuples ``[S, N, D]`` -> one dense symbol ``0 .. K-1`` per sample ``[S, N]`` (equal rows, equal symbol).

    Mixed-radix code, column by column; before the code could pass 2**62 it is densified (ranks < N),
    so the result is exact for any width and needs no hashing.
    """
    s, n, d = idx.shape
    idx = idx - idx.min(axis=1, keepdims=True)
    radix = idx.max(axis=(0, 1)) + 1 if n else np.ones(d, dtype=np.int64)
    code = np.zeros((s, n), dtype=np.int64)
    cap = 1  # every code is below cap
    for j in range(d):  # loop over units, not samples
        digit, r = idx[:, :, j], int(radix[j])
        if r == 1:
            continue
        if r > n:
            digit, r = _densify(digit), n
        if cap * r > _MAX_CODE:
            code, cap = _densify(code), n
        code = code * r + digit
        cap *= r
    return _densify(code)


def _discrete_symbols(a: Array) -> np.ndarray:
    """Distinct rows of ``a`` (any dtype, compared exactly) -> symbols ``[N]`` in ``0 .. K-1``."""
    a = _rows(_as_numpy(a))
    return np.unique(a, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _symbols(a: np.ndarray, estimator: str, opts: dict[str, Any]) -> np.ndarray:
    """Discrete ``a`` -> its row symbols; continuous ``a`` -> symbols of its binned rows. Shape ``[N]``."""
    if _is_discrete(a):
        return _discrete_symbols(a)
    return _row_symbols(_binner(estimator, opts)(_rows(a))[None])[0]


def _row_entropy(codes: np.ndarray) -> np.ndarray:
    """Plug-in entropy in bits of each row of ``codes`` ``[S, N]`` (int64, any values): ``[S]``."""
    s, n = codes.shape
    srt = np.sort(codes, axis=1)
    new = np.ones(srt.shape, dtype=bool)
    np.not_equal(srt[:, 1:], srt[:, :-1], out=new[:, 1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, srt.size)).astype(np.float64)
    clogc = np.bincount(starts // n, weights=counts * np.log2(counts), minlength=s)
    return math.log2(n) - clogc / n


def _binned_mi(a: np.ndarray, b: np.ndarray, h_a: np.ndarray | None = None, h_b: np.ndarray | None = None):
    """``I(A; B)`` in bits per row ``[S]`` for dense symbols ``a`` ``[S, N]`` and ``b`` ``[S or 1, N]`` (all ``< N``);
    ``h_a``, ``h_b``: their entropies if already known."""
    h_a = _row_entropy(a) if h_a is None else h_a
    h_b = _row_entropy(b) if h_b is None else h_b
    return h_a + h_b - _row_entropy(a * a.shape[1] + b)


# --------------------------------------------------------------------------------------------------
# Kernel density bounds
# --------------------------------------------------------------------------------------------------


def _kde_mi(t: np.ndarray, groups: Sequence[np.ndarray], variance: float) -> np.ndarray:
    """``I(T; Z)`` in bits for each dense grouping ``z`` in ``groups`` (``[N]`` each), kernel variance ``variance``.

    ``K_ij = exp(-||t_i - t_j||² / (2 variance))``; see the module docstring. The largest exponent of every row
    is 0 (``j = i``), so the logsumexp shift is 0 and every row sum is >= 1: plain sums of float64 exponentials
    are the stable logsumexp.

    Work and memory: ``K`` is symmetric, so only its upper triangle is computed, in blocks of
    ``_KDE_BLOCK // N`` rows (a block stays in the CPU's cache): each block's exponents come from one matrix
    product of the augmented rows ``[-2 s t_i, s |t_i|², s]`` and ``[t_j, 1, |t_j|²]`` (``s = -1 / (2 variance)``),
    are clipped to ``[_KDE_FLOOR, 0]`` (0: rounding; the floor keeps exp off its slow underflow path and changes
    no sum, each being >= 1) and exponentiated in place; its row sums go to rows ``i`` and its column sums to
    rows ``j``. The samples are first sorted by the first grouping that is not all-distinct, so that its groups
    are contiguous and its conditional sums are sums over column ranges (block rows never straddle a group);
    further groupings use an equality mask. Agrees with the direct formula to about 1e-12 bits (tests).
    """
    t = _finite(_rows(t).astype(np.float64))
    n = t.shape[0]
    kinds = ["all" if np.bincount(z).size == n else "mask" for z in groups]
    contiguous = next((g for g, kind in enumerate(kinds) if kind == "mask"), None)
    if contiguous is not None:
        kinds[contiguous] = "contiguous"
        order = np.argsort(groups[contiguous], kind="stable")
        t, groups = t[order], [z[order] for z in groups]
        zc = groups[contiguous]
        bounds = np.flatnonzero(np.diff(zc)) + 1  # group boundaries in sorted order
        group_end = np.append(bounds, n)[np.searchsorted(bounds, np.arange(n), side="right")]  # end of each row's group
    else:
        bounds = np.empty(0, dtype=np.int64)
    t = t - t.mean(axis=0)  # distances do not change; smaller norms mean less cancellation in |t_i|² + |t_j|² - 2 t_i·t_j
    scale = -0.5 / variance
    sq = np.einsum("ij,ij->i", t, t)
    left = np.hstack([(-2.0 * scale) * t, (scale * sq)[:, None], np.full((n, 1), scale)])  # [n, d+2]
    right = np.ascontiguousarray(np.hstack([t, np.ones((n, 1)), sq[:, None]]).T)  # [d+2, n]
    rows = max(1, _KDE_BLOCK // max(n, 1))
    starts = np.union1d(np.arange(0, n, rows), bounds)  # block rows never straddle a group boundary
    ends = np.append(starts[1:], n)
    row_sum = np.zeros(n)
    cond_sum = [np.zeros(n) if kind != "all" else None for kind in kinds]
    for i0, i1 in zip(starts.tolist(), ends.tolist()):  # loop over row blocks, not samples
        b = i1 - i0
        k = left[i0:i1] @ right[:, i0:]  # exponents of K[i0:i1, i0:]
        np.clip(k, _KDE_FLOOR, 0.0, out=k)
        k[np.arange(b), np.arange(b)] = 0.0
        np.exp(k, out=k)
        row_sum[i0:i1] += k.sum(axis=1)
        row_sum[i1:] += k[:, b:].sum(axis=0)
        for g, kind in enumerate(kinds):
            if kind == "contiguous":
                ge = int(group_end[i0]) - i0  # the block's group ends at column ge (relative to i0)
                cond_sum[g][i0:i1] += k[:, :ge].sum(axis=1)
                cond_sum[g][i1 : i0 + ge] += k[:, b:ge].sum(axis=0)
            elif kind == "mask":
                z = groups[g]
                same = np.where(z[i0:i1, None] == z[None, i0:], k, 0.0)
                cond_sum[g][i0:i1] += same.sum(axis=1)
                cond_sum[g][i1:] += same[:, b:].sum(axis=0)
    log_all = np.log(row_sum)
    total = np.empty(len(groups))
    for g, (z, kind) in enumerate(zip(groups, kinds)):
        cond = 0.0 if kind == "all" else np.log(cond_sum[g]) - np.log(np.bincount(z)[z])
        total[g] = np.sum(cond - log_all + math.log(n))
    return total / (n * math.log(2.0))


def _kde_variance(estimator: str, opts: dict[str, Any]) -> float:
    return opts["noise_variance"] * (1.0 if estimator == "kde_upper" else 4.0)


# --------------------------------------------------------------------------------------------------
# Public interface
# --------------------------------------------------------------------------------------------------


def entropy(a: Array, estimator: str = "binning", **options: Any) -> float:
    """Plug-in entropy ``H(A)`` in bits of a discrete or binned variable ``a`` ``[N, ...]``; ceiling ``log2 N``."""
    opts = _options(estimator, options)
    if estimator not in _BINNING:
        raise ValueError(f"entropy is available for the binning estimators only ({', '.join(_BINNING)})")
    return float(_row_entropy(_symbols(_as_numpy(a), estimator, opts)[None])[0])


def mutual_information(a: Array, b: Array, estimator: str = "binning", **options: Any) -> float:
    """``I(A; B)`` in bits for samples ``a`` ``[N, ...]`` and ``b`` ``[N, ...]`` (rows paired).

    Binning estimators bin the continuous arguments and use ``H(A) + H(B) - H(A, B)``; ceiling
    ``min(H(A), H(B)) <= log2 N``. KDE estimators need one continuous argument ``T`` (float) and one discrete
    ``Z`` (integer labels or patterns) and return the bound or estimate of ``I(T; Z)`` described in the module
    docstring; ceiling ``H(Z)``. Options: see :data:`ESTIMATORS`.
    """
    opts = _options(estimator, options)
    a, b = _as_numpy(a), _as_numpy(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b need the same number of samples, got {a.shape[0]} and {b.shape[0]}")
    if estimator in _BINNING:
        sa, sb = _symbols(a, estimator, opts), _symbols(b, estimator, opts)
        return float(_binned_mi(sa[None], sb[None])[0])
    if _is_discrete(a) == _is_discrete(b):
        raise ValueError(f"{estimator!r} needs one continuous (float) and one discrete (integer) argument")
    t, z = (b, a) if _is_discrete(a) else (a, b)
    return float(_kde_mi(t, [_discrete_symbols(z)], _kde_variance(estimator, opts))[0])


def information_planes(
    history: Sequence[Sequence[Array]], X: Array, Y: Array, estimator: str = "binning", **options: Any
) -> np.ndarray:
    """Information-plane coordinates of every snapshot: float64 ``[S, L+1, 2]`` in bits.

    ``history[s][m]`` is layer ``m``'s activation ``[N, ...]`` at snapshot ``s`` (e.g. the lists returned by
    :func:`racecar_core.layer_activations`), all snapshots with the same ``L+1`` layers. ``[..., 0]`` is
    ``I(X; d_m)``, with each distinct row of ``X`` one symbol (ceiling ``log2 N``); ``[..., 1]`` is
    ``I(d_m; Y)`` (ceiling ``H(Y)``). Every activation is treated as continuous. Binning is vectorised over
    snapshots; KDE costs ``O(N²)`` per snapshot and layer.
    """
    opts = _options(estimator, options)
    sx, sy = _discrete_symbols(X), _discrete_symbols(Y)
    n = sx.size
    if sy.size != n:
        raise ValueError(f"X and Y need the same number of samples, got {n} and {sy.size}")
    n_layers = {len(snapshot) for snapshot in history}
    if len(n_layers) != 1:
        raise ValueError(f"every snapshot needs the same number of layers, got {sorted(n_layers)}")
    out = np.empty((len(history), n_layers.pop(), 2))
    h_x, h_y = _row_entropy(sx[None]), _row_entropy(sy[None])
    for m in range(out.shape[1]):
        for s0, acts in _snapshot_chunks(history, m, n):
            if estimator in _BINNING:
                codes = _row_symbols(_binner(estimator, opts)(acts))
                h_t = _row_entropy(codes)
                out[s0 : s0 + len(acts), m, 0] = _binned_mi(codes, sx[None], h_t, h_x)
                out[s0 : s0 + len(acts), m, 1] = _binned_mi(codes, sy[None], h_t, h_y)
            else:
                for i, t in enumerate(acts):
                    out[s0 + i, m] = _kde_mi(t, [sx, sy], _kde_variance(estimator, opts))
    return out


def _snapshot_chunks(history: Sequence[Sequence[Array]], m: int, n: int):
    """Yield ``(first_snapshot, float array [c, N, D])`` for layer ``m``, about ``_CHUNK`` entries at a time."""
    s0 = 0
    while s0 < len(history):
        first = _rows(_as_numpy(history[s0][m]))
        if first.shape[0] != n:
            raise ValueError(f"layer {m} of snapshot {s0} has {first.shape[0]} rows, X has {n}")
        c = max(1, _CHUNK // max(first.size, 1))
        chunk = [first] + [_rows(_as_numpy(h[m])) for h in history[s0 + 1 : s0 + c]]
        if len({a.shape for a in chunk}) != 1:
            raise ValueError(f"layer {m} changes shape between snapshots {s0} and {s0 + len(chunk) - 1}")
        yield s0, np.stack(chunk).astype(np.float64, copy=False)
        s0 += len(chunk)


def information_plane(
    model_or_activations: nn.Module | Sequence[Array], X: Array, Y: Array, estimator: str = "binning", **options: Any
) -> np.ndarray:
    """``(I(X; d_m), I(d_m; Y))`` in bits for every layer ``m``: float64 ``[L+1, 2]``.

    Given a model, the layers are ``racecar_core.layer_activations(model, X)`` (inputs of the ``L`` weight
    layers, then the output), computed in eval mode under ``torch.no_grad()``; otherwise a list of ``[N, ...]``
    activations. ``X`` is the input pattern matrix (each distinct row one symbol, ceiling ``log2 N``), ``Y`` the
    labels (ceiling ``H(Y)``). See :func:`information_planes`.
    """
    if isinstance(model_or_activations, nn.Module):
        model = model_or_activations
        param = next(model.parameters(), torch.empty(0))
        x = torch.as_tensor(_as_numpy(X)).to(dtype=param.dtype, device=param.device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                acts = layer_activations(model, x)
        finally:
            model.train(was_training)
    else:
        acts = model_or_activations
    return information_planes([acts], X, Y, estimator, **options)[0]
