"""The diffusion model as one `keras.Model`: `fit` trains the denoiser with the DDPM objective."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..networks import OneOptimizerModel, ema_copy
from ..training.distributed import dense_gradients, replica_noise, update_ema
from .config import PREDICTIONS
from .schedules import NoiseSchedule


@keras.saving.register_keras_serializable("aigc_keras")
class DiffusionModel(OneOptimizerModel):
    """A U-Net denoiser trained to undo `schedule`'s noise (Ho et al., 2020, Algorithm 1).

    Each `train_step` draws t ~ U{0..T-1} and eps ~ N(0, I) per image, forms
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps and regresses the network on eps
    (or on v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0, Salimans & Ho 2022) with
    a mean squared error averaged over the global batch. A conditional model replaces the label
    by the null class with probability `label_dropout`, so one network also learns the
    unconditional score that classifier-free guidance needs. With `ema_momentum`, an
    exponential moving average of the network is kept for sampling and export.
    """

    def __init__(self, network, schedule="linear", timesteps=1000, prediction="eps", label_dropout=0.1,
                 ema_momentum=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}: use one of {', '.join(PREDICTIONS)}")
        self.network = network
        self.schedule = NoiseSchedule(schedule, timesteps)
        self.prediction = prediction
        self.label_dropout = label_dropout
        self.ema_momentum = ema_momentum
        self.seed = seed
        self.ema_network = ema_copy(network, "ema_network") if ema_momentum else None
        # Tables from float64, not 1 - alpha_bar at run time (see samplers.py: float16 exports).
        self._sqrt_alpha_bar = tf.constant(np.sqrt(self.schedule.alphas_cumprod), tf.float32)
        self._sqrt_one_minus = tf.constant(np.sqrt(1.0 - self.schedule.alphas_cumprod), tf.float32)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker]

    @property
    def num_classes(self) -> int:
        return self.network.num_classes

    @property
    def image_shape(self):
        return self.network.image_shape

    @property
    def denoiser(self) -> keras.Model:
        """The network used for sampling and export: the EMA copy when there is one."""
        return self.ema_network if self.ema_network is not None else self.network

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        # Built eagerly: built lazily inside a replica step it fails under tf.distribute.
        optimizer.build(self.network.trainable_variables)

    def call(self, inputs, training=False):
        return self.denoiser(inputs, training=False)

    def train_step(self, data):
        x0, labels = data
        batch = tf.shape(x0)[0]
        step = tf.convert_to_tensor(self.optimizer.iterations)
        u = replica_noise("uniform", batch, [], self.seed, step, salt=0)
        t = tf.minimum(tf.cast(u * self.schedule.timesteps, tf.int32), self.schedule.timesteps - 1)
        eps = replica_noise("normal", batch, self.image_shape, self.seed, step, salt=1)
        sqrt_ab = tf.reshape(tf.gather(self._sqrt_alpha_bar, t), [-1, 1, 1, 1])
        sqrt_one_minus = tf.reshape(tf.gather(self._sqrt_one_minus, t), [-1, 1, 1, 1])
        x_t = sqrt_ab * x0 + sqrt_one_minus * eps
        target = eps if self.prediction == "eps" else sqrt_ab * eps - sqrt_one_minus * x0
        inputs = [x_t, t]
        if self.num_classes:
            drop = replica_noise("uniform", batch, [], self.seed, step, salt=2) < self.label_dropout
            inputs.append(tf.where(drop, self.num_classes, tf.cast(labels, tf.int32)))
        with tf.GradientTape() as tape:
            pred = tf.cast(self.network(inputs, training=True), tf.float32)
            per_example = tf.reduce_mean(tf.square(pred - target), axis=[1, 2, 3])
            loss = self.optimizer.scale_loss(tf.nn.compute_average_loss(per_example))  # x loss scale (fp16)
        weights = self.network.trainable_weights
        self.optimizer.apply(dense_gradients(tape.gradient(loss, weights)), weights)
        if self.ema_network is not None:
            update_ema(self.ema_network.weights, self.network.weights, self.ema_momentum, step + 1)
        self.loss_tracker.update_state(tf.reduce_mean(per_example))
        return {"loss": self.loss_tracker.result()}

    def predict_eps(self, x, t, labels=None, guidance=None):
        """eps predicted by the denoiser at step t (a scalar) for x_t [N, ...].

        With labels and `guidance` w, classifier-free guidance (Ho & Salimans, 2022):
        eps = eps_uncond + w (eps_cond - eps_uncond), both from one batched network call.
        """
        n = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]  # static when it can be (LiteRT)
        t_batch = tf.fill([n], tf.cast(t, tf.int32))
        if labels is None:
            out = self.denoiser([x, t_batch], training=False)
        elif guidance is None:
            out = self.denoiser([x, t_batch, labels], training=False)
        else:
            both = self.denoiser([tf.concat([x, x], 0), tf.concat([t_batch, t_batch], 0),
                                  tf.concat([labels, tf.fill([n], self.num_classes)], 0)], training=False)
            cond, uncond = both[:n], both[n:]
            out = uncond + guidance * (cond - uncond)
        if self.prediction == "v":  # eps = sqrt(alpha_bar) v + sqrt(1 - alpha_bar) x_t
            t = tf.cast(t, tf.int32)
            out = tf.gather(self._sqrt_alpha_bar, t) * out + tf.gather(self._sqrt_one_minus, t) * x
        return out

    def get_config(self):
        return {
            "name": self.name,
            "network": keras.saving.serialize_keras_object(self.network),
            "schedule": self.schedule.name,
            "timesteps": self.schedule.timesteps,
            "prediction": self.prediction,
            "label_dropout": self.label_dropout,
            "ema_momentum": self.ema_momentum,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)
