"""The noise (and labels) that generation starts from, shared by the image families, and the chunks
that generation runs in."""

from __future__ import annotations

import math

import numpy as np

from .errors import AigcError, arg
from .limits import check_fits

CHUNK = 500  # images per network pass: the working memory of a pass stays that of CHUNK images


def noise_and_labels(num: int, shape, seed: int, num_classes: int = 0, labels=None, image_shape=None):
    """Standard normal noise [num, *shape] from NumPy's generator (reproducible in any app), and
    the labels to draw with a conditional model: `labels` as one class for all or one class per
    image, or by default every class in turn.

    `num` is refused (`limits.check_fits`) when the noise and the `image_shape` images made from it
    (uint8, with their grid) would not fit in memory."""
    if num < 1:
        raise AigcError(f"{arg('num')} must be >= 1, got {num}")
    check_fits(arg("num"), num, 4 * math.prod(shape) + 3 * math.prod(image_shape or shape) + 8)
    noise = np.random.default_rng(seed).standard_normal((num, *shape)).astype(np.float32)
    return noise, class_labels(num, num_classes, labels)


def class_labels(num: int, num_classes: int, labels=None) -> np.ndarray | None:
    """The int32 labels [num] to draw (None for an unconditional model): `labels` as one class for
    all or one per image, or by default every class in turn."""
    name = arg("labels", "--label")
    if not num_classes:
        if labels is not None:
            raise AigcError(f"{name} needs a conditional model (train with {arg('conditional')})")
        return None
    if labels is None:
        return (np.arange(num) % num_classes).astype(np.int32)
    labels = np.asarray(labels)
    if labels.ndim == 0:
        labels = np.full(num, labels)
    if labels.shape != (num,) or not np.issubdtype(labels.dtype, np.integer):
        raise AigcError(f"{name} must be one class, or {num} classes (one per image); got {labels.shape} "
                        f"{labels.dtype} values")
    outside = labels[(labels < 0) | (labels >= num_classes)]
    if len(outside):
        raise AigcError(f"{name} must be in 0..{num_classes - 1}, got {outside[0]}")
    return labels.astype(np.int32)


def in_chunks(draw, noise: np.ndarray, labels: np.ndarray | None, chunk: int = CHUNK, label: str = "generating"):
    """`draw(noise, labels, k)` on chunk k of at most `chunk` rows of noise (and labels), concatenated;
    reported as a `progress.task` of one unit per image (`draw` may report its steps in it)."""
    from .progress import task

    drawn = []
    with task(label, len(noise), " images") as bar:
        base = bar.done
        for k, start in enumerate(range(0, len(noise), chunk)):
            end = start + chunk
            drawn.append(draw(noise[start:end], None if labels is None else labels[start:end], k))
            bar.reach(base + min(end, len(noise)))
    return np.concatenate(drawn)
