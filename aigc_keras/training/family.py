"""The contract between a model family and the shared training code (`training.runner`)."""

from __future__ import annotations

import math

from ..errors import AigcError


def data_epochs(config, data, global_batch_size: int, start_epoch: int, per_step: int | None = None):
    """The batches that training from `start_epoch` to `config.epochs` consumes, and the steps per epoch.

    An epoch of `fit` is one pass over the data, or `config.steps_per_epoch` steps when set. The
    pipeline starts where an uninterrupted run would be after `start_epoch` epochs, so a resumed
    run sees the same batches.
    """
    full = data.steps_per_epoch(global_batch_size, per_step)
    steps = config.steps_per_epoch or full
    first, offset = divmod(start_epoch * steps, full)
    passes = math.ceil(config.epochs * steps / full) - first
    ds = data.batches(global_batch_size, config.seed, num_epochs=max(passes, 1), start_epoch=first,
                      per_step=per_step)
    return ds.skip(offset), steps


def load_image_data(config, check_shape):
    """`config.data` as image data, refused with one line naming the spec when `--conditional`
    has no labels or `check_shape(image_shape)` raises (the network cannot be sized for it)."""
    from ..data import load_images

    data = load_images(config.data)
    if config.conditional and not data.num_classes:
        raise AigcError(f"--conditional needs labelled data, and {config.data} has no labels")
    try:
        check_shape(data.image_shape)
    except AigcError as e:
        raise AigcError(f"{config.data}: {e}") from None
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

    def data_info(self, config, data) -> dict:
        """What the saved model records about its data (config.json) and `build` reads."""
        return data.info()

    def dataset(self, config, data, global_batch_size: int, start_epoch: int = 0):
        """(tf.data.Dataset of global batches for epochs start_epoch.., steps per epoch); see `data_epochs`."""
        raise NotImplementedError

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

    def export_spec(self, model, run: dict, **options):
        """(Keras model whose variables the exports use, [export.litert.Endpoint], metadata).

        `options` are the family's export options (none for the GAN).
        """
        raise NotImplementedError


class ImageFamily(Family):
    """An image generator: `sample` draws uint8 images, and `--eval-every` adds a KID curve."""

    def sample(self, model, num: int, seed: int, label: int | None = None, **options):
        """(uint8 images [N, H, W, C], labels or None, grid columns)."""
        raise NotImplementedError

    def monitor_sample_options(self, model) -> dict:
        """`sample` options for the KID estimates during training (fast, fixed)."""
        return {}

    def callbacks(self, model, config, data) -> list:
        if not config.eval_every:
            return []
        from ..metrics.features import feature_net
        from .callbacks import KIDMonitor
        from .precision import float32_model

        net = feature_net(config.data, config.eval_classifier)
        real, _ = data.arrays(config.eval_samples)
        def sample(num, seed):
            sampler = float32_model(model)
            return self.sample(sampler, num, seed, **self.monitor_sample_options(sampler))[0]

        return [KIDMonitor(config.eval_every, config.eval_samples, sample, net, real, config.seed)]
