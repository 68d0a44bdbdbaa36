"""`aigc-keras evaluate` for image models: samples against the model's real data, with a real-vs-real floor."""

from __future__ import annotations

import numpy as np

from ..errors import AigcError
from . import image

SAMPLE_CHUNK = 500


def generate(sample, num: int, seed: int) -> np.ndarray:
    """`num` uint8 images from `sample(num, seed)` (a family's `sample` or `litert_sample`), in chunks
    with seeds seed, seed+1, ... ."""
    chunks = []
    for i, start in enumerate(range(0, num, SAMPLE_CHUNK)):
        chunks.append(sample(min(SAMPLE_CHUNK, num - start), seed + i))
    return np.concatenate(chunks)


def real_sets(data, num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random sets of real images: the reference, and the floor's second set."""
    images, _ = data.arrays()
    if len(images) < 4:
        raise AigcError(f"{data.spec}: {len(images)} real images are too few to compare with")
    order = np.random.default_rng(seed).permutation(len(images))
    size = min(num, len(images) // 2)
    return images[order[:size]], images[order[size:2 * size]]


def image_metrics(features_fake, features_real, subsets: int = 10, subset_size: int = 1000,
                  seed: int = 0) -> dict:
    """FID and KID (mean, std) of one feature set against the reference."""
    kid_mean, kid_std = image.kid(features_fake, features_real, subsets, subset_size, seed)
    return {"fid": image.fid(features_fake, features_real), "kid": kid_mean, "kid_std": kid_std}


def evaluate_images(fake: np.ndarray, real: np.ndarray, real_floor: np.ndarray, net, subsets: int = 10,
                    subset_size: int = 1000, precision_recall: bool = False, seed: int = 0) -> dict:
    """Every image metric of `fake` against `real`, and the same for `real_floor` (the floor)."""
    f_fake, p_fake = net(fake)
    f_real, p_real = net(real)
    f_floor, _ = net(real_floor)
    result = {
        "features": net.name,
        "num_samples": len(fake),
        "num_real": len(real),
        "samples": image_metrics(f_fake, f_real, subsets, subset_size, seed),
        "real_vs_real": image_metrics(f_floor, f_real, subsets, subset_size, seed),
    }
    if precision_recall:
        for key, features in (("samples", f_fake), ("real_vs_real", f_floor)):
            result[key]["precision"], result[key]["recall"] = image.precision_recall(f_real, features)
    if p_fake is not None:
        result["mode_coverage"] = {"samples": image.mode_coverage(p_fake), "real": image.mode_coverage(p_real)}
    return result
