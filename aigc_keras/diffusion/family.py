"""The diffusion family: data, model, preview, sampling and export wired to the shared code."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..errors import AigcError, arg
from ..export.litert import Endpoint, uint8_images
from ..imaging import grid
from ..inputs import noise_and_labels
from ..model_dir import ModelDir
from ..networks import pixels
from ..training.family import ImageFamily, data_epochs
from .config import DISTILLED_STEPS, EXPORT_SAMPLERS, GUIDANCE, DiffusionConfig, default_base_filters, default_patch
from .model import DiffusionModel
from .pipeline import edit_fn, generate_fn, resolve
from .reflow import teacher_pairs
from .samplers import DDIMSampler, EulerSampler
from .unet import UNet, check_image_size

PREVIEW_STEPS = 25


def _traced(fn, specs):
    """`fn` as a `tf.function` of exactly the tensors `specs` (their names name the signature's inputs)."""
    @tf.function(input_signature=specs)
    def traced(*tensors):
        return fn(*tensors)

    return traced


class DiffusionFamily(ImageFamily):
    name = "diffusion"
    export_tolerance = 1e-3  # after N network calls, float32 round-off adds up
    int8_refusal = ("TFLite's int8 calibration cannot run the sampler loop of `generate` (measured: a segmentation "
                    "fault with a conditional model, a failed DIV with dpm++); use --quantize dynamic or float16")

    def check_image_shape(self, config: DiffusionConfig, image_shape) -> None:
        if config.patch is None:  # settled here, so that config.json records it
            config.patch = default_patch(image_shape)
        if config.base_filters is None:
            config.base_filters = default_base_filters(image_shape, config.patch)
        check_image_size(image_shape, config.levels, config.patch)

    def load_data(self, config: DiffusionConfig):
        if config.distill_from and config.data == DiffusionConfig.data:  # unset: the teacher's data
            config.data = ModelDir(config.distill_from).record()["data"]["spec"]
        return super().load_data(config)

    def fine_tune_notes(self, config: DiffusionConfig, data, data_info: dict, base_data: dict) -> list[str]:
        """A student is refused, in one line, a teacher that is not a flow or learnt other data."""
        if not config.distill_from:
            return []
        flag = f"{arg('distill_from')} {config.distill_from}"
        if config.objective != "flow":
            raise AigcError(f"{flag} was trained with {arg('objective')} {config.objective}; reflow distils a flow "
                            f"({arg('objective')} flow)")
        if base_data.get("fingerprint") != data_info["fingerprint"]:
            raise AigcError(f"{flag} learnt {base_data.get('spec')} and {config.data} holds other images: a "
                            f"student learns its teacher's data (leave out {arg('data')})")
        return [f"reflow on {config.distill_pairs:,} (noise, sample) pairs of its default sampler; the student "
                f"samples with euler x{DISTILLED_STEPS} by default"]

    def training_data(self, config: DiffusionConfig, data, md, base, log):
        if not config.distill_from:
            return data
        return teacher_pairs(base.model(self), base.fingerprint(self), config.distill_pairs, config.seed,
                             md.pairs, log)

    def pass_steps(self, config: DiffusionConfig, data_info: dict) -> int:
        if config.distill_from:
            return max(config.distill_pairs // config.batch_size, 1)
        return super().pass_steps(config, data_info)

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
            flip=config.flip,
            distilled=bool(config.distill_from),
        )
        model.compile(optimizer=self.adam(config, data_info, config.learning_rate))
        return model

    def evaluation_options(self, subject, source, sampler=None, steps=None, eta=None, guidance=None) -> dict:
        if source.export:
            if sampler or steps or eta is not None:
                raise AigcError(f"{source.folder} is an export: its sampler and steps are fixed in the file "
                                f"({source.metadata['sampler']}, {source.metadata['steps']} steps)")
            return {"guidance": source.metadata.get("guidance") if guidance is None else guidance}
        sampling = resolve(subject, sampler, steps, eta, guidance)
        return {"sampler": sampling.name, "steps": sampling.steps, "eta": sampling.eta, "guidance": sampling.guidance}

    def litert_inputs(self, noise, labels, guidance: float | None = None, **options) -> dict:
        inputs = super().litert_inputs(noise, labels)
        if labels is not None:
            inputs["guidance"] = np.array(1.0 if guidance is None else guidance, np.float32)  # 1: no guidance
        return inputs

    def quality_options(self, model: DiffusionModel, metadata: dict) -> dict:
        options = {"sampler": metadata["sampler"], "steps": metadata["steps"]}
        return {**options, "guidance": 1.0} if model.num_classes else options

    def monitor_sample_options(self, model: DiffusionModel) -> dict:
        if model.distilled:
            steps = DISTILLED_STEPS
        else:
            steps = PREVIEW_STEPS if model.objective == "flow" else min(PREVIEW_STEPS, model.schedule.timesteps)
        return {"steps": steps, "guidance": GUIDANCE if model.num_classes else None}

    def preview(self, model: DiffusionModel, config: DiffusionConfig, data_info: dict):
        num = 10 * model.num_classes if model.num_classes else 64
        images, _, columns = self.sample(model, num, config.seed, **self.monitor_sample_options(model))
        return grid(images, columns)

    def export_spec(self, model: DiffusionModel, record: dict, steps: int | None = None, sampler: str | None = None,
                    batch: int = 1):
        """`generate` (the whole sampler, one WHILE loop: the graph `DiffusionModel.generate` runs),
        `denoise_step` (one step of the objective's one-step sampler: DDIM, or Euler for a flow) and `edit`
        (image-to-image and inpainting, one WHILE loop: `DiffusionModel.edit`'s graph), for `batch` images
        per call: every tensor, the loop's carried ones too, has a fixed size, as
        LiteRT's CompiledModel API needs."""
        if sampler is not None and sampler not in EXPORT_SAMPLERS:
            raise AigcError(
                f"{arg('sampler')} {sampler} draws fresh noise at every step; export a deterministic sampler "
                f"({' or '.join(EXPORT_SAMPLERS)})"
            )
        sampling = resolve(model, sampler, steps)
        flow = model.objective == "flow"
        one_step = EulerSampler() if flow else DDIMSampler(model.schedule)
        shape, conditional = list(model.image_shape), bool(model.num_classes)
        generate, denoise_step, edit = self._signatures(model, sampling, one_step, batch)
        noise, labels = noise_and_labels(batch, shape, seed=0, num_classes=model.num_classes)
        image = np.random.default_rng(1).integers(0, 256, (batch, *shape), dtype=np.uint8)
        mask = np.zeros((batch, *shape[:2], 1), np.uint8)
        mask[:, : shape[0] // 2] = 255  # generate the top half, keep the rest
        ts, t_prevs = one_step.timesteps(sampling.steps)
        cond = {"label": labels, "guidance": np.array(GUIDANCE, np.float32)} if conditional else {}
        dtype = np.float32 if flow else np.int32
        endpoints = [
            Endpoint("generate", generate, [{"noise": noise, **cond}],
                     f"noise ~ N(0, 1) [{batch}, H, W, C] (+ label [{batch}] int32, guidance w) -> images uint8 and "
                     f"images_float in [-1, 1], after {sampling.steps} {sampling.name} steps"),
            Endpoint("denoise_step", denoise_step,
                     [{"x": noise, "t": np.array(ts[i], dtype), "t_prev": np.array(t_prevs[i], dtype), **cond}
                      for i in (0, len(ts) // 2)],
                     f"one {'Euler' if flow else 'DDIM (eta=0)'} step x_t -> x_prev, and images: the current "
                     "estimate of x_0"),
            Endpoint("edit", edit,
                     [{"image": image, "mask": mask, "noise": noise, "strength": np.array(s, np.float32), **cond}
                      for s in (0.5, 1.0)],
                     f"image uint8 [{batch}, H, W, C], mask uint8 [{batch}, H, W, 1] (nonzero: generate), noise, "
                     f"strength in [0, 1] (+ label, guidance) -> images uint8 (kept pixels as given) and images_float: "
                     f"the last round(strength * {sampling.steps}) {sampling.name} steps from the image noised to "
                     "their start"),
        ]
        metadata = {
            "batch": batch,
            "image_shape": shape,
            "noise": "noise: float32 [batch, H, W, C], independent standard normal values (x_T, or x_1 of a flow)",
            "objective": model.objective,
            "sampler": sampling.name,
            "steps": sampling.steps,
            "guidance": sampling.guidance,  # the weight `sample` and `evaluate` use when none is given (none: 1)
            "timesteps": [float(t) if flow else int(t) for t in ts],  # denoise_step's t; t_prev is the next
            "edit": {"mask": "uint8 [batch, H, W, 1]: nonzero where to generate, 0 where to keep (kept pixels come "
                             "back exactly)",
                     "strength": f"float32 []: 0 returns the image, 1 generates from the noise alone (as generate); "
                                 f"it runs the last round(strength * {sampling.steps}) steps"},
            "conditional": conditional,
            "num_classes": model.num_classes,
            "null_label": model.num_classes if conditional else None,
            "class_names": record["data"]["class_names"] if conditional else [],
            "ema": model.ema_network is not None,
            "config": record["config"],
        }
        if not flow:
            metadata["schedule"] = {"name": model.schedule.name, "timesteps": model.schedule.timesteps,
                                    "alphas_cumprod": [float(a) for a in model.schedule.alphas_cumprod]}
        return model.denoiser, endpoints, metadata

    @staticmethod
    def _signatures(model: DiffusionModel, sampling, one_step, batch: int):
        """The `generate`, `denoise_step` and `edit` tf.functions, with label and guidance inputs when conditional."""
        flow = model.objective == "flow"
        shape = list(model.image_shape)
        loop = generate_fn(model, sampling.method, sampling.steps)
        time = tf.float32 if flow else tf.int32
        cond_specs = [tf.TensorSpec([batch], tf.int32, name="label"), tf.TensorSpec([], tf.float32, name="guidance")] \
            if model.num_classes else []

        def generate(noise, *cond):
            x = loop(noise, *cond)
            return {"images": uint8_images(x), "images_float": x}

        def denoise(x, t, t_prev, *cond):
            prediction = model.model_output(one_step.prediction, x, t, *cond)
            x_prev, _ = one_step.step(prediction, t, t_prev, x)
            x0 = one_step.x0(prediction, t, x) if flow else one_step.x0_from_eps(prediction, t, x)
            return {"x_prev": x_prev, "images": uint8_images(x0)}

        editing = edit_fn(model, sampling.method, sampling.steps)

        def edit(image, mask, noise, strength, *cond):
            generated = tf.minimum(tf.cast(mask, tf.float32), 1.0)  # 1 wherever the mask is not 0
            x = editing(pixels(image), generated, noise, strength, *cond)
            return {"images": uint8_images(x), "images_float": x}  # kept: x is the image there, and its pixels

        return (_traced(generate, [tf.TensorSpec([batch, *shape], tf.float32, name="noise"), *cond_specs]),
                _traced(denoise, [tf.TensorSpec([batch, *shape], tf.float32, name="x"),
                                  tf.TensorSpec([], time, name="t"), tf.TensorSpec([], time, name="t_prev"),
                                  *cond_specs]),
                _traced(edit, [tf.TensorSpec([batch, *shape], tf.uint8, name="image"),
                               tf.TensorSpec([batch, *shape[:2], 1], tf.uint8, name="mask"),
                               tf.TensorSpec([batch, *shape], tf.float32, name="noise"),
                               tf.TensorSpec([], tf.float32, name="strength"), *cond_specs]))
