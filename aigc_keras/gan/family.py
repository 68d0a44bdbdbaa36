"""The GAN family: data, model, preview, sampling and export wired to the shared code."""

from __future__ import annotations

import tensorflow as tf

from ..export.litert import Endpoint, uint8_images
from ..imaging import grid
from ..inputs import noise_and_labels
from ..training.family import ImageFamily, data_epochs
from .config import GANConfig
from .model import GAN
from .networks import Discriminator, Generator, upsampling_plan

CALIBRATION_DRAWS = 64


class GANFamily(ImageFamily):
    name = "gan"
    int8_refusal = None
    noise_input = "z"

    def check_image_shape(self, config: GANConfig, image_shape) -> None:
        upsampling_plan(image_shape)

    def pass_steps(self, config: GANConfig, data_info: dict) -> int:
        return max(data_info["num_examples"] // (config.batch_size * config.n_critic), 1)

    def dataset(self, config: GANConfig, data, global_batch_size: int, start_epoch: int = 0):
        return data_epochs(config, data, global_batch_size, start_epoch, per_step=config.n_critic)

    def build(self, config: GANConfig, data_info: dict) -> GAN:
        shape = data_info["image_shape"]
        num_classes = len(data_info["class_names"]) if config.conditional else 0
        gan = GAN(
            Generator(config.latent_dim, shape, config.base_filters, num_classes, name="generator"),
            Discriminator(shape, config.base_filters, num_classes, config.minibatch_std, name="discriminator"),
            loss=config.loss,
            label_smoothing=config.label_smoothing,
            gp_weight=config.gp_weight,
            n_critic=config.n_critic,
            ema_momentum=config.ema_momentum if config.ema else None,
            seed=config.seed,
            augment=config.augment,
            flip=config.flip,
        )
        gan.compile(
            d_optimizer=self.adam(config, data_info, config.d_learning_rate, beta_1=config.beta_1,
                                  beta_2=config.beta_2),
            g_optimizer=self.adam(config, data_info, config.g_learning_rate, beta_1=config.beta_1,
                                  beta_2=config.beta_2),
        )
        return gan

    def preview(self, model: GAN, config: GANConfig, data_info: dict):
        num = 10 * model.generator.num_classes if model.conditional else 64
        images, _, columns = self.sample(model, num, config.seed)
        return grid(images, columns)

    def export_spec(self, model: GAN, record: dict, batch: int = 1):
        """`generate` for `batch` images per call (a fixed size: LiteRT's CompiledModel API needs one)."""
        generator = model.sampling_generator
        latent_dim, num_classes = generator.latent_dim, generator.num_classes
        z_spec = tf.TensorSpec([batch, latent_dim], tf.float32, name="z")

        def outputs(images):
            return {"images": uint8_images(images), "images_float": images}

        if num_classes:
            @tf.function(input_signature=[z_spec, tf.TensorSpec([batch], tf.int32, name="label")])
            def generate(z, label):
                return outputs(generator([z, label], training=False))
        else:
            @tf.function(input_signature=[z_spec])
            def generate(z):
                return outputs(generator(z, training=False))

        examples = []
        for seed in (0, 1):
            z, labels = noise_and_labels(batch, [latent_dim], seed=seed, num_classes=num_classes)
            examples.append({"z": z} if labels is None else {"z": z, "label": labels})
        endpoint = Endpoint(
            "generate", generate, examples,
            f"z ~ N(0, 1) [{batch}, latent_dim] (+ label [{batch}] int32) -> images uint8 [{batch}, H, W, C] and "
            "images_float in [-1, 1]",
        )
        metadata = {
            "batch": batch,
            "latent_dim": latent_dim,
            "noise": "z: float32 [batch, latent_dim], independent standard normal values",
            "image_shape": list(generator.image_shape),
            "conditional": bool(num_classes),
            "num_classes": num_classes,
            "class_names": record["data"]["class_names"] if num_classes else [],
            "ema": model.ema_generator is not None,
            "config": record["config"],
        }
        return generator, [endpoint], metadata

    def calibration(self, model: GAN, config: GANConfig, endpoints):
        example = endpoints[0].examples[0]
        batch, num_classes = len(example["z"]), model.num_classes
        pairs = []
        for seed in range(CALIBRATION_DRAWS):
            z, labels = noise_and_labels(batch, [model.latent_dim], seed + 100, num_classes)
            pairs.append(("generate", {"z": z} if labels is None else
                          {"z": z, "label": (labels + seed) % num_classes}))
        return pairs
