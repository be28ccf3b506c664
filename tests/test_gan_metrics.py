"""Set distances for generative models against closed forms and hand-made point sets; the feature classifier."""

import itertools

import numpy as np
import pytest
import scipy.linalg
import torch

from racecar_core import feature_net, metrics
from racecar_core.metrics import (
    class_coverage,
    frechet_distance,
    kernel_distance,
    mmd2_unbiased,
    precision_recall,
    real_floor,
    sample_metrics,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def with_moments(n, mean, cov, seed):
    """n samples whose sample mean and covariance (n − 1) are exactly ``mean`` and ``cov``."""
    x = np.random.default_rng(seed).standard_normal((n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T  # sample covariance exactly I
    return x @ np.linalg.cholesky(cov).T + mean


def random_cov(d, seed):
    a = np.random.default_rng(seed).standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# --------------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------------


def test_frechet_distance_of_two_gaussians_matches_the_closed_form():
    d = 6
    mu1, mu2 = np.arange(d, dtype=float), np.ones(d)
    s1, s2 = random_cov(d, 1), random_cov(d, 2)  # they do not commute
    assert not np.allclose(s1 @ s2, s2 @ s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    got = frechet_distance(with_moments(200, mu1, s1, 3), with_moments(300, mu2, s2, 4))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_diagonal_gaussians():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 0.5**2 * 3 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(with_moments(50, np.zeros(3), np.diag(a), 0), with_moments(50, np.full(3, 0.5), np.diag(b), 1))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_identical_sets_is_zero_and_symmetric():
    x = np.random.default_rng(0).standard_normal((100, 8))
    y = np.random.default_rng(1).standard_normal((80, 8)) + 0.3
    assert abs(frechet_distance(x, x)) < 1e-9
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)


def test_frechet_distance_with_singular_covariances():
    x = np.random.default_rng(0).standard_normal((5, 20))  # rank 4 covariance in 20 dimensions
    assert abs(frechet_distance(x, x)) < 1e-6  # square roots of the zero eigenvalues' rounding errors (~1e-16)
    assert np.isfinite(frechet_distance(x, x + 1.0))
    assert frechet_distance(x, x + 1.0) == pytest.approx(20.0)


@pytest.mark.parametrize("a,b,match", [(np.zeros((1, 3)), np.zeros((5, 3)), "n >= 2"),
                                       (np.zeros((5, 3)), np.zeros((5, 4)), "dimensions differ"),
                                       (np.zeros(5), np.zeros((5, 1)), "2-D"),
                                       (np.full((5, 2), np.nan), np.zeros((5, 2)), "NaN")])
def test_bad_feature_arrays_are_refused(a, b, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(a, b)


# --------------------------------------------------------------------------------------------------
# Kernel distance
# --------------------------------------------------------------------------------------------------


def test_mmd2_unbiased_matches_the_u_statistic_written_out():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)) + 1

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    within_x = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(5), 2)) / 20
    within_y = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(4), 2)) / 12
    cross = sum(k(a, b) for a in x for b in y) / 20
    assert mmd2_unbiased(x, y) == pytest.approx(within_x + within_y - 2 * cross, rel=1e-12)


def test_kernel_distance_is_unbiased_on_small_samples():
    """Samples of 6 points drawn with replacement from two finite point sets: the estimator's mean over many
    draws equals the population MMD² (computed exactly), where the biased V-statistic would be far off."""
    rng = np.random.default_rng(0)
    p, q = rng.standard_normal((4, 2)), rng.standard_normal((3, 2)) * 0.5 + 0.4

    def k(a, b):
        return (a @ b.T / 2 + 1) ** 3

    population = k(p, p).mean() + k(q, q).mean() - 2 * k(p, q).mean()
    draws = np.array([mmd2_unbiased(p[rng.integers(0, 4, 6)], q[rng.integers(0, 3, 6)]) for _ in range(5000)])
    error = draws.std() / np.sqrt(len(draws))
    assert abs(draws.mean() - population) < 4 * error
    biased_offset = (np.trace(k(p, p)) / 4 - k(p, p).mean() + np.trace(k(q, q)) / 3 - k(q, q).mean()) / 6
    assert abs(biased_offset) > 10 * error  # the test can tell an unbiased estimator from the biased one


def test_kernel_distance_of_one_distribution_is_about_zero_and_of_two_is_positive():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((600, 10)), rng.standard_normal((600, 10))
    same = kernel_distance(x, y, subsets=10, subset_size=300)
    shifted = kernel_distance(x, y + 0.5, subsets=10, subset_size=300)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 20 * max(same.std, abs(same.mean))
    assert kernel_distance(x, y, subsets=3, seed=1) == kernel_distance(x, y, subsets=3, seed=1)
    assert kernel_distance(x, y, subsets=3) == (mmd2_unbiased(x, y), 0.0)  # 600 rows each: the whole sets


# --------------------------------------------------------------------------------------------------
# Precision and recall, class coverage, the real-vs-real floor
# --------------------------------------------------------------------------------------------------


def line(start, stop, step=1.0):
    t = np.arange(start, stop, step)
    return np.stack([t, np.zeros_like(t)], 1)


def test_precision_recall_of_identical_sets_is_one():
    x = np.random.default_rng(0).standard_normal((50, 4))
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}


def test_generated_set_covering_half_the_real_manifold():
    real = line(0, 100)  # points 0, 1, ..., 99 on a line: 3-NN radius 2
    half = line(0.5, 50)  # 0.5, 1.5, ..., 49.5: inside the real manifold, spanning its first half
    result = precision_recall(real, half, k=3)
    assert result["precision"] == 1.0
    assert 0.5 <= result["recall"] <= 0.55  # 0..52 are within a generated ball (radius 2, 3 at the end)


def test_generated_set_half_off_the_manifold():
    real = line(0, 100)
    generated = np.concatenate([line(0.5, 100, 2.0), line(0.5, 100, 2.0) + [0, 50]])  # half of it 50 units away
    result = precision_recall(real, generated, k=3)
    assert result["precision"] == 0.5
    assert result["recall"] > 0.95


def test_disjoint_sets_have_zero_precision_and_recall():
    assert precision_recall(line(0, 20), line(0, 20) + [0, 100]) == {"precision": 0.0, "recall": 0.0}


def test_k_must_be_smaller_than_the_set():
    with pytest.raises(ValueError):
        metrics.knn_radii(np.zeros((3, 2)), k=3)


def test_class_coverage_uniform_and_collapsed():
    uniform = class_coverage(np.arange(1000) % 10)
    assert uniform["entropy"] == pytest.approx(np.log2(10)) and uniform["covered"] == 10
    assert np.allclose(uniform["shares"], 0.1)
    collapsed = class_coverage(np.array([3] * 95 + [1] * 5))
    assert collapsed["covered"] == 2  # 5 % is exactly half the uniform share
    assert collapsed["entropy"] == pytest.approx(-(0.95 * np.log2(0.95) + 0.05 * np.log2(0.05)))
    assert str(class_coverage(np.zeros(10, dtype=int))["entropy"]) == "0.0"
    for bad in (np.array([10]), np.array([0.5]), np.array([], dtype=int)):
        with pytest.raises(ValueError):
            class_coverage(bad)


def test_sample_metrics_and_real_floor():
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((400, 5))
    reference, real = pool[:200], pool[200:]
    labels = rng.integers(0, 10, 200)
    floor = real_floor(reference, real, labels, kid_subsets=5, kid_subset_size=100)
    assert set(floor) == {"frechet", "kernel", "kernel_std", "precision", "recall", "class_entropy", "classes_covered"}
    worse = sample_metrics(reference, real * 0.3 + 1.0, np.zeros(200, dtype=int), kid_subsets=5, kid_subset_size=100)
    assert worse["frechet"] > 10 * floor["frechet"] and worse["kernel"] > floor["kernel"]
    assert worse["recall"] < floor["recall"] and worse["class_entropy"] == 0 < floor["class_entropy"]
    with pytest.raises(ValueError, match="disjoint"):
        real_floor(reference, pool[150:350])


# --------------------------------------------------------------------------------------------------
# The feature classifier
# --------------------------------------------------------------------------------------------------


def stripes(n, seed):
    """Two classes of 28×28 images in [−1, 1]: horizontal or vertical stripes plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    base = (torch.arange(28) % 4 < 2).float() * 2 - 1
    images = torch.where(y.view(-1, 1, 1) == 0, base.view(1, 28, 1).expand(n, 28, 28), base.view(1, 1, 28).expand(n, 28, 28))
    return (images + 0.5 * torch.randn(n, 28, 28, generator=g)).clamp(-1, 1).unsqueeze(1), y


def test_feature_classifier_trains_and_gives_penultimate_features(tmp_path):
    x, y = stripes(96, 0)
    x_test, y_test = stripes(40, 1)
    model, acc = feature_net.train_feature_classifier(x, y, x_test, y_test, steps=15, batch_size=32, features=16,
                                                      run_dir=tmp_path)
    assert acc > 0.9
    f = feature_net.features(model, x_test)
    assert f.shape == (40, 16) and f.dtype == np.float64 and (f >= 0).all()  # after the ReLU
    assert np.array_equal(feature_net.predict(model, x_test, batch_size=7), model(x_test).argmax(1).numpy())
    again, acc_again = feature_net.train_feature_classifier(x, y, x_test, y_test, steps=15, batch_size=32, features=16,
                                                            run_dir=tmp_path)
    assert acc_again == acc  # the finished run is loaded
