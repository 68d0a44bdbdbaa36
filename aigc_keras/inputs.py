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


def edit_inputs(images, mask, image_shape) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, H, W, C], float32 mask [N, H, W, 1]: 1 = generate, 0 = keep) for an edit of
    `image_shape` images, from uint8 `images` [N, H, W, C] or one image [H, W, C] (grayscale may drop C),
    and `mask` [N, H, W(, 1)] or one [H, W(, 1)], nonzero where to generate (None: everywhere)."""
    h, w, c = image_shape
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise AigcError(f"{arg('images', '--init')} must be uint8 pixels (0..255), got {images.dtype} values")
    if images.ndim in (2, 3) and images.shape[:2] == (h, w):
        images = images[None]
    if images.ndim == 3 and c == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (h, w, c):
        raise AigcError(f"{arg('images', '--init')} must be {h}x{w} with {c} channel{'s' if c > 1 else ''} (the "
                        f"model's images), got {'x'.join(map(str, images.shape))}")
    if mask is None:
        return images, np.ones((len(images), h, w, 1), np.float32)
    mask = np.asarray(mask)
    if mask.ndim == 4 and mask.shape[-1] == 1 or mask.ndim == 3 and mask.shape[-1] == 1 and mask.shape[:2] == (h, w):
        mask = mask[..., 0]
    if mask.ndim == 2:
        mask = np.broadcast_to(mask, (len(images), *mask.shape))
    if mask.shape != (len(images), h, w):
        raise AigcError(f"{arg('mask')} must be {h}x{w} (the images'), one for all or one per image, got "
                        f"{'x'.join(map(str, mask.shape))}")
    return images, (mask != 0).astype(np.float32)[..., None]


def in_chunks(draw, *arrays, chunk: int = CHUNK) -> np.ndarray:
    """`draw(*parts, k)` on chunk k of at most `chunk` rows of each of `arrays` (noise, then labels, ...;
    a None stays None), concatenated; reported as a `progress.task` of one unit per row (`draw` may
    report its steps in it)."""
    from .progress import task

    drawn, num = [], len(arrays[0])
    with task("generating", num, " images") as bar:
        base = bar.done
        for k, start in enumerate(range(0, num, chunk)):
            end = start + chunk
            drawn.append(draw(*(None if a is None else a[start:end] for a in arrays), k))
            bar.reach(base + min(end, num))
    return np.concatenate(drawn)
