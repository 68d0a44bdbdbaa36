"""The diffusion model as one `keras.Model`: `fit` trains the denoiser with the DDPM or the flow objective."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .. import progress
from ..augment import flip
from ..errors import AigcError, arg
from ..imaging import to_uint8
from ..inputs import edit_inputs, in_chunks, noise_and_labels
from ..networks import ImageModel, OneOptimizer, averaged_weights, ema_copy, pixels
from ..precision import training_step
from ..training.distributed import apply_gradients, replica_noise, update_ema
from .config import DISTILLED_STEPS, OBJECTIVES, DiffusionConfig, edit_strength
from .schedules import NoiseSchedule

DEFAULTS = DiffusionConfig()  # the one home of every default: the class's are the CLI's

FLOW_TIME_SCALE = 1000.0  # a flow's t in [0, 1] is shown to the network as 1000 t, the range of DDPM's steps


@keras.saving.register_keras_serializable("aigc_keras")
class DiffusionModel(ImageModel, OneOptimizer, keras.Model):
    """A U-Net denoiser trained to undo noise: DDPM (Ho et al., 2020, Algorithm 1) or rectified flow.

    DDPM (`objective` eps or v): each `train_step` draws t ~ U{0..T-1} and eps ~ N(0, I) per image,
    forms x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps and regresses the network on eps
    (or on v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0, Salimans & Ho 2022), each t
    weighted by min(SNR_t, gamma) / SNR_t (min(SNR_t, gamma) / (SNR_t + 1) for v) with
    `loss_weighting="min-snr"` (Hang et al. 2023). Flow (`objective="flow"`, rectified flow: Liu et
    al. 2022, Lipman et al. 2023): t in [0, 1] uniform or logit-normal (SD3, Esser et al. 2024),
    x_t = (1 - t) x_0 + t eps, and the network regresses the velocity v = eps - x_0.

    The loss is a mean squared error averaged over the global batch of images (uint8, or floats in
    [-1, 1]). A conditional model trains on (images, labels) and replaces the label by the null class
    with probability `label_dropout`, so one network also learns the unconditional prediction that
    classifier-free guidance needs. With `ema_momentum`, an exponential moving average of the network
    is kept for sampling and export. With `flip`, training images are mirrored at random.

    Images given as {"images": x_0, "noise": z} train on that noise for eps (reflow's pairs of a
    teacher, `reflow`). With `time_sampling="few-step"` a flow trains only at the times its Euler
    sampler in `DISTILLED_STEPS`, half as many, .. 1 steps evaluates; a `distilled` model's default
    sampler is Euler in `DISTILLED_STEPS` steps.
    """

    def __init__(self, network, schedule=DEFAULTS.schedule, timesteps=DEFAULTS.timesteps,
                 objective=DEFAULTS.objective, label_dropout=DEFAULTS.label_dropout,
                 ema_momentum=DEFAULTS.ema_momentum if DEFAULTS.ema else None, seed=DEFAULTS.seed,
                 time_sampling=DEFAULTS.time_sampling, loss_weighting=DEFAULTS.loss_weighting,
                 min_snr_gamma=DEFAULTS.min_snr_gamma, flip=False, distilled=False, prediction=None, **kwargs):
        super().__init__(**kwargs)
        self.flip, self.distilled = flip, distilled
        objective = prediction or objective  # models saved before `objective` called it `prediction`
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
        self.network = network
        self.schedule = NoiseSchedule(schedule, timesteps)
        self.objective = objective
        self.time_sampling = time_sampling
        self.loss_weighting = loss_weighting
        self.min_snr_gamma = min_snr_gamma
        self.label_dropout = label_dropout
        self.ema_momentum = ema_momentum
        self.seed = seed
        self.ema_network = ema_copy(network, "ema_network") if ema_momentum else None
        # Tables from float64, not 1 - alpha_bar at run time (see samplers.py: float16 exports).
        alpha_bar = self.schedule.alphas_cumprod
        self._sqrt_alpha_bar = tf.constant(np.sqrt(alpha_bar), tf.float32)
        self._sqrt_one_minus = tf.constant(np.sqrt(1.0 - alpha_bar), tf.float32)
        snr = alpha_bar / (1.0 - alpha_bar)
        weight = np.minimum(snr, min_snr_gamma) / (snr + 1.0) if objective == "v" else \
            np.minimum(1.0, min_snr_gamma / np.maximum(snr, 1e-30))  # min(snr, gamma) / snr, also at snr = 0
        self._min_snr_weight = tf.constant(weight, tf.float32)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.build()

    def build(self, input_shape=None):
        """Nothing to create: the denoiser is a built network (see `GAN.build`)."""

    @property
    def predictions(self) -> tuple[str, ...]:
        """What the samplers can ask of this model: "velocity" for a flow, "eps" for DDPM."""
        return ("velocity",) if self.objective == "flow" else ("eps",)

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

    @property
    def optimizer_variables(self):
        """What the optimizer updates: the network, not its EMA copy."""
        return self.network.trainable_variables

    def call(self, inputs, training=False):
        return self.denoiser(inputs, training=False)

    def generate(self, num: int = 16, seed: int = 0, labels=None, sampler=None, steps: int | None = None,
                 guidance: float | None = None, eta: float | None = None, on_step=None) -> np.ndarray:
        """uint8 images [num, H, W, C] from x_T ~ N(0, I) drawn by NumPy's generator seeded by `seed`
        (the numbers an app feeds the export's `generate`), in chunks of `inputs.CHUNK`.

        `sampler` is a sampler's name (ddpm, ddim, dpm++ for DDPM models; euler, heun for flows; default:
        the objective's) or what `pipeline.resolve` made; `steps` defaults to the sampler's; `guidance`
        is the classifier-free guidance weight and `labels` one class for all, one per image, or every
        class in turn (conditional models). The loop is one graph, the one the export embeds; with
        `on_step(i, x)` it runs step by step instead (animation frames), with the same result, as it does when
        a command shows progress (`progress.shown`).
        """
        from .pipeline import Sampling, compiled_generate, generate_steps, resolve

        sampling = sampler if isinstance(sampler, Sampling) else resolve(self, sampler, steps, eta, guidance)
        noise, labels = noise_and_labels(num, self.image_shape, seed, self.num_classes, labels)
        guidance_t = None if sampling.guidance is None else tf.constant(sampling.guidance, tf.float32)
        loop = compiled_generate(self, sampling)
        stepwise = on_step is not None or progress.reporting()  # a bar moves with each step

        with progress.task(f"{sampling.name} x{sampling.steps}", num, " images") as bar:
            def draw(noise, labels, k):  # chunk k's step noise (stochastic samplers) comes from seed + k
                labels_t = None if labels is None else tf.constant(labels)
                if not stepwise:
                    x = loop(tf.constant(noise), labels_t, guidance_t, tf.constant(seed + k, tf.int64))
                else:
                    def step(i, x):
                        bar.advance(len(noise) / sampling.evaluations)
                        if on_step is not None:
                            on_step(i, x)

                    x = generate_steps(self, sampling.method, sampling.steps, noise, labels_t, guidance_t, seed + k,
                                       step)
                return to_uint8(x)

            return in_chunks(draw, noise, labels)

    def edit(self, images, strength: float | None = None, mask=None, seed: int = 0, labels=None, sampler=None,
             steps: int | None = None, guidance: float | None = None, eta: float | None = None,
             resample: int = 1) -> np.ndarray:
        """uint8 images [N, H, W, C] made from uint8 `images` [N, H, W, C] (or one [H, W, C]): image-to-image
        (SDEdit) and, where `mask` ([N, H, W] or one [H, W]; nonzero: generate) keeps pixels, inpainting.
        Kept pixels come back exactly as given.

        `strength` in [0, 1] is how far into the noise the images go before the sampler brings them back,
        in steps of 1 / steps: 0 returns them, 1 is `generate` from the same noise (default: 0.6, or 1 with
        a mask). The noise is `generate`'s for the same `seed`; `labels` (another class turns a 3 into an 8),
        `sampler`, `steps`, `guidance` and `eta` are as for `generate`. `resample` > 1 runs every step that
        many times (RePaint): the generated part fits the kept one better, for as many times the work.
        """
        from .pipeline import Sampling, compiled_edit, resolve

        strength = edit_strength(strength, mask is not None)
        if not 0.0 <= strength <= 1.0:  # (nan fails too)
            raise AigcError(f"{arg('strength')} must be in 0..1, got {strength}")
        if not isinstance(resample, (int, np.integer)) or resample < 1:
            raise AigcError(f"{arg('resample')} must be a whole number >= 1, got {resample!r}")
        images, mask = edit_inputs(images, mask, self.image_shape)
        sampling = sampler if isinstance(sampler, Sampling) else resolve(self, sampler, steps, eta, guidance)
        noise, labels = noise_and_labels(len(images), self.image_shape, seed, self.num_classes, labels)
        guidance_t = None if sampling.guidance is None else tf.constant(sampling.guidance, tf.float32)
        loop = compiled_edit(self, sampling, int(resample))

        def draw(noise, labels, images, mask, k):
            x = loop(pixels(tf.constant(images)), tf.constant(mask), tf.constant(noise),
                     tf.constant(strength, tf.float32), None if labels is None else tf.constant(labels), guidance_t,
                     tf.constant(seed + k, tf.int64))
            return np.where(mask > 0, to_uint8(x), images)

        with progress.task(f"editing, {sampling.name} x{sampling.steps}", len(images), " images"):
            return in_chunks(draw, noise, labels, images, mask)

    def train_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.num_classes and labels is None:
            raise ValueError("a conditional diffusion model trains on (images, labels): pass the labels to fit")
        paired = None
        if isinstance(images, dict):  # reflow: each image with the noise it was drawn from
            images, paired = images["images"], images["noise"]
        x0 = pixels(images)
        batch = tf.shape(x0)[0]
        step = tf.convert_to_tensor(training_step(self.optimizer))
        u = replica_noise("uniform", batch, [], self.seed, step, salt=0)
        eps = replica_noise("normal", batch, self.image_shape, self.seed, step, salt=1) if paired is None else \
            tf.cast(paired, tf.float32)
        if self.flip:  # a pair is mirrored whole: its noise too
            x0 = flip(x0, self.seed, step, salt=4)
            if paired is not None:
                eps = flip(eps, self.seed, step, salt=4)
        if self.num_classes:
            drop = replica_noise("uniform", batch, [], self.seed, step, salt=2) < self.label_dropout
            labels = tf.where(drop, self.num_classes, tf.cast(labels, tf.int32))
        if self.objective == "flow":
            x_t, t_network, target, weight = self._flow_example(x0, eps, u, step)
        else:
            x_t, t_network, target, weight = self._ddpm_example(x0, eps, u)
        inputs = [x_t, t_network, labels] if self.num_classes else [x_t, t_network]
        with tf.GradientTape() as tape:
            pred = tf.cast(self.network(inputs, training=True), tf.float32)
            per_example = weight * tf.reduce_mean(tf.square(pred - target), axis=[1, 2, 3])
            loss = self.optimizer.scale_loss(tf.nn.compute_average_loss(per_example))  # x loss scale (fp16)
        weights = self.network.trainable_weights
        apply_gradients(self.optimizer, tape.gradient(loss, weights), weights)
        if self.ema_network is not None:
            update_ema(*averaged_weights(self.ema_network, self.network), self.ema_momentum, step + 1)
        self.loss_tracker.update_state(tf.reduce_mean(per_example))
        return {"loss": self.loss_tracker.result()}

    def _ddpm_example(self, x0, eps, u):
        """(x_t, network time, target, loss weight) for t ~ U{0..T-1}."""
        t = tf.minimum(tf.cast(u * self.schedule.timesteps, tf.int32), self.schedule.timesteps - 1)
        sqrt_ab = tf.reshape(tf.gather(self._sqrt_alpha_bar, t), [-1, 1, 1, 1])
        sqrt_one_minus = tf.reshape(tf.gather(self._sqrt_one_minus, t), [-1, 1, 1, 1])
        x_t = sqrt_ab * x0 + sqrt_one_minus * eps
        target = eps if self.objective == "eps" else sqrt_ab * eps - sqrt_one_minus * x0
        weight = tf.gather(self._min_snr_weight, t) if self.loss_weighting == "min-snr" else tf.ones_like(u)
        return x_t, tf.cast(t, tf.float32), target, weight

    def _flow_example(self, x0, eps, u, step):
        """(x_t, network time, target, loss weight) for t in [0, 1]: x_t = (1 - t) x_0 + t eps, v = eps - x_0."""
        if self.time_sampling == "logit-normal":
            n = replica_noise("normal", tf.shape(x0)[0], [], self.seed, step, salt=3)
            t = tf.sigmoid(n)
        elif self.time_sampling == "few-step":  # k / N, k = 1..N: every time Euler in N, N/2, .., 1 steps evaluates
            t = tf.maximum(tf.math.ceil(u * DISTILLED_STEPS), 1.0) / DISTILLED_STEPS
        else:
            t = u
        t4 = tf.reshape(t, [-1, 1, 1, 1])
        return (1.0 - t4) * x0 + t4 * eps, FLOW_TIME_SCALE * t, eps - x0, tf.ones_like(t)

    def _network(self, x, t_network, labels=None, guidance=None):
        """The denoiser's output at network time `t_network` (a scalar), with classifier-free guidance
        (Ho & Salimans, 2022) when labels and `guidance` w are given: out_uncond + w (out_cond - out_uncond),
        both from one batched network call."""
        n = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]  # static when it can be (LiteRT)
        t_batch = tf.fill([n], tf.cast(t_network, tf.float32))
        if labels is None:
            return self.denoiser([x, t_batch], training=False)
        if guidance is None:
            return self.denoiser([x, t_batch, labels], training=False)
        both = self.denoiser([tf.concat([x, x], 0), tf.concat([t_batch, t_batch], 0),
                              tf.concat([labels, tf.fill([n], self.num_classes)], 0)], training=False)
        cond, uncond = both[:n], both[n:]
        return uncond + guidance * (cond - uncond)

    def model_output(self, kind: str, x, t, labels=None, guidance=None):
        """The sampler's quantity `kind` ("eps" or "velocity", see `predictions`) at (x, t)."""
        if kind not in self.predictions:
            raise ValueError(f"a model trained with objective {self.objective!r} predicts {self.predictions[0]}, "
                             f"not {kind}")
        if kind == "velocity":
            return self._network(x, FLOW_TIME_SCALE * tf.cast(t, tf.float32), labels, guidance)
        return self.predict_eps(x, t, labels, guidance)

    def predict_eps(self, x, t, labels=None, guidance=None):
        """eps predicted by a DDPM-trained denoiser at step t (a scalar) for x_t [N, ...], guided as
        `_network` says; a v-prediction is turned into eps = sqrt(alpha_bar) v + sqrt(1 - alpha_bar) x_t."""
        out = self._network(x, t, labels, guidance)
        if self.objective == "v":
            t = tf.cast(t, tf.int32)
            out = tf.gather(self._sqrt_alpha_bar, t) * out + tf.gather(self._sqrt_one_minus, t) * x
        return out

    def get_config(self):
        return {
            "name": self.name,
            "network": keras.saving.serialize_keras_object(self.network),
            "schedule": self.schedule.name,
            "timesteps": self.schedule.timesteps,
            "objective": self.objective,
            "time_sampling": self.time_sampling,
            "loss_weighting": self.loss_weighting,
            "min_snr_gamma": self.min_snr_gamma,
            "label_dropout": self.label_dropout,
            "ema_momentum": self.ema_momentum,
            "seed": self.seed,
            "flip": self.flip,
            "distilled": self.distilled,
        }

    @classmethod
    def from_saved_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)
