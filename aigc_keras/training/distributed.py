"""What a custom `train_step` needs to give the same step under any number of replicas.

Noise: each replica draws the noise of the whole global batch from a stateless seed (seed, step, salt)
and keeps its own slice. So the noise differs per replica and per step, as it must, and a
distributed step sees exactly the noise of a single-device step on the same global batch.
"""

from __future__ import annotations

import tensorflow as tf

_DRAWS = {"normal": tf.random.stateless_normal, "uniform": tf.random.stateless_uniform}


def replica_noise(kind: str, batch, tail_shape, seed: int, step, salt: int):
    """This replica's `batch` rows of a [batch * replicas, *tail_shape] draw of `kind` noise."""
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    replica_id = ctx.replica_id_in_sync_group if ctx is not None else 0
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
    key = tf.random.experimental.stateless_fold_in(key, salt)
    shape = tf.concat([[batch * replicas], tf.constant(list(tail_shape), tf.int32)], axis=0)
    draw = _DRAWS[kind](shape, seed=key)
    start = tf.cast(replica_id, tf.int32) * batch
    return draw[start:start + batch]


def dense_gradients(grads):
    """Embedding gradients as dense tensors instead of `tf.IndexedSlices`.

    Sparse gradients make the optimizer all-gather their indices under MirroredStrategy, and
    those gathers can be ordered differently from the dense all-reduces on each replica
    ("Collective instance ... expected type ... but got ..."). The tables here are small.
    """
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]


def update_ema(ema_weights, weights, momentum: float, t):
    """ema <- m * ema + (1 - m) * w for each pair of weights, in cross-replica context.

    m = min(momentum, (1 + t) / (10 + t)) after training step t, the warm-up of
    `tf.train.ExponentialMovingAverage`, so early samples are not dominated by the initial
    weights. Under MirroredStrategy a plain `assign` in replica context fails, so the update
    goes through `merge_call` and `strategy.extended.update`, as optimizers do. (Pass t in:
    reading an optimizer's step counter after its update made `fit` a third slower.)
    """
    t = tf.cast(t, tf.float32)
    m = tf.minimum(momentum, (1.0 + t) / (10.0 + t))

    def update(strategy):
        for ema_var, var in zip(ema_weights, weights):
            strategy.extended.update(ema_var.value, lambda e, w: e.assign(m * e + (1.0 - m) * w), args=(var.value,))

    tf.distribute.get_replica_context().merge_call(update)
