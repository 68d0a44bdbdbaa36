"""What every family's networks share."""

from __future__ import annotations

import hashlib
import math

import keras
import numpy as np
import tensorflow as tf

from . import lora
from .config import TrainConfig
from .data.images import uint8_images
from .errors import AigcError


class ConfigNetwork(keras.Model):
    """A functional network whose config is its constructor arguments, kept as attributes."""

    config_keys: tuple[str, ...] = ()

    def get_config(self):
        return {"name": self.name, **{key: getattr(self, key) for key in self.config_keys}}


def pixels(images):
    """Images a model trains on, as float32 in [-1, 1]: uint8 is scaled, floats are taken as they are
    (the pipeline's batches, or a dataset the user made in [-1, 1])."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return tf.cast(images, tf.float32)


class PreparedFit:
    """Mixin: Keras's own `fit`, with its `x` (and `validation_data`'s) passed through `prepared` first, so
    that a model takes what its users hold (image arrays in any range, a text)."""

    def prepared(self, x):
        """`x` as Keras's `fit` takes it."""
        return x

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        if isinstance(validation_data, (tuple, list)):
            validation_data = (self.prepared(validation_data[0]), *validation_data[1:])
        elif validation_data is not None:
            validation_data = self.prepared(validation_data)
        return super().fit(
            x=self.prepared(x), y=y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
            validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
            class_weight=class_weight, sample_weight=sample_weight, initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            validation_batch_size=validation_batch_size, validation_freq=validation_freq)


class ImageModel(PreparedFit):
    """Mixin for the image generators (`GAN`, `DiffusionModel`, `VAE`): `fit` on image arrays as Keras
    users pass them, and `from_config` of the family's config dataclass. (A mixin for the reason
    `OneOptimizer` gives.) The class names its sampling network in `num_classes` and `image_shape`."""

    def prepared(self, x):
        """`fit`'s images: arrays may be uint8, or float in [0, 1] or [-1, 1] ([N, H, W] or [N, H, W, C])
        and become uint8 (see `data.images.uint8_images`); a `tf.data.Dataset` yields uint8 images (or
        floats in [-1, 1]), alone or with labels, and passes as it is."""
        if isinstance(x, (np.ndarray, list)):
            return uint8_images(x, "x")
        return x

    @classmethod
    def from_config(cls, config, custom_objects=None, *, images=None, labels=None):
        """Keras's: the model of a `get_config()` dict. Also, from the family's config dataclass
        (`GANConfig()`, ...), the compiled model that `aigc-keras train` builds with those options for
        `images` (and `labels`), or for the config's own `data` spec."""
        if isinstance(config, TrainConfig):
            return model_from_options(cls, config, images=images, labels=labels)
        return cls.from_saved_config(config)


def model_from_options(cls, config: TrainConfig, **data):
    """The family's compiled model for `config` and `data` (see `Family.model_for`), checked to be a `cls`."""
    from .families import get_family

    model = get_family(config.family).model_for(config, **data)
    if not isinstance(model, cls):
        raise AigcError(f"a {type(config).__name__} builds a {type(model).__name__}, not a {cls.__name__}")
    return model


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


def trained_share(model: keras.Model) -> str:
    """How many of `model`'s weights its optimizers update, of all it holds, as `train` says it."""
    total, trained = model.count_params(), sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return f"{trained:,} of {total:,} train ({trained / total:.1%})"


def weights_fingerprint(model: keras.Model) -> str:
    """A short hash of every weight's bytes: equal on all workers when they trained in sync, and what
    names the base of a fine-tune."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


def averaged_weights(ema: keras.Model, network: keras.Model) -> tuple[list, list]:
    """(EMA weights, weights) that the moving average follows: all of them, or under LoRA only those
    that train (a frozen base weight stays the base's in both networks)."""
    pairs = list(zip(ema.weights, network.weights))
    if lora.adapted(network):
        pairs = [(e, w) for e, w in pairs if w.trainable]
    return [e for e, _ in pairs], [w for _, w in pairs]


def ema_copy(network: keras.Model, name: str) -> keras.Model:
    """A fresh network of the same architecture holding `network`'s current weights; not trainable:
    it follows the network's average, no optimizer steps it."""
    copy = type(network).from_config({**network.get_config(), "name": name})
    copy.set_weights(network.get_weights())
    copy.trainable = False
    return copy


class OneOptimizer:
    """Mixin for a `keras.Model` compiled with one optimizer that its `.keras` file saves and restores.

    A mixin rather than a `keras.Model` subclass: Keras rewrites the bases of a functional
    subclass (`Model` becomes `Functional`, keras `inject_functional_model_class`), and would rewrite
    a shared base class for every model that uses it.
    """

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Keras's `compile`; the optimizer is built at once on `optimizer_variables` (built lazily, in a
        replica step, it fails under tf.distribute). `loss` and `metrics` do not apply: `train_step`
        says the objective."""
        super().compile(optimizer=optimizer, run_eagerly=run_eagerly, steps_per_execution=steps_per_execution,
                        jit_compile=jit_compile, auto_scale_loss=auto_scale_loss)
        self.optimizer.build(self.optimizer_variables)

    @property
    def optimizer_variables(self):
        """The variables the optimizer updates."""
        return self.trainable_variables

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
