"""The VAE family: data, model, sampling from the prior, interpolation, evaluation and export."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ..errors import AigcError, arg
from ..export.litert import Endpoint, uint8_images
from ..imaging import grid, to_uint8
from ..inputs import noise_and_labels
from ..limits import check_fits
from ..training.family import ImageFamily, data_epochs
from .config import VAEConfig
from .model import VAE
from .networks import Decoder, Encoder, check_image_size


class VAEFamily(ImageFamily):
    name = "vae"
    noise_input = "z"
    int8_refusal = None

    def check_image_shape(self, config: VAEConfig, image_shape) -> None:
        check_image_size(image_shape)

    def dataset(self, config: VAEConfig, data, global_batch_size: int, start_epoch: int = 0):
        return data_epochs(config, data, global_batch_size, start_epoch)

    def build(self, config: VAEConfig, data_info: dict) -> VAE:
        shape = data_info["image_shape"]
        model = VAE(Encoder(shape, config.latent_dim, config.base_filters, name="encoder"),
                    Decoder(shape, config.latent_dim, config.base_filters, name="decoder"),
                    beta=config.beta, seed=config.seed, flip=config.flip)
        optimizer = self.adam(config, data_info, config.learning_rate)
        model.compile(optimizer=optimizer)
        return model

    def interpolate(self, model: VAE, data, pairs: int, steps: int, seed: int) -> np.ndarray:
        """uint8 grid picture: each row decodes `steps` points on the line between the latent means
        of two real images (drawn by `seed`), the real pair at its ends."""
        images, _ = data.arrays()
        if 2 * pairs > len(images):
            raise AigcError(f"{arg('interpolate')} {pairs} needs {2 * pairs} training images; {data.spec} has "
                            f"{len(images)}")
        check_fits(arg("interpolate"), pairs * steps, 8 * math.prod(model.image_shape),
                   f"of images (with {arg('steps')})")
        pick = np.random.default_rng(seed).choice(len(images), (pairs, 2), replace=False)
        x = tf.constant(images[pick.reshape(-1)].astype(np.float32) / 127.5 - 1.0)
        z_mean, _ = model.encode(x)
        start, end = z_mean.numpy()[0::2], z_mean.numpy()[1::2]
        weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
        z = (start[:, None] * (1.0 - weights) + end[:, None] * weights).reshape(pairs * steps, -1)
        decoded = to_uint8(model.decode(tf.constant(z))).reshape(pairs, steps, *model.image_shape)
        real = images[pick]  # [pairs, 2, H, W, C]
        rows = np.concatenate([real[:, :1], decoded, real[:, 1:]], axis=1)
        return grid(rows.reshape(-1, *model.image_shape), columns=steps + 2)

    def preview(self, model: VAE, config: VAEConfig, data_info: dict):
        images, _, _ = self.sample(model, 64, config.seed)
        return grid(images)

    def export_spec(self, model: VAE, record: dict, batch: int = 1):
        """`generate` (z from the prior to images), `decode` (any latent code, e.g. a point between two
        encoded images, to images) and `encode` (images to the mean and log-variance of q(z | x)),
        `batch` at a time."""
        latent, shape = model.latent_dim, list(model.image_shape)
        z_spec = tf.TensorSpec([batch, latent], tf.float32, name="z")

        @tf.function(input_signature=[z_spec])
        def generate(z):
            images = model.decode(z)
            return {"images": uint8_images(images), "images_float": images}

        @tf.function(input_signature=[z_spec])
        def decode(z):
            return {"images_float": model.decode(z)}

        @tf.function(input_signature=[tf.TensorSpec([batch, *shape], tf.float32, name="images_float")])
        def encode(images_float):
            z_mean, z_log_var = model.encode(images_float)
            return {"z_mean": z_mean, "z_log_var": z_log_var}

        z = [noise_and_labels(batch, [latent], seed)[0] for seed in (0, 1)]
        images = np.clip(np.random.default_rng(2).standard_normal((batch, *shape)), -1, 1).astype(np.float32)
        endpoints = [
            Endpoint("generate", generate, [{"z": v} for v in z],
                     f"z ~ N(0, 1) [{batch}, latent_dim] -> images uint8 [{batch}, H, W, C] and images_float in "
                     "[-1, 1]"),
            Endpoint("decode", decode, [{"z": z[0] * 0.5}],
                     f"any latent code z [{batch}, latent_dim] -> images_float in [-1, 1] (the mean of p(x | z))"),
            Endpoint("encode", encode, [{"images_float": images}],
                     f"images_float in [-1, 1] [{batch}, H, W, C] -> z_mean and z_log_var of q(z | x)"),
        ]
        metadata = {
            "batch": batch,
            "latent_dim": latent,
            "noise": "z: float32 [batch, latent_dim], independent standard normal values",
            "image_shape": shape,
            "conditional": False,
            "num_classes": 0,
            "class_names": [],
            "config": record["config"],
        }
        return model, endpoints, metadata

    def calibration(self, model: VAE, config: VAEConfig, endpoints):
        """`encode` on real images, `generate` and `decode` on latent codes of the prior."""
        batch = len(endpoints[0].examples[0]["z"])
        images, _ = self.load_data(config).arrays(64 * batch)
        pairs = []
        for i in range(64):
            z, _ = noise_and_labels(batch, [model.latent_dim], 100 + i)
            x = images[i * batch:(i + 1) * batch].astype(np.float32) / 127.5 - 1.0
            pairs += [("generate", {"z": z}), ("decode", {"z": z}), ("encode", {"images_float": x})]
        return pairs
