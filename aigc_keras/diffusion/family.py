"""The diffusion family: data, model, preview, sampling and export wired to the shared code."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..errors import AigcError
from ..export.litert import Endpoint, uint8_images
from ..imaging import grid, to_uint8
from ..inputs import in_chunks, noise_and_labels
from ..limits import check_fits
from ..training.family import ImageFamily, data_epochs, load_image_data
from .config import (
    DEFAULT_STEPS,
    EXPORT_SAMPLERS,
    GUIDANCE,
    DiffusionConfig,
    check_sampler,
    default_sampler,
)
from .model import DiffusionModel
from .pipeline import compiled_generate, generate_fn, generate_steps
from .samplers import DDIMSampler, EulerSampler, make_sampler
from .unet import UNet, check_image_size

PREVIEW_STEPS = 25
STEP_BYTES = 64  # the time grid's tables per sampler step (several float64 and float32 copies)


def checked_sampler(model: DiffusionModel, name: str | None, steps: int | None, eta: float = 0.0,
                    guidance: float | None = None):
    """(sampler, its name, steps): `name` (default: the model's objective's) checked against the
    model's objective, `steps` (default: the sampler's, at most T) against its grid, and
    `guidance` against the model, with one-line errors."""
    if guidance is not None and not model.num_classes:
        raise AigcError("--guidance needs a conditional model (train with --conditional)")
    name = name or default_sampler(model.objective)
    check_sampler(model.objective, name)
    if name == "ddpm":
        steps = steps or model.schedule.timesteps
    elif not steps:
        steps = DEFAULT_STEPS[name] if model.objective == "flow" else min(DEFAULT_STEPS[name], model.schedule.timesteps)
    check_fits("--steps", steps, STEP_BYTES, "for the sampler's time grid")
    try:
        sampler = make_sampler(name, model.schedule, eta)
        sampler.timesteps(steps)
    except ValueError as e:
        raise AigcError(str(e)) from None
    return sampler, name, steps


class DiffusionFamily(ImageFamily):
    name = "diffusion"
    config_class = DiffusionConfig
    export_tolerance = 1e-3  # after N network calls, float32 round-off adds up
    int8_refusal = ("TFLite's int8 calibration cannot run the sampler loop of `generate` (measured: a segmentation "
                    "fault with a conditional model, a failed DIV with dpm++); use --quantize dynamic or float16")

    def load_data(self, config: DiffusionConfig):
        return load_image_data(config, lambda shape: check_image_size(shape, config.levels, config.patch))

    def dataset(self, config: DiffusionConfig, data, global_batch_size: int, start_epoch: int = 0):
        return data_epochs(config, data, global_batch_size, start_epoch)

    def build(self, config: DiffusionConfig, data_info: dict) -> DiffusionModel:
        num_classes = len(data_info["class_names"]) if config.conditional else 0
        network = UNet(data_info["image_shape"], config.base_filters, config.levels, config.res_blocks,
                       config.attention, num_classes, config.patch, name="network")
        model = DiffusionModel(
            network,
            schedule=config.schedule,
            timesteps=config.timesteps,
            objective=config.objective,
            label_dropout=config.label_dropout,
            ema_momentum=config.ema_momentum if config.ema else None,
            seed=config.seed,
            time_sampling=config.time_sampling,
            loss_weighting=config.loss_weighting,
            min_snr_gamma=config.min_snr_gamma,
        )
        model.compile(optimizer=self.adam(config, data_info, config.learning_rate))
        return model

    def sample(self, model: DiffusionModel, num: int, seed: int, label: int | None = None, sampler: str | None = None,
               steps: int | None = None, eta: float = 0.0, guidance: float | None = None, on_step=None):
        """(uint8 images [N, H, W, C], labels or None, grid columns) from a trained model; the
        sampler and its steps default to the objective's (`config.default_sampler`).

        `on_step(i, x)` runs the loop step by step (progress bars, GIF frames); without it the
        whole loop is one graph.
        """
        num_classes = model.num_classes
        chosen, name, steps = checked_sampler(model, sampler, steps, eta, guidance)
        noise, labels = noise_and_labels(num, model.image_shape, seed, num_classes, label)
        guidance_t = None if guidance is None else tf.constant(guidance, tf.float32)
        generate = compiled_generate(model, (name, steps, eta), chosen, steps)

        def draw(noise, labels, k):  # chunk k's step noise (stochastic samplers) comes from seed + k
            labels_t = None if labels is None else tf.constant(labels)
            if on_step is None:
                x = generate(tf.constant(noise), labels_t, guidance_t, tf.constant(seed + k, tf.int64))
            else:
                x = generate_steps(model, chosen, steps, noise, labels_t, guidance_t, seed + k, on_step)
            return to_uint8(x)

        columns = num_classes if num_classes and label is None else None
        return in_chunks(draw, noise, labels), labels, columns

    def evaluation_options(self, subject, source, sampler=None, steps=None, eta=None, guidance=None) -> dict:
        if source.export:
            if sampler or steps or eta is not None:
                raise AigcError(f"{source.folder} is an export: its sampler and steps are fixed in the file "
                                f"({source.metadata['sampler']}, {source.metadata['steps']} steps)")
            return {"guidance": guidance}
        _, sampler, steps = checked_sampler(subject, sampler, steps, eta or 0.0, guidance)
        return {"sampler": sampler, "steps": steps, "eta": eta or 0.0, "guidance": guidance}

    def litert_inputs(self, noise, labels, guidance: float | None = None, **options) -> dict:
        inputs = super().litert_inputs(noise, labels)
        if labels is not None:
            inputs["guidance"] = np.array(1.0 if guidance is None else guidance, np.float32)  # 1: no guidance
        return inputs

    def quality_options(self, model: DiffusionModel, metadata: dict) -> dict:
        options = {"sampler": metadata["sampler"], "steps": metadata["steps"]}
        return {**options, "guidance": 1.0} if model.num_classes else options

    def monitor_sample_options(self, model: DiffusionModel) -> dict:
        steps = PREVIEW_STEPS if model.objective == "flow" else min(PREVIEW_STEPS, model.schedule.timesteps)
        return {"steps": steps, "guidance": GUIDANCE if model.num_classes else None}

    def preview(self, model: DiffusionModel, config: DiffusionConfig, data_info: dict):
        num = 10 * model.num_classes if model.num_classes else 64
        images, _, columns = self.sample(model, num, config.seed, **self.monitor_sample_options(model))
        return grid(images, columns)

    def export_spec(self, model: DiffusionModel, run: dict, steps: int | None = None, sampler: str | None = None,
                    batch: int = 1):
        """`generate` (the whole sampler, one WHILE loop) and `denoise_step` (one step of the
        objective's one-step sampler: DDIM, or Euler for a flow), for `batch` images per call: every
        tensor, the loop's carried ones too, has a fixed size, as LiteRT's CompiledModel API needs."""
        if sampler is not None and sampler not in EXPORT_SAMPLERS:
            raise AigcError(
                f"--sampler {sampler} draws fresh noise at every step; export a deterministic sampler "
                f"({' or '.join(EXPORT_SAMPLERS)})"
            )
        chosen, sampler, steps = checked_sampler(model, sampler, steps)
        generate = generate_fn(model, chosen, steps)
        flow = model.objective == "flow"
        one_step = EulerSampler() if flow else DDIMSampler(model.schedule)
        shape, num_classes = list(model.image_shape), model.num_classes
        noise_spec = tf.TensorSpec([batch, *shape], tf.float32, name="noise")
        x_spec = tf.TensorSpec([batch, *shape], tf.float32, name="x")
        time = tf.float32 if flow else tf.int32
        t_specs = [tf.TensorSpec([], time, name="t"), tf.TensorSpec([], time, name="t_prev")]
        cond_specs = [tf.TensorSpec([batch], tf.int32, name="label"), tf.TensorSpec([], tf.float32, name="guidance")]

        def outputs(x):
            return {"images": uint8_images(x), "images_float": x}

        def denoise(x, t, t_prev, labels=None, guidance=None):
            prediction = model.predict(one_step.prediction, x, t, labels, guidance)
            x_prev, _ = one_step.step(prediction, t, t_prev, x)
            x0 = one_step.x0(prediction, t, x) if flow else one_step.x0_from_eps(prediction, t, x)
            return {"x_prev": x_prev, "images": uint8_images(x0)}

        if num_classes:
            @tf.function(input_signature=[noise_spec, *cond_specs])
            def generate_signature(noise, label, guidance):
                return outputs(generate(noise, label, guidance))

            @tf.function(input_signature=[x_spec, *t_specs, *cond_specs])
            def denoise_step(x, t, t_prev, label, guidance):
                return denoise(x, t, t_prev, label, guidance)
        else:
            @tf.function(input_signature=[noise_spec])
            def generate_signature(noise):
                return outputs(generate(noise))

            @tf.function(input_signature=[x_spec, *t_specs])
            def denoise_step(x, t, t_prev):
                return denoise(x, t, t_prev)

        noise, labels = noise_and_labels(batch, shape, seed=0, num_classes=num_classes)
        ts, t_prevs = one_step.timesteps(steps)
        cond = {} if labels is None else {"label": labels, "guidance": np.array(GUIDANCE, np.float32)}
        dtype = np.float32 if flow else np.int32
        endpoints = [
            Endpoint("generate", generate_signature, [{"noise": noise, **cond}],
                     f"noise ~ N(0, 1) [{batch}, H, W, C] (+ label [{batch}] int32, guidance w) -> images uint8 and "
                     f"images_float in [-1, 1], after {steps} {sampler} steps"),
            Endpoint("denoise_step", denoise_step,
                     [{"x": noise, "t": np.array(ts[i], dtype), "t_prev": np.array(t_prevs[i], dtype), **cond}
                      for i in (0, len(ts) // 2)],
                     f"one {'Euler' if flow else 'DDIM (eta=0)'} step x_t -> x_prev, and images: the current "
                     "estimate of x_0"),
        ]
        metadata = {
            "batch": batch,
            "image_shape": shape,
            "noise": "noise: float32 [batch, H, W, C], independent standard normal values (x_T, or x_1 of a flow)",
            "objective": model.objective,
            "sampler": sampler,
            "steps": steps,
            "timesteps": [float(t) if flow else int(t) for t in ts],  # denoise_step's t; t_prev is the next
            "conditional": bool(num_classes),
            "num_classes": num_classes,
            "null_label": num_classes if num_classes else None,
            "class_names": run["data"]["class_names"] if num_classes else [],
            "ema": model.ema_network is not None,
            "config": run["config"],
        }
        if not flow:
            metadata["schedule"] = {"name": model.schedule.name, "timesteps": model.schedule.timesteps,
                                    "alphas_cumprod": [float(a) for a in model.schedule.alphas_cumprod]}
        return model.denoiser, endpoints, metadata
