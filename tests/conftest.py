"""Shared fixtures. The CPU is split into two logical devices before TensorFlow starts, so the
MirroredStrategy tests run two replicas; every other test uses the default strategy."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


CPUS = tuple(d.name for d in tf.config.list_logical_devices("CPU"))


@pytest.fixture(autouse=True)
def mirrored_on_two_cpus(monkeypatch):
    """`--strategy mirrored` spans the two logical CPUs in every test, whatever GPUs the host has."""
    from aigc_keras.training import strategy

    monkeypatch.setattr(strategy, "mirrored_devices", lambda: CPUS)


@pytest.fixture
def two_cpus():
    """A MirroredStrategy of two replicas on the two logical CPU devices."""
    from aigc_keras.training.strategy import resolve_strategy

    strategy = resolve_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    return strategy


def run_cli(capsys, *args):
    """(exit code, stdout, stderr) of `aigc-keras ARGS` run in this process."""
    from aigc_keras.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def build_model(family, config, strategy=None, weights=None):
    """(model, fresh training dataset) of `family` for `config`, under `strategy`, with `weights`."""
    import keras

    keras.utils.set_random_seed(config.seed)
    data = family.load_data(config)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = family.build(config, data.info())
    if weights is not None:
        model.set_weights(weights)
    return model, family.dataset(config, data, config.batch_size)[0]


def make_images(n=96, size=16, channels=1, seed=0):
    """Two classes that differ in where they are bright: label 0 top half, label 1 bottom half."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 40, (n, size, size, channels)).astype(np.uint8)
    half = size // 2
    for i, label in enumerate(labels):
        rows = slice(0, half) if label == 0 else slice(half, size)
        images[i, rows] += 200
    return images, labels.astype(np.int64)


def npz_spec(path, images, labels) -> str:
    """Save `images` and `labels` to the .npz file `path`; its data spec."""
    np.savez(path, images=images, labels=labels)
    return f"npz:{path}"


@pytest.fixture
def images_npz(tmp_path):
    """npz:PATH spec of 96 labelled 16x16 grayscale images."""
    return npz_spec(tmp_path / "tiny.npz", *make_images())


@pytest.fixture
def gan_config(images_npz):
    """A GAN config that trains in seconds on the tiny dataset (unconditional unless asked)."""
    from aigc_keras.gan.config import GANConfig

    def make(**overrides):
        options = dict(data=images_npz, epochs=2, batch_size=16, steps_per_epoch=3, latent_dim=8,
                       base_filters=8, strategy="default", conditional=False, augment=False)
        options.update(overrides)
        return GANConfig(**options)

    return make


@pytest.fixture
def diffusion_config(images_npz):
    """A DDPM config (T = 50, a 2-level U-Net, unconditional unless asked) that trains in seconds on the tiny
    dataset."""
    from aigc_keras.diffusion.config import DiffusionConfig

    def make(**overrides):
        options = dict(data=images_npz, epochs=1, batch_size=16, steps_per_epoch=3, timesteps=50,
                       base_filters=8, levels=2, patch=1, objective="eps", conditional=False,
                       strategy="default")
        options.update(overrides)
        return DiffusionConfig(**options)

    return make
