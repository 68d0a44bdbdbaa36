"""Distances between two sets of image features, in NumPy (float64) so they are exact and testable.

FID (Heusel et al. 2017) compares Gaussian fits; KID (Bińkowski et al. 2018) is the unbiased
MMD² with the cubic polynomial kernel, averaged over random subsets; precision and recall are
the k-NN manifold estimates of Kynkäänniemi et al. (2019).
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features [N, D]."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix; round-off negatives become 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrtm(sigma1 @ sigma2)), through the symmetric form sqrt(s1) s2 sqrt(s1).

    That matrix is PSD with the same eigenvalues as sigma1 @ sigma2, so `eigh` is stable even when
    the covariances are singular (fewer samples than dimensions), where scipy's `sqrtm` of the
    non-symmetric product returns complex noise.
    """
    root = _sqrt_psd(sigma1)
    values = np.linalg.eigvalsh(root @ sigma2 @ root)
    return float(np.sqrt(np.clip(values, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2))."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def fid(features_x: np.ndarray, features_y: np.ndarray) -> float:
    """Fréchet distance between the Gaussian fits of two feature sets."""
    return frechet_distance(*gaussian_stats(features_x), *gaussian_stats(features_y))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / d + 1)³, the kernel KID uses."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between two samples of the same size with the polynomial kernel."""
    m = len(x)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


def kid(features_x: np.ndarray, features_y: np.ndarray, num_subsets: int = 10, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, standard deviation) of the unbiased MMD² over `num_subsets` random subsets of
    min(`subset_size`, half of each set): subsets of a whole set would all be equal, and their
    standard deviation would say nothing."""
    x, y = np.asarray(features_x, np.float64), np.asarray(features_y, np.float64)
    size = min(subset_size, len(x) // 2, len(y) // 2)
    if size < 2:
        raise ValueError("KID needs at least 4 samples in each set")
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _pairwise_distances(a: np.ndarray, b: np.ndarray, chunk: int = 1024):
    """Euclidean distances [len(a), len(b)] in row chunks (yielded), so 10k x 10k stays small."""
    b_sq = (b * b).sum(axis=1)
    for start in range(0, len(a), chunk):
        rows = a[start:start + chunk]
        sq = (rows * rows).sum(axis=1)[:, None] + b_sq[None, :] - 2 * rows @ b.T
        yield start, np.sqrt(np.clip(sq, 0, None))


def _knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point."""
    radii = np.empty(len(features))
    for start, dist in _pairwise_distances(features, features):
        radii[start:start + len(dist)] = np.sort(dist, axis=1)[:, k]  # column 0 is the point itself
    return radii


def _coverage(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> float:
    """Share of `queries` inside at least one ball (manifold point, its k-NN radius)."""
    inside = np.zeros(len(queries), bool)
    for start, dist in _pairwise_distances(queries, manifold):
        inside[start:start + len(dist)] = (dist <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Precision: share of fakes on the real manifold. Recall: share of reals on the fake one."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall needs more than k={k} samples in each set")
    return (_coverage(real, _knn_radii(real, k), fake), _coverage(fake, _knn_radii(fake, k), real))


def mode_coverage(probs: np.ndarray) -> dict:
    """How a classifier sees the samples: class histogram, its normalised entropy (1 = uniform),
    the smallest class share and the mean top-class confidence."""
    probs = np.asarray(probs, np.float64)
    num_classes = probs.shape[1]
    share = np.bincount(probs.argmax(axis=1), minlength=num_classes) / len(probs)
    nonzero = share[share > 0]
    return {
        "class_share": [float(s) for s in share],
        "entropy": float(-(nonzero * np.log(nonzero)).sum() / np.log(num_classes)),
        "min_class_share": float(share.min()),
        "mean_confidence": float(probs.max(axis=1).mean()),
    }


def nearest_distances(queries: np.ndarray, library: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Each query's Euclidean distance to its nearest image of `library` (uint8 images, as pixels in
    [0, 1], divided by sqrt(pixels): the root-mean-square difference). With `exclude_self`, queries are
    library images and their own entry (distance 0) does not count."""
    q = np.asarray(queries, np.float32).reshape(len(queries), -1) / 255.0
    lib = np.asarray(library, np.float32).reshape(len(library), -1) / 255.0
    nearest = np.empty(len(q))
    for start, dist in _pairwise_distances(q, lib):
        if exclude_self:
            dist = np.where(dist < 1e-6, np.inf, dist)  # the image itself (and exact duplicates)
        nearest[start:start + len(dist)] = dist.min(axis=1)
    return nearest / np.sqrt(q.shape[1])


def memorisation(samples: np.ndarray, training: np.ndarray, reference: np.ndarray) -> dict:
    """How close samples come to their nearest training image, against how close real training images
    come to their nearest *other* training image (`reference`, a subset of `training`, left out one by
    one). The ratio of the medians falls toward 0 when a model copies its training images, and is
    near 1 (or above) when it draws new ones."""
    drawn = nearest_distances(samples, training)
    real = nearest_distances(reference, training, exclude_self=True)
    real = real[np.isfinite(real)]
    return {"samples_median": float(np.median(drawn)), "real_median": float(np.median(real)),
            "ratio": float(np.median(drawn) / max(np.median(real), 1e-12)),
            "copies": float((drawn < 1e-3).mean())}  # share of samples that are a training image, to rounding
