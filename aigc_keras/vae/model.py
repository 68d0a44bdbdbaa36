"""The VAE as one `keras.Model`: `fit` maximises the evidence lower bound (Kingma & Welling, 2014)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..augment import flip
from ..errors import AigcError, arg
from ..imaging import to_uint8
from ..inputs import in_chunks, noise_and_labels
from ..networks import ImageModel, OneOptimizer, pixels
from ..precision import training_step
from ..training.distributed import apply_gradients, replica_noise
from .config import VAEConfig

DEFAULTS = VAEConfig()


@keras.saving.register_keras_serializable("aigc_keras")
class VAE(ImageModel, OneOptimizer, keras.Model):
    """An encoder q(z | x) = N(z_mean, exp(z_log_var)) and a decoder p(x | z), Bernoulli per pixel.

    Each `train_step` draws eps ~ N(0, I), takes z = z_mean + exp(z_log_var / 2) eps (the
    reparameterisation trick), and minimises, per example,
        reconstruction = sum over pixels of the cross-entropy of p(x | z) with x in [0, 1],
        kl = -1/2 sum(1 + z_log_var - z_mean^2 - exp(z_log_var)) = KL(q(z | x) || N(0, I)),
        loss = reconstruction + beta kl,
    averaged over the global batch (images uint8, or floats in [-1, 1]; labels, if any, are ignored).
    Sampling decodes z ~ N(0, I). With `flip`, training images are mirrored at random.
    """

    num_classes = 0  # unconditional

    def __init__(self, encoder, decoder, beta=DEFAULTS.beta, seed=DEFAULTS.seed, flip=False, **kwargs):
        super().__init__(**kwargs)
        self.flip = flip
        self.encoder, self.decoder, self.beta, self.seed = encoder, decoder, beta, seed
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "reconstruction", "kl")}
        self.build()

    def build(self, input_shape=None):
        """Nothing to create: the encoder and decoder are built networks (see `GAN.build`)."""

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def latent_dim(self) -> int:
        return self.decoder.latent_dim

    @property
    def image_shape(self):
        return self.decoder.image_shape

    def call(self, images, training=False):
        return self.decode(self.encoder(images, training=training)[0])

    def generate(self, num: int = 16, seed: int = 0, labels=None) -> np.ndarray:
        """uint8 images [num, H, W, C]: z ~ N(0, I) drawn by NumPy's generator seeded by `seed`, decoded
        (the mean of p(x | z)). `labels` must be None: the VAE is unconditional."""
        if labels is not None:
            raise AigcError(f"{arg('labels', '--label')} needs a conditional model; the VAE is unconditional")
        z, _ = noise_and_labels(num, [self.latent_dim], seed, image_shape=self.image_shape)
        return in_chunks(lambda z, _, k: to_uint8(self.decode(tf.constant(z))), z, None)

    def decode(self, z):
        """Images in [-1, 1]: the mean of p(x | z), rescaled."""
        return 2.0 * tf.sigmoid(tf.cast(self.decoder(z, training=False), tf.float32)) - 1.0

    def encode(self, images):
        """(z_mean, z_log_var) of q(z | x) for images in [-1, 1]."""
        z_mean, z_log_var = self.encoder(images, training=False)
        return tf.cast(z_mean, tf.float32), tf.cast(z_log_var, tf.float32)

    def losses_of(self, x, eps, training=False):
        """(reconstruction, kl) per example for images x in [-1, 1] and noise eps [N, latent_dim]."""
        z_mean, z_log_var = (tf.cast(t, tf.float32) for t in self.encoder(x, training=training))
        z = z_mean + tf.exp(0.5 * z_log_var) * eps
        logits = tf.cast(self.decoder(z, training=training), tf.float32)
        targets = (x + 1.0) / 2.0
        reconstruction = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits),
                                       axis=[1, 2, 3])
        kl = -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1)
        return reconstruction, kl

    def train_step(self, data):
        x = pixels(keras.utils.unpack_x_y_sample_weight(data)[0])
        step = tf.convert_to_tensor(training_step(self.optimizer))
        if self.flip:
            x = flip(x, self.seed, step, salt=1)
        eps = replica_noise("normal", tf.shape(x)[0], [self.latent_dim], self.seed, step, salt=0)
        with tf.GradientTape() as tape:
            reconstruction, kl = self.losses_of(x, eps, training=True)
            per_example = reconstruction + self.beta * kl
            loss = self.optimizer.scale_loss(tf.nn.compute_average_loss(per_example))
        weights = self.trainable_weights
        apply_gradients(self.optimizer, tape.gradient(loss, weights), weights)
        return self._metrics_from(per_example, reconstruction, kl)

    def test_step(self, data):
        x = pixels(keras.utils.unpack_x_y_sample_weight(data)[0])
        eps = tf.random.stateless_normal([tf.shape(x)[0], self.latent_dim], seed=[self.seed, 0])
        reconstruction, kl = self.losses_of(x, eps)
        return self._metrics_from(reconstruction + self.beta * kl, reconstruction, kl)

    def _metrics_from(self, loss, reconstruction, kl):
        for name, value in (("loss", loss), ("reconstruction", reconstruction), ("kl", kl)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        return {"name": self.name, "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder), "beta": self.beta, "seed": self.seed,
                "flip": self.flip}

    @classmethod
    def from_saved_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
