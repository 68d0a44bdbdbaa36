"""The image metrics against hand computations and known shifts."""

import numpy as np
import pytest

from aigc_keras.metrics import image


def gaussian(n=400, d=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def test_fid_of_a_set_against_itself_is_zero():
    x = gaussian()
    assert image.fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_a_pure_shift_is_the_squared_shift():
    # Same covariance, means apart by s in every one of d dimensions: FID = d * s².
    x = gaussian(d=8)
    assert image.fid(x, x + 0.5) == pytest.approx(8 * 0.25, rel=1e-9)


def test_fid_and_kid_grow_with_the_shift():
    x, y = gaussian(seed=0), gaussian(seed=1)
    shifts = [0.0, 0.25, 0.5, 1.0, 2.0]
    fids = [image.fid(x, y + s) for s in shifts]
    kids = [image.kid(x, y + s, num_subsets=5, subset_size=200)[0] for s in shifts]
    assert all(a < b for a, b in zip(fids, fids[1:])), fids
    assert all(a < b for a, b in zip(kids, kids[1:])), kids
    assert abs(kids[0]) < 0.05 < kids[-1]


def test_kid_matches_a_numpy_reference_loop():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((7, 5)), rng.standard_normal((7, 5)) + 0.3
    d, m = 5, 7

    def k(a, b):
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert image.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    mean, std = image.kid(x, y, num_subsets=20, subset_size=1000)  # subsets of 3 of the 7
    assert std > 0 and abs(mean - (xx + yy - 2 * xy)) < 3 * std


def test_matrix_square_root_is_stable_on_singular_covariances():
    # 10 samples in 64 dimensions: rank-9 covariances, where a plain sqrtm of the product is unstable.
    x = gaussian(n=10, d=64, seed=4)
    mu, sigma = image.gaussian_stats(x)
    assert np.linalg.matrix_rank(sigma) == 9
    assert image.trace_sqrt_product(sigma, sigma) == pytest.approx(np.trace(sigma), rel=1e-6)
    assert image.fid(x, x) == pytest.approx(0.0, abs=1e-6)
    y = gaussian(n=10, d=64, seed=5)
    value = image.fid(x, y)
    assert np.isfinite(value) and value > 0
    # Near-singular (a 1e-12 ridge on the 55 empty directions): the result must not jump.
    nudged = sigma + 1e-12 * np.eye(64)
    assert image.trace_sqrt_product(nudged, nudged) == pytest.approx(np.trace(sigma), rel=1e-6)


def test_trace_sqrt_product_matches_the_eigenvalues_of_the_product():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    s1, s2 = a @ a.T + np.eye(6), b @ b.T + np.eye(6)
    expected = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    assert image.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9)


def test_precision_and_recall_see_quality_and_coverage_apart():
    rng = np.random.default_rng(7)
    real = np.concatenate([rng.normal(0, 0.1, (100, 2)), rng.normal(5, 0.1, (100, 2))])
    one_mode = rng.normal(0, 0.1, (200, 2))  # good samples, half the modes
    far = rng.normal(20, 0.1, (200, 2))
    precision, recall = image.precision_recall(real, one_mode)
    assert precision > 0.9 and 0.4 < recall < 0.6
    assert image.precision_recall(real, far) == (0.0, 0.0)
    assert image.precision_recall(real, real) == (1.0, 1.0)


def test_mode_coverage_on_hand_made_probabilities():
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.6, 0.1], [0.0, 0.5, 0.5001]])
    c = image.mode_coverage(probs)
    assert c["class_share"] == [0.5, 0.25, 0.25]
    expected = -(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25)) / np.log(3)
    assert c["entropy"] == pytest.approx(expected)
    assert c["min_class_share"] == 0.25
    assert c["mean_confidence"] == pytest.approx((0.9 + 0.8 + 0.6 + 0.5001) / 4)
    collapsed = image.mode_coverage(np.tile([[1.0, 0.0, 0.0]], (5, 1)))
    assert collapsed["entropy"] == 0.0 and collapsed["min_class_share"] == 0.0
