"""The GAN as one `keras.Model`: `fit` alternates discriminator and generator updates."""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

from ..augment import diff_augment, flip
from ..imaging import to_uint8
from ..inputs import in_chunks, noise_and_labels
from ..networks import ImageModel, averaged_weights, ema_copy, pixels
from ..precision import training_step
from ..training.distributed import apply_gradients, replica_noise, update_ema
from .config import GANConfig
from .losses import LOSSES, d_loss_ns, gradient_penalty

DEFAULTS = GANConfig()  # the one home of every default: the class's are the CLI's


@keras.saving.register_keras_serializable("aigc_keras")
class GAN(ImageModel, keras.Model):
    """A generator and a discriminator trained by alternating updates.

    Each `train_step` takes `n_critic` discriminator steps, each on its own real batch, then one
    generator step through the updated discriminator on the last critic step's fakes. A batch is
    images [B, H, W, C] (uint8, or floats in [-1, 1]; split into `n_critic` parts) or, as the training
    pipeline stacks them, [B, n_critic, H, W, C]; with labels [B] (or [B, n_critic]) when conditional.
    Losses are averaged over the global batch, so a step is the same under any number of replicas.
    With `ema_momentum`, an exponential moving average of the generator is kept for sampling and export.
    With `augment`, every image the discriminator sees, real or fake, goes through DiffAugment (small
    data: its discriminator would memorise the real ones); with `flip`, real images are mirrored at random.
    """

    def __init__(self, generator, discriminator, loss=DEFAULTS.loss, label_smoothing=DEFAULTS.label_smoothing,
                 gp_weight=DEFAULTS.gp_weight, n_critic=DEFAULTS.n_critic,
                 ema_momentum=DEFAULTS.ema_momentum if DEFAULTS.ema else None, seed=DEFAULTS.seed, augment=False,
                 flip=False, **kwargs):
        super().__init__(**kwargs)
        self.augment, self.flip = augment, flip
        self.generator = generator
        self.discriminator = discriminator
        self.objective = loss
        self.label_smoothing = label_smoothing
        self.gp_weight = gp_weight
        self.n_critic = n_critic
        self.ema_momentum = ema_momentum
        self.seed = seed
        self.d_loss_fn, self.g_loss_fn = LOSSES[loss]
        if loss == "ns":
            self.d_loss_fn = functools.partial(d_loss_ns, label_smoothing=label_smoothing)
        self.ema_generator = None
        if ema_momentum:
            self.ema_generator = ema_copy(generator, "ema_generator")
        names = ["d_loss", "g_loss", "d_real", "d_fake"] + (["gp"] if loss == "wgan-gp" else [])
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.build()

    def build(self, input_shape=None):
        """Nothing to create: the generator and discriminator are built networks. (Built models are
        what `fit` expects; an unbuilt one would be called on a batch of images to build it.)"""

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def conditional(self) -> bool:
        return self.generator.num_classes > 0

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def image_shape(self):
        return self.generator.image_shape

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator used for sampling and export: the EMA copy when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, *,
                d_optimizer=None, g_optimizer=None):
        """Keras's `compile`, with one optimizer for each network: `d_optimizer` and `g_optimizer`, or
        two copies of `optimizer`. (`loss` and `metrics` do not apply: the objective is `loss` of the
        constructor.)"""
        super().compile(optimizer=None, run_eagerly=run_eagerly, steps_per_execution=steps_per_execution,
                        jit_compile=jit_compile, auto_scale_loss=auto_scale_loss)
        if d_optimizer is None or g_optimizer is None:
            optimizer = keras.optimizers.get(optimizer)
            d_optimizer = d_optimizer or optimizer
            g_optimizer = g_optimizer or optimizer.from_config(optimizer.get_config())
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        # Built eagerly: built lazily inside a replica step they fail under tf.distribute.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def call(self, inputs, training=False):
        return self.sampling_generator(inputs, training=False)

    def generate(self, num: int = 16, seed: int = 0, labels=None) -> np.ndarray:
        """uint8 images [num, H, W, C] from z ~ N(0, I) drawn by NumPy's generator seeded by `seed`
        (the numbers an app feeds the export's `generate`). `labels` (conditional models): one class
        for all, one per image, or by default every class in turn."""
        z, labels = noise_and_labels(num, [self.latent_dim], seed, self.num_classes, labels, self.image_shape)
        return in_chunks(lambda z, y, _: to_uint8(self.draw(z, y)), z, labels)

    def draw(self, z, labels=None):
        """Images in [-1, 1] from latent vectors z [N, latent_dim] (and labels [N] when conditional)."""
        labels = None if labels is None else tf.convert_to_tensor(labels, tf.int32)
        return self.sampling_generator(self._inputs(tf.convert_to_tensor(z), labels), training=False)

    def _inputs(self, z_or_images, labels):
        return [z_or_images, labels] if self.conditional else z_or_images

    def _critic(self, images, labels, step=None, salt=None):
        """D's logits [N]; with `augment`, of DiffAugment's images (drawn from (step, salt))."""
        if self.augment and salt is not None:
            images = diff_augment(images, self.seed, step, salt)
        logits = self.discriminator(self._inputs(images, labels), training=True)
        return tf.cast(tf.squeeze(logits, -1), tf.float32)

    def _updates(self, data):
        """(real images [B, n_critic, H, W, C] in [-1, 1], labels [B, n_critic]) from a batch of `fit`."""
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        real = pixels(images)
        k = self.n_critic
        if real.shape.rank == 4:  # plain images: the critic steps take consecutive parts of the batch
            usable = tf.shape(real)[0] // k * k
            real = tf.reshape(real[:usable], [-1, k, *real.shape[1:]])
            labels = None if labels is None else tf.reshape(labels[:usable], [-1, k])
        if labels is None:
            if self.conditional:
                raise ValueError("a conditional GAN trains on (images, labels): pass the labels to fit")
            labels = tf.zeros(tf.shape(real)[:2], tf.int32)
        return real, tf.cast(labels, tf.int32)

    def train_step(self, data):
        real, labels = self._updates(data)
        batch = tf.shape(real)[0]
        step = tf.convert_to_tensor(training_step(self.g_optimizer))  # read once, before any update
        latent = [self.generator.latent_dim]
        for k in range(self.n_critic):
            z = replica_noise("normal", batch, latent, self.seed, step, salt=2 * k)
            # The last critic step shares its generator pass with the generator step (as the
            # PyTorch DCGAN reference does): G's forward is recorded once, D is updated on the
            # detached fakes, then G is updated through the updated D.
            images = flip(real[:, k], self.seed, step, salt=100 + k) if self.flip else real[:, k]
            with tf.GradientTape() as g_tape:
                fake = tf.cast(self.generator(self._inputs(z, labels[:, k]), training=True), tf.float32)
                self._discriminator_step(images, labels[:, k], tf.stop_gradient(fake), step, salt=2 * k + 1)
                if k == self.n_critic - 1:
                    per_example = self.g_loss_fn(self._critic(fake, labels[:, k], step, salt=400))
                    g_loss = self.g_optimizer.scale_loss(tf.nn.compute_average_loss(per_example))
        weights = self.generator.trainable_weights
        apply_gradients(self.g_optimizer, g_tape.gradient(g_loss, weights), weights)
        self.trackers["g_loss"].update_state(tf.reduce_mean(per_example))
        if self.ema_generator is not None:
            update_ema(*averaged_weights(self.ema_generator, self.generator), self.ema_momentum, step + 1)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _discriminator_step(self, real, labels, fake, step, salt):
        with tf.GradientTape() as tape:
            real_logits = self._critic(real, labels, step, salt=200 + salt)
            fake_logits = self._critic(fake, labels, step, salt=300 + salt)
            per_example = self.d_loss_fn(real_logits, fake_logits)
            if self.objective == "wgan-gp":
                alpha = replica_noise("uniform", tf.shape(real)[0], [], self.seed, step, salt)
                gp = gradient_penalty(lambda x: self._critic(x, labels), real, fake, alpha)
                per_example += self.gp_weight * gp
                self.trackers["gp"].update_state(tf.reduce_mean(gp))
            d_loss = self.d_optimizer.scale_loss(tf.nn.compute_average_loss(per_example))
        weights = self.discriminator.trainable_weights
        apply_gradients(self.d_optimizer, tape.gradient(d_loss, weights), weights)
        as_score = tf.sigmoid if self.objective == "ns" else tf.identity
        self.trackers["d_loss"].update_state(tf.reduce_mean(per_example))
        self.trackers["d_real"].update_state(tf.reduce_mean(as_score(real_logits)))
        self.trackers["d_fake"].update_state(tf.reduce_mean(as_score(fake_logits)))

    def get_config(self):
        return {
            "name": self.name,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "loss": self.objective,
            "label_smoothing": self.label_smoothing,
            "gp_weight": self.gp_weight,
            "n_critic": self.n_critic,
            "ema_momentum": self.ema_momentum,
            "seed": self.seed,
            "augment": self.augment,
            "flip": self.flip,
        }

    @classmethod
    def from_saved_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.optimizers.deserialize(config["d_optimizer"]),
            g_optimizer=keras.optimizers.deserialize(config["g_optimizer"]),
        )
