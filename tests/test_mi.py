"""Mutual-information estimators against closed forms and exact values (all results in bits)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from racecar_core import mi
from racecar_core.mi import (
    ESTIMATORS,
    bin_by_range,
    bin_by_width,
    entropy,
    information_plane,
    information_planes,
    mutual_information,
)

LN2 = math.log(2.0)
KDE = ("kde_upper", "kde_lower")


def _h(labels: np.ndarray) -> float:
    """Plug-in entropy in bits of a 1-D label array, computed independently of the module."""
    p = np.unique(labels, return_counts=True)[1] / labels.size
    return float(-(p * np.log2(p)).sum())


def _h2(p: float) -> float:
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


# --------------------------------------------------------------------------------------------------
# Discrete variables: exact values
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 5, 16, 1000])
def test_identity_of_uniform_variable_gives_log2_k(k):
    x = np.repeat(np.arange(k), 3)
    assert mutual_information(x, x) == pytest.approx(math.log2(k), abs=1e-12)
    assert entropy(x) == pytest.approx(math.log2(k), abs=1e-12)


@pytest.mark.parametrize("m", [2, 3, 4, 6])
def test_x_mod_m_gives_log2_m(m):
    x = np.tile(np.arange(12), 5)
    assert mutual_information(x, x % m) == pytest.approx(math.log2(m), abs=1e-12)


def test_constant_gives_zero():
    x = np.arange(64) % 7
    assert mutual_information(x, np.zeros(64, dtype=np.int64)) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information(x, np.full((64, 3), 0.25)) == pytest.approx(0.0, abs=1e-12)


def test_function_of_x_gives_its_entropy():
    x = np.tile(np.arange(10), 9)
    y = (x * x) % 7  # not one-to-one, not uniform
    assert mutual_information(x, y) == pytest.approx(_h(y), abs=1e-12)
    assert _h(y) < math.log2(7) - 0.01


def test_rows_of_a_pattern_matrix_are_symbols():
    patterns = ((np.arange(32)[:, None] >> np.arange(5)) & 1).astype(np.uint8)
    assert mutual_information(patterns, patterns) == pytest.approx(5.0, abs=1e-12)
    assert mutual_information(patterns, patterns[:, 0]) == pytest.approx(1.0, abs=1e-12)


def test_matches_contingency_table():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 5000)
    b = (a + rng.integers(0, 3, 5000)) % 5
    joint = np.zeros((6, 5))
    np.add.at(joint, (a, b), 1.0)
    p = joint / joint.sum()
    outer = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
    expected = float(np.sum(p[p > 0] * np.log2(p[p > 0] / outer[p > 0])))
    assert mutual_information(a, b) == pytest.approx(expected, abs=1e-12)
    assert mutual_information(b, a) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("p", [0.02, 0.11, 0.3])
def test_binary_symmetric_channel(p):
    """Exact ``1 - h(p)``. Plug-in error: bias ``1/(2 N ln 2)`` (Miller-Madow, 2x2 table) plus sampling noise of
    standard deviation ``sqrt(Var[i(X;T)] / N)`` with the information density's variance
    ``p (1 - p) log2((1 - p)/p)**2``; we allow the bias plus 5 standard deviations."""
    n = 200_000
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, n)
    t = x ^ (rng.random(n) < p)
    tol = 1 / (2 * n * LN2) + 5 * math.sqrt(p * (1 - p) * math.log2((1 - p) / p) ** 2 / n)
    assert abs(mutual_information(x, t) - (1 - _h2(p))) < tol
    assert tol < 0.02


def test_mutual_information_is_at_most_min_entropy():
    rng = np.random.default_rng(2)
    for n, d, k in [(50, 1, 2), (500, 3, 4), (2048, 5, 2)]:
        t = np.tanh(rng.normal(size=(n, d)) * rng.uniform(0.1, 5))
        y = rng.integers(0, k, n)
        i_ty = mutual_information(t, y)
        assert 0.0 <= i_ty <= min(entropy(t), entropy(y)) + 1e-12
        for estimator in KDE:
            assert mutual_information(t, y, estimator) <= _h(y) + 1e-12


def test_torch_tensors_are_accepted():
    rng = np.random.default_rng(3)
    t = np.tanh(rng.normal(size=(300, 3))).astype(np.float32)
    y = rng.integers(0, 3, 300)
    expected = mutual_information(t, y)
    assert mutual_information(torch.from_numpy(t), torch.from_numpy(y)) == expected
    assert mutual_information(t, y, "kde_upper") == pytest.approx(
        mutual_information(torch.from_numpy(t), torch.from_numpy(y), "kde_upper"), rel=1e-12
    )


# --------------------------------------------------------------------------------------------------
# Binning of continuous activations
# --------------------------------------------------------------------------------------------------


def test_one_to_one_binning_gives_entropy_of_x():
    x = np.repeat(np.arange(30), np.arange(1, 31))  # 30 values, non-uniform
    centres = -1 + (2 * x + 1) / 30  # one value per bin of 30 on [-1, 1]
    t = np.stack([centres, -centres], axis=1).astype(np.float32)
    assert mutual_information(x, t) == pytest.approx(_h(x), abs=1e-12)
    # 10 bins merge three values each: I = H(x // 3), strictly less
    assert mutual_information(x, t, bins=10) == pytest.approx(_h(x // 3), abs=1e-12)
    assert mutual_information(x, t, "binning_width", width=2 / 30) == pytest.approx(_h(x), abs=1e-12)


def test_twelve_bit_patterns_through_affine_map_keep_twelve_bits():
    patterns = ((np.arange(4096)[:, None] >> np.arange(12)) & 1).astype(np.uint8)
    t = patterns.astype(np.float32) * 0.9 - 0.45
    for estimator in ESTIMATORS:
        assert mutual_information(patterns, t, estimator) == pytest.approx(12.0, abs=1e-9)


def test_range_binning_clips_into_edge_bins():
    values = np.array([-5.0, -1.0, -0.999, 0.0, 0.999, 1.0, 5.0])
    np.testing.assert_array_equal(bin_by_range(values), [0, 0, 0, 15, 29, 29, 29])
    np.testing.assert_array_equal(bin_by_range(values, bins=4, range=(-2.0, 2.0)), [0, 1, 1, 2, 2, 3, 3])
    # Wrapping (the original code's bug) would put -3 into the top bin together with 0.99: I = 0.
    x = np.tile([0, 1], 50)
    t = np.where(x == 0, -3.0, 0.99)
    assert mutual_information(x, t) == pytest.approx(1.0, abs=1e-12)
    assert mutual_information(x, np.where(x == 0, 3.0, 0.99)) == pytest.approx(0.0, abs=1e-12)


def test_width_binning_is_unbounded_floor():
    values = np.array([-0.071, -0.07, -0.01, 0.0, 0.069, 0.07, 7.01, 1e6])
    np.testing.assert_array_equal(bin_by_width(values), [-2, -1, -1, 0, 0, 1, 100, 14285714])


@pytest.mark.parametrize(
    "estimator, options, values",
    [("binning", {"bins": 30}, lambda r: r.uniform(-1, 1, (700, 40))),  # 30**40 overflows int64
     ("binning_width", {"width": 0.07}, lambda r: r.normal(0, 1e15, (700, 3)))],  # radix > N
)
def test_row_symbols_equal_unique_rows(estimator, options, values):
    rng = np.random.default_rng(4)
    t = values(rng)
    t[350:] = t[:350]  # guarantee repeated rows
    idx = mi._binner(estimator, mi._options(estimator, options))(t)
    expected = np.unique(idx, axis=0, return_inverse=True)[1].reshape(-1)
    np.testing.assert_array_equal(mi._row_symbols(idx[None])[0], expected)


def test_correlated_gaussians_by_fine_binning():
    """``I = -1/2 ln(1 - rho**2)`` nats for a standard bivariate normal. With bin width ``w`` and ``N`` samples the
    plug-in estimate deviates by (i) quantisation, ``-w**2 rho**2 / (12 (1 - rho**2))`` nats (second-order
    expansion; 0.0015 nats here, checked by numerical integration), (ii) the Miller-Madow bias
    ``(K_xy - K_x - K_y + 1) / (2N)`` nats, below ``K_xy / (2N)``, and (iii) sampling noise of standard deviation
    ``rho / sqrt(N)`` (the information density of a bivariate normal has variance ``rho**2``); we allow
    (i) + (ii) + 5 (iii)."""
    n, rho, w = 500_000, 0.8, 0.1
    rng = np.random.default_rng(5)
    a = rng.normal(size=n)
    b = rho * a + math.sqrt(1 - rho**2) * rng.normal(size=n)
    k_xy = np.unique(np.floor(np.stack([a, b], axis=1) / w), axis=0).shape[0]
    tol_nats = w**2 * rho**2 / (12 * (1 - rho**2)) + k_xy / (2 * n) + 5 * rho / math.sqrt(n)
    exact = -0.5 * math.log(1 - rho**2) / LN2
    assert abs(mutual_information(a, b, "binning_width", width=w) - exact) < tol_nats / LN2
    assert tol_nats / LN2 < 0.03 * exact


# --------------------------------------------------------------------------------------------------
# KDE bounds
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", KDE)
def test_kde_well_separated_points_give_log2_n(estimator):
    n = 257
    t = np.random.default_rng(6).permutation(n)[:, None] * 5.0 + np.zeros((n, 3))
    assert mutual_information(t, np.arange(n), estimator) == pytest.approx(math.log2(n), abs=1e-9)


@pytest.mark.parametrize("estimator", KDE)
@pytest.mark.parametrize("k", [2, 3, 8])
def test_kde_separated_clusters_give_log2_k(estimator, k):
    rng = np.random.default_rng(7)
    n = 120 * k
    cluster = np.arange(n) % k
    t = rng.normal(size=(k, 4))[cluster] * 10 + rng.normal(size=(n, 4)) * 1e-5
    assert mutual_information(t, np.arange(n), estimator) == pytest.approx(math.log2(k), abs=1e-6)
    assert mutual_information(t, cluster, estimator) == pytest.approx(math.log2(k), abs=1e-6)
    assert mutual_information(cluster, t, estimator) == pytest.approx(math.log2(k), abs=1e-6)


def test_kde_upper_bound_is_at_least_lower_bound():
    rng = np.random.default_rng(8)
    for noise in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        for d in (1, 4):
            t = np.tanh(rng.normal(size=(400, d)) * 2)
            upper = mutual_information(t, np.arange(400), "kde_upper", noise_variance=noise)
            lower = mutual_information(t, np.arange(400), "kde_lower", noise_variance=noise)
            assert 0.0 <= lower <= upper <= math.log2(400) + 1e-12


def test_kde_bounds_of_gaussian_signal_plus_noise():
    """``T = h + N(0, v)`` with ``h ~ N(0, s2)``: ``I(h; T) = 1/2 ln(1 + s2/v)`` nats (correlated Gaussians with
    ``rho**2 = s2 / (s2 + v)``, i.e. ``-1/2 ln(1 - rho**2)``). For large N the KDE bounds tend to closed forms,
    ``1/2 ln(1 + s2/v) + s2 / (2 (s2 + v))`` (upper, kernel variance v) and the same with ``4 v`` (lower); their
    sampling standard deviation is about ``0.57 / sqrt(N)`` nats (that of ``h**2 / (2 (s2 + v))``), so we allow
    ``3 / sqrt(N)`` nats."""
    n, s2, v = 3000, 4.0, 1.0
    h = np.random.default_rng(9).normal(0.0, math.sqrt(s2), (n, 1))
    ident = np.arange(n)
    upper = mutual_information(h, ident, "kde_upper", noise_variance=v) * LN2
    lower = mutual_information(h, ident, "kde_lower", noise_variance=v) * LN2
    exact = 0.5 * math.log(1 + s2 / v)
    tol = 3 / math.sqrt(n)
    assert lower + tol < exact < upper - tol
    assert upper == pytest.approx(exact + s2 / (2 * (s2 + v)), abs=tol)
    assert lower == pytest.approx(0.5 * math.log(1 + s2 / (4 * v)) + s2 / (2 * (s2 + 4 * v)), abs=tol)


def test_kde_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(10)
    t = np.tanh(rng.normal(size=(300, 3)))
    y = rng.integers(0, 3, 300)
    whole = [mutual_information(t, z, e, noise_variance=0.05) for e in KDE for z in (np.arange(300), y)]
    monkeypatch.setattr(mi, "_KDE_BLOCK", 300 * 7)  # 7 rows per block, last block short
    blocked = [mutual_information(t, z, e, noise_variance=0.05) for e in KDE for z in (np.arange(300), y)]
    np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-12)


def _kde_direct(t: np.ndarray, z: np.ndarray, variance: float) -> float:
    """The KDE expression of the module docstring written out directly (all N² differences at once, float64):
    ``mean_i [ln Σ_{j: z_j = z_i} K_ij − ln n(z_i) − ln Σ_j K_ij + ln N]`` in bits."""
    t = t.reshape(len(t), -1).astype(np.float64)
    k = np.exp(-((t[:, None, :] - t[None, :, :]) ** 2).sum(-1) / (2 * variance))
    same = z[:, None] == z[None, :]
    n_z = same.sum(1)
    return float(np.mean(np.log((k * same).sum(1)) - np.log(n_z) - np.log(k.sum(1)) + np.log(len(t))) / LN2)


@pytest.mark.parametrize("d", [1, 2, 5, 12])
@pytest.mark.parametrize("noise", [1e-3, 1e-2, 0.3])
def test_kde_agrees_with_the_direct_formula_to_1e9_bits(d, noise):
    """The blocked, symmetric, sorted computation against :func:`_kde_direct` on saturating (tanh) and
    clustered data, for every kind of grouping: all distinct, few labels, many labels, a single group."""
    rng = np.random.default_rng(d)
    n = 600
    t = np.tanh(rng.normal(size=(n, d)) * 3)
    t[::3] = t[1::3][: len(t[::3])] + rng.normal(size=(len(t[::3]), d)) * 1e-3  # near-duplicates
    groupings = [np.arange(n), rng.integers(0, 2, n), rng.integers(0, 150, n), np.zeros(n, dtype=np.int64)]
    for estimator, variance in (("kde_upper", noise), ("kde_lower", 4 * noise)):
        got = [mutual_information(t, z, estimator, noise_variance=noise) for z in groupings]
        want = [_kde_direct(t, z, variance) for z in groupings]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_kde_far_from_the_origin_agrees_with_the_direct_formula():
    """ReLU-like activations with a large common offset: the squared distances come from norms of about 1e6,
    which cancel; the result still agrees with the direct formula (differences of the samples) to 1e-9 bits."""
    rng = np.random.default_rng(13)
    t = 1000.0 + np.maximum(rng.normal(size=(400, 3)), 0.0) * 0.2
    y = rng.integers(0, 2, 400)
    for z in (np.arange(400), y):
        assert mutual_information(t, z, "kde_upper") == pytest.approx(_kde_direct(t, z, 1e-3), abs=1e-9)


def test_kde_information_planes_agree_with_the_direct_formula():
    rng = np.random.default_rng(12)
    x = rng.integers(0, 2, (512, 12))
    y = rng.integers(0, 2, 512)
    history = [[x.astype(np.float32), np.tanh(rng.normal(size=(512, 4)) * 2).astype(np.float32)] for _ in range(2)]
    planes = information_planes(history, x, y, "kde_upper")
    ident = np.unique(x, axis=0, return_inverse=True)[1].reshape(-1)
    for s, acts in enumerate(history):
        for m, t in enumerate(acts):
            assert planes[s, m, 0] == pytest.approx(_kde_direct(t, ident, 1e-3), abs=1e-9)
            assert planes[s, m, 1] == pytest.approx(_kde_direct(t, y, 1e-3), abs=1e-9)


def test_kde_sorted_and_masked_group_sums_agree():
    """The first grouping that is not all-distinct is summed over contiguous (sorted) ranges, later ones through
    an equality mask: both orders give the same numbers."""
    rng = np.random.default_rng(11)
    t = np.tanh(rng.normal(size=(300, 3)))
    labels = [rng.integers(0, 3, 300), rng.integers(0, 120, 300)]  # few groups and many groups
    forward = mi._kde_mi(t, labels, 0.05)
    backward = mi._kde_mi(t, labels[::-1], 0.05)[::-1]
    np.testing.assert_allclose(forward, backward, rtol=0, atol=1e-12)


def test_kde_needs_one_continuous_and_one_discrete_argument():
    with pytest.raises(ValueError, match="one continuous"):
        mutual_information(np.zeros((5, 2)), np.zeros((5, 2)), "kde_upper")
    with pytest.raises(ValueError, match="one continuous"):
        mutual_information(np.arange(5), np.arange(5), "kde_lower")


# --------------------------------------------------------------------------------------------------
# Information planes
# --------------------------------------------------------------------------------------------------


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))


def _four_bit_data():
    patterns = ((np.arange(16)[:, None] >> np.arange(3, -1, -1)) & 1).astype(np.uint8)
    rows = np.repeat(np.arange(16), np.arange(1, 17))  # duplicated inputs: H(X) < log2 N
    return patterns[rows], (patterns[rows].sum(axis=1) % 2).astype(np.int64)


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_information_plane_of_a_torch_model(estimator):
    model = _tiny_model().train()
    x, y = _four_bit_data()
    plane = information_plane(model, x, y, estimator)
    assert plane.shape == (4, 2)  # L = 3 weight layers, plus the output
    assert model.training
    h_x = _h(np.unique(x, axis=0, return_inverse=True)[1].reshape(-1))
    assert h_x < math.log2(len(x)) - 0.5
    assert plane[0, 0] == pytest.approx(h_x, abs=1e-9)  # d_1 = X
    assert plane[0, 1] == pytest.approx(_h(y), abs=1e-9)
    assert np.all(plane[:, 0] <= h_x + 1e-9) and np.all(plane[:, 1] <= _h(y) + 1e-9)
    with torch.no_grad():
        hidden = torch.tanh(model[0](torch.as_tensor(x, dtype=torch.float32)))
    assert plane[1, 0] == pytest.approx(mutual_information(hidden, x, estimator), abs=1e-9)
    assert plane[1, 1] == pytest.approx(mutual_information(hidden, y, estimator), abs=1e-9)


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_information_planes_match_single_snapshots(estimator, monkeypatch):
    rng = np.random.default_rng(11)
    x = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(np.uint8)
    y = rng.integers(0, 2, 256)
    history = [
        [x.astype(np.float32)] + [np.tanh(rng.normal(size=(256, w)) * s).astype(np.float32) for w in (6, 3, 2)]
        for s in np.linspace(0.2, 4.0, 7)
    ]
    monkeypatch.setattr(mi, "_CHUNK", 256 * 3 * 2)  # several snapshots per chunk, chunk sizes differ by layer
    planes = information_planes(history, x, y, estimator)
    assert planes.shape == (7, 4, 2)
    for s, acts in enumerate(history):
        np.testing.assert_allclose(planes[s], information_plane(acts, x, y, estimator), rtol=0, atol=1e-12)
        assert planes[s, 1, 1] == pytest.approx(mutual_information(acts[1], y, estimator), abs=1e-12)


def test_information_planes_reject_inconsistent_input():
    x = np.arange(10)
    with pytest.raises(ValueError, match="same number of layers"):
        information_planes([[np.zeros((10, 2))], [np.zeros((10, 2))] * 2], x, x)
    with pytest.raises(ValueError, match="rows"):
        information_planes([[np.zeros((9, 2))]], x, x)
    with pytest.raises(ValueError, match="same number of samples"):
        information_planes([[np.zeros((10, 2))]], x, x[:9])


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_unknown_estimator_lists_valid_ones():
    with pytest.raises(ValueError, match="binning, binning_width, kde_upper, kde_lower"):
        mutual_information(np.arange(4), np.arange(4), "ksg")


def test_unknown_option_lists_valid_ones():
    with pytest.raises(ValueError, match="valid options: bins, range"):
        mutual_information(np.arange(4), np.arange(4), "binning", width=0.1)
    with pytest.raises(ValueError, match="valid options: noise_variance"):
        mutual_information(np.zeros((4, 1)), np.arange(4), "kde_upper", bins=3)


@pytest.mark.parametrize(
    "estimator, options",
    [("binning", {"bins": 0}), ("binning", {"range": (1.0, -1.0)}), ("binning_width", {"width": -1.0}),
     ("kde_upper", {"noise_variance": 0.0})],
)
def test_bad_option_values_are_rejected(estimator, options):
    with pytest.raises(ValueError):
        mutual_information(np.zeros((4, 1)), np.arange(4), estimator, **options)


def test_non_finite_activations_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        mutual_information(np.array([0.0, np.nan]), np.arange(2))
    with pytest.raises(ValueError, match="one row per sample"):
        mutual_information(np.zeros(0), np.zeros(0, dtype=int))


def test_entropy_is_for_binning_only():
    with pytest.raises(ValueError, match="binning"):
        entropy(np.zeros((4, 1)), "kde_upper")
