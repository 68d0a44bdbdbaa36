"""The U-Net denoiser of DDPM (Ho et al., 2020), sized for small images and CPUs.

Inputs: x_t [N, H, W, C], the time t [N] float32 (a DDPM step 0..T-1, or 1000 t for a flow's
t in [0, 1]; models saved with an int32 t load too), and a label [N] int32 when conditional;
output: the network's prediction (noise eps, v, or a flow's velocity) [N, H, W, C]. With
`patch` p > 1 the image is first folded into [H/p, W/p, p*p*C] (space-to-depth) and unfolded at
the end, so that no level runs at full resolution. Residual blocks with
GroupNorm and swish take a sinusoidal time embedding (plus a class embedding with one extra
"null" class for classifier-free guidance); `levels` resolutions, each halved by a stride-2
convolution, with `base_filters` channels at full resolution and twice that below; optional
self-attention at the lowest resolution; skip connections by concatenation.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from ..errors import AigcError, arg
from ..networks import ConfigNetwork
from .config import DiffusionConfig, default_base_filters, default_patch

DEFAULTS = DiffusionConfig()


@keras.saving.register_keras_serializable("aigc_keras")
class SinusoidalEmbedding(layers.Layer):
    """t [N] -> [sin(t w_k), cos(t w_k)] [N, dim], w_k = 10000^(-k / (dim/2)) (Vaswani et al.)."""

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim

    def call(self, t):
        half = self.dim // 2
        freqs = ops.exp(-math.log(10000.0) * ops.arange(half, dtype="float32") / half)
        args = ops.cast(t, "float32")[:, None] * freqs[None, :]
        return ops.concatenate([ops.sin(args), ops.cos(args)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


def level_filters(base_filters: int, levels: int) -> list[int]:
    """Channels per resolution: base at full resolution, 2 * base below."""
    return [base_filters * (1 if i == 0 else 2) for i in range(levels)]


def check_image_size(image_shape, levels: int, patch: int = 1) -> None:
    height, width = image_shape[0], image_shape[1]
    factor = 2 ** (levels - 1) * patch
    if height % factor or width % factor:
        raise AigcError(
            f"a {levels}-level U-Net with {arg('patch')} {patch} needs height and width divisible by {factor}, "
            f"got {height}x{width}; change {arg('levels')} or {arg('patch')}"
        )


def space_to_depth(x, patch: int):
    """[N, H, W, C] -> [N, H/p, W/p, p*p*C] with Keras layers (RESHAPE and TRANSPOSE in LiteRT)."""
    height, width, channels = x.shape[1:]
    x = layers.Reshape((height // patch, patch, width // patch, patch, channels))(x)
    x = layers.Permute((1, 3, 2, 4, 5))(x)
    return layers.Reshape((height // patch, width // patch, patch * patch * channels))(x)


def depth_to_space(x, patch: int, channels: int):
    """The inverse of `space_to_depth`."""
    height, width = x.shape[1], x.shape[2]
    x = layers.Reshape((height, width, patch, patch, channels))(x)
    x = layers.Permute((1, 3, 2, 4, 5))(x)
    return layers.Reshape((height * patch, width * patch, channels))(x)


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


def _res_block(h, emb, filters: int, name: str):
    skip = h if h.shape[-1] == filters else layers.Conv2D(filters, 1, name=f"{name}_skip")(h)
    h = layers.GroupNormalization(_groups(h.shape[-1]), name=f"{name}_norm1")(h)
    h = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(layers.Activation("swish")(h))
    h = h + layers.Reshape((1, 1, filters))(layers.Dense(filters, name=f"{name}_emb")(emb))
    h = layers.GroupNormalization(_groups(filters), name=f"{name}_norm2")(h)
    h = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(layers.Activation("swish")(h))
    return skip + h


def _attention(h, name: str):
    height, width, channels = h.shape[1:]
    x = layers.GroupNormalization(_groups(channels), name=f"{name}_norm")(h)
    x = layers.Reshape((height * width, channels))(x)
    x = layers.MultiHeadAttention(num_heads=1, key_dim=channels, name=f"{name}_mha")(x, x)
    return h + layers.Reshape((height, width, channels))(x)


@keras.saving.register_keras_serializable("aigc_keras")
class UNet(ConfigNetwork):
    """[x_t, t] (and label when conditional) -> prediction of the same shape as x_t."""

    config_keys = ("image_shape", "base_filters", "levels", "res_blocks", "attention", "num_classes", "patch")

    def __init__(self, image_shape, base_filters=DEFAULTS.base_filters, levels=DEFAULTS.levels,
                 res_blocks=DEFAULTS.res_blocks, attention=DEFAULTS.attention, num_classes=0, patch=None,
                 **kwargs):
        image_shape = tuple(image_shape)
        patch = patch or default_patch(image_shape)
        base_filters = base_filters or default_base_filters(image_shape, patch)
        check_image_size(image_shape, levels, patch)
        filters = level_filters(base_filters, levels)
        emb_dim = 4 * base_filters

        x_in = keras.Input(image_shape, name="x")
        t_in = keras.Input((), dtype="float32", name="t")
        inputs = [x_in, t_in]
        emb = SinusoidalEmbedding(base_filters, name="time_embedding")(t_in)
        emb = layers.Dense(emb_dim, activation="swish", name="time_mlp1")(emb)
        emb = layers.Dense(emb_dim, name="time_mlp2")(emb)
        if num_classes:
            label_in = keras.Input((), dtype="int32", name="label")
            inputs.append(label_in)
            emb = emb + layers.Embedding(num_classes + 1, emb_dim, name="class_embedding")(label_in)
        emb = layers.Activation("swish")(emb)

        folded = space_to_depth(x_in, patch) if patch > 1 else x_in
        h = layers.Conv2D(filters[0], 3, padding="same", name="stem")(folded)
        skips = [h]
        for i, f in enumerate(filters):
            for b in range(res_blocks):
                h = _res_block(h, emb, f, f"down{i}_{b}")
                skips.append(h)
            if i < levels - 1:
                h = layers.Conv2D(f, 3, strides=2, padding="same", name=f"down{i}_sample")(h)
                skips.append(h)
        h = _res_block(h, emb, filters[-1], "mid1")
        if attention:
            h = _attention(h, "mid_attention")
        h = _res_block(h, emb, filters[-1], "mid2")
        for i in reversed(range(levels)):
            for b in range(res_blocks + 1):
                h = layers.Concatenate()([h, skips.pop()])
                h = _res_block(h, emb, filters[i], f"up{i}_{b}")
            if i > 0:
                h = layers.UpSampling2D(2, interpolation="nearest")(h)
                h = layers.Conv2D(filters[i - 1], 3, padding="same", name=f"up{i}_sample")(h)
        h = layers.Activation("swish")(layers.GroupNormalization(_groups(filters[0]), name="out_norm")(h))
        out = layers.Conv2D(image_shape[-1] * patch * patch, 3, padding="same", kernel_initializer="zeros",
                            name="out")(h)
        if patch > 1:
            out = depth_to_space(out, patch, image_shape[-1])
        super().__init__(inputs=inputs, outputs=out, **kwargs)
        self.image_shape = image_shape
        self.base_filters = base_filters
        self.levels = levels
        self.res_blocks = res_blocks
        self.attention = attention
        self.num_classes = num_classes
        self.patch = patch
