"""What a custom `train_step` needs to give the same step under any number of replicas.

Noise: each replica draws the noise of the whole global batch from a stateless seed (seed, step, salt)
and keeps its own slice. So the noise differs per replica and per step, as it must, and a
distributed step sees exactly the noise of a single-device step on the same global batch.
"""

from __future__ import annotations

import keras
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


def apply_gradients(optimizer, grads, weights, clipnorm: float | None = None) -> None:
    """`optimizer.apply` of a replica's gradients, made the same decision on every replica.

    With `clipnorm`, the global gradient is clipped (`clip_by_global_norm`). A loss-scaled optimizer
    (mixed_float16) decides from the gradients it is given whether they are finite and skips the
    step if not; Keras takes that decision from the first replica, assuming all-reduced gradients,
    so the gradients are all-reduced first (and divided by the replica count, since `apply` sums
    them again). Then an inf on any replica skips the step on all of them.
    """
    grads = dense_gradients(grads)
    if clipnorm:  # the gradients carry the loss scale (mixed_float16); so does the bound
        grads = clip_by_global_norm(grads, clipnorm * optimizer.scale_loss(1.0))
    elif isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        grads = _global_mean(grads)
    optimizer.apply(grads, weights)


def _global_mean(grads):
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if replicas == 1:
        return grads
    return [g / replicas for g in ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)]


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


class PackedBatches(keras.Model):
    """`model`, trainable by `fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585), for any family.

    Keras 3 `fit` there fails on batches with more than one tensor ("unsupported type PerReplica")
    and on scalar step results ("Invalid reduction dimension 0"). `packed_fit_data` packs each
    batch's tensors into one float32 [B, D] tensor (exact for uint8 pixels, labels and token ids
    < 2^24); this model's `train_step`/`test_step` unpack it, run `model`'s own steps, and return
    rank-1 values. `fit` this model; `model` keeps its weights, optimizers and metrics.
    Create it under the strategy's scope.
    """

    def __init__(self, model: keras.Model, unpack_train, unpack_test=None):
        super().__init__(name=f"{model.name}_packed")
        self.inner = model
        self.unpack_train, self.unpack_test = unpack_train, unpack_test or (lambda data: data)
        self.build()
        self.compile(optimizer=None)  # `fit` needs a compiled model; `model` has its own optimizers

    def build(self, input_shape=None):
        """Nothing to create: `model` is built."""

    @property
    def metrics(self):
        return self.inner.metrics

    def train_step(self, data):
        return {k: tf.reshape(v, [1]) for k, v in self.inner.train_step(self.unpack_train(data)).items()}

    def test_step(self, data):
        return {k: tf.reshape(v, [1]) for k, v in self.inner.test_step(self.unpack_test(data)).items()}


def packed_fit_data(model: keras.Model, dataset: tf.data.Dataset, validation: tf.data.Dataset | None = None):
    """(`PackedBatches` of `model`, the datasets to fit it on): see `PackedBatches`."""
    dataset, unpack_train = _single_tensor(dataset)
    validation, unpack_test = _single_tensor(validation) if validation is not None else (None, None)
    return PackedBatches(model, unpack_train, unpack_test), dataset, validation


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
