"""The noise (and labels) that generation starts from, shared by the image families."""

from __future__ import annotations

import numpy as np

from .errors import AigcError


def noise_and_labels(num: int, shape, seed: int, num_classes: int = 0, label: int | None = None):
    """Standard normal noise [num, *shape] from NumPy's generator (reproducible in any app), and
    the labels to draw: `label` for all, or every class in turn for a conditional model."""
    if num < 1:
        raise AigcError(f"--num must be >= 1, got {num}")
    noise = np.random.default_rng(seed).standard_normal((num, *shape)).astype(np.float32)
    if not num_classes:
        if label is not None:
            raise AigcError("--label needs a conditional model (train with --conditional)")
        return noise, None
    if label is not None and not 0 <= label < num_classes:
        raise AigcError(f"--label must be in 0..{num_classes - 1}, got {label}")
    labels = np.full(num, label) if label is not None else np.arange(num) % num_classes
    return noise, labels.astype(np.int32)
