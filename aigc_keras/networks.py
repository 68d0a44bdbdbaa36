"""What every family's networks share."""

from __future__ import annotations

import math

import keras
import tensorflow as tf


class ConfigNetwork(keras.Model):
    """A functional network whose config is its constructor arguments, kept as attributes."""

    config_keys: tuple[str, ...] = ()

    def get_config(self):
        return {"name": self.name, **{key: getattr(self, key) for key in self.config_keys}}


def activation_bytes(model: keras.Model) -> int:
    """float32 bytes of every layer's output for one example: what a forward pass holds per example
    (nested models counted through their own layers; a layer with no recorded output counts 0)."""
    total = 0
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):
            total += activation_bytes(layer)
            continue
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):
            continue
        for tensor in outputs:
            total += 4 * math.prod(d or 1 for d in tensor.shape[1:])
    return total


def ema_copy(network: keras.Model, name: str) -> keras.Model:
    """A fresh network of the same architecture holding `network`'s current weights."""
    copy = type(network).from_config({**network.get_config(), "name": name})
    copy.set_weights(network.get_weights())
    return copy


class OneOptimizer:
    """Mixin for a `keras.Model` compiled with one optimizer that its `.keras` file saves and restores.

    A mixin rather than a `keras.Model` subclass: Keras rewrites the bases of a functional
    subclass (`Model` becomes `Functional`, keras `inject_functional_model_class`), and would rewrite
    a shared base class for every model that uses it.
    """

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {"optimizer": keras.optimizers.serialize(self.optimizer)}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.optimizers.deserialize(config["optimizer"]))


@keras.saving.register_keras_serializable("aigc_keras")
class ReplicaDropout(keras.layers.Layer):
    """Dropout whose masks differ between replicas.

    `keras.layers.Dropout` draws from one seed generator, and under MirroredStrategy that is the
    same seed on every replica, so replica r drops the same units of its i-th example as every
    other replica does. Here the seed is folded with the replica's id.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape=None):
        """Nothing to create (the seed generator is made with the layer)."""

    def call(self, x, training=False):
        if not training or not self.rate:
            return x
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        seed = tf.cast(keras.ops.convert_to_tensor(self.seed_generator.next()), tf.int64)
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica, tf.int64))
        keep = tf.random.stateless_uniform(tf.shape(x), seed) >= self.rate
        return tf.where(keep, x / (1.0 - self.rate), tf.zeros_like(x))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
