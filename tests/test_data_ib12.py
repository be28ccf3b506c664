"""The generated 12-bit task reproduces the original data set's label statistics exactly."""

import numpy as np
import pytest

from racecar_core.data import ib12, ib12_split
from racecar_core.data.ib12 import THRESHOLD_A, _features


def _h2(y: np.ndarray) -> float:
    p = y.mean()
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


@pytest.fixture(scope="module")
def data():
    return ib12()


def test_shapes_and_dtypes(data):
    x, y_a, y_b = data
    assert x.shape == (4096, 12) and y_a.shape == (4096,) and y_b.shape == (4096,)
    assert x.dtype == y_a.dtype == y_b.dtype == np.uint8
    assert set(np.unique(x)) == {0, 1} and set(np.unique(y_a)) == {0, 1} and set(np.unique(y_b)) == {0, 1}


def test_counting_order_msb_first(data):
    x = data[0]
    weights = 2 ** np.arange(11, -1, -1)
    np.testing.assert_array_equal(x.astype(np.int64) @ weights, np.arange(4096))
    np.testing.assert_array_equal(x[1], [0] * 11 + [1])
    np.testing.assert_array_equal(x[2048], [1] + [0] * 11)


def test_task_a_counts(data):
    x, y_a, _ = data
    assert int(y_a.sum()) == 2118
    n = x.sum(axis=1)
    positives = {k: int(y_a[n == k].sum()) for k in range(13)}
    sizes = {k: int((n == k).sum()) for k in range(13)}
    assert all(positives[k] == 0 for k in range(5))
    assert (positives[5], sizes[5]) == (60, 792)
    assert (positives[6], sizes[6]) == (532, 924)
    assert (positives[7], sizes[7]) == (732, 792)
    assert all(positives[k] == sizes[k] for k in range(8, 13))


def test_task_a_entropy(data):
    assert round(_h2(data[1]), 5) == 0.99916


def test_no_pattern_near_task_a_threshold(data):
    n, s2 = _features(data[0])
    margin = np.abs(n - 0.05 * n**2 + 0.15 * s2 - THRESHOLD_A).min()
    assert margin > 0.01  # float64 rounding (~1e-15) cannot flip a label


def test_task_b_properties(data):
    x, y_a, y_b = data
    assert int(y_b.sum()) == 2036
    assert round(_h2(y_b), 5) == 0.99998
    assert int((y_a == y_b).sum()) == 2630  # genuinely different from task A
    # invariant under complementing all bits (pattern k -> 4095 - k), unlike task A
    np.testing.assert_array_equal(y_b, y_b[::-1])
    assert int((y_a == y_a[::-1]).sum()) == 1164


def test_split_is_deterministic_stratified_and_disjoint(data):
    _, y_a, y_b = data
    train, test = ib12_split(0.2, seed=0)
    again = ib12_split(0.2, seed=0)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(test, again[1])
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == 4096
    assert int(y_a[test].sum()) == round(0.2 * 2118) and test.size == round(0.2 * 2118) + round(0.2 * 1978)
    other = ib12_split(0.2, seed=1)[1]
    assert not np.array_equal(test, other)
    test_b = ib12_split(0.25, seed=0, task="b")[1]
    assert int(y_b[test_b].sum()) == round(0.25 * 2036)


@pytest.mark.parametrize("kwargs", [{"test_fraction": 0.0}, {"test_fraction": 1.0}, {"task": "c"}])
def test_split_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ib12_split(**kwargs)
