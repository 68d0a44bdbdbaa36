"""The noise (and labels) that generation starts from, shared by the image families, and the chunks
that generation runs in."""

from __future__ import annotations

import math

import numpy as np

from .errors import AigcError
from .limits import check_fits

CHUNK = 500  # images per network pass: the working memory of a pass stays that of CHUNK images


def noise_and_labels(num: int, shape, seed: int, num_classes: int = 0, label: int | None = None,
                     image_shape=None, flag: str = "--num"):
    """Standard normal noise [num, *shape] from NumPy's generator (reproducible in any app), and
    the labels to draw: `label` for all, or every class in turn for a conditional model.

    `num` is refused (`limits.check_fits`) when the noise and the `image_shape` images made from it
    (uint8, with their grid) would not fit in memory."""
    if num < 1:
        raise AigcError(f"{flag} must be >= 1, got {num}")
    check_fits(flag, num, 4 * math.prod(shape) + 3 * math.prod(image_shape or shape) + 8)
    noise = np.random.default_rng(seed).standard_normal((num, *shape)).astype(np.float32)
    if not num_classes:
        if label is not None:
            raise AigcError("--label needs a conditional model (train with --conditional)")
        return noise, None
    if label is not None and not 0 <= label < num_classes:
        raise AigcError(f"--label must be in 0..{num_classes - 1}, got {label}")
    labels = np.full(num, label) if label is not None else np.arange(num) % num_classes
    return noise, labels.astype(np.int32)


def in_chunks(draw, noise: np.ndarray, labels: np.ndarray | None, chunk: int = CHUNK) -> np.ndarray:
    """`draw(noise, labels, k)` on chunk k of at most `chunk` rows of noise (and labels), concatenated."""
    return np.concatenate([draw(noise[start:start + chunk], None if labels is None else labels[start:start + chunk], k)
                           for k, start in enumerate(range(0, len(noise), chunk))])
