"""Choosing the tf.distribute strategy that a run trains under, and who writes (the chief)."""

from __future__ import annotations

import functools
import json
import os

import tensorflow as tf

from ..errors import AigcError, arg


def tf_config() -> dict:
    """The parsed TF_CONFIG environment variable ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if not isinstance(workers, list) or task["type"] not in ("worker", "chief"):
            raise ValueError
        int(task["index"])
    except (ValueError, KeyError, TypeError):
        raise AigcError('TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                        '"task": {"type": "worker", "index": 0}}') from None
    return config


def num_workers() -> int:
    cluster = tf_config().get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def resolve_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MultiWorkerMirroredStrategy when TF_CONFIG names more than one worker, else
    MirroredStrategy over the GPUs when more than one is visible, else the default.

    mirrored: MirroredStrategy over every GPU, or over every logical CPU device when there is
    no GPU (that is how the distributed path is tested on a CPU split in two).
    multiworker: MultiWorkerMirroredStrategy over the TF_CONFIG cluster (every GPU of each
    worker, or its CPU).
    """
    name = strategy_name(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored(mirrored_devices())
    if name == "multiworker":
        if not tf_config():
            raise AigcError(f"{arg('strategy')} multiworker needs TF_CONFIG naming the cluster and this worker's task")
        return _multiworker()
    raise AigcError(f"unknown strategy {name!r}")


def mirrored_devices() -> tuple[str, ...]:
    """The devices `--strategy mirrored` spans: every GPU, or every logical CPU device without one."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tuple(d.name for d in devices)


def strategy_name(name: str) -> str:
    """What `name` resolves to: `auto` becomes multiworker, mirrored or default (see `resolve_strategy`)."""
    if name != "auto":
        return name
    if num_workers() > 1:
        return "multiworker"
    return "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"


@functools.lru_cache(maxsize=None)
def _mirrored(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per device set and process: two instances would hand out the same
    collective keys, and their all-reduces would then meet the wrong partners."""
    return tf.distribute.MirroredStrategy(list(devices))


@functools.lru_cache(maxsize=None)
def _multiworker() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The process's one MultiWorkerMirroredStrategy (it waits here until every worker is up)."""
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and num_workers() > 1


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This worker's index in the cluster (0 outside multi-worker training)."""
    if not is_multi_worker(strategy):
        return 0
    resolver = strategy.cluster_resolver
    return int(resolver.task_id) + (1 if resolver.task_type == "worker" and "chief" in tf_config()["cluster"] else 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes the model, the logs and the exports: worker 0 (or the "chief" task)."""
    return worker_index(strategy) == 0


def check_global_batch(strategy: tf.distribute.Strategy, global_batch_size: int) -> None:
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise AigcError(
            f"{arg('batch_size')} {global_batch_size} is the global batch and must divide evenly "
            f"across {replicas} replicas"
        )
