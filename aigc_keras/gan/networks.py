"""DCGAN generator and discriminator (Radford et al. 2016) sized from the image shape.

The image height and width are halved until they reach a base of at most 8 (28 -> 14 -> 7,
32 -> 16 -> 8 -> 4); the generator upsamples from that base with stride-2 transposed
convolutions and the discriminator mirrors it with stride-2 convolutions. Channel widths
double at each lower resolution, starting from `base_filters` at full resolution. Both
networks add one 3x3 convolution at the base resolution: depth where it is cheap (docs/commands.md
compares it with wider layers).

Class conditioning: the generator concatenates a label embedding to z; the discriminator is a
projection discriminator (Miyato & Koyama 2018), adding <embed(y), features> to its logit.
The discriminator has no normalisation, so it is valid for the WGAN-GP gradient penalty.
Batch norm in the generator is synchronised across replicas, so a step is the same under any
number of replicas.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from ..errors import AigcError
from ..networks import ConfigNetwork
from .config import GANConfig

DEFAULTS = GANConfig()

_LABEL_DIM = 32  # size of the label embedding the generator appends to z


def upsampling_plan(image_shape) -> tuple[int, int, int]:
    """(base_height, base_width, number of stride-2 stages) for an image shape."""
    height, width, _ = image_shape
    h, w, stages = height, width, 0
    while h % 2 == 0 and w % 2 == 0 and min(h, w) > 7:
        h, w, stages = h // 2, w // 2, stages + 1
    if stages == 0 or max(h, w) > 8:
        raise AigcError(
            f"a DCGAN cannot be sized for {height}x{width} images: height and width must be "
            "b*2^n with b <= 8 and n >= 1 (e.g. 28, 32, 64)"
        )
    return h, w, stages


@keras.saving.register_keras_serializable("aigc_keras")
class Generator(ConfigNetwork):
    """z [N, latent_dim] (and label [N] int32 when conditional) -> images [N, H, W, C] in [-1, 1]."""

    config_keys = ("latent_dim", "image_shape", "base_filters", "num_classes")

    def __init__(self, latent_dim, image_shape, base_filters=DEFAULTS.base_filters, num_classes=0, **kwargs):
        image_shape = tuple(image_shape)
        base_h, base_w, stages = upsampling_plan(image_shape)
        z = keras.Input((latent_dim,), name="z")
        inputs, h = z, z
        if num_classes:
            label = keras.Input((), dtype="int32", name="label")
            inputs = [z, label]
            h = layers.Concatenate()([z, layers.Embedding(num_classes, _LABEL_DIM)(label)])
        filters = base_filters * 2 ** (stages - 1)
        x = layers.Dense(base_h * base_w * filters, use_bias=False)(h)
        x = layers.Reshape((base_h, base_w, filters))(x)
        x = layers.ReLU()(layers.BatchNormalization(synchronized=True)(x))
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(synchronized=True)(x))
        for _ in range(stages - 1):
            filters //= 2
            x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
            x = layers.ReLU()(layers.BatchNormalization(synchronized=True)(x))
        x = layers.Conv2DTranspose(image_shape[-1], 4, strides=2, padding="same")(x)
        images = layers.Activation("tanh")(x)
        super().__init__(inputs=inputs, outputs=images, **kwargs)
        self.latent_dim = latent_dim
        self.image_shape = image_shape
        self.base_filters = base_filters
        self.num_classes = num_classes


@keras.saving.register_keras_serializable("aigc_keras")
class MinibatchStdDev(layers.Layer):
    """Appends one channel: the mean standard deviation of the features over each group of
    `group_size` consecutive examples (Karras et al. 2018). A discriminator that sees how varied its
    batch is punishes a generator that draws too few kinds of image (class collapse).

    Groups are consecutive examples, so a replica's slice of the global batch (whole groups, when
    the per-replica batch is a multiple of `group_size`) gives what one device would.
    """

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size

    def call(self, x):
        height, width, channels = x.shape[1:]
        groups = tf.reshape(x, [-1, self.group_size, height, width, channels])
        std = tf.sqrt(tf.math.reduce_variance(groups, axis=1) + 1e-8)  # [N / g, H, W, C]
        per_group = tf.reduce_mean(std, axis=[1, 2, 3])  # [N / g]
        feature = tf.repeat(per_group, self.group_size)[:, None, None, None] * tf.ones_like(x[..., :1])
        return tf.concat([x, feature], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


@keras.saving.register_keras_serializable("aigc_keras")
class Discriminator(ConfigNetwork):
    """images [N, H, W, C] (and label [N] int32 when conditional) -> logits [N, 1]. With
    `minibatch_std` g > 0, a `MinibatchStdDev` channel over groups of g examples before the last
    convolution."""

    config_keys = ("image_shape", "base_filters", "num_classes", "minibatch_std")

    def __init__(self, image_shape, base_filters=DEFAULTS.base_filters, num_classes=0,
                 minibatch_std=DEFAULTS.minibatch_std, **kwargs):
        image_shape = tuple(image_shape)
        _, _, stages = upsampling_plan(image_shape)
        image = keras.Input(image_shape, name="image")
        x, filters = image, base_filters
        for _ in range(stages):
            x = layers.Conv2D(filters, 4, strides=2, padding="same")(x)
            x = layers.LeakyReLU(0.2)(x)
            filters *= 2
        if minibatch_std:
            x = MinibatchStdDev(minibatch_std)(x)
        x = layers.LeakyReLU(0.2)(layers.Conv2D(filters // 2, 3, padding="same")(x))
        features = layers.Flatten()(x)
        logits = layers.Dense(1)(features)
        inputs = image
        if num_classes:
            label = keras.Input((), dtype="int32", name="label")
            inputs = [image, label]
            embedded = layers.Embedding(num_classes, features.shape[-1])(label)
            logits = layers.Add()([logits, layers.Dot(axes=1)([embedded, features])])
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.image_shape = image_shape
        self.base_filters = base_filters
        self.num_classes = num_classes
        self.minibatch_std = minibatch_std
