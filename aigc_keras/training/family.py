"""The contract between a model family and the shared training code (`training.runner`)."""

from __future__ import annotations

import math

import numpy as np

from ..config import SMALL_DATA
from ..errors import AigcError, arg
from ..limits import check_fits
from ..progress import task

QUALITY_SAMPLES = 500  # samples per FID when an export is checked for what quantization cost
FEATURE_BYTES = 3 * 2048 * 8  # per sample of `evaluate`: float64 features of the samples and both real sets


def data_epochs(config, data, global_batch_size: int, start_epoch: int, per_step: int | None = None):
    """The batches that training from `start_epoch` to `config.epochs` consumes, and the steps per epoch.

    An epoch of `fit` is `config.epoch_steps` of a pass over the data (one pass, several for small data,
    or `config.steps_per_epoch`). The pipeline starts where an uninterrupted run would be after
    `start_epoch` epochs, so a resumed run sees the same batches.
    """
    full = data.steps_per_epoch(global_batch_size, per_step)
    steps = config.epoch_steps(full)
    first, offset = divmod(start_epoch * steps, full)
    passes = math.ceil(config.epochs * steps / full) - first
    ds = data.batches(global_batch_size, config.seed, num_epochs=max(passes, 1), start_epoch=first,
                      per_step=per_step)
    return ds.skip(offset), steps


def settled_image_data(config, data, check_shape):
    """`data` (image data for `config`), refused with one line naming its spec when `conditional`
    has no labels or `check_shape(image_shape)` raises (the network cannot be sized for it).

    What the data settles is settled here, so that config.json records what was trained: an unset
    `conditional` becomes whether the data has labels, `flip` whether it is small and in colour,
    `augment` (the GAN's) whether it is small.
    """
    small = data.num_examples < SMALL_DATA
    if config.flip is None:
        config.flip = small and data.image_shape[-1] == 3
    if getattr(config, "augment", False) is None:
        config.augment = small
    if hasattr(config, "conditional"):  # families without classes have no flag
        if config.conditional is None:
            config.conditional = bool(data.num_classes)
        elif config.conditional and not data.num_classes:
            who = f"the class-conditional model of {arg('init_from')}" if config.init_from else arg("conditional")
            raise AigcError(f"{who} needs labelled data, and {config.data} has no labels")
    try:
        check_shape(data.image_shape)
    except AigcError as e:
        raise AigcError(f"{data.spec}: {e}") from None
    return data


class Family:
    """A family supplies its data, its compiled model and a preview; the runner does the rest.

    The runner owns the strategy, checkpoints, resume, TensorBoard, history and the atomic
    final save, so a new family implements only these methods.
    """

    name: str = ""
    export_tolerance: float = 1e-4  # max |LiteRT - TF| of a float32 export, in [-1, 1] units

    def load_data(self, config):
        """The dataset described by `config.data`, with an `info()` dict and `num_classes`."""
        raise NotImplementedError

    def data_from(self, config, **data):
        """The family's dataset from values in memory (see `model_for`)."""
        raise NotImplementedError

    def model_for(self, config, **data):
        """The compiled model that training builds for `config` (a copy, settled on the data as training
        records it) and its data: values in memory (`data_from`'s, e.g. `images=` or `text=`), or the
        config's `data` spec. What `GAN.from_config(GANConfig())` and its siblings return."""
        import dataclasses

        from ..precision import dtype_policy

        config = dataclasses.replace(config)
        given = {k: v for k, v in data.items() if v is not None}
        loaded = self.data_from(config, **given) if given else self.load_data(config)
        with dtype_policy(config.precision):
            return self.build(config, self.data_info(config, loaded))

    def data_info(self, config, data) -> dict:
        """What the saved model records about its data (config.json) and `build` reads."""
        return data.info()

    def dataset(self, config, data, global_batch_size: int, start_epoch: int = 0):
        """(tf.data.Dataset of global batches for epochs start_epoch.., steps per epoch); see `data_epochs`."""
        raise NotImplementedError

    def training_data(self, config, data, md, base, log):
        """What `dataset` batches for training: `data`, or what the family makes from it and from `base`
        (`training.finetune.Base`, the model the run starts from), kept in `md` (a student's teacher pairs)."""
        return data

    def fine_tune_notes(self, config, data, data_info: dict, base_data: dict) -> list[str]:
        """Lines `train --init-from` says about how this run's data differs from its base's (`base_data`,
        the base's config.json entry), beyond the image size and the classes."""
        return []

    def pass_steps(self, config, data_info: dict) -> int:
        """Optimizer steps of one pass over the training examples."""
        return max(data_info["num_examples"] // config.batch_size, 1)

    def steps_per_epoch(self, config, data_info: dict) -> int:
        """Optimizer steps in one epoch (the runner's budget, a learning-rate schedule's length)."""
        return config.epoch_steps(self.pass_steps(config, data_info))

    def budget(self, config, data_info: dict) -> str:
        """One line: how long training runs, and why (for `train` to say)."""
        steps, one_pass = self.steps_per_epoch(config, data_info), self.pass_steps(config, data_info)
        line = f"budget: {config.epochs} epochs of {steps:,} optimizer steps ({config.epochs * steps:,} in all)"
        if steps > one_pass and not config.steps_per_epoch:
            line += (f"; an epoch is {steps / one_pass:.1f} passes over the data, which are fewer than "
                     f"{arg('min_epoch_steps')} {config.min_epoch_steps:,} steps, the family's budget for small data")
        return line

    def learning_rate(self, config, data_info: dict, rate: float):
        """`rate`, or with `--lr-schedule cosine` a linear warm-up to it over `config.warmup_steps` and
        a cosine decay to 0 at the run's last step."""
        import keras

        if config.lr_schedule == "constant":
            return rate
        total = max(config.epochs * self.steps_per_epoch(config, data_info), config.warmup_steps + 1)
        warm = config.warmup_steps
        return keras.optimizers.schedules.CosineDecay(0.0 if warm else rate, total - warm,
                                                      warmup_target=rate if warm else None, warmup_steps=warm)

    def adam(self, config, data_info: dict, rate: float, **kwargs):
        """Adam at `rate` (on `--lr-schedule`), loss-scaled under `--precision mixed_float16`."""
        import keras

        from ..precision import loss_scaled

        return loss_scaled(keras.optimizers.Adam(self.learning_rate(config, data_info, rate), **kwargs),
                           config.precision)

    def validation_data(self, config, data):
        """Batches `fit` validates on after each epoch (`val_` metrics), or None."""
        return None

    def build(self, config, data_info: dict):
        """The compiled `keras.Model`; called inside `strategy.scope()`."""
        raise NotImplementedError

    def preview(self, model, config, data_info: dict):
        """A fixed-seed sample shown after every epoch: a uint8 image [H, W, C], a text, or None."""
        return None

    def callbacks(self, model, config, data) -> list:
        """Family-specific Keras callbacks for `fit` (the runner adds checkpoints, history, TensorBoard)."""
        return []

    def next_command(self, model_dir: str) -> str:
        """What to run after training into `model_dir`: drawing from it."""
        return f"aigc-keras sample {self.name} --model {model_dir}"

    def export_spec(self, model, record: dict, **options):
        """(Keras model whose variables the exports use, [export.litert.Endpoint], metadata).

        `options` are the family's export options (the batch, the diffusion sampler, ...). Every
        tensor of a signature has a fixed size.
        """
        raise NotImplementedError

    int8_refusal: str | None = "int8 quantization is not offered for this family"  # None: it is

    def evaluate(self, source, seed: int, **options) -> tuple[dict, str]:
        """(report, table) of how good `source` (`metrics.evaluate.Source`: a model or an export) is,
        for `aigc-keras evaluate`; `options` are the family's `cli.EVALUATE_OPTIONS`."""
        raise AigcError(f"evaluate takes a generator; {source.folder} holds a {self.name} model")

    def export_quality(self, model, record: dict, litert, metadata: dict) -> dict:
        """{"metric", "keras", "litert", "collapsed"}: the family's quality measure of the Keras model
        and of an exported file (`export.runtime.LiteRTModel`), for what quantization cost."""
        raise AigcError(f"no quality measure for {self.name} exports")

    def calibration(self, model, config, endpoints) -> list[tuple[str, dict]]:
        """(signature, inputs) pairs typical of real use, to calibrate int8 activations (families
        whose `int8_refusal` is None)."""
        raise NotImplementedError


class ImageFamily(Family):
    """An image generator: `sample` draws uint8 images, and `--eval-every` adds a KID curve. Its export
    has a `generate` signature whose `noise_input` is a fixed batch of standard normal noise."""

    noise_input = "noise"

    def check_image_shape(self, config, image_shape) -> None:
        """Raise `AigcError` when the family's networks, as `config` sizes them, cannot take `image_shape`."""

    def load_data(self, config):
        from ..data import load_images

        return settled_image_data(config, load_images(config.data), lambda shape: self.check_image_shape(config, shape))

    def data_from(self, config, images=None, labels=None):
        from ..data.images import from_arrays

        return settled_image_data(config, from_arrays(images, labels),
                                  lambda shape: self.check_image_shape(config, shape))

    def sample(self, model, num: int, seed: int, label=None, **options):
        """(uint8 images [N, H, W, C], labels or None, grid columns): `model.generate(num, seed, label,
        **options)`, with one class per column when a conditional model draws every class."""
        from ..inputs import class_labels

        images = model.generate(num, seed, label, **options)
        columns = model.num_classes if model.num_classes and label is None else None
        return images, class_labels(num, model.num_classes, label), columns

    def evaluate(self, source, seed: int, num: int | None = None, classifier_dir: str | None = None,
                 subsets: int = 10, subset_size: int = 1000, precision_recall: bool = False, **options):
        """FID and KID of `num` samples against `num` real training images, the same for two disjoint
        real sets (the floor a perfect model would reach at this size), mode coverage where the
        feature classifier gives classes; `options` are the family's sampling options."""
        import time

        from ..data import load_images
        from ..metrics.evaluate import (
            evaluate_images,
            format_report,
            generate,
            real_sets,
        )
        from ..metrics.features import feature_net
        from ..metrics.image import memorisation

        start, num = time.time(), num or 1000
        check_fits(arg("num"), num, FEATURE_BYTES + 3 * math.prod(source.image_shape or [1]),
                   "of samples and real images")
        data = load_images(source.data, source.fingerprint)
        net = feature_net(source.data, classifier_dir)
        net.check(data.image_shape)
        subject = source.load()
        options = self.evaluation_options(subject, source, **options)
        if source.export:
            def sample(n, s):
                return self.litert_sample(subject, source.metadata, n, s, **options)[0]
        else:
            def sample(n, s):
                return self.sample(subject, n, s, **options)[0]
        real, floor = real_sets(data, num, seed)
        samples = generate(sample, num, seed)
        result = evaluate_images(samples, real, floor, net, subsets, subset_size, precision_recall, seed)
        result["memorisation"] = memorisation(samples, data.arrays()[0], real)
        report = {**source.describe, "family": self.name, "data": source.data,
                  "options": {"num": num, "seed": seed, **options}, **result,
                  "seconds": round(time.time() - start, 1)}
        return report, format_report(report)

    def evaluation_options(self, subject, source, **options) -> dict:
        """The sampling options `evaluate` uses (defaults filled in), checked against the subject."""
        return options

    def litert_inputs(self, noise, labels, **options) -> dict:
        """The inputs of the export's `generate` for a batch of noise (and labels)."""
        return {self.noise_input: noise} if labels is None else {self.noise_input: noise, "label": labels}

    def litert_sample(self, litert, metadata: dict, num: int, seed: int, label: int | None = None, **options):
        """`sample`, through an export's `generate` in LiteRT (`export.runtime.LiteRTModel`): the same
        noise for the same seed, in calls of the export's fixed batch."""
        from ..inputs import noise_and_labels

        shape = metadata["signatures"]["generate"]["inputs"][self.noise_input]["shape"]
        batch = shape[0]
        noise, labels = noise_and_labels(num, shape[1:], seed, metadata["num_classes"], label)
        images = []
        with task("generating in LiteRT", num, " images") as bar:
            for start in range(0, num, batch):
                rows = np.arange(start, start + batch).clip(max=num - 1)  # the last call repeats its last row
                inputs = self.litert_inputs(noise[rows], None if labels is None else labels[rows], **options)
                images.append(litert.run("generate", **inputs)["images"][:num - start])
                bar.advance(len(images[-1]))
        columns = metadata["num_classes"] if metadata["num_classes"] and label is None else None
        return np.concatenate(images), labels, columns

    def export_quality(self, model, record: dict, litert, metadata: dict, num: int = QUALITY_SAMPLES) -> dict:
        """FID of `num` samples from the Keras model and from the LiteRT file (same noise), against the
        same real images: how much a quantized file loses."""
        from ..data import load_images
        from ..metrics.evaluate import generate, real_sets
        from ..metrics.features import feature_net
        from ..metrics.image import fid

        spec = record["data"]["spec"]
        net = feature_net(spec)
        real, _ = real_sets(load_images(spec, record["data"].get("fingerprint")), num, seed=0)
        real_features, _ = net(real)
        options = self.quality_options(model, metadata)
        keras_images = generate(lambda n, s: self.sample(model, n, s, **options)[0], num, 0)
        litert_images = generate(lambda n, s: self.litert_sample(litert, metadata, n, s, **options)[0], num, 0)
        keras_fid, litert_fid = (fid(net(images)[0], real_features) for images in (keras_images, litert_images))
        return {"metric": f"FID of {num} samples ({net.name})", "keras": keras_fid, "litert": litert_fid,
                "collapsed": litert_fid > 2 * keras_fid}

    def quality_options(self, model, metadata: dict) -> dict:
        """`sample` options that the export's `generate` reproduces (its sampler and steps, say)."""
        return {}

    def monitor_sample_options(self, model) -> dict:
        """`sample` options for the KID estimates during training (fast, fixed)."""
        return {}

    def callbacks(self, model, config, data) -> list:
        if not config.eval_every:
            return []
        from ..metrics.features import feature_net
        from ..precision import float32_model
        from .callbacks import KIDMonitor

        net = feature_net(config.data, config.eval_classifier)
        real, _ = data.arrays(config.eval_samples)
        def sample(num, seed):
            drawing = float32_model(model)
            return self.sample(drawing, num, seed, **self.monitor_sample_options(drawing))[0]

        return [KIDMonitor(config.eval_every, config.eval_samples, sample, net, real, config.seed)]
