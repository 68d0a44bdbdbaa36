"""Augmentations that are correct for generators, drawn per example from a stateless seed (the same on
resume, and under any number of replicas, as `training.distributed.replica_noise` makes them).

`flip` mirrors images left-right: a data augmentation, so the model learns mirrored images too (right for
icons and photos, wrong for digits and text). `diff_augment` is DiffAugment (Zhao et al., 2020):
colour, translation and cutout, differentiable, applied to every image the discriminator sees, real and
fake alike, so it does not leak into what the generator draws.
"""

from __future__ import annotations

import tensorflow as tf

from .training.distributed import replica_noise

TRANSLATION = 0.125  # of the image size, either way
CUTOUT = 0.5  # side of the erased square, of the image size


def flip(images, seed: int, step, salt: int):
    """Each image [B, H, W, C] mirrored left-right with probability 1/2."""
    mirror = replica_noise("uniform", tf.shape(images)[0], [], seed, step, salt) < 0.5
    return tf.where(mirror[:, None, None, None], tf.reverse(images, axis=[2]), images)


def diff_augment(images, seed: int, step, salt: int):
    """DiffAugment's colour, translation and cutout of images [B, H, W, C] in [-1, 1] (the official
    policy 'color,translation,cutout'): brightness + U(-0.5, 0.5); saturation x U(0, 2) (colour images);
    contrast x U(0.5, 1.5); a shift of up to 1/8 of the size filled with 0; a square of half the size set
    to 0 at a uniform position."""
    batch, channels = tf.shape(images)[0], images.shape[-1]
    u = replica_noise("uniform", batch, [7], seed, step, salt)
    x = images + (u[:, 0, None, None, None] - 0.5)
    if channels > 1:
        gray = tf.reduce_mean(x, axis=3, keepdims=True)
        x = (x - gray) * (2.0 * u[:, 1, None, None, None]) + gray
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * (u[:, 2, None, None, None] + 0.5) + mean
    x = _translate(x, u[:, 3], u[:, 4])
    return _cut_out(x, u[:, 5], u[:, 6])


def _shifts(u, most: int):
    """Integer shifts in [-most, most] from uniforms u [B]."""
    return tf.cast(tf.floor(u * (2 * most + 1)), tf.int32) - most


def _translate(x, u_rows, u_cols):
    height, width = x.shape[1], x.shape[2]
    most_h, most_w = int(height * TRANSLATION + 0.5), int(width * TRANSLATION + 0.5)
    dy, dx = _shifts(u_rows, most_h), _shifts(u_cols, most_w)
    pad = max(most_h, most_w)
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = tf.range(height)[None, :] + pad - dy[:, None]  # [B, H]: row i of the result is row i - dy of x
    cols = tf.range(width)[None, :] + pad - dx[:, None]
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def _cut_out(x, u_rows, u_cols):
    height, width = x.shape[1], x.shape[2]
    side_h, side_w = int(height * CUTOUT + 0.5), int(width * CUTOUT + 0.5)
    top = tf.cast(tf.floor(u_rows * (height + 1 - side_h % 2)), tf.int32) - side_h // 2
    left = tf.cast(tf.floor(u_cols * (width + 1 - side_w % 2)), tf.int32) - side_w // 2
    rows = tf.range(height)[None, :] - top[:, None]  # [B, H]
    cols = tf.range(width)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < side_h))[:, :, None] & ((cols >= 0) & (cols < side_w))[:, None, :]
    return x * tf.cast(~inside, x.dtype)[..., None]
