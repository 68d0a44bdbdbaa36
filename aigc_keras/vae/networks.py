"""The VAE's encoder and decoder: two stride-2 convolutions each way (28 -> 14 -> 7 for MNIST)."""

from __future__ import annotations

import keras
from keras import layers

from ..errors import AigcError
from ..networks import ConfigNetwork
from .config import VAEConfig

DEFAULTS = VAEConfig()


def check_image_size(image_shape) -> None:
    if image_shape[0] % 4 or image_shape[1] % 4:
        raise AigcError(f"the VAE halves the image twice: height and width must be divisible by 4, got "
                        f"{image_shape[0]}x{image_shape[1]}")


@keras.saving.register_keras_serializable("aigc_keras")
class Encoder(ConfigNetwork):
    """images [N, H, W, C] in [-1, 1] -> (z_mean, z_log_var), each [N, latent_dim]: q(z | x)."""

    config_keys = ("image_shape", "latent_dim", "base_filters")

    def __init__(self, image_shape, latent_dim=DEFAULTS.latent_dim, base_filters=DEFAULTS.base_filters, **kwargs):
        image_shape = tuple(image_shape)
        check_image_size(image_shape)
        x = images = keras.Input(image_shape, name="images")
        for filters in (base_filters, 2 * base_filters):
            x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
        x = layers.Dense(8 * base_filters, activation="relu")(layers.Flatten()(x))
        z_mean = layers.Dense(latent_dim, name="z_mean")(x)
        z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
        super().__init__(inputs=images, outputs=[z_mean, z_log_var], **kwargs)
        self.image_shape, self.latent_dim, self.base_filters = image_shape, latent_dim, base_filters


@keras.saving.register_keras_serializable("aigc_keras")
class Decoder(ConfigNetwork):
    """z [N, latent_dim] -> pixel logits [N, H, W, C] of p(x | z), a Bernoulli per pixel in [0, 1]."""

    config_keys = ("image_shape", "latent_dim", "base_filters")

    def __init__(self, image_shape, latent_dim=DEFAULTS.latent_dim, base_filters=DEFAULTS.base_filters, **kwargs):
        image_shape = tuple(image_shape)
        check_image_size(image_shape)
        height, width, channels = image_shape
        z = keras.Input((latent_dim,), name="z")
        x = layers.Dense(8 * base_filters, activation="relu")(z)
        x = layers.Dense(height // 4 * width // 4 * 2 * base_filters, activation="relu")(x)
        x = layers.Reshape((height // 4, width // 4, 2 * base_filters))(x)
        for filters in (2 * base_filters, base_filters):
            x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")(x)
        logits = layers.Conv2D(channels, 3, padding="same", name="logits")(x)
        super().__init__(inputs=z, outputs=logits, **kwargs)
        self.image_shape, self.latent_dim, self.base_filters = image_shape, latent_dim, base_filters
