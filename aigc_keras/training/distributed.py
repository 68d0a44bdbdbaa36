"""What a custom `train_step` needs to give the same step under any number of replicas.

Noise: each replica draws the noise of the whole global batch from a stateless seed (seed, step, salt)
and keeps its own slice. So the noise differs per replica and per step, as it must, and a
distributed step sees exactly the noise of a single-device step on the same global batch.
"""

from __future__ import annotations

import numpy as np
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


def clip_by_global_norm(grads, clipnorm: float):
    """The gradients of the global batch, scaled so that their global norm is at most `clipnorm`.

    Keras optimizers clip each replica's partial gradient before the all-reduce, which makes a
    clipped step depend on the replica count. Here the gradients are summed across replicas
    first, clipped, and handed back divided by the replica count (the optimizer sums them again).
    """
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if replicas > 1:
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    grads, _ = tf.clip_by_global_norm(grads, clipnorm)
    return [g / replicas for g in grads] if replicas > 1 else grads


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


def single_tensor_fit(model, dataset: tf.data.Dataset, validation: tf.data.Dataset | None = None):
    """Make `model.fit` work under MultiWorkerMirroredStrategy (keras-team/keras#20585), for any family.

    Keras 3 `fit` there fails on batches with more than one tensor ("unsupported type
    PerReplica") and on scalar step results ("Invalid reduction dimension 0"). So each batch's
    tensors are packed into one float32 [B, D] tensor (exact for uint8 pixels, labels and token
    ids < 2^24), and the model's `train_step`/`test_step` are wrapped to unpack it and to return
    rank-1 values. The model's own steps are unchanged. Returns the datasets to fit on.
    """
    # Models compiled with a loss/metrics build them from the first batch's structure: do it
    # from the unpacked batch (Keras's own `_symbolic_build`; a no-op for custom train_steps).
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=next(iter(dataset.take(1))))
    dataset, unpack_train = _single_tensor(dataset)
    validation, unpack_test = _single_tensor(validation) if validation is not None else (None, None)
    for name, unpack in (("train_step", unpack_train), ("test_step", unpack_test)):
        step = getattr(model, name)

        def wrapped(data, step=step, unpack=unpack or (lambda d: d)):
            return {k: tf.reshape(v, [1]) for k, v in step(unpack(data)).items()}

        setattr(model, name, wrapped)
    return dataset, validation


def _single_tensor(dataset: tf.data.Dataset):
    """(dataset of one tensor per batch, function that restores the original batch structure)."""
    spec = dataset.element_spec
    if isinstance(spec, tf.TensorSpec):
        return dataset, lambda data: data
    flat_specs = tf.nest.flatten(spec)
    sizes = [int(np.prod(s.shape[1:])) for s in flat_specs]

    def pack(*batch):
        parts = [tf.reshape(tf.cast(t, tf.float32), [tf.shape(t)[0], -1]) for t in tf.nest.flatten(batch)]
        return tf.concat(parts, axis=1)

    def unpack(packed):
        parts = tf.split(packed, sizes, axis=1)
        tensors = [tf.cast(tf.reshape(p, [-1, *s.shape[1:]]), s.dtype) for p, s in zip(parts, flat_specs)]
        return tf.nest.pack_sequence_as(spec, tensors)

    return dataset.map(pack), unpack
