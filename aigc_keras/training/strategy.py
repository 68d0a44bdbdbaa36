"""Choosing the tf.distribute strategy that a run trains under."""

from __future__ import annotations

import functools

import tensorflow as tf

from ..errors import AigcError


def resolve_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over the GPUs when more than one is visible, else the default.

    mirrored: MirroredStrategy over every GPU, or over every logical CPU device when there is
    no GPU (that is how the distributed path is tested on a CPU split in two).
    """
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return _mirrored(tuple(d.name for d in devices))
    raise AigcError(f"unknown strategy {name!r}")


@functools.lru_cache(maxsize=None)
def _mirrored(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per device set and process: two instances would hand out the same
    collective keys, and their all-reduces would then meet the wrong partners."""
    return tf.distribute.MirroredStrategy(list(devices))


def check_global_batch(strategy: tf.distribute.Strategy, global_batch_size: int) -> None:
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise AigcError(
            f"--batch-size {global_batch_size} is the global batch and must divide evenly "
            f"across {replicas} replicas"
        )
